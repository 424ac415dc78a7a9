package train

import (
	"math"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

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
