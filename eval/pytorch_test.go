package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer/npy"
)

type torchRef struct {
	W, B      []float64
	Pred      []int
	TrainLoss float64 `json:"train_loss"`
	KNNPred   []int   `json:"knn_pred"`
}

// torchCase is one probe/kNN problem for testdata/probe_ref.py.
type torchCase struct {
	train, test Features
	cfg         ProbeConfig
	k           int
	temp        float64
	schedule    string // the schedule torch is told to use ("" = the resolved config's)
}

// runTorchRef runs testdata/probe_ref.py once on all cases (torch's import is the slow
// part) and returns its results in order. The probe's epoch orders are passed along.
func runTorchRef(t *testing.T, cases []torchCase) []torchRef {
	t.Helper()
	args := []string{"testdata/probe_ref.py"}
	for _, c := range cases {
		r := c.cfg.Resolved()
		schedule := c.schedule
		if schedule == "" {
			schedule = r.Schedule
		}
		js, err := json.Marshal(map[string]any{"lr": r.LR, "wd": r.WeightDecay, "epochs": r.Epochs, "batch": r.Batch,
			"standardize": r.Standardize, "classes": c.train.Classes, "knn_k": max(c.k, 1), "knn_t": max(c.temp, 1e-3),
			"optimizer": r.Optimizer, "momentum": r.Momentum, "schedule": schedule, "w0": probeInit(c.train.Classes*c.train.X.D, r)})
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, writeTorchInputs(t, c.train, c.test, c.cfg), string(js))
	}
	return runPython[torchRef](t, "probe_ref.py", args, len(cases))
}

// writeTorchInputs writes xtr.npy, xte.npy, ytr.npy, yte.npy and perms.npy (the probe's
// row order of every epoch) to a new temporary directory and returns it.
func writeTorchInputs(t *testing.T, train, test Features, cfg ProbeConfig) string {
	t.Helper()
	ints := func(y []int) []float32 {
		f := make([]float32, len(y))
		for i, v := range y {
			f[i] = float32(v)
		}
		return f
	}
	dir := t.TempDir()
	n := train.X.N
	perms := make([]int, 0, cfg.Epochs*n)
	for e := 1; e <= cfg.Epochs; e++ {
		perms = append(perms, data.Permutation(n, epochSeed(cfg.Seed, e))...)
	}
	for _, f := range []struct {
		name  string
		shape []int
		data  []float32
	}{
		{"xtr", []int{n, train.X.D}, train.X.Data},
		{"xte", []int{test.X.N, test.X.D}, test.X.Data},
		{"ytr", []int{n}, ints(train.Y)},
		{"yte", []int{test.X.N}, ints(test.Y)},
		{"perms", []int{cfg.Epochs, n}, ints(perms)},
	} {
		if err := npy.WriteFloat32(filepath.Join(dir, f.name+".npy"), f.shape, f.data); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runPython runs python with args (a script path or "-c" and a script first) and decodes
// n JSON values of type T from its output; name labels failures.
func runPython[T any](t *testing.T, name string, args []string, n int) []T {
	t.Helper()
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s (Debian's python3 with torch) is needed for the PyTorch cross-check: %v", pyref.Python, err)
	}
	out, err := pyref.Command(args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("%s: %v\n%s", name, err, ee.Stderr)
		}
		t.Fatalf("%s: %v", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	refs := make([]T, n)
	for i := range refs {
		if err := dec.Decode(&refs[i]); err != nil {
			t.Fatalf("%s output %d of %d: %v", name, i+1, n, err)
		}
	}
	return refs
}

// withConst returns f with feature 3 set to a constant, which exercises the standardiser's
// zero-deviation path.
func withConst(f Features) Features {
	f.X.Data = append([]float32(nil), f.X.Data...)
	for i := range f.X.N {
		f.X.Data[i*f.X.D+3] = 2.5
	}
	return f
}

// TestLinearProbeMatchesPyTorch trains the same probe (zero init, same batch order,
// torch.optim.Adam with weight decay, mean cross-entropy) in PyTorch float64 and
// compares the final weights, bias, train loss and test predictions, and compares the
// kNN monitor's predictions with a torch topk/scatter implementation.
func TestLinearProbeMatchesPyTorch(t *testing.T) {
	t.Parallel()
	scaled := func(f Features) Features { // very different feature scales and offsets
		f.X.Data = append([]float32(nil), f.X.Data...)
		for i, v := range f.X.Data {
			j := i % f.X.D
			f.X.Data[i] = v*float32(1+3*j) + float32(j)
		}
		return f
	}
	tests := []struct {
		name string
		torchCase
	}{
		// 300 rows in batches of 64: the last batch of each epoch has 44.
		{"standardized", torchCase{withConst(scaled(blobs(300, 12, 4, 2, 21))), withConst(scaled(blobs(150, 12, 4, 2, 21))),
			ProbeConfig{LR: 1e-2, WeightDecay: 1e-3, Epochs: 15, Batch: 64, Seed: 3, Standardize: true}, 20, 0.5, ""}},
		{"raw features, reference lr", torchCase{blobs(250, 10, 5, 1.5, 22), blobs(120, 10, 5, 1.5, 22),
			ProbeConfig{LR: 3e-4, WeightDecay: 8e-4, Epochs: 25, Batch: 32, Seed: 4}, 300, 0.1, ""}},
	}
	cases := make([]torchCase, len(tests))
	for i, tc := range tests {
		cases[i] = tc.torchCase
	}
	refs := runTorchRef(t, cases)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compareProbe(t, tc.torchCase, refs[i])
			pred, err := knnPredict(tc.train, tc.test, tc.k, tc.temp)
			if err != nil {
				t.Fatal(err)
			}
			if d := mismatches(pred, refs[i].KNNPred); d > 0 {
				t.Errorf("%d of %d kNN predictions differ from PyTorch's: expected none", d, len(pred))
			}
		})
	}
}

