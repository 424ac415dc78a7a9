package train

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// writeRaw writes a []float32 or []int64 as little-endian raw values (numpy.fromfile's '<f4' / '<i8').
func writeRaw(t *testing.T, path string, v any) {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		t.Fatalf("encode %s: %v", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runRef runs testdata/<script> with the reference interpreter (see pyref.Run).
func runRef(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	pyref.Run(t, script, out, args...)
}

// maxRelErr returns max_i |got_i - want_i| / max(max_i |want_i|, floor): the error relative to
// the scale of the reference vector (so elements near zero do not dominate).
func maxRelErr(got, want []float64, floor float64) float64 {
	scale := floor
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(got[i]-want[i])/scale)
	}
	return worst
}

// testSession opens a CPU libtorch session closed when the test ends.
func testSession(t testing.TB) *torchnet.Session {
	t.Helper()
	s, err := torchnet.Open(torchnet.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
