// Package pth reads PyTorch checkpoints (files written by torch.save: the zip format and the
// legacy pickle format) into torchvision-named state dicts, and matches them, strictly, against
// an encoder description of package models. It is how a victim trained elsewhere (the research
// code's SimSiam ResNet-50 on ImageNet) becomes an ONNX file of ours: `ssl-onnx import`.
package pth

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch/pickle"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// Tensor is one checkpoint entry as a contiguous row-major float32 array.
type Tensor struct {
	Shape []int64
	Data  []float32
	// Int is true for integer entries (BatchNorm's num_batches_tracked); their Data is converted.
	Int bool
}

// StateDict maps parameter names to tensors.
type StateDict map[string]Tensor

// Names returns the entry names, sorted.
func (sd StateDict) Names() []string {
	n := make([]string, 0, len(sd))
	for k := range sd {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Load reads a torch.save file. The state dict is the top-level dictionary of tensors, or the
// one stored under "state_dict" (how the SimSiam/MoCo training scripts save, next to "epoch",
// "arch" and "optimizer") or "model".
func Load(path string) (sd StateDict, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer func() { // the unpickler panics on some malformed input
		if r := recover(); r != nil {
			sd, err = nil, fmt.Errorf("checkpoint %s: not a readable torch.save file: %v", path, r)
		}
	}()
	obj, err := pickle.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler { return pickle.NewUnpickler(r) })
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: not a readable torch.save file: %w", path, err)
	}
	top, ok := entries(obj)
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: top level is %T, expected a dictionary", path, obj)
	}
	for _, key := range []string{"state_dict", "model"} {
		if v, found := top[key]; found {
			if inner, ok := entries(v); ok {
				top = inner
				break
			}
		}
	}
	sd = StateDict{}
	for name, v := range top {
		st, ok := v.(*pickle.StorageTensor)
		if !ok {
			continue // epoch, arch, optimizer ... next to the tensors
		}
		t, err := contiguous(st)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %w", path, name, err)
		}
		sd[name] = t
	}
	if len(sd) == 0 {
		return nil, fmt.Errorf("checkpoint %s: no tensors found (top-level keys: %s)", path, strings.Join(keys(top), ", "))
	}
	return sd, nil
}

// entries returns a pickled dict or OrderedDict with string keys as a map.
func entries(obj any) (map[string]any, bool) {
	out := map[string]any{}
	switch d := obj.(type) {
	case *pickle.Dict:
		for _, e := range *d {
			if k, ok := e.Key.(string); ok {
				out[k] = e.Value
			}
		}
	case *pickle.OrderedDict:
		for k, e := range d.Map {
			if ks, ok := k.(string); ok {
				out[ks] = e.Value
			}
		}
	default:
		return nil, false
	}
	return out, true
}

