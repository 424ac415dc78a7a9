package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// lossCase is one input of the loss cross-check: two aligned N x D batches and labels.
type lossCase struct {
	name        string
	loss        string
	n, d        int
	temperature float64
	a, b        []float32
	labels      []int64 // nil for the unsupervised losses
	underflow   bool    // the naive float32 formula must break (exp underflows to 0/0) on this input
	gradTol     float64 // relative tolerance of the gradients when not the default 1e-5
}

// gaussian returns n*d values N(0, scale^2) from a seeded stream.
func gaussian(rng *rand.Rand, n, d int, scale float64) []float32 {
	v := make([]float32, n*d)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// correlated returns b = rho*a + sqrt(1-rho^2)*noise, so each row's positive is closer than
// its negatives (otherwise SoftNN's ratio is tiny and its gradient almost zero).
func correlated(rng *rand.Rand, a []float32, rho float64) []float32 {
	b := make([]float32, len(a))
	for i, x := range a {
		b[i] = float32(rho*float64(x) + math.Sqrt(1-rho*rho)*rng.NormFloat64())
	}
	return b
}

// farApart builds n pairs whose every squared distance / 100 lies in [110, 132]: a_i = 78 e_i,
// b_i = 78 (0.02 e_i + 0.9998 e_{n+i}), plus N(0,1) noise. exp(-d/T) underflows to 0 in float32
// for every pair, so the naive formula gives 0/0, while the ratios stay moderate (1e-5 .. 0.9).
func farApart(rng *rand.Rand, n, d int) (a, b []float32) {
	const r, c = 78.0, 0.02
	a, b = gaussian(rng, n, d, 1), gaussian(rng, n, d, 1)
	for i := 0; i < n; i++ {
		a[i*d+i] += r
		b[i*d+i] += r * c
		b[i*d+n+i] += float32(r * math.Sqrt(1-c*c))
	}
	return a, b
}

func lossCases() []lossCase {
	rng := rand.New(rand.NewPCG(42, 1))
	var cs []lossCase
	add := func(c lossCase) { cs = append(cs, c) }

	a := gaussian(rng, 8, 16, 1)
	add(lossCase{name: "infonce/n8d16 T0.07", loss: "infonce", n: 8, d: 16, temperature: 0.07, a: a, b: correlated(rng, a, 0.8)})
	add(lossCase{name: "infonce/n3d4 T0.5 unnormalised", loss: "infonce", n: 3, d: 4, temperature: 0.5, a: gaussian(rng, 3, 4, 5), b: gaussian(rng, 3, 4, 0.2)})
	a = gaussian(rng, 8, 16, 1)
	add(lossCase{name: "softnn/n8d16 T100", loss: "softnn", n: 8, d: 16, temperature: 100, a: a, b: correlated(rng, a, 0.5)})
	add(lossCase{name: "softnn/n6d8 T1", loss: "softnn", n: 6, d: 8, temperature: 1, a: gaussian(rng, 6, 8, 0.5), b: gaussian(rng, 6, 8, 0.5)})
	// Large magnitudes (|x| ~ 78): the naive exp underflows in float32. The distance expansion
	// |x|^2 + |y|^2 - 2 x.y in float32 loses ~1e-3 of d = 1.1e4 (ulp(6100) = 4.9e-4), i.e. ~1e-5
	// of a logit, which bounds the gradient's agreement (measured 8.9e-6): tolerance 2e-5.
	fa, fb := farApart(rng, 8, 32)
	add(lossCase{name: "softnn/far apart T100", loss: "softnn", n: 8, d: 32, temperature: 100, a: fa, b: fb, underflow: true, gradTol: 2e-5})
	a = gaussian(rng, 8, 16, 1)
	add(lossCase{name: "supcon/distinct labels", loss: "supcon", n: 8, d: 16, temperature: 0.07, a: a, b: correlated(rng, a, 0.7),
		labels: []int64{0, 1, 2, 3, 4, 5, 6, 7}})
	a = gaussian(rng, 8, 16, 1)
	add(lossCase{name: "supcon/repeated labels", loss: "supcon", n: 8, d: 16, temperature: 0.07, a: a, b: correlated(rng, a, 0.7),
		labels: []int64{3, 1, 3, 0, 1, 3, 9, 9}})
	add(lossCase{name: "supcon/one label T0.5", loss: "supcon", n: 5, d: 6, temperature: 0.5, a: gaussian(rng, 5, 6, 2), b: gaussian(rng, 5, 6, 2),
		labels: []int64{4, 4, 4, 4, 4}})
	add(lossCase{name: "ce/10 classes", loss: "ce", n: 8, d: 10, temperature: 1, a: gaussian(rng, 8, 10, 2), b: gaussian(rng, 8, 10, 2),
		labels: []int64{0, 3, 9, 3, 7, 1, 1, 5}})
	return cs
}

type lossRef struct {
	Loss           float64   `json:"loss"`
	GradA          []float64 `json:"grad_a"`
	GradB          []float64 `json:"grad_b"`
	NaiveF32Finite bool      `json:"naive_f32_finite"`
}

// goLoss evaluates the loss in libtorch (torchnet.LossGrad) and returns its value and
// gradients w.r.t. a and b.
func goLoss(t *testing.T, c lossCase) (loss float64, ga, gb []float64) {
	t.Helper()
	spec, err := lookupLoss(c.loss)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.a) != c.n*c.d || len(c.b) != c.n*c.d || (c.labels != nil && len(c.labels) != c.n) {
		t.Fatalf("%s: malformed case", c.name)
	}
	labels := c.labels
	if !spec.NeedsLabels {
		labels = nil
	}
	loss, ga, gb, err = torchnet.LossGrad(c.loss, c.a, c.b, c.n, c.d, labels, c.temperature)
	if err != nil {
		t.Fatal(err)
	}
	return loss, ga, gb
}

