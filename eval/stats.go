package eval

import (
	"fmt"
	"math"
)

// Interval is a 95% confidence interval [Lo, Hi].
type Interval [2]float64

func (iv Interval) String() string { return fmt.Sprintf("[%.3f, %.3f]", iv[0], iv[1]) }

// z95 is the standard normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// Wilson is the Wilson score interval (95%) of a proportion: k successes in n trials (the
// accuracy of a classifier over n test images). It stays inside [0, 1] and is honest near 0
// and 1, where the normal approximation is not.
func Wilson(k, n int) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	p, nf := float64(k)/float64(n), float64(n)
	z2 := z95 * z95
	mid := (p + z2/(2*nf)) / (1 + z2/nf)
	half := z95 / (1 + z2/nf) * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return Interval{math.Max(0, mid-half), math.Min(1, mid+half)}
}

// MeanInterval is the normal-approximation 95% interval of the mean of xs (mean +- 1.96
// standard errors): for a mean over thousands of test images, such as the cosine fidelity.
func MeanInterval(xs []float64) Interval {
	n := float64(len(xs))
	if n < 2 {
		return Interval{math.NaN(), math.NaN()}
	}
	var s, s2 float64
	for _, x := range xs {
		s += x
	}
	m := s / n
	for _, x := range xs {
		s2 += (x - m) * (x - m)
	}
	se := math.Sqrt(s2/(n-1)) / math.Sqrt(n)
	return Interval{m - z95*se, m + z95*se}
}

// McNemar is the exact two-sided McNemar test of two classifiers scored on the same test
// images: a[i] and b[i] say whether each got image i right. Only the discordant images count
// (b01: a right, b wrong; b10: the reverse); under "equally accurate" each discordant image
// goes either way with probability 1/2, and the p-value is twice the smaller binomial tail
// (capped at 1). It returns 1 when there is no discordant image.
func McNemar(a, b []bool) (p float64, err error) {
	if len(a) != len(b) || len(a) == 0 {
		return 0, fmt.Errorf("mcnemar: %d and %d outcomes: expected the same, non-zero number (the same test images)", len(a), len(b))
	}
	n01, n10 := 0, 0
	for i := range a {
		switch {
		case a[i] && !b[i]:
			n01++
		case !a[i] && b[i]:
			n10++
		}
	}
	return binomTwoSided(min(n01, n10), n01+n10), nil
}

// binomTwoSided is 2 P(X <= k) for X ~ Binomial(n, 1/2), capped at 1, summed in log space
// so that n in the tens of thousands neither overflows nor underflows.
func binomTwoSided(k, n int) float64 {
	if n == 0 {
		return 1
	}
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	logHalfN := float64(n) * math.Log(0.5)
	maxTerm := math.Inf(-1)
	terms := make([]float64, k+1)
	for i := 0; i <= k; i++ {
		terms[i] = lg(n) - lg(i) - lg(n-i) + logHalfN
		maxTerm = math.Max(maxTerm, terms[i])
	}
	s := 0.0
	for _, t := range terms {
		s += math.Exp(t - maxTerm)
	}
	return math.Min(1, 2*math.Exp(maxTerm)*s)
}

// correct marks which predictions equal the labels.
func correct(pred, y []int) []bool {
	out := make([]bool, len(pred))
	for i := range pred {
		out[i] = pred[i] == y[i]
	}
	return out
}

// RightString writes per-image correctness as a string of '1' (right) and '0' (wrong).
func RightString(right []bool) string {
	b := make([]byte, len(right))
	for i, r := range right {
		b[i] = '0'
		if r {
			b[i] = '1'
		}
	}
	return string(b)
}

// ParseRight reads what RightString wrote.
func ParseRight(s string) []bool {
	out := make([]bool, len(s))
	for i := range s {
		out[i] = s[i] == '1'
	}
	return out
}
