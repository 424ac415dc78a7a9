package torchnet

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch/pickle"
)

// StoredTensor is one entry of a torch.save file as a contiguous row-major float32 array.
type StoredTensor struct {
	Shape []int64
	Data  []float32
	// Int is true for integer entries (BatchNorm's num_batches_tracked); their Data is converted.
	Int bool
}

// ReadTorchSave reads a torch.save file (the zip format or the legacy pickle format) with
// gotch's unpickler, whose storage sizes setup bounds. The state dict is the top-level dictionary of tensors, or the
// one stored under "state_dict" (how the SimSiam/MoCo training scripts save, next to "epoch",
// "arch" and "optimizer") or "model".
func ReadTorchSave(path string) (sd map[string]StoredTensor, err error) {
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
	sd = map[string]StoredTensor{}
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
func contiguous(st *pickle.StorageTensor) (StoredTensor, error) {
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
		return StoredTensor{}, fmt.Errorf("storage of %T: expected float32, float64 or integer data", d)
	}
	shape := slices.Clone(st.Size)
	if len(st.Stride) != len(shape) {
		return StoredTensor{}, fmt.Errorf("shape %v with strides %v", shape, st.Stride)
	}
	// The element count is bounded by the storage before anything is allocated: a state dict
	// holds no expanded (stride 0) views, so a shape asking for more elements than its storage
	// has is corrupt or hostile (torch.zeros(1).as_strided((2**31,), (0,)) asks for 8 GB).
	count := int64(1)
	for _, s := range shape {
		if s < 0 {
			return StoredTensor{}, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if s > 0 && count > n/s {
			return StoredTensor{}, fmt.Errorf("shape %v has more elements than its storage of %d", shape, n)
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
			return StoredTensor{}, fmt.Errorf("shape %v strides %v offset %d reach element %d of a storage of %d", shape, st.Stride, st.StorageOffset, off, n)
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
	return StoredTensor{Shape: shape, Data: out, Int: isInt}, nil
}
