package eval

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// blobs draws n rows of dimension d around c class centres at distance sep from the
// origin (unit Gaussian noise); row i has class i%c.
func blobs(n, d, c int, sep float64, seed uint64) Features {
	r := rand.New(rand.NewPCG(seed, 7))
	centres := make([]float64, c*d)
	for k := range c {
		norm := 0.0
		for j := range d {
			centres[k*d+j] = r.NormFloat64()
			norm += centres[k*d+j] * centres[k*d+j]
		}
		for j := range d {
			centres[k*d+j] *= sep / math.Sqrt(norm)
		}
	}
	// The centres depend on seed's first draws only, so train and test drawn with the
	// same seed share them; the noise comes from a second stream.
	noise := rand.New(rand.NewPCG(seed, uint64(n)))
	x := make([]float32, n*d)
	y := make([]int, n)
	for i := range n {
		y[i] = i % c
		for j := range d {
			x[i*d+j] = float32(centres[y[i]*d+j] + noise.NormFloat64())
		}
	}
	return Features{X: infer.Vectors{N: n, D: d, Data: x}, Y: y, Classes: c}
}

// shuffledLabels returns f with its labels permuted (a no-signal control).
func shuffledLabels(f Features, seed uint64) Features {
	r := rand.New(rand.NewPCG(seed, 11))
	y := append([]int(nil), f.Y...)
	r.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
	f.Y = y
	return f
}

// wantErr fails unless err is non-nil and contains every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q: expected it to contain %q", err, f)
		}
	}
}
