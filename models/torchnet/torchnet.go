// Package torchnet is the toolkit's one line around libtorch: the only package that imports
// gotch. Everything else hands it plain Go values ([]float32 batches, file paths, names) and
// gets plain values and errors back.
//
// A Session owns one libtorch thread (grad mode, denormal flushing, thread count, seed) and
// turns every panic into an error. From it: a Net (a models.Graph with its tensors: the
// forward pass walks the graph description node by node, so the trained module and the ONNX
// export of package export compute the same function), an MLP head, and a Trainer (a net or
// head, a loss by name, an optimiser) whose Step takes one batch. Inputs are checked in Go
// before any libtorch call: gotch's Must functions end the process on a libtorch error.
package torchnet

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// model is a models.Graph with its tensors in a gotch VarStore (used on the session thread).
type model struct {
	graph  *models.Graph
	vs     *nn.VarStore
	dev    gotch.Device
	params map[string]*ts.Tensor
	none   *ts.Tensor // an undefined tensor, libtorch's "no bias"
}

// newModel creates the model's tensors on dev with the weights models.Graph.InitWeights draws
// from seed (the same as an ONNX export of a random model with that seed). On an error the
// tensors made so far are freed.
func newModel(g *models.Graph, dev gotch.Device, seed int64) (*model, error) {
	m := &model{graph: g, vs: nn.NewVarStore(dev), dev: dev, params: map[string]*ts.Tensor{}, none: ts.NewTensor()}
	init := g.InitWeights(seed)
	for _, p := range g.Params() {
		v, err := addVar(m.vs, p.Name, p.Shape, init[p.Name], p.Trainable)
		if err != nil {
			m.free()
			return nil, err
		}
		m.params[p.Name] = v
	}
	return m, nil
}

// addVar adds the tensor name (dotted, torchvision style: "layer1.0.conv1.weight") to vs with
// the given values: a trainable parameter, or a persistent buffer (batch-norm statistics).
// The tensor is one of its own on vs's device, not a view of the Go slice.
func addVar(vs *nn.VarStore, name string, shape []int64, vals []float32, trainable bool) (*ts.Tensor, error) {
	if int64(len(vals)) != numel(shape) {
		return nil, fmt.Errorf("parameter %s: %d values for shape %v", name, len(vals), shape)
	}
	src := ts.MustOfSlice(vals).MustView(shape, true)
	t := ts.MustZeros(shape, gotch.Float, vs.Device())
	t.Copy_(src)
	src.MustDrop()
	path := vs.Root()
	parts := strings.Split(name, ".")
	for _, s := range parts[:len(parts)-1] {
		path = path.Sub(s)
	}
	kind := "parameter"
	if !trainable {
		kind = "buffer"
	}
	v, err := path.Add(parts[len(parts)-1], t, trainable, nn.WithVarType(kind), nn.WithPersistent(true))
	t.MustDrop()
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", name, err)
	}
	return v, nil
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// forward runs the graph on x (N x C x H x W) and returns the outputs of the requested nodes
// (e.g. g.Representation, g.Projection), in that order. train selects batch statistics for
// batch norm (and updates the running statistics) versus the running statistics. Intermediate
// tensors are freed as soon as their last reader has run; the caller owns the results.
// It panics on libtorch errors: call it inside Session.do.
func (m *model) forward(x *ts.Tensor, train bool, outputs ...int) []*ts.Tensor {
	return m.forwardFrom(0, x, train, outputs...)
}

