package npy

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// runPython runs script with args and decodes its JSON stdout into out.
func runPython(t *testing.T, out any, script string, args ...string) {
	t.Helper()
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s is required for the numpy cross-check (installed by scripts/setup.sh): %v", pyref.Python, err)
	}
	stdout, err := pyref.Command(append([]string{"-c", script}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("python output is not JSON: %v\n%s", err, stdout)
	}
}

// values returns n test values: a ramp 0.25*i - 3 with NaN, +Inf, -Inf and -0
// in the first four places (when there is room).
func values(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)*0.25 - 3
	}
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1))}
	copy(v, special[:min(n, len(special))])
	return v
}

func bits(v []float32) []uint32 {
	b := make([]uint32, len(v))
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}

var shapes = map[string][]int{
	"matrix": {4, 3},
	"vector": {5},
	"scalar": {},
	"empty":  {0, 7},
	"rank3":  {2, 3, 4},
	"wide":   {1, 1000},
}

// numpyLoad loads each DIR/<name>.npy with np.load and reports what it found,
// plus the data offset, which must be a multiple of 64.
const numpyLoad = `
import json, os, sys
import numpy as np
d = sys.argv[1]
out = {}
for f in sorted(os.listdir(d)):
    a = np.load(os.path.join(d, f))
    raw = open(os.path.join(d, f), "rb").read()
    hlen = int.from_bytes(raw[8:10], "little")
    out[f[:-4]] = {"dtype": a.dtype.str, "shape": list(a.shape), "fortran": bool(np.isfortran(a)) and a.ndim > 1,
                   "bits": [int(x) for x in np.ascontiguousarray(a).reshape(-1).view("<u4")],
                   "offset": 10 + hlen, "version": list(raw[6:8]), "header_end": chr(raw[9 + hlen])}
print(json.dumps(out))
`

func TestNumpyLoadsWhatWeWrite(t *testing.T) {
	dir := t.TempDir()
	for name, shape := range shapes {
		if err := WriteFloat32(filepath.Join(dir, name+".npy"), shape, values(product(shape))); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]struct {
		Dtype     string   `json:"dtype"`
		Shape     []int    `json:"shape"`
		Fortran   bool     `json:"fortran"`
		Bits      []uint32 `json:"bits"`
		Offset    int      `json:"offset"`
		Version   []int    `json:"version"`
		HeaderEnd string   `json:"header_end"`
	}
	runPython(t, &got, numpyLoad, dir)
	if len(got) != len(shapes) {
		t.Fatalf("numpy loaded %d files, want %d", len(got), len(shapes))
	}
	for name, shape := range shapes {
		g := got[name]
		if g.Dtype != "<f4" || g.Fortran || !reflect.DeepEqual(g.Version, []int{1, 0}) || g.HeaderEnd != "\n" {
			t.Errorf("%s: numpy sees dtype %s fortran %v version %v header end %q; want <f4, false, [1 0], newline",
				name, g.Dtype, g.Fortran, g.Version, g.HeaderEnd)
		}
		if g.Offset%64 != 0 {
			t.Errorf("%s: data starts at byte %d, not a multiple of 64", name, g.Offset)
		}
		if !reflect.DeepEqual(g.Shape, shape) {
			t.Errorf("%s: numpy shape %v, want %v", name, g.Shape, shape)
		}
		if want := bits(values(product(shape))); !reflect.DeepEqual(append([]uint32{}, g.Bits...), append([]uint32{}, want...)) {
			t.Errorf("%s: numpy values differ from the written ones", name)
		}
	}
}

// numpySave writes DIR/<name>.npy with np.save (and one with format
// version 2.0), using the same values as values().
const numpySave = `
import json, sys
import numpy as np
d, shapes = sys.argv[1], json.loads(sys.argv[2])
for name, shape in shapes.items():
    n = int(np.prod(shape)) if shape else 1
    a = np.arange(n, dtype=np.float32) * np.float32(0.25) - np.float32(3)
    a[:4] = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32)[:n]
    np.save(f"{d}/{name}.npy", a.reshape(shape))
    if name == "matrix":
        with open(f"{d}/matrix_v2.npy", "wb") as f:
            np.lib.format.write_array(f, a.reshape(shape), version=(2, 0))
np.save(f"{d}/float64.npy", np.zeros((2, 2)))
np.save(f"{d}/bigendian.npy", np.zeros((2, 2), dtype=">f4"))
np.save(f"{d}/fortran.npy", np.asfortranarray(np.zeros((2, 3), dtype=np.float32)))
print("{}")
`