// mismatches counts the positions where a and b differ (a length difference counts
// as that many mismatches).
func mismatches(a, b []int) int {
	n := max(len(a), len(b)) - min(len(a), len(b))
	a, b = a[:min(len(a), len(b))], b[:min(len(a), len(b))]
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// compareProbe trains tc's probe in Go and compares it with PyTorch's: final weights and bias
// (within 1e-6 of the largest weight), train loss (1e-5) and every test prediction.
func compareProbe(t *testing.T, tc torchCase, ref torchRef) {
	t.Helper()
	r, err := LinearProbe(tc.train, tc.test, tc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.W) != len(r.W) || len(ref.B) != len(r.B) {
		t.Fatalf("torch gave %d weights %d biases: expected %d, %d", len(ref.W), len(ref.B), len(r.W), len(r.B))
	}
	maxDiff, maxW := 0.0, 0.0
	for i := range r.W {
		maxDiff = math.Max(maxDiff, math.Abs(r.W[i]-ref.W[i]))
		maxW = math.Max(maxW, math.Abs(ref.W[i]))
	}
	for i := range r.B {
		maxDiff = math.Max(maxDiff, math.Abs(r.B[i]-ref.B[i]))
	}
	t.Logf("max |w - w_torch| = %.2e (max |w_torch| = %.3f); train loss %.6f vs torch %.6f, test top-1 %.3f",
		maxDiff, maxW, r.TrainLoss, ref.TrainLoss, r.Top1)
	if tol := 1e-6 * math.Max(1, maxW); maxDiff > tol {
		t.Errorf("max weight difference from PyTorch %.3e: expected <= %.1e", maxDiff, tol)
	}
	if math.Abs(r.TrainLoss-ref.TrainLoss) > 1e-5 {
		t.Errorf("train loss %.7f: expected PyTorch's %.7f", r.TrainLoss, ref.TrainLoss)
	}
	if d := mismatches(r.Pred, ref.Pred); d > 0 {
		t.Errorf("%d of %d probe predictions differ from PyTorch's: expected none", d, len(ref.Pred))
	}
}

// TestLinearProbeOptimizersMatchPyTorch trains SGD (momentum, weight decay, cosine or
// constant schedule, random or zero initial weights) and cosine-scheduled Adam probes
// in Go and with torch.optim in float64 from the same initial weights and batch order,
// and compares the final weights, bias, train loss and test predictions.
func TestLinearProbeOptimizersMatchPyTorch(t *testing.T) {
	t.Parallel()
	simsiam := SGDProbeConfig()
	simsiam.Epochs, simsiam.Batch, simsiam.Seed = 12, 32, 5
	simsiam.LR = SGDProbeBaseLR * 32 / 256
	tests := []struct {
		name        string
		train, test Features
		cfg         ProbeConfig
		schedule    string // the schedule torch is told to use
	}{
		// 250 rows in batches of 32: the last batch of each epoch has 26.
		{"sgd simsiam settings", blobs(250, 10, 5, 1.5, 22), blobs(120, 10, 5, 1.5, 22), simsiam, ScheduleCosine},
		// Schedule "" must mean cosine with sgd.
		{"sgd standardized, weight decay, momentum 0.5", withConst(blobs(300, 12, 4, 2, 21)), withConst(blobs(150, 12, 4, 2, 21)),
			ProbeConfig{Optimizer: OptimizerSGD, LR: 0.05, Momentum: 0.5, WeightDecay: 1e-3, Epochs: 10, Batch: 64, Seed: 3,
				InitStd: 0.05, Standardize: true}, ScheduleCosine},
		{"sgd constant, no momentum, zero init", blobs(200, 8, 3, 1, 23), blobs(90, 8, 3, 1, 23),
			ProbeConfig{Optimizer: OptimizerSGD, Schedule: ScheduleConstant, LR: 0.2, WeightDecay: 5e-4, Epochs: 8, Batch: 50, Seed: 6},
			ScheduleConstant},
		{"adam cosine", blobs(240, 10, 4, 1.5, 24), blobs(100, 10, 4, 1.5, 24),
			ProbeConfig{Optimizer: OptimizerAdam, Schedule: ScheduleCosine, LR: 1e-2, WeightDecay: 8e-4, Epochs: 9, Batch: 48, Seed: 7,
				Standardize: true}, ScheduleCosine},
	}
	cases := make([]torchCase, len(tests))
	for i, tc := range tests {
		cases[i] = torchCase{train: tc.train, test: tc.test, cfg: tc.cfg, schedule: tc.schedule}
	}
	refs := runTorchRef(t, cases)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { compareProbe(t, cases[i], refs[i]) })
	}
}
