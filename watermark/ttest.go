package watermark

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mathext"
)

// OneSampleTTest is the one-sided one-sample Student t-test of H0: mean(x) = mu against
// H1: mean(x) > mu (scipy.stats.ttest_1samp(x, mu, alternative="greater")). It returns the
// statistic t = (mean - mu) / (s / sqrt(n)), s the sample standard deviation (n-1), and the
// p-value P(T_{n-1} >= t). Samples with zero variance give t = +-Inf and p = 0 or 1 (scipy
// gives NaN there); all values equal to mu is an error, as are fewer than 2 values and
// non-finite values.
func OneSampleTTest(x []float64, mu float64) (t, p float64, err error) {
	n := len(x)
	if n < 2 {
		return 0, 0, fmt.Errorf("watermark: t-test: %d values, need at least 2", n)
	}
	if math.IsNaN(mu) || math.IsInf(mu, 0) {
		return 0, 0, fmt.Errorf("watermark: t-test: reference mean %v is not finite", mu)
	}
	var sum float64
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0, fmt.Errorf("watermark: t-test: value %d is %v", i, v)
		}
		sum += v
	}
	mean := sum / float64(n)
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	if sd == 0 {
		switch {
		case mean > mu:
			return math.Inf(1), 0, nil
		case mean < mu:
			return math.Inf(-1), 1, nil
		}
		return 0, 0, fmt.Errorf("watermark: t-test: all %d values equal the reference mean %g", n, mu)
	}
	t = (mean - mu) / (sd / math.Sqrt(float64(n)))
	return t, studentUpperTail(t, float64(n-1)), nil
}

// studentUpperTail is P(T >= t) for Student's t distribution with df degrees of freedom.
func studentUpperTail(t, df float64) float64 {
	// P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
	two := mathext.RegIncBeta(df/2, 0.5, df/(df+t*t))
	if t > 0 {
		return two / 2
	}
	return 1 - two/2
}
