package attack

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/progress"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// The head-recreation attack (the reference's HeadSimCLR): the victim's API returns the
// representation h, but its contrastive training shaped z = head(h). The attacker first
// recreates a projection head g: d -> d -> HeadDim on the victim's own answers (InfoNCE between
// the answers for two augmented views of each query image, so each image costs two queries),
// then steals through it: the loss compares g(S(x)) with g(V(x)), g frozen.
const (
	// HeadRecreate selects the head-recreation attack in Config.Head.
	HeadRecreate = "recreate"
	// HeadName is the recreated head's weights in the run directory.
	HeadName = "head.ot"
	// HeadDim is the recreated head's output size (SimCLR's 128).
	HeadDim = 128
	// headLR and headTemperature train the head (the reference: Adam 1e-3; SimCLR's 0.07).
	headLR          = 1e-3
	headTemperature = 0.07
)

// recreatedHead is the attacker's projection head.
type recreatedHead struct {
	vs  *nn.VarStore
	mlp *torchnet.MLP
}

func (h *recreatedHead) Close() { h.vs.Destroy() }

// recreateHead trains the head on the cached answers of views 0 and 1 of every query image
// for c.HeadEpochs epochs, or loads it from the run directory when an earlier run trained it.
// It returns the head and its last epoch's mean loss (0 when loaded).
func recreateHead(c Config, cache *AnswerCache, n, dim int, dev gotch.Device, log io.Writer) (h *recreatedHead, loss float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recreating the head: libtorch: %v", r)
		}
	}()
	h = &recreatedHead{vs: nn.NewVarStore(dev)}
	if h.mlp, err = torchnet.NewMLP(h.vs, []int{dim, dim, HeadDim}, c.Seed+2); err != nil {
		h.Close()
		return nil, 0, err
	}
	path := filepath.Join(c.Dir, HeadName)
	if c.Resume {
		if _, err := os.Stat(path); err == nil {
			if err := h.vs.Load(path); err != nil {
				h.Close()
				return nil, 0, fmt.Errorf("recreated head %s: %w", path, err)
			}
			fmt.Fprintf(log, "recreated head loaded from %s\n", path)
			h.freeze()
			return h, 0, nil
		}
	}
	// The answers, view 0 in a, view 1 in b.
	a, b := make([]float32, n*dim), make([]float32, n*dim)
	for i := 0; i < n; i++ {
		for v, dst := range [][]float32{a, b} {
			ans, ok := cache.Get(i, v)
			if !ok {
				h.Close()
				return nil, 0, fmt.Errorf("recreating the head: no cached answer for query image %d view %d", i, v)
			}
			copy(dst[i*dim:], ans)
		}
	}
	opt, err := train.NewOptimizer("adam", h.mlp.Trainable(), 0, 0)
	if err != nil {
		h.Close()
		return nil, 0, err
	}
	defer opt.Close()
	bs := min(c.BatchSize, n)
	rows := func(src []float32, idx []int) *ts.Tensor {
		x := make([]float32, len(idx)*dim)
		for j, i := range idx {
			copy(x[j*dim:], src[i*dim:(i+1)*dim])
		}
		t := ts.MustOfSlice(x).MustView([]int64{int64(len(idx)), int64(dim)}, true)
		if dev != gotch.CPU {
			t = t.MustTo(dev, true)
		}
		return t
	}
	epochs := c.HeadEpochs
	bar := progress.New(log, "recreating the victim's head", epochs)
	for epoch := 0; epoch < epochs; epoch++ {
		perm := data.Permutation(n, c.Seed+int64(epoch)*7919)
		var sum float64
		var seen int
		for s := 0; s+bs <= n; s += bs {
			idx := perm[s : s+bs]
			xa, xb := rows(a, idx), rows(b, idx)
			za, zb := h.mlp.Forward(xa), h.mlp.Forward(xb)
			xa.MustDrop()
			xb.MustDrop()
			l := train.InfoNCE(za, zb, nil, headTemperature)
			za.MustDrop()
			zb.MustDrop()
			opt.ZeroGrad()
			l.MustBackward()
			torchnet.NoGrad(func() { opt.Update(train.CosineLR(headLR, epoch, 0, epochs)) })
			sum += l.Float64Values(true)[0] * float64(len(idx))
			seen += len(idx)
		}
		loss = sum / float64(max(seen, 1))
		bar.Add(1, fmt.Sprintf("loss %.4f", loss))
	}
	bar.Done(fmt.Sprintf("loss %.4f", loss))
	if math.IsNaN(loss) {
		h.Close()
		return nil, 0, fmt.Errorf("recreating the head: loss is NaN")
	}
	if err := h.vs.Save(path); err != nil {
		h.Close()
		return nil, 0, fmt.Errorf("recreated head %s: %w", path, err)
	}
	h.freeze()
	return h, loss, nil
}

// freeze stops autograd from computing gradients for the head's parameters: stealing
// through it needs the gradient with respect to the stolen outputs only.
func (h *recreatedHead) freeze() {
	for _, p := range h.mlp.Trainable() {
		p.MustRequiresGrad_(false)
	}
}

// through returns the loss of the stolen outputs s against the victim's answers v seen
// through the frozen head: ls on (g(s), g(v)), plus the plain MSE of s and v for msewithhead.
func (h *recreatedHead) through(ls LossSpec, s, v, labels *ts.Tensor, temperature float64) *ts.Tensor {
	gs := h.mlp.Forward(s)
	var gv *ts.Tensor
	torchnet.NoGrad(func() { gv = h.mlp.Forward(v) })
	l := ls.Fn(gs, gv, labels, temperature)
	gs.MustDrop()
	gv.MustDrop()
	if ls.PlusRawMSE {
		raw := MSE(s, v, nil, 0)
		l = l.MustAdd(raw, true)
		raw.MustDrop()
	}
	return l
}
