package defense

import (
	"fmt"
	"math"
	"slices"
)

// ShapiroWilkTest runs the Shapiro-Wilk test keeping the coefficients of the last sample
// size: PRADA tests windows of one size (5000 once full) over and over, and the coefficients
// cost n inverse-erf evaluations. The zero value is ready; it is not safe for concurrent use.
type ShapiroWilkTest struct {
	n int
	a []float64
}

// coefficients returns a_n for sample size n; the result must not be modified.
func (t *ShapiroWilkTest) coefficients(n int) []float64 {
	if t.n != n {
		t.n, t.a = n, swCoefficients(n)
	}
	return t.a
}

// ShapiroWilk is ShapiroWilkTest.Test without a cache.
func ShapiroWilk(x []float64) (w, p float64, err error) {
	var t ShapiroWilkTest
	return t.Test(x)
}

// Test tests whether x comes from a normal distribution. It returns the statistic W
// (in (0, 1]; small W = not normal) and its p-value, by Royston's 1992 approximation (the one
// behind scipy.stats.shapiro and R's shapiro.test): the coefficients a_n and a_(n-1) are
// polynomials in 1/sqrt(n) corrected from the expected normal order statistics, and the
// p-value comes from a normalising transform of W (log(1-W) for n >= 12, a further
// -log(gamma - log(1-W)) for 4 <= n <= 11, and the exact distribution for n = 3).
// It needs 3 <= len(x) <= 5000 finite values that are not all equal.
func (t *ShapiroWilkTest) Test(x []float64) (w, p float64, err error) {
	n := len(x)
	if n < 3 || n > 5000 {
		return 0, 0, fmt.Errorf("defense: Shapiro-Wilk needs 3 to 5000 values, found %d", n)
	}
	y := slices.Clone(x)
	for i, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0, fmt.Errorf("defense: Shapiro-Wilk needs finite values, found %v at index %d", v, i)
		}
	}
	slices.Sort(y)
	span := y[n-1] - y[0]
	if !(span > 0) || span < 1e-300 {
		return 0, 0, fmt.Errorf("defense: Shapiro-Wilk is undefined when all %d values are equal (%v)", n, y[0])
	}
	a := t.coefficients(n)

	// W = (sum a_i y_(i))^2 / sum (y_i - mean)^2, on values scaled by the range.
	var mean float64
	lo := y[0]
	for i := range y {
		y[i] = (y[i] - lo) / span
		mean += y[i]
	}
	mean /= float64(n)
	var num, ss float64
	for i, v := range y {
		num += a[i] * v
		ss += (v - mean) * (v - mean)
	}
	w = min(1, num*num/ss)
	return w, swPValue(w, n), nil
}

// swCoefficients returns the n antisymmetric Shapiro-Wilk coefficients (sum of squares 1).
func swCoefficients(n int) []float64 {
	a := make([]float64, n)
	if n == 3 {
		a[0], a[2] = -math.Sqrt(0.5), math.Sqrt(0.5)
		return a
	}
	// Expected normal order statistics, Blom's approximation.
	m := make([]float64, n)
	var summ2 float64
	for i := range n {
		q := (float64(i+1) - 0.375) / (float64(n) + 0.25)
		m[i] = math.Sqrt2 * math.Erfinv(2*q-1)
		summ2 += m[i] * m[i]
	}
	root := math.Sqrt(summ2)
	u := 1 / math.Sqrt(float64(n))
	poly := func(c []float64, x float64) float64 { // c[0] + c[1] x + ... (Horner)
		r := 0.0
		for i := len(c) - 1; i >= 0; i-- {
			r = r*x + c[i]
		}
		return r
	}
	an := m[n-1]/root + poly([]float64{0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056}, u)
	a[n-1], a[0] = an, -an
	var phi float64
	inner := 1 // coefficients fixed at each end
	if n > 5 {
		an1 := m[n-2]/root + poly([]float64{0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633}, u)
		a[n-2], a[1] = an1, -an1
		phi = (summ2 - 2*m[n-1]*m[n-1] - 2*m[n-2]*m[n-2]) / (1 - 2*an*an - 2*an1*an1)
		inner = 2
	} else {
		phi = (summ2 - 2*m[n-1]*m[n-1]) / (1 - 2*an*an)
	}
	s := math.Sqrt(phi)
	for i := inner; i < n-inner; i++ {
		a[i] = m[i] / s
	}
	return a
}

// swPValue is Royston's approximation of P(W' <= w) under normality.
func swPValue(w float64, n int) float64 {
	if n == 3 {
		// Exact: W has density proportional to (W(1-W))^(-1/2) on [3/4, 1].
		p := 6 / math.Pi * (math.Asin(math.Sqrt(w)) - math.Asin(math.Sqrt(0.75)))
		return min(1, max(0, p))
	}
	if w >= 1 {
		return 1
	}
	l := math.Log(1 - w)
	nf := float64(n)
	var y, mu, sigma float64
	if n <= 11 {
		gamma := -2.273 + 0.459*nf
		if l >= gamma {
			return 0 // beyond the range of the transform: W far too small
		}
		y = -math.Log(gamma - l)
		mu = 0.5440 - 0.39978*nf + 0.025054*nf*nf - 6.714e-4*nf*nf*nf
		sigma = math.Exp(1.3822 - 0.77857*nf + 0.062767*nf*nf - 0.0020322*nf*nf*nf)
	} else {
		ln := math.Log(nf)
		y = l
		mu = -1.5861 - 0.31082*ln - 0.083751*ln*ln + 0.0038915*ln*ln*ln
		sigma = math.Exp(-0.4803 - 0.082676*ln + 0.0030302*ln*ln)
	}
	return 0.5 * math.Erfc((y-mu)/sigma/math.Sqrt2)
}
