package data

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// runPython runs a script with python and fails the test on error.
func runPython(t *testing.T, script string, args ...string) string {
	t.Helper()
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s is required (installed by scripts/setup.sh): %v", pyref.Python, err)
	}
	cmd := pyref.Command(append([]string{"-c", script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python failed: %v\n%s", err, errb.String())
	}
	return out.String()
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// idxBytes encodes an IDX file of unsigned bytes.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

// matWriter builds MATLAB v5 files for tests, following the published
// format: 128-byte header, then miMATRIX elements optionally wrapped in
// miCOMPRESSED.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

type matWriter struct {
	o        byteOrder
	compress bool
	small    bool // use the small data element format where it fits
	buf      bytes.Buffer
}

func newMatWriter(o byteOrder, compress, small bool) *matWriter {
	w := &matWriter{o: o, compress: compress, small: small}
	h := make([]byte, 128)
	copy(h, "MATLAB 5.0 MAT-file, written by the ssl-onnx data tests")
	for i := 56; i < 116; i++ {
		h[i] = ' '
	}
	w.o.PutUint16(h[124:], 0x0100)
	if o.String() == binary.LittleEndian.String() {
		copy(h[126:], "IM")
	} else {
		copy(h[126:], "MI")
	}
	w.buf.Write(h)
	return w
}

// element encodes one data element with padding to 8 bytes.
func (w *matWriter) element(typ uint32, data []byte) []byte {
	var b []byte
	if w.small && len(data) <= 4 {
		b = w.o.AppendUint32(b, uint32(len(data))<<16|typ)
		b = append(b, data...)
		return append(b, make([]byte, 4-len(data))...)
	}
	b = w.o.AppendUint32(b, typ)
	b = w.o.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	return append(b, make([]byte, (8-len(data)%8)%8)...)
}

// matrix encodes a numeric miMATRIX element.
func (w *matWriter) matrix(name string, class uint32, dims []int, dtype uint32, data []byte) []byte {
	var body []byte
	flags := w.o.AppendUint32(nil, class)
	flags = w.o.AppendUint32(flags, 0)
	body = append(body, w.element(miUINT32, flags)...)
	var d []byte
	for _, x := range dims {
		d = w.o.AppendUint32(d, uint32(x))
	}
	body = append(body, w.element(miINT32, d)...)
	body = append(body, w.element(miINT8, []byte(name))...)
	body = append(body, w.element(dtype, data)...)
	var b []byte
	b = w.o.AppendUint32(b, miMATRIX)
	b = w.o.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// add appends a variable.
func (w *matWriter) add(name string, class uint32, dims []int, dtype uint32, data []byte) {
	m := w.matrix(name, class, dims, dtype, data)
	if !w.compress {
		w.buf.Write(m)
		return
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(m)
	zw.Close()
	w.buf.Write(w.o.AppendUint32(nil, miCOMPRESSED))
	w.buf.Write(w.o.AppendUint32(nil, uint32(z.Len())))
	w.buf.Write(z.Bytes())
}

// doubles encodes float64 values.
func (w *matWriter) doubles(v []float64) []byte {
	var b []byte
	for _, x := range v {
		b = w.o.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// svhnImages returns n random HWC images (h x w x 3) and their column-major
// [h,w,3,n] MATLAB encoding.
func svhnImages(n, h, w int, seed uint64) (chw [][]byte, colMajor []byte) {
	colMajor = randBytes(n*h*w*3, seed)
	for i := 0; i < n; i++ {
		img := make([]byte, 3*h*w)
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					// X(y,x,c,i) lives at y + h*(x + w*(c + 3*i)).
					img[(c*h+y)*w+x] = colMajor[y+h*(x+w*(c+3*i))]
				}
			}
		}
		chw = append(chw, img)
	}
	return chw, colMajor
}

// mustContain fails unless err mentions every fragment.
func mustContain(t *testing.T, err error, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error mentioning %q, got nil", frags)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

// readAll returns every image of ds.
func readAll(t *testing.T, ds Dataset) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < ds.Len(); i++ {
		b := make([]byte, ds.Shape().Size())
		if err := ds.Image(i, b); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}
