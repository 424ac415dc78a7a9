package watermark

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestOneSampleTTestMatchesScipy compares t and p with scipy.stats.ttest_1samp(x, mu,
// alternative="greater") on 0/1 correctness vectors (as Verify tests) and on real values.
func TestOneSampleTTestMatchesScipy(t *testing.T) {
	type tcase struct {
		X  []float64 `json:"x"`
		Mu float64   `json:"mu"`
	}
	rng := rand.New(rand.NewSource(5))
	bern := func(n int, p float64) []float64 {
		x := make([]float64, n)
		for i := range x {
			if rng.Float64() < p {
				x[i] = 1
			}
		}
		return x
	}
	normal := make([]float64, 30)
	for i := range normal {
		normal[i] = rng.NormFloat64()*2 + 0.7
	}
	cases := []tcase{
		{bern(1000, 0.5), 0.5}, {bern(1000, 0.53), 0.5}, {bern(1000, 0.7), 0.5}, {bern(400, 0.45), 0.5},
		{bern(50, 0.6), 0.5}, {[]float64{1, 0}, 0.5}, {[]float64{1, 1, 0}, 0.5}, {[]float64{0, 0, 0, 1}, 0.5},
		{normal, 0}, {normal, 0.7}, {normal, 3},
	}
	dir := t.TempDir()
	js, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Scipy   string `json:"scipy"`
		Results []struct {
			T float64 `json:"t"`
			P float64 `json:"p"`
		} `json:"results"`
	}
	runRef(t, "ttest_ref.py", &ref, path)
	if len(ref.Results) != len(cases) {
		t.Fatalf("scipy returned %d results for %d cases", len(ref.Results), len(cases))
	}
	for i, c := range cases {
		tt, p, err := OneSampleTTest(c.X, c.Mu)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		want := ref.Results[i]
		dt := math.Abs(tt-want.T) / math.Max(1, math.Abs(want.T))
		dp := math.Abs(p-want.P) / math.Max(1e-12, want.P)
		if dt > 1e-9 || (dp > 1e-6 && math.Abs(p-want.P) > 1e-15) {
			t.Errorf("case %d (n=%d, mu=%g): t=%.12g p=%.12g, scipy %s t=%.12g p=%.12g", i, len(c.X), c.Mu, tt, p, ref.Scipy, want.T, want.P)
		} else {
			t.Logf("case %d (n=%d): t=%.6g p=%.6g (scipy %s: %.6g, %.6g)", i, len(c.X), tt, p, ref.Scipy, want.T, want.P)
		}
	}
}

func TestOneSampleTTestEdgeCases(t *testing.T) {
	tt, p, err := OneSampleTTest([]float64{1, 1, 1}, 0.5)
	if err != nil || !math.IsInf(tt, 1) || p != 0 {
		t.Errorf("all correct: t=%v p=%v err=%v, want +Inf, 0, nil", tt, p, err)
	}
	tt, p, err = OneSampleTTest([]float64{0, 0, 0}, 0.5)
	if err != nil || !math.IsInf(tt, -1) || p != 1 {
		t.Errorf("all wrong: t=%v p=%v err=%v, want -Inf, 1, nil", tt, p, err)
	}
	for name, x := range map[string][]float64{
		"one value":       {1},
		"no values":       nil,
		"NaN value":       {1, math.NaN()},
		"infinite value":  {1, math.Inf(1)},
		"all equal to mu": {0.5, 0.5, 0.5},
	} {
		if _, _, err := OneSampleTTest(x, 0.5); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, _, err := OneSampleTTest([]float64{0, 1}, math.NaN()); err == nil {
		t.Error("NaN reference mean: no error")
	}
}
