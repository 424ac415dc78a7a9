package onnxpb

import (
	"encoding/binary"
	"fmt"
	"math"
)

// NewFloatTensor returns a FLOAT tensor holding data as little-endian
// raw_data. dims and data are copied.
func NewFloatTensor(name string, dims []int64, data []float32) *Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, Dims: append([]int64(nil), dims...), DataType: DataTypeFloat, RawData: raw}
}

// NewInt64Tensor returns an INT64 tensor holding data as little-endian
// raw_data. dims and data are copied.
func NewInt64Tensor(name string, dims []int64, data []int64) *Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, Dims: append([]int64(nil), dims...), DataType: DataTypeInt64, RawData: raw}
}

// NumElements returns the product of the tensor's dims (1 for a scalar). It
// fails on a negative dim or when the product overflows int.
func (t *Tensor) NumElements() (int, error) {
	n := 1
	for i, d := range t.Dims {
		if d < 0 {
			return 0, fmt.Errorf("onnxpb: tensor %q: dims[%d] is %d, want >= 0", t.Name, i, d)
		}
		if d != 0 && n > math.MaxInt/int(min(d, math.MaxInt)) {
			return 0, fmt.Errorf("onnxpb: tensor %q: dims %v: element count overflows", t.Name, t.Dims)
		}
		n *= int(d)
	}
	return n, nil
}

// IsExternal reports whether the tensor's data is stored outside the model
// file (data_location EXTERNAL). Such tensors carry no values in the model
// itself; this package does not resolve external data.
func (t *Tensor) IsExternal() bool { return t.external }

// values checks type and size and returns the raw bytes (if raw_data is
// used) and the element count.
func (t *Tensor) values(want DataType, typed int) (raw []byte, n int, err error) {
	if t.DataType != want {
		return nil, 0, fmt.Errorf("onnxpb: tensor %q: data_type is %v, want %v", t.Name, t.DataType, want)
	}
	if t.external {
		return nil, 0, fmt.Errorf("onnxpb: tensor %q: data is stored externally, which is not supported", t.Name)
	}
	n, err = t.NumElements()
	if err != nil {
		return nil, 0, err
	}
	size := want.Size()
	switch {
	case len(t.RawData) > 0 && typed > 0:
		return nil, 0, fmt.Errorf("onnxpb: tensor %q: has both raw_data and typed data", t.Name)
	case len(t.RawData) > 0:
		// Divide rather than multiply: n*size can overflow to a small number (dims [2^62+1]
		// with 4 bytes of raw_data), and make() would then be asked for 2^62 elements.
		if len(t.RawData)%size != 0 || len(t.RawData)/size != n {
			return nil, 0, fmt.Errorf("onnxpb: tensor %q: raw_data is %d bytes, want %d (%d elements of %d bytes for dims %v)",
				t.Name, len(t.RawData), n*size, n, size, t.Dims)
		}
		return t.RawData, n, nil
	case typed != n:
		return nil, 0, fmt.Errorf("onnxpb: tensor %q: has %d values, want %d for dims %v", t.Name, typed, n, t.Dims)
	}
	return nil, n, nil
}

// Float32s returns the values of a FLOAT tensor, decoded from raw_data
// (little-endian) or copied from float_data. It fails when DataType is not
// FLOAT or the number of values does not match Dims.
func (t *Tensor) Float32s() ([]float32, error) {
	raw, n, err := t.values(DataTypeFloat, len(t.FloatData))
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return append(make([]float32, 0, n), t.FloatData...), nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, nil
}

// Int64s returns the values of an INT64 tensor, decoded from raw_data
// (little-endian) or copied from int64_data. It fails when DataType is not
// INT64 or the number of values does not match Dims.
func (t *Tensor) Int64s() ([]int64, error) {
	raw, n, err := t.values(DataTypeInt64, len(t.Int64Data))
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return append(make([]int64, 0, n), t.Int64Data...), nil
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out, nil
}
