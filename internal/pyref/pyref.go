// Package pyref runs the Python reference scripts that tests cross-check against (PyTorch,
// torchvision, scipy from Debian). The cross-checks fail, never skip, when the interpreter is
// missing: the project's setup installs it.
package pyref

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Python is Debian's interpreter, which sees python3-torch, -torchvision, -onnx and -scipy.
const Python = "/usr/bin/python3"

// Check reports whether the reference interpreter is installed.
func Check() error {
	if _, err := os.Stat(Python); err != nil {
		return fmt.Errorf("reference interpreter %s (Debian's python3 with torch, torchvision, onnx, scipy; scripts/setup.sh installs them) is required: %w", Python, err)
	}
	return nil
}

// Command is exec.Command of the reference interpreter with args, limited to one compute
// thread (the references are tiny and the machine is shared).
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(Python, args...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1")
	return cmd
}

// Run runs testdata/<script> (relative to the test's package) with Python, one thread, and
// decodes its JSON stdout into out.
func Run(t testing.TB, script string, out any, args ...string) {
	t.Helper()
	if err := Check(); err != nil {
		t.Fatal(err)
	}
	path, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := Command(append([]string{path}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", Python, script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s: output is not the expected JSON: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
}

// ReadFloat32 reads a raw little-endian float32 file, as the reference scripts write them
// (numpy's tofile / tobytes of '<f4').
func ReadFloat32(tb testing.TB, path string) []float32 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b)%4 != 0 {
		tb.Fatalf("%s: %d bytes is not a whole number of float32", path, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// WriteRaw writes a slice of fixed-size numbers ([]float32, []int64 ...) as raw little-endian
// values, as the reference scripts read them (numpy.fromfile with '<f4', '<i8').
func WriteRaw(tb testing.TB, path string, v any) {
	tb.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		tb.Fatalf("encode %s: %v", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}
