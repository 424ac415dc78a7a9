package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// svhnLabels are the labels written to test files: 10 stands for digit 0.
func svhnLabels(n int) []float64 {
	y := make([]float64, n)
	for i := range y {
		y[i] = float64(i%10 + 1)
	}
	return y
}

func checkSVHN(t *testing.T, what string, ds Dataset, want [][]byte, y []float64) {
	t.Helper()
	if ds.Len() != len(want) || ds.Shape() != (Shape{3, 32, 32}) {
		t.Fatalf("%s: %d images of %v, expected %d of 3x32x32", what, ds.Len(), ds.Shape(), len(want))
	}
	for i, img := range readAll(t, ds) {
		if !bytes.Equal(img, want[i]) {
			t.Fatalf("%s: image %d differs", what, i)
		}
		l := int(y[i]) % 10
		if ds.Label(i) != l {
			t.Fatalf("%s: label %d = %d, expected %d", what, i, ds.Label(i), l)
		}
	}
}

func TestSVHNOwnWriter(t *testing.T) {
	const n = 13
	want, x := svhnImages(n, 32, 32, 11)
	y := svhnLabels(n)
	for _, o := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, compress := range []bool{false, true} {
			for _, small := range []bool{false, true} {
				for _, yType := range []string{"double", "uint8-as-double", "uint8"} {
					w := newMatWriter(o, compress, small)
					w.add("junk", 9, []int{1, 3}, miUINT8, []byte{1, 2, 3})
					w.add("X", 9, []int{32, 32, 3, n}, miUINT8, x)
					yb := make([]byte, n)
					for i := range y {
						yb[i] = byte(y[i])
					}
					switch yType {
					case "double":
						w.add("y", mxDOUBLE, []int{n, 1}, miDOUBLE, w.doubles(y))
					case "uint8-as-double": // how MATLAB stores small doubles
						w.add("y", mxDOUBLE, []int{n, 1}, miUINT8, yb)
					case "uint8":
						w.add("y", 9, []int{n, 1}, miUINT8, yb)
					}
					what := fmt.Sprintf("%v compress=%v small=%v y=%s", o, compress, small, yType)
					ds, err := newSVHN(memRegion("t.mat", w.buf.Bytes()))
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					checkSVHN(t, what, ds, want, y)
				}
			}
		}
	}
}