// forwardFrom is forward with x as the output of node start: it runs the nodes after start
// (a head on given representations: forwardFrom(g.Representation, h, ...)). A node after start
// that reads a node before it panics.
func (m *model) forwardFrom(start int, x *ts.Tensor, train bool, outputs ...int) []*ts.Tensor {
	g := m.graph
	keep := make([]bool, len(g.Nodes))
	readers := make([]int, len(g.Nodes))
	for _, o := range outputs {
		keep[o] = true
	}
	last := 0
	for _, o := range outputs {
		if o > last {
			last = o
		}
	}
	for i, n := range g.Nodes[start+1 : last+1] {
		for _, in := range n.In {
			if in < start {
				panic(fmt.Errorf("node %d reads node %d, before the start node %d", start+1+i, in, start))
			}
			readers[in]++
		}
	}
	vals := make([]*ts.Tensor, last+1)
	vals[start] = x
	keep[start] = true // the caller owns the input
	release := func(i int) {
		readers[i]--
		if readers[i] == 0 && !keep[i] {
			vals[i].MustDrop()
			vals[i] = nil
		}
	}
	for i := start + 1; i <= last; i++ {
		n := g.Nodes[i]
		a := vals[n.In[0]]
		var y *ts.Tensor
		switch n.Op {
		case models.Conv:
			b := m.none
			if n.Bias {
				b = m.params[n.Name+".bias"]
			}
			s, p := int64(n.Stride), int64(n.Pad)
			y = ts.MustConv2d(a, m.params[n.Name+".weight"], b, []int64{s, s}, []int64{p, p}, []int64{1, 1}, 1)
		case models.BatchNorm:
			w, b := m.none, m.none
			if n.Affine {
				w, b = m.params[n.Name+".weight"], m.params[n.Name+".bias"]
			}
			y = ts.MustBatchNorm(a, w, b, m.params[n.Name+".running_mean"], m.params[n.Name+".running_var"],
				train, models.BNMomentum, models.BNEpsilon, false)
		case models.ReLU:
			if readers[n.In[0]] == 1 && !keep[n.In[0]] {
				// Sole reader: rectify in place (as torchvision's ReLU(inplace=True)) and take
				// over the tensor, saving an activation-sized allocation.
				a.MustRelu_()
				y = a
				vals[n.In[0]] = nil
				readers[n.In[0]] = 0
				vals[i] = y
				continue
			}
			y = a.MustRelu(false)
		case models.MaxPool:
			k, s, p := int64(n.Kernel), int64(n.Stride), int64(n.Pad)
			y = a.MustMaxPool2d([]int64{k, k}, []int64{s, s}, []int64{p, p}, []int64{1, 1}, false, false)
		case models.Add:
			y = a.MustAdd(vals[n.In[1]], false)
		case models.GlobalAvgPool:
			y = a.MustMeanDim([]int64{2, 3}, false, gotch.Float, false)
		case models.Linear:
			b := m.none
			if n.Bias {
				b = m.params[n.Name+".bias"]
			}
			y = ts.MustLinear(a, m.params[n.Name+".weight"], b)
		default:
			panic(fmt.Errorf("node %d: op %v not supported", i, n.Op))
		}
		vals[i] = y
		for _, in := range n.In {
			release(in)
		}
	}
	out := make([]*ts.Tensor, len(outputs))
	for j, o := range outputs {
		out[j] = vals[o]
	}
	runtime.KeepAlive(m.vs)
	return out
}

// trainable returns the trainable parameters in graph order (stable across runs).
func (m *model) trainable() []*ts.Tensor {
	var out []*ts.Tensor
	for _, p := range m.graph.Params() {
		if p.Trainable {
			out = append(out, m.params[p.Name])
		}
	}
	return out
}

func (m *model) free() {
	m.vs.Destroy()
	m.none.MustDrop()
}

// Net is an encoder (a models.Graph) with its weights, in a session.
type Net struct {
	s      *Session
	m      *model
	closed bool
}

