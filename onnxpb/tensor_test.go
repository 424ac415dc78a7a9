package onnxpb

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNewTensors(t *testing.T) {
	f := NewFloatTensor("w", []int64{2}, []float32{1, -2})
	if want := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}; f.DataType != DataTypeFloat || !reflect.DeepEqual(f.RawData, want) {
		t.Errorf("NewFloatTensor: type %v raw %x, want FLOAT %x", f.DataType, f.RawData, want)
	}
	i := NewInt64Tensor("s", []int64{2}, []int64{1, -1})
	if want := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; i.DataType != DataTypeInt64 || !reflect.DeepEqual(i.RawData, want) {
		t.Errorf("NewInt64Tensor: type %v raw %x, want INT64 %x", i.DataType, i.RawData, want)
	}
	dims := []int64{2}
	f = NewFloatTensor("w", dims, []float32{1, 2})
	dims[0] = 9
	if f.Dims[0] != 2 {
		t.Errorf("NewFloatTensor aliases dims")
	}
}

func TestFloat32s(t *testing.T) {
	tests := []struct {
		name    string
		t       *Tensor
		want    []float32
		wantErr string
	}{
		{"raw", NewFloatTensor("a", []int64{2, 2}, []float32{1, 2, 3, float32(math.Inf(1))}), []float32{1, 2, 3, float32(math.Inf(1))}, ""},
		{"float_data", &Tensor{Name: "b", Dims: []int64{3}, DataType: DataTypeFloat, FloatData: []float32{4, 5, 6}}, []float32{4, 5, 6}, ""},
		{"scalar", NewFloatTensor("s", nil, []float32{7}), []float32{7}, ""},
		{"empty", NewFloatTensor("e", []int64{0, 5}, nil), []float32{}, ""},
		{"wrong type", NewInt64Tensor("c", []int64{1}, []int64{1}), nil, `tensor "c": data_type is INT64, want FLOAT`},
		{"raw size", &Tensor{Name: "d", Dims: []int64{2}, DataType: DataTypeFloat, RawData: make([]byte, 7)}, nil, `tensor "d": raw_data is 7 bytes, want 8`},
		{"typed count", &Tensor{Name: "e", Dims: []int64{2, 2}, DataType: DataTypeFloat, FloatData: []float32{1}}, nil, `tensor "e": has 1 values, want 4`},
		{"both", &Tensor{Name: "f", Dims: []int64{1}, DataType: DataTypeFloat, FloatData: []float32{1}, RawData: make([]byte, 4)}, nil, "both raw_data and typed data"},
		{"negative dim", &Tensor{Name: "g", Dims: []int64{2, -3}, DataType: DataTypeFloat}, nil, `tensor "g": dims[1] is -3, want >= 0`},
		{"overflow", &Tensor{Name: "h", Dims: []int64{math.MaxInt64, 4}, DataType: DataTypeFloat}, nil, "element count overflows"},
		{"no data", &Tensor{Name: "i", Dims: []int64{2}, DataType: DataTypeFloat}, nil, "has 0 values, want 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.t.Float32s()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestInt64s(t *testing.T) {
	tests := []struct {
		name    string
		t       *Tensor
		want    []int64
		wantErr string
	}{
		{"raw", NewInt64Tensor("a", []int64{3}, []int64{math.MinInt64, 0, math.MaxInt64}), []int64{math.MinInt64, 0, math.MaxInt64}, ""},
		{"int64_data", &Tensor{Name: "b", Dims: []int64{2}, DataType: DataTypeInt64, Int64Data: []int64{-1, 1}}, []int64{-1, 1}, ""},
		{"wrong type", NewFloatTensor("c", []int64{1}, []float32{1}), nil, `tensor "c": data_type is FLOAT, want INT64`},
		{"raw size", &Tensor{Name: "d", Dims: []int64{1}, DataType: DataTypeInt64, RawData: make([]byte, 4)}, nil, "raw_data is 4 bytes, want 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.t.Int64s()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestTypeNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{DataTypeFloat.String(), "FLOAT"},
		{DataTypeBfloat16.String(), "BFLOAT16"},
		{DataType(42).String(), "DataType(42)"},
		{AttrTypeInts.String(), "INTS"},
		{AttributeType(-1).String(), "AttributeType(-1)"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	sizes := map[DataType]int{DataTypeFloat: 4, DataTypeInt64: 8, DataTypeUint8: 1, DataTypeFloat16: 2, DataTypeString: 0, DataTypeComplex128: 16}
	for dt, want := range sizes {
		if got := dt.Size(); got != want {
			t.Errorf("%v.Size() = %d, want %d", dt, got, want)
		}
	}
}

func TestWriteReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := fullModel()
	if err := WriteFile(path, want); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadFile after WriteFile differs")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after WriteFile, want only m.onnx", len(entries))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode().Perm(), err)
	}

	// A failing Marshal leaves the existing file untouched.
	bad := &Model{Graph: &Graph{Nodes: []*Node{nil}}}
	if err := WriteFile(path, bad); err == nil {
		t.Errorf("WriteFile of invalid model succeeded")
	}
	if got, err := ReadFile(path); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("file changed after failed WriteFile: %v", err)
	}

	if err := WriteFile(filepath.Join(dir, "missing", "m.onnx"), want); err == nil {
		t.Errorf("WriteFile into a missing directory succeeded")
	}
	if _, err := ReadFile(filepath.Join(dir, "none.onnx")); err == nil || !strings.Contains(err.Error(), "none.onnx") {
		t.Errorf("ReadFile of missing file: err = %v", err)
	}
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a protobuf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(garbage); err == nil || !strings.Contains(err.Error(), "garbage.onnx: onnxpb: decode") {
		t.Errorf("ReadFile of text file: err = %v", err)
	}
}