func TestSVHNXStoredAsDouble(t *testing.T) {
	want, x := svhnImages(2, 32, 32, 3)
	w := newMatWriter(binary.LittleEndian, true, true)
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	w.add("X", mxDOUBLE, []int{32, 32, 3, 2}, miDOUBLE, w.doubles(xs))
	w.add("y", mxDOUBLE, []int{2, 1}, miDOUBLE, w.doubles([]float64{10, 3}))
	ds, err := newSVHN(memRegion("t.mat", w.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	checkSVHN(t, "double X", ds, want, []float64{10, 3})
}

// TestSVHNScipy reads files written by scipy.io.savemat, compressed and not.
func TestSVHNScipy(t *testing.T) {
	dir := t.TempDir()
	const n = 17
	want, x := svhnImages(n, 32, 32, 21)
	writeFile(t, filepath.Join(dir, "x.bin"), x)
	runPython(t, `
import sys, numpy as np, scipy.io
d = sys.argv[1]; n = int(sys.argv[2])
X = np.fromfile(d + "/x.bin", dtype=np.uint8).reshape((32, 32, 3, n), order="F")
y = (np.arange(n) % 10 + 1).astype(np.float64).reshape(n, 1)
scipy.io.savemat(d + "/train_32x32.mat", {"X": X, "y": y}, do_compression=False)
scipy.io.savemat(d + "/test_32x32.mat", {"X": X, "y": y, "note": "text"}, do_compression=True)
`, dir, fmt.Sprint(n))
	for _, split := range []string{"train", "test"} {
		ds, err := Open("svhn", dir, split)
		if err != nil {
			t.Fatalf("%s: %v", split, err)
		}
		checkSVHN(t, "scipy "+split, ds, want, svhnLabels(n))
	}
	// Truncated copies of both files are rejected with the file name.
	for _, split := range []string{"train", "test"} {
		b, err := os.ReadFile(filepath.Join(dir, split+"_32x32.mat"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "cut", split+"_32x32.mat")
		writeFile(t, p, b[:len(b)-len(b)/3])
		_, err = Open("svhn", filepath.Dir(p), split)
		mustContain(t, err, p, "truncated")
	}
}

func TestMATRejectsBadFiles(t *testing.T) {
	_, x := svhnImages(2, 32, 32, 1)
	build := func(o byteOrder, compress bool, f func(w *matWriter)) []byte {
		w := newMatWriter(o, compress, true)
		f(w)
		return w.buf.Bytes()
	}
	le := binary.LittleEndian
	okX := func(w *matWriter) { w.add("X", 9, []int{32, 32, 3, 2}, miUINT8, x) }
	good := build(le, false, func(w *matWriter) { okX(w); w.add("y", 6, []int{2, 1}, miDOUBLE, w.doubles([]float64{1, 2})) })
	goodZ := build(le, true, func(w *matWriter) { okX(w); w.add("y", 6, []int{2, 1}, miDOUBLE, w.doubles([]float64{1, 2})) })
	patch := func(b []byte, off int, v ...byte) []byte {
		c := append([]byte{}, b...)
		copy(c[off:], v)
		return c
	}
	cases := []struct {
		name string
		b    []byte
		want []string
	}{
		{"short header", good[:100], []string{"t.mat", "truncated MAT header", "128"}},
		{"truncated data", good[:3000], []string{"t.mat", "truncated", "declares"}},
		{"truncated compressed", goodZ[:len(goodZ)-40], []string{"t.mat", "truncated"}},
		{"bad endian", patch(good, 126, 'X', 'Y'), []string{"t.mat", "endian indicator", "IM"}},
		{"v7.3", patch(good, 124, 0, 2), []string{"t.mat", "0x0200", "v7.3"}},
		{"bad element type", patch(good, 128, 3), []string{"t.mat", "type 3", "miMATRIX"}},
		{"corrupt zlib", patch(goodZ, 140, 0xff, 0xff, 0xff, 0xff), []string{"t.mat", "miCOMPRESSED"}},
		{"missing y", build(le, false, okX), []string{"t.mat", "X and y", "y=false"}},
		{"count mismatch", build(le, true, func(w *matWriter) { okX(w); w.add("y", 6, []int{3, 1}, miDOUBLE, w.doubles([]float64{1, 2, 3})) }), []string{"t.mat", "[3 1]", "[2,1]"}},
		{"label 11", build(le, false, func(w *matWriter) { okX(w); w.add("y", 6, []int{2, 1}, miDOUBLE, w.doubles([]float64{1, 11})) }), []string{"t.mat", "y(2) is 11", "0..10"}},
		{"fractional label", build(le, false, func(w *matWriter) { okX(w); w.add("y", 6, []int{2, 1}, miDOUBLE, w.doubles([]float64{1.5, 1})) }), []string{"y(1) is 1.5"}},
		{"data size", build(le, false, func(w *matWriter) { w.add("X", 9, []int{32, 32, 3, 3}, miUINT8, x) }), []string{"t.mat", `"X"`, "6144 data bytes", "expected 9216"}},
		{"bad dims", build(le, false, func(w *matWriter) {
			w.add("X", 9, []int{6144}, miUINT8, x)
		}), []string{"t.mat", "dimensions element", "at least 2"}},
		{"absurd empty X", build(le, false, func(w *matWriter) {
			w.add("X", 9, []int{1 << 15, 1 << 15, 3, 0}, miUINT8, nil)
			w.add("y", 6, []int{0, 1}, miDOUBLE, nil)
		}), []string{"t.mat", "X has dimensions [32768 32768 3 0]", "at most 1073741824 bytes"}},
		{"struct X", build(le, false, func(w *matWriter) { w.add("X", 2, []int{1, 1}, miUINT8, []byte{0}) }), []string{"t.mat", `"X"`, "class 2"}},
	}
	for _, c := range cases {
		_, err := newSVHN(memRegion("t.mat", c.b))
		if err == nil {
			t.Fatalf("%s: accepted", c.name)
		}
		t.Logf("%s: %v", c.name, err)
		mustContain(t, err, c.want...)
	}
}