// NewNet creates g's tensors with the weights models.Graph.InitWeights draws from seed.
func (s *Session) NewNet(g *models.Graph, seed int64) (*Net, error) {
	if g == nil {
		return nil, fmt.Errorf("torchnet: nil graph")
	}
	n := &Net{s: s}
	err := s.do(func() (err error) {
		n.m, err = newModel(g, s.dev, seed)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.track(n.m)
	return n, nil
}

// do runs fn on the session's thread unless the net is closed.
func (n *Net) do(fn func() error) error {
	if n.closed {
		return fmt.Errorf("torchnet: the net is closed")
	}
	return n.s.do(fn)
}

// Graph is the net's description.
func (n *Net) Graph() *models.Graph { return n.m.graph }

// Close frees the net's tensors (Session.Close does it for nets left open); closing twice is
// harmless.
func (n *Net) Close() {
	if n == nil || n.m == nil || n.closed {
		return
	}
	n.closed = true
	n.s.release(n.m)
}

// StateDict copies every parameter and buffer to Go slices, by torchvision name.
func (n *Net) StateDict() (sd map[string][]float32, err error) {
	err = n.do(func() error {
		sd = make(map[string][]float32, len(n.m.params))
		for name, t := range n.m.params {
			sd[name] = toSlice(t)
		}
		runtime.KeepAlive(n.m.vs)
		return nil
	})
	return sd, err
}

// toSlice copies a float tensor (any device, any layout) to a Go slice.
func toSlice(t *ts.Tensor) []float32 {
	c := t.MustDetach(false).MustTo(gotch.CPU, true).MustContiguous(true)
	vals := make([]float32, c.Numel())
	c.MustCopyData(vals, uint(len(vals)))
	c.MustDrop()
	return vals
}

// Save writes the weights as a gotch .ot file (a TorchScript archive that torch.jit.load reads).
func (n *Net) Save(path string) error { return n.do(func() error { return saveVS(n.m.vs, path) }) }

// saveVS writes vs as a gotch .ot file.
func saveVS(vs *nn.VarStore, path string) error {
	if err := vs.Save(path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// Load reads weights written by Save; every tensor of the net must be in the file.
func (n *Net) Load(path string) error {
	return n.do(func() error { return loadStrict(n.m.vs, path, "is it a checkpoint of this architecture?") })
}

// loadStrict loads a .ot file into vs; a tensor of vs that the file lacks is an error.
func loadStrict(vs *nn.VarStore, path, hint string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	missing, err := vs.LoadPartial(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("load %s: %d tensors missing or of another shape (e.g. %s): %s", path, len(missing), missing[0], hint)
	}
	return nil
}

// Embed runs the net in inference mode (running BN statistics, no autograd) on count float32
// NCHW images and returns graph node output's values as a flat count x dim slice.
func (n *Net) Embed(images []float32, count int, output int) (out []float32, dim int, err error) {
	s := n.m.graph.Spec
	per := s.InputC * s.InputHW * s.InputHW
	if count < 1 || len(images) != count*per {
		return nil, 0, fmt.Errorf("embed: got %d values for %d images of %dx%dx%d", len(images), count, s.InputC, s.InputHW, s.InputHW)
	}
	if output < 1 || output >= len(n.m.graph.Nodes) {
		return nil, 0, fmt.Errorf("embed: output node %d: the graph has nodes 1..%d", output, len(n.m.graph.Nodes)-1)
	}
	err = n.do(func() error {
		noGrad(func() {
			x := n.s.input(images, int64(count), int64(s.InputC), int64(s.InputHW), int64(s.InputHW))
			y := n.m.forward(x, false, output)[0]
			x.MustDrop()
			dim = int(y.MustSize()[1])
			out = toSlice(y)
			y.MustDrop()
		})
		return nil
	})
	return out, dim, err
}

// SetParam overwrites the tensor named name with vals (for loading foreign weights and tests).
func (n *Net) SetParam(name string, vals []float32) error {
	t, ok := n.m.params[name]
	if !ok {
		return fmt.Errorf("parameter %s: not in this %s model", name, n.m.graph.Spec.Arch)
	}
	return n.do(func() error {
		if k := t.Numel(); uint(len(vals)) != k {
			return fmt.Errorf("parameter %s: got %d values, expected %d", name, len(vals), k)
		}
		src := n.s.input(vals, t.MustSize()...)
		noGrad(func() { t.Copy_(src) })
		src.MustDrop()
		return nil
	})
}

// input makes a tensor of shape dims on the session's device from vals (len = product of dims).
func (s *Session) input(vals []float32, dims ...int64) *ts.Tensor {
	x := ts.MustOfSlice(vals).MustView(dims, true)
	if s.dev != gotch.CPU {
		x = x.MustTo(s.dev, true)
	}
	return x
}

// noGrad runs fn with libtorch's autograd off and restores the previous mode. Grad mode is
// per OS thread: call it on the session's thread (inside Session.do).
func noGrad(fn func()) {
	prev := libtch.AtSetGradEnabled(false)
	defer libtch.AtSetGradEnabled(prev)
	fn()
}
