package torchnet

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The optimisers of every training loop (victim, stolen encoder, heads): Adam and SGD with
// torch.optim's semantics, and LARS as SimSiam and MoCo v3 use it (layer-wise adaptive rate
// scaling around momentum SGD). Their state is a list of tensors that a checkpoint saves and
// restores exactly.

// optimizer updates parameters from their gradients. Its state is a list of tensors, so a
// checkpoint can save and restore it exactly.
type optimizer struct {
	Kind        string  // adam | sgd | lars
	WeightDecay float64 // L2 penalty added to the gradient (torch.optim semantics; lars: weights only)
	Momentum    float64 // sgd and lars
	Trust       float64 // lars only: the trust coefficient eta of the layer-wise rate
	Beta1       float64
	Beta2       float64
	Eps         float64
	Step        int64 // number of updates done (Adam's bias correction)

	params []*ts.Tensor
	m, v   []*ts.Tensor // Adam moments, or the SGD/LARS momentum buffer in m
	den    []*ts.Tensor // Adam's scratch for the denominator (reused: allocating it each step is slow)
}

// newOptimizer builds an Adam, SGD or LARS optimiser over params, with torch.optim's defaults for
// the constants (Adam betas 0.9/0.999, eps 1e-8) and SimSiam's LARS trust coefficient 0.001.
//
// LARS, for every parameter with more than one dimension (convolution and linear weights):
// g <- g + wd p, then g <- g * (eta ||p|| / ||g||) when both norms are positive; parameters of
// one dimension (biases, BatchNorm) get neither weight decay nor scaling. Then momentum SGD as
// "sgd": buf <- momentum buf + g (buf = g on the first step), p <- p - lr buf.
func newOptimizer(kind string, params []*ts.Tensor, weightDecay, momentum float64) (*optimizer, error) {
	if kind != "adam" && kind != "sgd" && kind != "lars" {
		return nil, fmt.Errorf("optimizer %q: expected adam, sgd or lars", kind)
	}
	o := &optimizer{Kind: kind, WeightDecay: weightDecay, Momentum: momentum, Trust: 0.001, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, params: params}
	for _, p := range params {
		o.m = append(o.m, p.MustZerosLike(false))
		if kind == "adam" {
			o.v = append(o.v, p.MustZerosLike(false))
			o.den = append(o.den, p.MustZerosLike(false))
		}
	}
	return o, nil
}

// state returns the optimiser's state tensors with stable names (for checkpoints).
func (o *optimizer) state() map[string]*ts.Tensor {
	st := map[string]*ts.Tensor{}
	for i := range o.params {
		st[fmt.Sprintf("m.%d", i)] = o.m[i]
		if o.v != nil {
			st[fmt.Sprintf("v.%d", i)] = o.v[i]
		}
	}
	return st
}

// zeroGrad clears every parameter's gradient.
func (o *optimizer) zeroGrad() {
	for _, p := range o.params {
		p.ZeroGrad()
	}
}

// update applies one step with learning rate lr. Call it after Backward, with grad mode off.
//
// Every operation is in place, into buffers allocated once: a fresh multi-megabyte tensor per
// parameter per step costs more than the arithmetic (allocation and page faults), so scalar
// factors are applied with addcmul_ against one-element tensors. Adam keeps v/(1-beta2) rather than v
// (v' <- beta2 v' + g^2), which is the same update with one multiplication fewer. LARS's
// layer-wise factor is computed on the device (one-element tensors, no copy to the host, so
// no synchronisation with a GPU per parameter).
func (o *optimizer) update(lr float64) {
	o.Step++
	scalar := func(v float64) *ts.Tensor { return ts.MustOfSlice([]float32{float32(v)}) } // shape [1] broadcasts
	var consts []*ts.Tensor
	mk := func(v float64, dev gotch.Device) *ts.Tensor {
		t := scalar(v)
		if dev != gotch.CPU {
			t = t.MustTo(dev, true)
		}
		consts = append(consts, t)
		return t
	}
	var wd, negLR, oneMinusB1 *ts.Tensor
	for i, p := range o.params {
		g := p.MustGrad(false)
		if !g.MustDefined() {
			g.MustDrop()
			continue
		}
		if wd == nil {
			dev := p.MustDevice()
			wd, negLR, oneMinusB1 = mk(o.WeightDecay, dev), mk(-lr, dev), mk(1-o.Beta1, dev)
		}
		lars := o.Kind == "lars" && p.Dim() > 1 // LARS leaves biases and BatchNorm to plain SGD
		if o.WeightDecay != 0 && (o.Kind != "lars" || lars) {
			g.MustAddcmul_(p, wd) // g += wd * p
		}
		if lars {
			o.scaleLARS(p, g)
		}
		switch o.Kind {
		case "sgd", "lars":
			upd := g
			if o.Momentum != 0 {
				// buf = momentum * buf + g (the first step starts from buf = g, as torch does)
				if o.Step == 1 {
					o.m[i].Copy_(g)
				} else {
					o.m[i].MustMulScalar_(ts.FloatScalar(o.Momentum))
					o.m[i].MustAdd_(g)
				}
				upd = o.m[i]
			}
			p.MustAddcmul_(upd, negLR) // p -= lr * upd
		case "adam":
			b1c := 1 - math.Pow(o.Beta1, float64(o.Step))
			b2c := 1 - math.Pow(o.Beta2, float64(o.Step))
			o.m[i].MustMulScalar_(ts.FloatScalar(o.Beta1))
			o.m[i].MustAddcmul_(g, oneMinusB1) // m = b1 m + (1-b1) g
			o.v[i].MustMulScalar_(ts.FloatScalar(o.Beta2))
			o.v[i].MustAddcmul_(g, g) // v' = b2 v' + g^2, v = (1-b2) v'
			// p += m / den, den = (sqrt(v / b2c) + eps) * (-b1c / lr)
			den := o.den[i]
			den.Copy_(o.v[i])
			den.MustSqrt_()
			den.MustMulScalar_(ts.FloatScalar(math.Sqrt((1 - o.Beta2) / b2c)))
			den.MustAddScalar_(ts.FloatScalar(o.Eps))
			den.MustMulScalar_(ts.FloatScalar(-b1c / lr))
			p.MustAddcdiv_(o.m[i], den)
		}
		g.MustDrop()
	}
	for _, t := range consts {
		t.MustDrop()
	}
}

// scaleLARS multiplies g in place by eta ||p|| / ||g||, or by 1 when either norm is 0.
func (o *optimizer) scaleLARS(p, g *ts.Tensor) {
	pn := p.MustNorm(false)
	gn := g.MustNorm(false)
	okP := pn.MustGt(ts.FloatScalar(0), false)
	okG := gn.MustGt(ts.FloatScalar(0), false)
	ok := okP.MustLogicalAnd(okG, true)
	okG.MustDrop()
	ratio := pn.MustMulScalar(ts.FloatScalar(o.Trust), true).MustDiv(gn, true) // eta ||p|| / ||g||
	gn.MustDrop()
	q := ratio.MustWhereScalarother(ok, ts.FloatScalar(1), true) // ratio where both norms > 0, else 1
	ok.MustDrop()
	g.MustMul_(q)
	q.MustDrop()
}

// free frees the optimiser's state.
func (o *optimizer) free() {
	for _, t := range append(append(o.m, o.v...), o.den...) {
		t.MustDrop()
	}
}
