package defense

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// TestShapiroWilkMatchesSciPy compares W and p with scipy.stats.shapiro on normal, uniform,
// exponential and lognormal samples of sizes 3 to 5000.
func TestShapiroWilkMatchesSciPy(t *testing.T) {
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s (with scipy) is required for the Shapiro-Wilk cross-check: %v", pyref.Python, err)
	}
	r := rand.New(rand.NewPCG(42, 7))
	dists := []struct {
		name string
		draw func() float64
	}{
		{"normal", func() float64 { return 3 + 2*r.NormFloat64() }},
		{"uniform", r.Float64},
		{"exponential", r.ExpFloat64},
		{"lognormal", func() float64 { return math.Exp(r.NormFloat64()) }},
	}
	type sample struct {
		name string
		x    []float64
	}
	var samples []sample
	for _, n := range []int{3, 4, 5, 6, 7, 11, 12, 20, 50, 500, 5000} {
		for _, d := range dists {
			x := make([]float64, n)
			for i := range x {
				x[i] = d.draw()
			}
			samples = append(samples, sample{fmt.Sprintf("%s n=%d", d.name, n), x})
		}
	}
	// Ties and a huge offset (numerical stability).
	samples = append(samples,
		sample{"ties n=30", []float64{1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 8, 8, 9, 9, 9, 10, 10, 11, 12}},
		sample{"offset 1e6 n=40", func() []float64 {
			x := make([]float64, 40)
			for i := range x {
				x[i] = 1e6 + r.NormFloat64()
			}
			return x
		}()})

	xs := make([][]float64, len(samples))
	for i, s := range samples {
		xs[i] = s.x
	}
	in := filepath.Join(t.TempDir(), "samples.json")
	b, _ := json.Marshal(xs)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := pyref.Command(filepath.Join("testdata", "shapiro.py"), in).Output()
	if err != nil {
		t.Fatalf("testdata/shapiro.py: %v\n%s", err, out)
	}
	var ref struct {
		SciPy   string       `json:"scipy"`
		Results [][2]float64 `json:"results"`
	}
	if err := json.Unmarshal(out, &ref); err != nil || len(ref.Results) != len(samples) {
		t.Fatalf("bad output from testdata/shapiro.py (%v): %s", err, out)
	}
	// scipy's swilk runs in single precision: its W carries errors of up to ~3e-6 at
	// n=5000 (a float64 evaluation of the same formulas differs from it as much as this
	// one does), and near W=1 a large n's p-value amplifies them. So W is compared within
	// 1e-5, the p-value transform on scipy's own W within 1e-4, and p directly within 1e-4
	// for n <= 50 and 5e-4 for n = 500 (scipy's W rounding alone moves p by 1.5e-4 there).
	var worstW, worstP, worstP500, worstPW float64
	for i, s := range samples {
		w, p, err := ShapiroWilk(s.x)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		refW, refP := ref.Results[i][0], ref.Results[i][1]
		dw, dpw := math.Abs(w-refW), math.Abs(swPValue(refW, len(s.x))-refP)
		worstW, worstPW = max(worstW, dw), max(worstPW, dpw)
		dp, tolP := 0.0, 1e-4
		if len(s.x) <= 500 {
			dp = math.Abs(p - refP)
			if len(s.x) <= 50 {
				worstP = max(worstP, dp)
			} else {
				worstP500 = max(worstP500, dp)
			}
		}
		if len(s.x) > 50 {
			tolP = 5e-4
		}
		if !(dw <= 1e-5) || !(dpw <= 1e-4) || !(dp <= tolP) {
			t.Errorf("%s: W=%.7f p=%.7f (p at scipy's W %.7f); scipy W=%.7f p=%.7f", s.name, w, p, swPValue(refW, len(s.x)), refW, refP)
		}
	}
	t.Logf("%d samples vs scipy %s: max |dW| = %.2g; max |dp| = %.2g (n <= 50), %.2g (n = 500), %.2g (at scipy's W, all n)",
		len(samples), ref.SciPy, worstW, worstP, worstP500, worstPW)
}

func TestShapiroWilkErrors(t *testing.T) {
	tests := []struct {
		name string
		x    []float64
		want string
	}{
		{"too few", []float64{1, 2}, "needs 3 to 5000 values, found 2"},
		{"too many", make([]float64, 5001), "needs 3 to 5000 values, found 5001"},
		{"constant", []float64{2, 2, 2, 2}, "undefined when all 4 values are equal"},
		{"NaN", []float64{1, math.NaN(), 3}, "finite values, found NaN at index 1"},
		{"Inf", []float64{1, 2, math.Inf(1)}, "finite values, found +Inf at index 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ShapiroWilk(tc.x)
			wantErr(t, err, tc.want)
		})
	}
	// The input is not reordered.
	x := []float64{3, 1, 2, 5}
	if _, _, err := ShapiroWilk(x); err != nil || x[0] != 3 || x[3] != 5 {
		t.Errorf("ShapiroWilk modified its input: %v (%v)", x, err)
	}
}
