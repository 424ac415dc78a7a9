package attack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// lossCase is one input of the cross-check: the stolen outputs s and the victim answers v
// (rows x d each; two-view losses hold view 1 in the first half of the rows, view 2 in the
// second) and labels for the supervised loss.
type lossCase struct {
	name        string
	loss        string
	rows, d     int
	temperature float64
	s, v        []float32
	labels      []int64
}

func gaussian(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// correlated returns rho*a + sqrt(1-rho^2)*noise: a stolen output that partly matches.
func correlated(rng *rand.Rand, a []float32, rho float64) []float32 {
	b := make([]float32, len(a))
	for i, x := range a {
		b[i] = float32(rho*float64(x) + math.Sqrt(1-rho*rho)*rng.NormFloat64())
	}
	return b
}

func lossCases() []lossCase {
	rng := rand.New(rand.NewPCG(7, 11))
	var cs []lossCase
	add := func(name, loss string, rows, d int, t float64, vScale, rho float64, labels []int64) {
		v := gaussian(rng, rows*d, vScale)
		cs = append(cs, lossCase{name: name, loss: loss, rows: rows, d: d, temperature: t, v: v, s: correlated(rng, v, rho), labels: labels})
	}
	add("mse/8x16", "mse", 8, 16, 0, 1, 0.5, nil)
	// msewithhead's registered function is the MSE taken through the recreated head; the head
	// attack adds the raw outputs' MSE itself (attack/head.go).
	add("msewithhead/8x16", "msewithhead", 8, 16, 0, 2, 0.6, nil)
	add("cosine/8x16", "cosine", 8, 16, 0, 3, 0.6, nil)
	add("wasserstein/8x16", "wasserstein", 8, 16, 0, 1, 0.7, nil)
	add("wasserstein/6x40", "wasserstein", 6, 40, 0, 0.2, 0.3, nil)
	add("barlow/16x8 (8 images, 2 views)", "barlow", 16, 8, 0, 1, 0.7, nil)
	add("barlow/8x32 (d > rows)", "barlow", 8, 32, 0, 2, 0.5, nil)
	add("symmetrized/8x16", "symmetrized", 8, 16, 0, 1, 0.6, nil)
	add("bce/8x16", "bce", 8, 16, 0, 2, 0.5, nil)
	add("infonce/8x16 T0.07", "infonce", 8, 16, 0.07, 1, 0.8, nil)
	add("infonce/6x8 T0.5", "infonce", 6, 8, 0.5, 4, 0.3, nil)
	add("softnn/8x16 T100", "softnn", 8, 16, 100, 1, 0.5, nil)
	add("softnn/6x8 T1", "softnn", 6, 8, 1, 0.5, 0.8, nil)
	add("labels/8x10", "labels", 8, 10, 0, 2, 0.5, nil)
	add("logits/8x10 T1", "logits", 8, 10, 1, 2, 0.5, nil)
	add("logits/6x10 T4", "logits", 6, 10, 4, 3, 0.3, nil)
	add("supcon/8x16 T0.07 (2 views)", "supcon", 8, 16, 0.07, 1, 0.7, []int64{3, 1, 3, 0, 1, 3, 9, 9})
	return cs
}

type lossRef struct {
	Loss  float64   `json:"loss"`
	GradS []float64 `json:"grad_s"`
}

// runLossRef writes the cases and runs testdata/losses_ref.py on them (one Python run).
func runLossRef(t *testing.T, cases []lossCase) map[string]lossRef {
	t.Helper()
	if err := pyref.Check(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type entry struct {
		Name        string  `json:"name"`
		Loss        string  `json:"loss"`
		Rows        int     `json:"rows"`
		D           int     `json:"d"`
		Temperature float64 `json:"temperature"`
		S           string  `json:"s"`
		V           string  `json:"v"`
		Labels      string  `json:"labels,omitempty"`
	}
	var manifest []entry
	for i, c := range cases {
		e := entry{Name: c.name, Loss: c.loss, Rows: c.rows, D: c.d, Temperature: c.temperature,
			S: filepath.Join(dir, fmt.Sprintf("s%d.f32", i)), V: filepath.Join(dir, fmt.Sprintf("v%d.f32", i))}
		pyref.WriteRaw(t, e.S, c.s)
		pyref.WriteRaw(t, e.V, c.v)
		if c.labels != nil {
			e.Labels = filepath.Join(dir, fmt.Sprintf("l%d.i64", i))
			pyref.WriteRaw(t, e.Labels, c.labels)
		}
		manifest = append(manifest, e)
	}
	js, _ := json.Marshal(manifest)
	mpath := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mpath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "losses_ref.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := pyref.Command(script, mpath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", pyref.Python, script, err, stderr.String())
	}
	refs := map[string]lossRef{}
	if err := json.Unmarshal(stdout.Bytes(), &refs); err != nil {
		t.Fatalf("losses_ref.py output is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return refs
}

// goLoss evaluates the registered loss in libtorch (torchnet.LossGrad): value and gradient
// w.r.t. s (v is a constant).
func goLoss(t *testing.T, c lossCase) (float64, []float64) {
	t.Helper()
	spec, err := LookupLoss(c.loss)
	if err != nil {
		t.Fatal(err)
	}
	labels := c.labels
	if !spec.NeedsLabels {
		labels = nil
	}
	loss, g, _, err := torchnet.LossGrad(spec.Compute, c.s, c.v, c.rows, c.d, labels, c.temperature)
	if err != nil {
		t.Fatal(err)
	}
	return loss, g
}

// maxRelErr is max_i |got_i - want_i| / max(max_i |want_i|, floor).
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

// TestLossesMatchPyTorch compares every registered extraction loss, value and gradient with
// respect to the stolen output, with a float64 PyTorch implementation of its documented
// definition (testdata/losses_ref.py).
func TestLossesMatchPyTorch(t *testing.T) {
	cases := lossCases()
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.loss] = true
	}
	for _, name := range LossNames() {
		if !covered[name] {
			t.Errorf("registered loss %q has no cross-check case", name)
		}
	}
	refs := runLossRef(t, cases)
	const tol = 1e-5
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ref, ok := refs[c.name]
			if !ok || len(ref.GradS) != c.rows*c.d {
				t.Fatalf("reference result for %q missing or malformed", c.name)
			}
			loss, g := goLoss(t, c)
			lossErr := math.Abs(loss-ref.Loss) / math.Max(math.Abs(ref.Loss), 1e-3)
			gradErr := maxRelErr(g, ref.GradS, 1e-6)
			t.Logf("loss go %.8g ref %.8g rel err %.2g; grad rel err %.2g", loss, ref.Loss, lossErr, gradErr)
			if !(lossErr <= tol) {
				t.Errorf("loss = %.9g, reference %.9g (relative error %.3g > %g)", loss, ref.Loss, lossErr, tol)
			}
			if !(gradErr <= tol) {
				t.Errorf("gradient w.r.t. s: relative error %.3g > %g", gradErr, tol)
			}
		})
	}
}

// TestLookupLossUnknown: an unknown name is an error listing the valid ones.
func TestLookupLossUnknown(t *testing.T) {
	_, err := LookupLoss("l1")
	if err == nil || !strings.Contains(err.Error(), `loss "l1"`) || !strings.Contains(err.Error(), "mse") {
		t.Fatalf("LookupLoss(l1) = %v, want an error naming it and listing mse", err)
	}
}
