package infer

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// childEnv, when set, makes the test binary act as a child process that
// opens an encoder with the library named by the variable and prints the error.
const childEnv = "INFER_TEST_CHILD_LIBRARY"

var testModels struct {
	once   sync.Once
	root   string // removed by TestMain
	script string // absolute path of testdata/gen_models.py
	dir    string
	err    error
}

func TestMain(m *testing.M) {
	if lib := os.Getenv(childEnv); lib != "" {
		_, err := OpenORT(os.Getenv("INFER_TEST_CHILD_MODEL"), Options{Library: lib})
		fmt.Printf("error: %v\n", err)
		os.Exit(0)
	}
	root, err := os.MkdirTemp("", "infer-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testModels.root = root
	if testModels.script, err = filepath.Abs(filepath.Join("testdata", "gen_models.py")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(root)
	os.Exit(code)
}

// modelDir returns the directory with the models of testdata/gen_models.py,
// generating them on first use (one Python run per test binary).
func modelDir(tb testing.TB) string {
	tb.Helper()
	testModels.once.Do(func() {
		if err := pyref.Check(); err != nil {
			testModels.err = fmt.Errorf("%s is required for the ONNX cross-checks (installed by scripts/setup.sh): %w", pyref.Python, err)
			return
		}
		dir := filepath.Join(testModels.root, "models")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			testModels.err = err
			return
		}
		out, err := pyref.Command(testModels.script, dir).CombinedOutput()
		if err != nil {
			testModels.err = fmt.Errorf("testdata/gen_models.py failed: %v\n%s", err, out)
			return
		}
		testModels.dir = dir
	})
	if testModels.err != nil {
		tb.Fatal(testModels.err)
	}
	return testModels.dir
}

// assertClose fails unless got and want agree within tol*max(1,|want|)
// element-wise, and reports the largest deviation.
func assertClose(tb testing.TB, what string, got, want []float32, tol float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		lim := tol * math.Max(1, math.Abs(float64(want[i])))
		if !(d <= lim) {
			tb.Fatalf("%s: element %d = %g, want %g (|diff| %g > %g)", what, i, got[i], want[i], d, lim)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	tb.Logf("%s: %d values, max |diff| %.3g at %d", what, len(want), worst, at)
}