func TestReadWhatNumpyWrites(t *testing.T) {
	dir := t.TempDir()
	js, err := json.Marshal(shapes)
	if err != nil {
		t.Fatal(err)
	}
	var none map[string]any
	runPython(t, &none, numpySave, dir, string(js))
	cases := map[string][]int{"matrix_v2": shapes["matrix"]}
	for k, v := range shapes {
		cases[k] = v
	}
	for name, shape := range cases {
		gotShape, data, err := ReadFloat32(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(gotShape, shape) {
			t.Errorf("%s: shape %v, want %v", name, gotShape, shape)
		}
		if !reflect.DeepEqual(bits(data), bits(values(product(shape)))) {
			t.Errorf("%s: values differ from numpy's", name)
		}
	}
	bad := []struct{ file, want string }{
		{"float64.npy", "descr is '<f8', expected '<f4'"},
		{"bigendian.npy", "descr is '>f4', expected '<f4'"},
		{"fortran.npy", "fortran_order is True, expected False"},
	}
	for _, b := range bad {
		_, _, err := ReadFloat32(filepath.Join(dir, b.file))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want it to contain %q", b.file, err, b.want)
		}
	}
}

func TestRoundTripAndHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.npy")
	if err := WriteFloat32(p, []int{2, 3}, values(6)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	hdr := "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	if !strings.HasPrefix(string(raw), hdr) || len(raw) != 128+24 || raw[127] != '\n' {
		t.Errorf("file starts %q (%d bytes); want header %q padded to 128 bytes, then 24 data bytes", raw[:min(len(raw), 128)], len(raw), hdr)
	}
	shape, data, err := ReadFloat32(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shape, []int{2, 3}) || !reflect.DeepEqual(bits(data), bits(values(6))) {
		t.Errorf("round trip gave shape %v data %v", shape, data)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.npy")
	if err := WriteFloat32(good, []int{2, 2}, values(4)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writes := []struct {
		name  string
		path  string
		shape []int
		n     int
		want  string
	}{
		{"too few values", filepath.Join(dir, "a.npy"), []int{2, 3}, 5, "shape [2 3] needs 6 values, found 5"},
		{"negative dim", filepath.Join(dir, "b.npy"), []int{2, -1}, 0, "negative dimension -1 at index 1"},
		{"missing dir", filepath.Join(dir, "no", "c.npy"), []int{1}, 1, "no such file or directory"},
	}
	for _, w := range writes {
		err := WriteFloat32(w.path, w.shape, values(w.n))
		if err == nil || !strings.Contains(err.Error(), w.want) {
			t.Errorf("%s: err = %v, want it to contain %q", w.name, err, w.want)
		}
		if _, statErr := os.Stat(w.path); statErr == nil {
			t.Errorf("%s: failed write left %s behind", w.name, w.path)
		}
	}
	reads := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "missing.npy"), "no such file or directory"},
		{"not npy", write("text.npy", []byte("hello world")), "not a .npy file"},
		{"truncated data", write("trunc.npy", raw[:len(raw)-1]), "needs 16 bytes of data, found 15"},
		{"extra data", write("extra.npy", append(append([]byte{}, raw...), 0)), "needs 16 bytes of data, found 17"},
		{"truncated header", write("hdr.npy", raw[:40]), "header length 118 exceeds file size 40"},
		{"version 9", write("v9.npy", append([]byte("\x93NUMPY\x09\x00"), raw[8:]...)), "unsupported .npy version 9.0"},
	}
	for _, r := range reads {
		_, _, err := ReadFloat32(r.path)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: err = %v, want it to contain %q", r.name, err, r.want)
		}
	}
	// Overwriting is atomic and leaves no temporary files behind.
	if err := WriteFloat32(good, []int{1}, []float32{7}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if shape, data, err := ReadFloat32(good); err != nil || !reflect.DeepEqual(shape, []int{1}) || data[0] != 7 {
		t.Errorf("after overwrite: %v %v %v", shape, data, err)
	}
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
