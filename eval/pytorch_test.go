package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer/npy"
)

// python is Debian's interpreter, the one with torch installed.
const python = "/usr/bin/python3"

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
}

// runTorchRef runs testdata/probe_ref.py once on all cases (torch's import is the slow
// part) and returns its results in order. The probe's epoch orders are passed along.
func runTorchRef(t *testing.T, cases []torchCase) []torchRef {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s (Debian's python3 with torch) is needed for the PyTorch cross-check: %v", python, err)
	}
	ints := func(y []int) []float32 {
		f := make([]float32, len(y))
		for i, v := range y {
			f[i] = float32(v)
		}
		return f
	}
	args := []string{"testdata/probe_ref.py"}
	for _, c := range cases {
		dir := t.TempDir()
		n := c.train.X.N
		perms := make([]int, 0, c.cfg.Epochs*n)
		for e := 1; e <= c.cfg.Epochs; e++ {
			perms = append(perms, data.Permutation(n, epochSeed(c.cfg.Seed, e))...)
		}
		for _, f := range []struct {
			name  string
			shape []int
			data  []float32
		}{
			{"xtr", []int{n, c.train.X.D}, c.train.X.Data},
			{"xte", []int{c.test.X.N, c.test.X.D}, c.test.X.Data},
			{"ytr", []int{n}, ints(c.train.Y)},
			{"yte", []int{c.test.X.N}, ints(c.test.Y)},
			{"perms", []int{c.cfg.Epochs, n}, ints(perms)},
		} {
			if err := npy.WriteFloat32(filepath.Join(dir, f.name+".npy"), f.shape, f.data); err != nil {
				t.Fatal(err)
			}
		}
		js, err := json.Marshal(map[string]any{"lr": c.cfg.LR, "wd": c.cfg.WeightDecay, "epochs": c.cfg.Epochs, "batch": c.cfg.Batch,
			"standardize": c.cfg.Standardize, "classes": c.train.Classes, "knn_k": c.k, "knn_t": c.temp})
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, dir, string(js))
	}
	out, err := exec.Command(python, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("probe_ref.py: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("probe_ref.py: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	refs := make([]torchRef, len(cases))
	for i := range refs {
		if err := dec.Decode(&refs[i]); err != nil {
			t.Fatalf("probe_ref.py output %d of %d: %v", i+1, len(cases), err)
		}
	}
	return refs
}

// TestLinearProbeMatchesPyTorch trains the same probe (zero init, same batch order,
// torch.optim.Adam with weight decay, mean cross-entropy) in PyTorch float64 and
// compares the final weights, bias, train loss and test predictions, and compares the
// kNN monitor's predictions with a torch topk/scatter implementation.
func TestLinearProbeMatchesPyTorch(t *testing.T) {
	t.Parallel()
	withConst := func(f Features) Features { // a constant feature exercises the zero-sd path
		f.X.Data = append([]float32(nil), f.X.Data...)
		for i := range f.X.N {
			f.X.Data[i*f.X.D+3] = 2.5
		}
		return f
	}
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
			ProbeConfig{LR: 1e-2, WeightDecay: 1e-3, Epochs: 15, Batch: 64, Seed: 3, Standardize: true}, 20, 0.5}},
		{"raw features, reference lr", torchCase{blobs(250, 10, 5, 1.5, 22), blobs(120, 10, 5, 1.5, 22),
			ProbeConfig{LR: 3e-4, WeightDecay: 8e-4, Epochs: 25, Batch: 32, Seed: 4}, 300, 0.1}},
	}
	cases := make([]torchCase, len(tests))
	for i, tc := range tests {
		cases[i] = tc.torchCase
	}
	refs := runTorchRef(t, cases)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := refs[i]
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
			t.Logf("max |w - w_torch| = %.2e (max |w_torch| = %.3f); train loss %.6f vs torch %.6f", maxDiff, maxW, r.TrainLoss, ref.TrainLoss)
			if maxDiff > 1e-6*math.Max(1, maxW) {
				t.Errorf("max weight difference from PyTorch %.3e: expected <= %.1e", maxDiff, 1e-6*math.Max(1, maxW))
			}
			if math.Abs(r.TrainLoss-ref.TrainLoss) > 1e-5 {
				t.Errorf("train loss %.7f: expected PyTorch's %.7f", r.TrainLoss, ref.TrainLoss)
			}
			if d := mismatches(r.Pred, ref.Pred); d > 0 {
				t.Errorf("%d of %d probe predictions differ from PyTorch's: expected none", d, len(ref.Pred))
			}
			pred, err := knnPredict(tc.train, tc.test, tc.k, tc.temp)
			if err != nil {
				t.Fatal(err)
			}
			if d := mismatches(pred, ref.KNNPred); d > 0 {
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
