package torchnet

import (
	"fmt"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// TrainerConfig says what a Trainer optimises and how.
type TrainerConfig struct {
	Loss        string // one of Losses(); "" trains the Watermark task alone
	Temperature float64
	// Pairs: a batch's 2N rows are two views of N images (rows [0,N) and [N,2N)) and the loss
	// compares the two halves of the output (victim training, a recreated head). Otherwise the
	// loss compares the output with Batch.Target (extraction) or, for xent, with the labels.
	Pairs bool
	// Output is the net's graph node that is trained (0: its projection, or its
	// representation when it has no head). Not used for an MLP.
	Output int

	Optimizer string // adam | sgd | lars
	// Precision is "fp32" (or "") or "bf16": the forward pass and the loss run under libtorch's
	// autocast to bfloat16 (convolutions and matrix products in bf16, fp32 weights, gradients
	// and optimiser state), as torch.autocast does. See CheckPrecision.
	Precision   string
	WeightDecay float64
	Momentum    float64

	// SimSiam is the reference's symmetrized steal through its SimSiam stealing model (a net
	// with a simsiam head): a batch's Rows are two views of Rows/2 images, view 1 first, and
	// Target holds the victim's answers to them (representations). The predictions of view 1,
	// p1 = Prediction(x1), are compared with the net's own projector applied to the victim's
	// answers for view 2, z2 = Projection(y2) (the projector gets that gradient too), and vice
	// versa. Each view runs through the net on its own, as in the reference (batch-norm
	// statistics per view).
	SimSiam bool
	// Watermark is trained jointly with the net: the step adds WatermarkWeight x the
	// cross-entropy of Watermark(representation(Batch.WatermarkX)) against WatermarkLabels.
	Watermark       *MLP
	WatermarkWeight float64
}

// Batch is one training step's data, as plain values.
type Batch struct {
	Rows   int       // inputs in X (2N for Pairs)
	X      []float32 // Rows inputs: C x H x W images for a net, widths[0] values for an MLP
	Target []float32 // Rows x the output width: the victim's answers (extraction losses)
	// Labels has one class per row of the loss's first argument: N (Pairs) or Rows.
	Labels []int64
	// The watermark task: WatermarkRows rotated images and their classes.
	WatermarkRows   int
	WatermarkX      []float32
	WatermarkLabels []int64
}

// Trainer is a net or an MLP with its loss and optimiser.
type Trainer struct {
	s      *Session
	c      TrainerConfig
	fn     lossFn
	net    *Net
	mlp    *MLP
	opt    *optimizer
	in     []int64 // shape of one input row
	out    int     // width of the trained output
	target int     // width of a target row
}

func (t *Trainer) free() { t.opt.free() }

// NewTrainer builds a trainer for the net.
func (n *Net) NewTrainer(c TrainerConfig) (*Trainer, error) {
	if n.closed {
		return nil, fmt.Errorf("torchnet: the net is closed")
	}
	g := n.m.graph
	if c.Output == 0 {
		c.Output = g.Representation
		if g.Projection >= 0 {
			c.Output = g.Projection
		}
	}
	if c.Output < 1 || c.Output >= len(g.Nodes) {
		return nil, fmt.Errorf("trainer: output node %d: the graph has nodes 1..%d", c.Output, len(g.Nodes)-1)
	}
	s := g.Spec
	if c.SimSiam {
		if g.Prediction < 0 || c.Loss != "symmetrized" || c.Pairs {
			return nil, fmt.Errorf("trainer: the SimSiam steal needs a net with a simsiam head and loss symmetrized on targets")
		}
		c.Output = g.Prediction
	}
	t := &Trainer{s: n.s, c: c, net: n, in: []int64{int64(s.InputC), int64(s.InputHW), int64(s.InputHW)}, out: nodeDim(g, c.Output)}
	t.target = t.out
	if c.SimSiam {
		t.target = models.RepresentationDim(s.Arch)
	}
	params := n.m.trainable()
	if c.Watermark != nil {
		if w := c.Watermark.mlp.widths[0]; w != models.RepresentationDim(s.Arch) {
			return nil, fmt.Errorf("trainer: watermark head takes %d values, the %s representation has %d", w, s.Arch, models.RepresentationDim(s.Arch))
		}
		params = append(params, c.Watermark.mlp.params()...)
	}
	return t, t.init(params)
}

// NewTrainer builds a trainer for the MLP.
func (h *MLP) NewTrainer(c TrainerConfig) (*Trainer, error) {
	if c.Watermark != nil {
		return nil, fmt.Errorf("trainer: a watermark is trained with a net, not a head")
	}
	if c.SimSiam {
		return nil, fmt.Errorf("trainer: the SimSiam steal trains a net, not a head")
	}
	w := h.mlp.widths
	t := &Trainer{s: h.s, c: c, mlp: h, in: []int64{int64(w[0])}, out: w[len(w)-1], target: w[len(w)-1]}
	return t, t.init(h.mlp.params())
}

// init checks the loss and the head and creates the optimiser.
func (t *Trainer) init(params []*ts.Tensor) error {
	c := t.c
	if c.Loss == "" && c.Watermark == nil {
		return fmt.Errorf("trainer: no loss (expected one of %v, or a watermark head alone)", Losses())
	}
	if c.Loss != "" {
		fn, err := lossByName(c.Loss)
		if err != nil {
			return err
		}
		t.fn = fn
	}
	if err := CheckPrecision(c.Precision, t.s.dev); err != nil {
		return err
	}
	if c.Pairs && c.Loss == "xent" {
		return fmt.Errorf("trainer: loss xent scores one view against labels; use ce for two views")
	}
	err := t.s.do(func() (err error) {
		t.opt, err = newOptimizer(c.Optimizer, params, c.WeightDecay, c.Momentum)
		return err
	})
	if err != nil {
		return err
	}
	t.s.track(t)
	return nil
}

// nodeDim is the width of graph node i's output (a pooled, linear or batch-norm node).
func nodeDim(g *models.Graph, i int) int {
	for {
		n := g.Nodes[i]
		switch {
		case n.Op == models.Linear:
			return n.OutF
		case n.Op == models.BatchNorm:
			return n.Features
		case i == g.Representation || i == 0:
			return models.RepresentationDim(g.Spec.Arch)
		}
		i = n.In[0]
	}
}

// TargetDim is the width of a Batch's Target rows.
func (t *Trainer) TargetDim() int { return t.target }

// Steps is the number of optimiser updates done (restored by LoadState).
func (t *Trainer) Steps() int64 { return t.opt.Step }

// Step runs one optimisation step with learning rate lr and returns the loss before it.
func (t *Trainer) Step(b Batch, lr float64) (loss float64, err error) {
	if (t.net != nil && t.net.closed) || (t.mlp != nil && t.mlp.mlp == nil) {
		return 0, fmt.Errorf("trainer: its net or head is closed")
	}
	if err := t.check(b); err != nil {
		return 0, err
	}
	err = t.s.do(func() error {
		l := t.autocast(func() *ts.Tensor { return t.loss(b) })
		t.opt.zeroGrad()
		l.MustBackward()
		noGrad(func() { t.opt.update(lr) })
		loss = l.Float64Values(true)[0]
		return nil
	})
	return loss, err
}

// autocast runs fn (the step's forward pass and loss) under bf16 autocast when the trainer's
// precision asks for it, and leaves autocast before the backward pass (as PyTorch advises).
func (t *Trainer) autocast(fn func() *ts.Tensor) *ts.Tensor {
	if t.c.Precision != "bf16" {
		return fn()
	}
	cuda := t.s.dev.IsCuda()
	libtch.AtAutocast(cuda, true)
	defer libtch.AtAutocast(cuda, false)
	l := fn()
	if l.DType() != gotch.Float {
		l = l.MustTotype(gotch.Float, true)
	}
	return l
}

// loss builds the step's loss with its autograd graph.
func (t *Trainer) loss(b Batch) *ts.Tensor {
	c := t.c
	if t.fn == nil { // the watermark task alone
		return t.watermarkLoss(b)
	}
	if c.SimSiam {
		return t.simSiamLoss(b)
	}
	x := t.s.input(b.X, append([]int64{int64(b.Rows)}, t.in...)...)
	var out *ts.Tensor
	if t.net != nil {
		out = t.net.m.forward(x, true, c.Output)[0]
	} else {
		out = t.mlp.mlp.forward(x)
	}
	x.MustDrop()
	labels := t.labels(b.Labels)
	var l *ts.Tensor
	switch {
	case c.Pairs:
		h := int64(b.Rows / 2)
		za, zb := out.MustNarrow(0, 0, h, false), out.MustNarrow(0, h, h, false)
		l = t.fn(za, zb, labels, c.Temperature)
		za.MustDrop()
		zb.MustDrop()
	case c.Loss == "xent":
		l = t.fn(out, nil, labels, c.Temperature)
	default:
		tg := t.s.input(b.Target, int64(b.Rows), int64(t.out))
		l = t.fn(out, tg, labels, c.Temperature)
		tg.MustDrop()
	}
	out.MustDrop()
	if labels != nil {
		labels.MustDrop()
	}
	if c.Watermark != nil && b.WatermarkRows > 0 {
		l = l.MustAdd(t.watermarkLoss(b).MustMulScalar(ts.FloatScalar(c.WatermarkWeight), true), true)
	}
	return l
}

// simSiamLoss is the reference's symmetrized steal loss (see TrainerConfig.SimSiam).
func (t *Trainer) simSiamLoss(b Batch) *ts.Tensor {
	g := t.net.m.graph
	h := int64(b.Rows / 2)
	per := int(h) * int(t.in[0]*t.in[1]*t.in[2])
	rd := int(h) * t.target
	view := func(v int) (p, z *ts.Tensor) {
		x := t.s.input(b.X[v*per:(v+1)*per], append([]int64{h}, t.in...)...)
		p = t.net.m.forward(x, true, g.Prediction)[0]
		x.MustDrop()
		y := t.s.input(b.Target[v*rd:(v+1)*rd], h, int64(t.target))
		z = t.net.m.forwardFrom(g.Representation, y, true, g.Projection)[0]
		y.MustDrop()
		return p, z
	}
	p1, z1 := view(0)
	p2, z2 := view(1)
	p, z := ts.MustCat([]*ts.Tensor{p1, p2}, 0), ts.MustCat([]*ts.Tensor{z1, z2}, 0)
	for _, x := range []*ts.Tensor{p1, p2, z1, z2} {
		x.MustDrop()
	}
	l := t.fn(p, z, nil, t.c.Temperature)
	p.MustDrop()
	z.MustDrop()
	return l
}

// watermarkLoss is the cross-entropy of the watermark head on the representations of the
// batch's rotated images (the encoder gets its gradient too).
func (t *Trainer) watermarkLoss(b Batch) *ts.Tensor {
	x := t.s.input(b.WatermarkX, append([]int64{int64(b.WatermarkRows)}, t.in...)...)
	h := t.net.m.forward(x, true, t.net.m.graph.Representation)[0]
	x.MustDrop()
	logits := t.c.Watermark.mlp.forward(h)
	h.MustDrop()
	labels := t.labels(b.WatermarkLabels)
	l := logits.CrossEntropyForLogits(labels)
	logits.MustDrop()
	labels.MustDrop()
	return l
}

// labels makes the labels tensor on the device, or nil.
func (t *Trainer) labels(lab []int64) *ts.Tensor {
	if lab == nil {
		return nil
	}
	l := ts.MustOfSlice(lab)
	if t.s.dev != gotch.CPU {
		l = l.MustTo(t.s.dev, true)
	}
	return l
}

// check validates a batch in Go: a libtorch error inside gotch's Must calls ends the process.
func (t *Trainer) check(b Batch) error {
	c := t.c
	per := int64(1)
	for _, d := range t.in {
		per *= d
	}
	if t.fn == nil {
		if b.WatermarkRows < 1 {
			return fmt.Errorf("batch: a watermark-only trainer needs watermark rows")
		}
		return t.checkWatermark(b, per)
	}
	switch {
	case b.Rows < 1 || ((c.Pairs || c.SimSiam) && (b.Rows < 2 || b.Rows%2 != 0)):
		return fmt.Errorf("batch of %d rows: expected at least 1 (an even number, at least 2, for two views)", b.Rows)
	case int64(len(b.X)) != int64(b.Rows)*per:
		return fmt.Errorf("batch: %d input values for %d rows of %v", len(b.X), b.Rows, t.in)
	case !c.Pairs && c.Loss != "xent" && int64(len(b.Target)) != int64(b.Rows)*int64(t.target):
		return fmt.Errorf("batch: %d target values for %d rows of width %d", len(b.Target), b.Rows, t.target)
	}
	first := b.Rows
	if c.Pairs {
		first = b.Rows / 2
	}
	if err := checkLabels(c.Loss, b.Labels, first, t.out); err != nil {
		return err
	}
	if c.Watermark == nil || b.WatermarkRows == 0 {
		return nil
	}
	return t.checkWatermark(b, per)
}

// checkWatermark validates the batch's watermark rows.
func (t *Trainer) checkWatermark(b Batch, per int64) error {
	wc := t.c.Watermark.mlp.widths
	if int64(len(b.WatermarkX)) != int64(b.WatermarkRows)*per {
		return fmt.Errorf("batch: %d watermark input values for %d rows of %v", len(b.WatermarkX), b.WatermarkRows, t.in)
	}
	return checkLabels("xent", b.WatermarkLabels, b.WatermarkRows, wc[len(wc)-1])
}

// checkLabels checks that a loss gets the labels it reads: n of them, classes in range for a
// classifier's cross-entropy.
func checkLabels(loss string, labels []int64, n, classes int) error {
	if !needsLabels(loss) {
		return nil
	}
	if len(labels) != n {
		return fmt.Errorf("batch: loss %s needs %d labels, got %d", loss, n, len(labels))
	}
	if loss == "supcon" {
		return nil
	}
	if i := slices.IndexFunc(labels, func(l int64) bool { return l < 0 || l >= int64(classes) }); i >= 0 {
		return fmt.Errorf("batch: label %d of row %d: expected a class in 0..%d", labels[i], i, classes-1)
	}
	return nil
}

// SaveState writes the optimiser's state tensors to path (a gotch .ot file).
func (t *Trainer) SaveState(path string) error {
	return t.s.do(func() error {
		var named []ts.NamedTensor
		for k, v := range t.opt.state() {
			named = append(named, ts.NamedTensor{Name: k, Tensor: v})
		}
		if err := ts.SaveMultiNew(named, path); err != nil {
			return fmt.Errorf("save optimizer state %s: %w", path, err)
		}
		return nil
	})
}

// LoadState reads a state written by SaveState; steps is the number of updates it had done.
func (t *Trainer) LoadState(path string, steps int64) error {
	return t.s.do(func() error {
		named, err := ts.LoadMultiWithDevice(path, t.s.dev)
		if err != nil {
			return fmt.Errorf("load optimizer state %s: %w", path, err)
		}
		st := t.opt.state()
		found := 0
		for _, nt := range named {
			if v, ok := st[nt.Name]; ok && slices.Equal(v.MustSize(), nt.Tensor.MustSize()) {
				noGrad(func() { v.Copy_(nt.Tensor) })
				found++
			}
			nt.Tensor.MustDrop()
		}
		if found != len(st) {
			return fmt.Errorf("optimizer state %s: has %d of %d tensors (is it the state of this model and optimiser?)", path, found, len(st))
		}
		t.opt.Step = steps
		return nil
	})
}