// TestLossesMatchPyTorch compares every registered loss, value and gradients, with a float64
// PyTorch implementation written from the reference code (testdata/losses_ref.py).
func TestLossesMatchPyTorch(t *testing.T) {
	cases := lossCases()
	dir := t.TempDir()
	type manifestCase struct {
		Name        string  `json:"name"`
		Loss        string  `json:"loss"`
		N           int     `json:"n"`
		D           int     `json:"d"`
		Temperature float64 `json:"temperature"`
		A           string  `json:"a"`
		B           string  `json:"b"`
		Labels      string  `json:"labels"`
	}
	var manifest []manifestCase
	covered := map[string]bool{}
	for i, c := range cases {
		covered[c.loss] = true
		mc := manifestCase{Name: c.name, Loss: c.loss, N: c.n, D: c.d, Temperature: c.temperature,
			A: filepath.Join(dir, fmt.Sprintf("a%d.f32", i)), B: filepath.Join(dir, fmt.Sprintf("b%d.f32", i))}
		pyref.WriteRaw(t, mc.A, c.a)
		pyref.WriteRaw(t, mc.B, c.b)
		if c.labels != nil {
			mc.Labels = filepath.Join(dir, fmt.Sprintf("labels%d.i64", i))
			pyref.WriteRaw(t, mc.Labels, c.labels)
		}
		manifest = append(manifest, mc)
	}
	for _, name := range LossNames() {
		if !covered[name] {
			t.Errorf("registered loss %q has no cross-check case", name)
		}
	}
	js, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mpath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	var refs map[string]lossRef
	runRef(t, "losses_ref.py", &refs, mpath)

	const tol = 1e-5
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			runtime.LockOSThread() // grad mode is per OS thread; a subtest has its own goroutine
			defer runtime.UnlockOSThread()
			ref, ok := refs[c.name]
			if !ok {
				t.Fatalf("reference has no result for %q", c.name)
			}
			if len(ref.GradA) != c.n*c.d || len(ref.GradB) != c.n*c.d {
				t.Fatalf("reference gradients have %d and %d values, want %d", len(ref.GradA), len(ref.GradB), c.n*c.d)
			}
			if c.underflow && ref.NaiveF32Finite {
				t.Fatalf("case meant to underflow a naive float32 exp, but the naive formula stays finite")
			}
			loss, ga, gb := goLoss(t, c)
			lossErr := math.Abs(loss-ref.Loss) / math.Max(math.Abs(ref.Loss), 1e-3)
			errA, errB := maxRelErr(ga, ref.GradA, 1e-6), maxRelErr(gb, ref.GradB, 1e-6)
			t.Logf("loss go %.8g ref %.8g rel err %.2g; grad a rel err %.2g, grad b rel err %.2g", loss, ref.Loss, lossErr, errA, errB)
			if math.IsNaN(loss) || lossErr > tol {
				t.Errorf("loss = %.9g, reference %.9g (relative error %.3g > %g)", loss, ref.Loss, lossErr, tol)
			}
			gtol := tol
			if c.gradTol != 0 {
				gtol = c.gradTol
			}
			if math.IsNaN(errA) || errA > gtol {
				t.Errorf("d loss / d a: max error %.3g of the gradient's scale > %g", errA, gtol)
			}
			if math.IsNaN(errB) || errB > gtol {
				t.Errorf("d loss / d b: max error %.3g of the gradient's scale > %g", errB, gtol)
			}
		})
	}
}

// TestLookupLoss checks the registry's error for an unknown name and its defaults.
func TestLookupLoss(t *testing.T) {
	tests := []struct {
		name        string
		wantErr     string
		temperature float64
		labels      bool
	}{
		{name: "infonce", temperature: 0.07},
		{name: "softnn", temperature: 100},
		{name: "supcon", temperature: 0.07, labels: true},
		{name: "ntxent", wantErr: `loss "ntxent": expected one of [ce infonce softnn supcon]`},
		{name: "", wantErr: `loss "": expected one of`},
	}
	for _, tc := range tests {
		l, err := lookupLoss(tc.name)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("lookupLoss(%q) error = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || l.Temperature != tc.temperature || l.NeedsLabels != tc.labels {
			t.Errorf("lookupLoss(%q) = {T %g, labels %v}, %v; want T %g labels %v", tc.name, l.Temperature, l.NeedsLabels, err, tc.temperature, tc.labels)
		}
	}
}
