package eval

import (
	"math"
	"testing"
)

// Reference values computed with SciPy 1.10 (scipy.stats.binomtest(k, n).proportion_ci(
// method="wilson") and binomtest(k, n, 0.5).pvalue), an implementation independent of ours.
func TestWilsonAgainstSciPy(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		{84, 100, 0.7557973061072976, 0.8990471151119521},
		{0, 1, 0, 0.7934506856227626},
		{5000, 10000, 0.49020206181540477, 0.5097979381845952},
	} {
		iv := Wilson(tc.k, tc.n)
		if math.Abs(iv[0]-tc.lo) > 1e-9 || math.Abs(iv[1]-tc.hi) > 1e-9 {
			t.Errorf("Wilson(%d, %d) = %v, SciPy [%v, %v]", tc.k, tc.n, iv, tc.lo, tc.hi)
		}
	}
}

func TestMcNemarAgainstSciPy(t *testing.T) {
	// outcomes builds two classifiers' correctness with n01 images only a got right and n10
	// only b got right, plus 50 both got right and 20 neither did (ignored by the test).
	outcomes := func(n01, n10 int) (a, b []bool) {
		add := func(n int, x, y bool) {
			for i := 0; i < n; i++ {
				a, b = append(a, x), append(b, y)
			}
		}
		add(n01, true, false)
		add(n10, false, true)
		add(50, true, true)
		add(20, false, false)
		return
	}
	for _, tc := range []struct {
		n01, n10 int
		p        float64
	}{{3, 7, 0.34375}, {40, 60, 0.05688793364098088}, {0, 7, 0.015625}, {480, 520, 0.2174482932041409}, {0, 0, 1}} {
		a, b := outcomes(tc.n01, tc.n10)
		p, err := McNemar(a, b)
		if err != nil || math.Abs(p-tc.p) > 1e-9 {
			t.Errorf("McNemar(%d, %d) = %v, %v; SciPy %v", tc.n01, tc.n10, p, err, tc.p)
		}
		if q, _ := McNemar(b, a); q != p {
			t.Errorf("McNemar is not symmetric: %v vs %v", p, q)
		}
	}
	if _, err := McNemar([]bool{true}, []bool{true, false}); err == nil {
		t.Error("outcomes of different lengths: no error")
	}
}

func TestMeanInterval(t *testing.T) {
	iv := MeanInterval([]float64{1, 2, 3, 4})
	// mean 2.5, sample sd sqrt(5/3), se sqrt(5/3)/2.
	half := 1.959963984540054 * math.Sqrt(5.0/3) / 2
	if math.Abs(iv[0]-(2.5-half)) > 1e-12 || math.Abs(iv[1]-(2.5+half)) > 1e-12 {
		t.Errorf("MeanInterval = %v", iv)
	}
}
