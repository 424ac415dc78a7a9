package torchnet

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

type optParam struct {
	Shape  []int64   `json:"shape"`
	Values []float32 `json:"values"`
}

type optCase struct {
	Kind        string     `json:"kind"`
	WeightDecay float64    `json:"weight_decay"`
	Momentum    float64    `json:"momentum"`
	LRs         []float64  `json:"lrs"`
	Params      []optParam `json:"params"`
	C1          []float32  `json:"c1"`
	C2          []float32  `json:"c2"`

	note string // subtest name suffix (not sent to the reference)
}

func uniform(rng *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return v
}

// TestOptimizerMatchesTorchOptim runs 5 steps of our Adam and SGD and of torch.optim's (LARS:
// of its formula written with torch ops) on the same parameters and loss
// L = 0.5 sum(c1 p0^2) + sum(c2 p1), p0 a 3x4 weight, p1 a 1-D bias (p2 gets no gradient and
// must not move), with a learning rate that changes every step, and compares the parameters
// after every step.
func TestOptimizerMatchesTorchOptim(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(7, 7))
	params := []optParam{
		{Shape: []int64{3, 4}, Values: uniform(rng, 12, -1.5, 1.5)},
		{Shape: []int64{5}, Values: uniform(rng, 5, -1, 1)},
		{Shape: []int64{2}, Values: uniform(rng, 2, -1, 1)},
	}
	c1, c2 := uniform(rng, 12, 0.1, 2), uniform(rng, 5, -1, 1)
	tests := []optCase{
		{Kind: "adam", WeightDecay: 1e-4, LRs: []float64{1e-2, 3e-2, 2e-2, 5e-3, 1e-2}},
		{Kind: "adam", WeightDecay: 0, LRs: []float64{1e-1, 1e-1, 5e-2, 5e-2, 1e-2}},
		{Kind: "sgd", WeightDecay: 5e-4, Momentum: 0.9, LRs: []float64{0.1, 0.05, 0.2, 0.01, 0.1}},
		{Kind: "sgd", WeightDecay: 0, Momentum: 0, LRs: []float64{0.1, 0.05, 0.2, 0.01, 0.1}},
		// LARS against its definition computed in PyTorch (torch.optim has none). The weight
		// decay is large enough that applying it to the 1-D parameter, or computing the trust
		// ratio before adding it, moves a parameter by far more than the tolerance; scaling the
		// 1-D parameter's step by eta ||p|| / ||g|| would change it a hundredfold.
		{Kind: "lars", WeightDecay: 0.05, Momentum: 0.9, LRs: []float64{0.1, 0.3, 0.2, 0.05, 0.1}},
		{Kind: "lars", WeightDecay: 0, Momentum: 0, LRs: []float64{0.2, 0.1, 0.3, 0.05, 0.1}},
		// A zero weight has a zero gradient (the loss is quadratic in it): its trust ratio
		// would be 0/0, and LARS must leave it at 0 rather than NaN.
		{Kind: "lars", WeightDecay: 0.05, Momentum: 0.9, LRs: []float64{0.1, 0.3, 0.2, 0.05, 0.1}, note: "zero weight"},
	}
	for i := range tests {
		tests[i].Params, tests[i].C1, tests[i].C2 = params, c1, c2
		if tests[i].note == "zero weight" {
			zero := optParam{Shape: params[0].Shape, Values: make([]float32, len(params[0].Values))}
			tests[i].Params = append([]optParam{zero}, params[1:]...)
		}
	}
	js, err := json.Marshal(tests)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cases.json")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	var refs [][][][]float64 // case, step, parameter, value
	pyref.Run(t, "optim_ref.py", &refs, path)
	if len(refs) != len(tests) {
		t.Fatalf("reference returned %d cases, want %d", len(refs), len(tests))
	}
	const tol = 1e-6
	for ti, tc := range tests {
		name := fmt.Sprintf("%s/wd%g/momentum%g", tc.Kind, tc.WeightDecay, tc.Momentum)
		if tc.note != "" {
			name += "/" + tc.note
		}
		t.Run(name, func(t *testing.T) {
			// Grad mode is per OS thread, and a subtest runs on its own goroutine.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			want := refs[ti]
			if len(want) != len(tc.LRs) {
				t.Fatalf("reference returned %d steps, want %d", len(want), len(tc.LRs))
			}

			var ps []*ts.Tensor
			for _, p := range tc.Params {
				ps = append(ps, leafParam(p.Values, p.Shape))
			}
			defer func() {
				for _, p := range ps {
					p.MustDrop()
				}
			}()
			k1, k2 := tensorOf(append([]float32(nil), c1...), 3, 4), tensorOf(append([]float32(nil), c2...), 5)
			defer k1.MustDrop()
			defer k2.MustDrop()
			opt, err := newOptimizer(tc.Kind, ps, tc.WeightDecay, tc.Momentum)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.free()
			worst := 0.0
			for s, lr := range tc.LRs {
				opt.zeroGrad()
				q := ps[0].MustMul(ps[0], false).MustMul(k1, true).MustSum(ps[0].DType(), true).MustMulScalar(ts.FloatScalar(0.5), true)
				lin := ps[1].MustMul(k2, false).MustSum(ps[1].DType(), true)
				l := q.MustAdd(lin, true)
				lin.MustDrop()
				l.MustBackward()
				l.MustDrop()
				noGrad(func() { opt.update(lr) })
				if opt.Step != int64(s+1) {
					t.Errorf("step %d: Optimizer.Step = %d", s+1, opt.Step)
				}
				for i, p := range ps {
					got := p.Float64Values()
					ref := want[s][i]
					if len(got) != len(ref) {
						t.Fatalf("step %d param %d: %d values, reference %d", s+1, i, len(got), len(ref))
					}
					for j := range got {
						d := math.Abs(got[j] - ref[j])
						worst = math.Max(worst, d)
						if d > tol || math.IsNaN(got[j]) {
							t.Errorf("step %d param %d[%d] = %.9g, reference %.9g (|diff| %.2g > %g)", s+1, i, j, got[j], ref[j], d, tol)
						}
					}
				}
			}
			// The untouched parameter is a real check that gradient-less parameters are skipped.
			for j, v := range ps[2].Float64Values() {
				if v != float64(tc.Params[2].Values[j]) {
					t.Errorf("parameter without gradient moved: [%d] %g -> %g", j, tc.Params[2].Values[j], v)
				}
			}
			t.Logf("max |param - reference| over 5 steps: %.2g", worst)

			// The state names are what checkpoints store: m.i (and v.i for Adam) per parameter.
			var names []string
			for k := range opt.state() {
				names = append(names, k)
			}
			sort.Strings(names)
			wantNames := "m.0 m.1 m.2"
			if tc.Kind == "adam" {
				wantNames = "m.0 m.1 m.2 v.0 v.1 v.2"
			}
			if got := strings.Join(names, " "); got != wantNames {
				t.Errorf("State() names = %q, want %q", got, wantNames)
			}
		})
	}
}

// leafParam makes a trainable leaf tensor (not a view, so in-place updates are allowed).
func leafParam(vals []float32, shape []int64) *ts.Tensor {
	p := ts.MustZeros(shape, gotch.Float, gotch.CPU)
	v := tensorOf(append([]float32(nil), vals...), shape...)
	p.Copy_(v)
	v.MustDrop()
	return p.MustSetRequiresGrad(true, true)
}

func TestNewOptimizerRejectsUnknownKind(t *testing.T) {
	for _, kind := range []string{"rmsprop", "", "Adam", "LARS", "lamb"} {
		o, err := newOptimizer(kind, nil, 0, 0)
		if err == nil || o != nil || !strings.Contains(err.Error(), "expected adam, sgd or lars") {
			t.Errorf("NewOptimizer(%q) = %v, %v; want an error naming adam, sgd and lars", kind, o, err)
		}
	}
}

// tensorOf makes a float32 tensor of the given shape from vals (the caller checks the sizes).
func tensorOf(vals []float32, shape ...int64) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView(shape, true)
}
