// Package torchnet builds a trainable libtorch (gotch) module from a models.Graph.
//
// It is the only place, with package train, that touches gotch tensors for the encoder: the
// forward pass walks the graph description node by node, so the trained module and the ONNX
// export (package export) compute the same function. gotch's panicking calls stay inside;
// callers get errors.
package torchnet

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// Model is a models.Graph with its tensors in a gotch VarStore.
type Model struct {
	Graph  *models.Graph
	VS     *nn.VarStore
	Device gotch.Device
	params map[string]*ts.Tensor
	none   *ts.Tensor // an undefined tensor, libtorch's "no bias"
}

// New creates the model's tensors on device with the weights models.Graph.InitWeights draws
// from seed (the same as an ONNX export of a random model with that seed).
func New(g *models.Graph, device gotch.Device, seed int64) (m *Model, err error) {
	defer recoverTorch(&err)
	vs := nn.NewVarStore(device)
	m = &Model{Graph: g, VS: vs, Device: device, params: map[string]*ts.Tensor{}, none: ts.NewTensor()}
	init := g.InitWeights(seed)
	for _, p := range g.Params() {
		vals := init[p.Name]
		v, err := AddVar(vs, p.Name, p.Shape, vals, p.Trainable)
		if err != nil {
			return nil, err
		}
		m.params[p.Name] = v
	}
	return m, nil
}

// AddVar adds the tensor name (dotted, torchvision style: "layer1.0.conv1.weight") to vs with
// the given values: a trainable parameter, or a persistent buffer (batch-norm statistics).
// The tensor is one of its own on vs's device, not a view of the Go slice.
func AddVar(vs *nn.VarStore, name string, shape []int64, vals []float32, trainable bool) (v *ts.Tensor, err error) {
	defer recoverTorch(&err)
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
	v, err = path.Add(parts[len(parts)-1], t, trainable, nn.WithVarType(kind), nn.WithPersistent(true))
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

// recoverTorch turns a gotch panic (a libtorch error) into an error.
func recoverTorch(err *error) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("libtorch: %w", e)
		} else {
			*err = fmt.Errorf("libtorch: %v", r)
		}
	}
}

// Param returns the tensor named name (torchvision naming), or nil.
func (m *Model) Param(name string) *ts.Tensor { return m.params[name] }

// Forward runs the graph on x (N x C x H x W) and returns the outputs of the requested nodes
// (e.g. g.Representation, g.Projection), in that order. train selects batch statistics for
// batch norm (and updates the running statistics) versus the running statistics. Intermediate
// tensors are freed as soon as their last reader has run; the caller owns the results.
// It panics on libtorch errors; use it inside a function that recovers (package train does).
func (m *Model) Forward(x *ts.Tensor, train bool, outputs ...int) []*ts.Tensor {
	g := m.Graph
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
	for _, n := range g.Nodes[:last+1] {
		for _, in := range n.In {
			readers[in]++
		}
	}
	vals := make([]*ts.Tensor, last+1)
	vals[0] = x
	keep[0] = true // the caller owns the input
	release := func(i int) {
		readers[i]--
		if readers[i] == 0 && !keep[i] {
			vals[i].MustDrop()
			vals[i] = nil
		}
	}
	for i := 1; i <= last; i++ {
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
	runtime.KeepAlive(m.VS)
	return out
}

// StateDict copies every parameter and buffer to Go slices, by torchvision name.
func (m *Model) StateDict() (sd map[string][]float32, err error) {
	defer recoverTorch(&err)
	sd = make(map[string][]float32, len(m.params))
	for name, t := range m.params {
		c := t.MustDetach(false).MustTo(gotch.CPU, true).MustContiguous(true)
		vals := make([]float32, c.Numel())
		c.MustCopyData(vals, uint(len(vals)))
		c.MustDrop()
		sd[name] = vals
	}
	runtime.KeepAlive(m.VS)
	return sd, nil
}

// Save writes the weights as a gotch .ot file (a TorchScript archive that torch.jit.load reads).
func (m *Model) Save(path string) error {
	if err := m.VS.Save(path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// Load reads weights written by Save; every tensor of the model must be present in the file.
func (m *Model) Load(path string) (err error) {
	defer recoverTorch(&err)
	// Loading copies under no-grad, which libtorch tracks per OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	missing, err := m.VS.LoadPartial(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("load %s: %d tensors missing from the file (e.g. %s): is it a checkpoint of this architecture?", path, len(missing), missing[0])
	}
	return nil
}

// Trainable returns the trainable parameters in graph order (stable across runs).
func (m *Model) Trainable() []*ts.Tensor {
	var out []*ts.Tensor
	for _, p := range m.Graph.Params() {
		if p.Trainable {
			out = append(out, m.params[p.Name])
		}
	}
	return out
}

// Close frees the model's tensors.
func (m *Model) Close() {
	m.VS.Destroy()
	m.none.MustDrop()
}

// Embed runs the model in inference mode (running BN statistics, no autograd) on a float32
// NCHW batch and returns the requested output as a flat N x D slice.
func (m *Model) Embed(images []float32, n int, output int) (out []float32, dim int, err error) {
	defer recoverTorch(&err)
	s := m.Graph.Spec
	if len(images) != n*s.InputC*s.InputHW*s.InputHW {
		return nil, 0, fmt.Errorf("embed: got %d values for %d images of %dx%dx%d", len(images), n, s.InputC, s.InputHW, s.InputHW)
	}
	NoGrad(func() {
		x := ts.MustOfSlice(images).MustView([]int64{int64(n), int64(s.InputC), int64(s.InputHW), int64(s.InputHW)}, true)
		if m.Device != gotch.CPU {
			x = x.MustTo(m.Device, true)
		}
		y := m.Forward(x, false, output)[0]
		y = y.MustTo(gotch.CPU, true).MustContiguous(true)
		sz := y.MustSize()
		dim = int(sz[1])
		out = make([]float32, n*dim)
		y.MustCopyData(out, uint(len(out)))
		y.MustDrop()
		x.MustDrop()
	})
	return out, dim, nil
}

// SetParam overwrites the tensor named name with vals (for loading foreign weights and tests).
func (m *Model) SetParam(name string, vals []float32) (err error) {
	defer recoverTorch(&err)
	t, ok := m.params[name]
	if !ok {
		return fmt.Errorf("parameter %s: not in this %s model", name, m.Graph.Spec.Arch)
	}
	if n := t.Numel(); uint(len(vals)) != n {
		return fmt.Errorf("parameter %s: got %d values, expected %d", name, len(vals), n)
	}
	src := ts.MustOfSlice(vals).MustView(t.MustSize(), true)
	if m.Device != gotch.CPU {
		src = src.MustTo(m.Device, true)
	}
	NoGrad(func() { t.Copy_(src) })
	src.MustDrop()
	return nil
}

// NoGrad runs fn with libtorch's autograd off. Grad mode is per OS thread in libtorch, so the
// goroutine stays on one thread for the whole call (otherwise fn can resume on a thread where
// grad mode is on, and leave grad mode off on another), and the previous mode is restored.
func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := libtch.AtSetGradEnabled(false)
	defer libtch.AtSetGradEnabled(prev)
	fn()
}
