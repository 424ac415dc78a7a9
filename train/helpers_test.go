package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// refPython is Debian's interpreter, which has torch 1.13 (the libtorch gotch links here),
// torchvision and numpy. The cross-checks fail, not skip, when it is missing.
const refPython = "/usr/bin/python3"

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

// runRef runs testdata/<script> with refPython and decodes its JSON stdout into out.
func runRef(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	if _, err := os.Stat(refPython); err != nil {
		t.Fatalf("reference interpreter %s is required for this cross-check: %v", refPython, err)
	}
	path, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(refPython, append([]string{path}, args...)...)
	// One thread: the reference is tiny and the machine is shared.
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", refPython, script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s: output is not the expected JSON: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
}

// tensorOf makes a float32 tensor of the given shape from vals (the caller checks the sizes).
func tensorOf(vals []float32, shape ...int64) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView(shape, true)
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
