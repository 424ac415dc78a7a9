package attack

import (
	"fmt"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/train"
)

// Loss compares the stolen encoder's outputs s with the victim's answers v for the same
// images (N x D each; v carries no gradient). For two-view losses s and v hold view 1 in rows
// [0, N/2) and view 2 of the same images in rows [N/2, N). labels (int64, N) is read only by
// supervised losses.
type Loss func(s, v, labels *ts.Tensor, temperature float64) *ts.Tensor

// LossSpec is a registered extraction loss with the reference's defaults.
type LossSpec struct {
	Fn          Loss
	Views       int // victim answers paid per query image: 1, or 2 for two-view losses
	Temperature float64
	BatchSize   int
	Optimizer   string
	LR          float64
	NeedsLabels bool
	// PlusRawMSE adds the MSE of the raw outputs to the loss taken through the recreated head
	// (the reference's msewithhead; needs Config.Head).
	PlusRawMSE bool
}

// Losses is the registry of extraction losses (one function and one line each), with the
// per-loss batch size, optimiser and learning rate of the reference code.
var Losses = map[string]LossSpec{
	"mse":         {Fn: MSE, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	"infonce":     {Fn: contrastive(train.InfoNCE), Views: 1, Temperature: 0.07, BatchSize: 256, Optimizer: "adam", LR: 3e-4},
	"softnn":      {Fn: contrastive(train.SoftNN), Views: 1, Temperature: 100, BatchSize: 256, Optimizer: "adam", LR: 1e-3},
	"wasserstein": {Fn: Wasserstein, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	"barlow":      {Fn: Barlow, Views: 2, BatchSize: 256, Optimizer: "adam", LR: 1e-3},
	"supcon":      {Fn: contrastive(train.SupCon), Views: 2, Temperature: 0.07, BatchSize: 256, Optimizer: "sgd", LR: 0.05, NeedsLabels: true},
	"symmetrized": {Fn: Symmetrized, Views: 2, BatchSize: 256, Optimizer: "sgd", LR: 0.05},
	"cosine":      {Fn: Cosine, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	"bce":         {Fn: BCE, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	// With the head-recreation attack: MSE through the recreated head plus MSE of the raw outputs.
	"msewithhead": {Fn: MSE, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3, PlusRawMSE: true},
	// The label-stealing baseline (Knockoff-style): the victim is a classifier (see
	// `ssl-onnx classifier`) and answers class scores.
	"labels": {Fn: Labels, Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	"logits": {Fn: Logits, Views: 1, Temperature: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
}

// LossNames lists the registered losses, sorted.
func LossNames() []string {
	var n []string
	for k := range Losses {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// LookupLoss returns the named loss or an error listing the valid ones.
func LookupLoss(name string) (LossSpec, error) {
	l, ok := Losses[name]
	if !ok {
		return LossSpec{}, fmt.Errorf("loss %q: expected one of %v", name, LossNames())
	}
	return l, nil
}

// contrastive adapts a two-batch training loss: the positive of stolen row i is victim row i.
func contrastive(f train.Loss) Loss {
	return func(s, v, labels *ts.Tensor, t float64) *ts.Tensor { return f(s, v, labels, t) }
}

// MSE is the mean squared error between stolen and victim outputs.
func MSE(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	return s.MustMseLoss(v, 1, false)
}

// Cosine is 1 - mean cosine similarity of matching rows.
func Cosine(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	return rowCos(s, v).MustMean(gotch.Float, true).MustNeg(true).MustAddScalar(ts.FloatScalar(1), true)
}

// rowCos is the cosine similarity of matching rows (N).
func rowCos(a, b *ts.Tensor) *ts.Tensor {
	an, bn := unit(a), unit(b)
	c := an.MustMul(bn, true).MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	bn.MustDrop()
	return c
}

func unit(x *ts.Tensor) *ts.Tensor {
	n := x.MustMul(x, false).MustSumDimIntlist([]int64{1}, true, gotch.Float, true).MustSqrt(true).MustClampMin(ts.FloatScalar(1e-12), true)
	y := x.MustDiv(n, false)
	n.MustDrop()
	return y
}

// Wasserstein treats each row (made non-negative and normalised to sum 1) as a distribution
// over dimensions and returns the mean 1-D Wasserstein distance: the sum of absolute
// differences of the cumulative sums.
func Wasserstein(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	cdf := func(x *ts.Tensor) *ts.Tensor {
		p := x.MustAbs(false).MustAddScalar(ts.FloatScalar(1e-8), true)
		sum := p.MustSumDimIntlist([]int64{1}, true, gotch.Float, false)
		p = p.MustDiv(sum, true)
		sum.MustDrop()
		return p.MustCumsum(1, gotch.Float, true)
	}
	a, b := cdf(s), cdf(v)
	d := a.MustSub(b, true).MustAbs(true).MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	b.MustDrop()
	return d.MustMean(gotch.Float, true)
}

// Barlow is Barlow Twins between the stolen and the victim outputs over both views: the
// cross-correlation matrix of the batch-normalised outputs should be the identity,
// sum (c_ii - 1)^2 + 0.0051 * sum_{i != j} c_ij^2.
func Barlow(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	const lambda = 0.0051
	n := float64(s.MustSize()[0])
	d := s.MustSize()[1]
	bn := func(x *ts.Tensor) *ts.Tensor {
		mean := x.MustMeanDim([]int64{0}, true, gotch.Float, false)
		xc := x.MustSub(mean, false)
		mean.MustDrop()
		std := xc.MustMul(xc, false).MustMeanDim([]int64{0}, true, gotch.Float, true).MustAddScalar(ts.FloatScalar(1e-5), true).MustSqrt(true)
		y := xc.MustDiv(std, true)
		std.MustDrop()
		return y
	}
	a, b := bn(s), bn(v)
	at := a.MustTranspose(0, 1, true)
	c := at.MustMm(b, true).MustDivScalar(ts.FloatScalar(n), true)
	b.MustDrop()
	eye := ts.MustEye(d, gotch.Float, c.MustDevice())
	diff := c.MustSub(eye, false)
	on := diff.MustMul(diff, true).MustMul(eye, false).MustSum(gotch.Float, true)
	off := c.MustMul(c, false).MustMul(eye.MustNeg(false).MustAddScalar(ts.FloatScalar(1), true), true).MustSum(gotch.Float, true)
	c.MustDrop()
	eye.MustDrop()
	return on.MustAdd(off.MustMulScalar(ts.FloatScalar(lambda), true), true)
}

// Symmetrized is the SimSiam-style cross-view loss -1/2 [cos(s1, v2) + cos(s2, v1)]: the
// stolen encoder's view of one augmentation must predict the victim's answer for the other.
// (The victim's answers are fixed targets, so they play the role of SimSiam's stop-gradient
// branch; no extra projector is trained.)
func Symmetrized(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	h := s.MustSize()[0] / 2
	s1, s2 := s.MustNarrow(0, 0, h, false), s.MustNarrow(0, h, h, false)
	v1, v2 := v.MustNarrow(0, 0, h, false), v.MustNarrow(0, h, h, false)
	a := rowCos(s1, v2).MustMean(gotch.Float, true)
	b := rowCos(s2, v1).MustMean(gotch.Float, true)
	for _, t := range []*ts.Tensor{s1, s2, v1, v2} {
		t.MustDrop()
	}
	return a.MustAdd(b, true).MustMulScalar(ts.FloatScalar(-0.5), true)
}

// Labels is the cross-entropy of the stolen scores s against the victim's predicted class
// (the argmax of its answer v): stealing from an API that only returns labels.
func Labels(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	y := v.MustArgmax([]int64{1}, false, false)
	l := s.CrossEntropyForLogits(y)
	y.MustDrop()
	return l
}

// Logits is knowledge distillation from the victim's class scores: the cross-entropy of
// softmax(s/T) against softmax(v/T), times T^2, averaged over rows (the KL divergence up to
// the victim's constant entropy).
func Logits(s, v, _ *ts.Tensor, t float64) *ts.Tensor {
	if t <= 0 {
		t = 1
	}
	p := v.MustDivScalar(ts.FloatScalar(t), false).MustSoftmax(1, gotch.Float, true)
	ls := s.MustDivScalar(ts.FloatScalar(t), false).MustLogSoftmax(1, gotch.Float, true)
	n := float64(s.MustSize()[0])
	l := p.MustMul(ls, true).MustSum(gotch.Float, true).MustMulScalar(ts.FloatScalar(-t*t/n), true)
	ls.MustDrop()
	return l
}

// BCE is binary cross-entropy with logits against the victim's rounded sigmoid outputs.
func BCE(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	target := v.MustSigmoid(false).MustRound(true)
	w := ts.NewTensor()
	l := s.MustBinaryCrossEntropyWithLogits(target, w, w, 1, false)
	target.MustDrop()
	w.MustDrop()
	return l
}