func keys(m map[string]any) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// contiguous copies a (possibly strided) stored tensor into a row-major float32 array.
func contiguous(st *pickle.StorageTensor) (Tensor, error) {
	var get func(i int64) float32
	var n int64
	isInt := false
	switch d := st.Source.GetData().(type) {
	case []float32:
		get, n = func(i int64) float32 { return d[i] }, int64(len(d))
	case []float64:
		get, n = func(i int64) float32 { return float32(d[i]) }, int64(len(d))
	case []int64:
		get, n, isInt = func(i int64) float32 { return float32(d[i]) }, int64(len(d)), true
	case []int32:
		get, n, isInt = func(i int64) float32 { return float32(d[i]) }, int64(len(d)), true
	default:
		return Tensor{}, fmt.Errorf("storage of %T: expected float32, float64 or integer data", d)
	}
	shape := slices.Clone(st.Size)
	if len(st.Stride) != len(shape) {
		return Tensor{}, fmt.Errorf("shape %v with strides %v", shape, st.Stride)
	}
	// The element count is bounded by the storage before anything is allocated: a state dict
	// holds no expanded (stride 0) views, so a shape asking for more elements than its storage
	// has is corrupt or hostile (torch.zeros(1).as_strided((2**31,), (0,)) asks for 8 GB).
	count := int64(1)
	for _, s := range shape {
		if s < 0 {
			return Tensor{}, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if s > 0 && count > n/s {
			return Tensor{}, fmt.Errorf("shape %v has more elements than its storage of %d", shape, n)
		}
		count *= s
	}
	out := make([]float32, count)
	idx := make([]int64, len(shape))
	for k := int64(0); k < count; k++ {
		off := st.StorageOffset
		for d, i := range idx {
			off += i * st.Stride[d]
		}
		if off < 0 || off >= n {
			return Tensor{}, fmt.Errorf("shape %v strides %v offset %d reach element %d of a storage of %d", shape, st.Stride, st.StorageOffset, off, n)
		}
		out[k] = get(off)
		for d := len(idx) - 1; d >= 0; d-- { // next row-major index
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return Tensor{Shape: shape, Data: out, Int: isInt}, nil
}

// Prefixes are the key prefixes StripPrefix removes when asked to guess: MoCo's query
// encoder and SimSiam's encoder under DistributedDataParallel, then a plain DataParallel
// wrapper, then the same without the wrapper.
var Prefixes = []string{"module.encoder_q.", "module.encoder.", "module.", "encoder_q.", "encoder."}

// StripPrefix returns sd with prefix removed from every key that has it; other keys keep
// their names (SimSiam's "module.predictor.*" becomes "predictor.*" with prefix
// "module.encoder.") except MoCo's training state beside its query encoder (the momentum
// encoder encoder_k.* and the queue of negatives, queue and queue_ptr), which is dropped by
// name: anything else unknown still fails Match. prefix "auto" picks the first of Prefixes
// that some key starts with ("" keeps names).
func StripPrefix(sd StateDict, prefix string) (StateDict, string) {
	if prefix == "auto" {
		prefix = ""
		for _, p := range Prefixes {
			if slices.ContainsFunc(sd.Names(), func(k string) bool { return strings.HasPrefix(k, p) }) {
				prefix = p
				break
			}
		}
	}
	moco := strings.HasSuffix(prefix, "encoder_q.")
	out := StateDict{}
	for k, v := range sd {
		name := strings.TrimPrefix(k, prefix)
		if !strings.HasPrefix(k, prefix) {
			if strings.HasPrefix(prefix, "module.") {
				name = strings.TrimPrefix(k, "module.")
			}
			if moco && (strings.HasPrefix(name, "encoder_k.") || name == "queue" || name == "queue_ptr") {
				continue
			}
		}
		out[name] = v
	}
	return out, prefix
}

// Head guesses the projection head of a torchvision-named state dict: "simsiam" (SimSiam's
// fc.0 ... fc.7 projector) with its output size, "simclr" (Linear(d, d), ReLU, Linear(d, out)
// as fc.0 and fc.2: SimCLR's and MoCo v2's MLP head) with its output size, "linear"
// (torchvision's classifier fc, MoCo v1's projection) with its number of classes, or "none".
func Head(sd StateDict) (string, int) {
	if t, ok := sd["fc.6.weight"]; ok && len(t.Shape) == 2 {
		if _, ok := sd["fc.7.running_mean"]; ok {
			return "simsiam", int(t.Shape[0])
		}
	}
	if t0, ok := sd["fc.0.weight"]; ok && len(t0.Shape) == 2 && t0.Shape[0] == t0.Shape[1] {
		if t2, ok := sd["fc.2.weight"]; ok && len(t2.Shape) == 2 {
			if _, more := sd["fc.3.weight"]; !more {
				return "simclr", int(t2.Shape[0])
			}
		}
	}
	if t, ok := sd["fc.weight"]; ok && len(t.Shape) == 2 {
		return "linear", int(t.Shape[0])
	}
	return "none", 0
}

// Match returns the weights of every parameter of g from sd, strictly: a missing parameter,
// a shape that differs, or a tensor of sd that g does not use (other than BatchNorm's
// num_batches_tracked) is an error that names them. The reference loaded with strict=False,
// which silently skips keys.
func Match(g *models.Graph, sd StateDict) (map[string][]float32, error) {
	out := map[string][]float32{}
	used := map[string]bool{}
	var missing, wrong []string
	for _, p := range g.Params() {
		t, ok := sd[p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		used[p.Name] = true
		if !slices.Equal(t.Shape, p.Shape) {
			wrong = append(wrong, fmt.Sprintf("%s is %v, expected %v", p.Name, t.Shape, p.Shape))
			continue
		}
		out[p.Name] = t.Data
	}
	var unused []string
	for _, k := range sd.Names() {
		if !used[k] && !strings.HasSuffix(k, ".num_batches_tracked") {
			unused = append(unused, k)
		}
	}
	s := g.Spec
	what := fmt.Sprintf("%s/%s head %s", s.Arch, s.Stem, s.Head)
	switch {
	case len(wrong) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: %s", what, list(wrong))
	case len(missing) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: missing %s", what, list(missing))
	case len(unused) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: it has tensors the model does not use: %s", what, list(unused))
	}
	return out, nil
}

// list prints at most 6 names and a count.
func list(xs []string) string {
	if len(xs) <= 6 {
		return strings.Join(xs, "; ")
	}
	return fmt.Sprintf("%s; ... (%d in all)", strings.Join(xs[:6], "; "), len(xs))
}
