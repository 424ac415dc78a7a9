package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

func TestKNNAccuracy(t *testing.T) {
	tests := []struct {
		name        string
		train, test Features
		k           int
		lo, hi      float64
	}{
		{"separable", blobs(400, 16, 4, 8, 1), blobs(300, 16, 4, 8, 1), DefaultKNNK, 0.97, 1},
		{"k larger than train", blobs(40, 16, 4, 8, 2), blobs(100, 16, 4, 8, 2), 1000, 0.97, 1},
		{"k=1", blobs(400, 16, 4, 8, 3), blobs(300, 16, 4, 8, 3), 1, 0.97, 1},
		{"shuffled labels", shuffledLabels(blobs(400, 16, 4, 8, 4), 1), shuffledLabels(blobs(300, 16, 4, 8, 4), 2), DefaultKNNK, 0.1, 0.4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acc, err := KNN(tc.train, tc.test, tc.k, DefaultKNNTemperature)
			if err != nil {
				t.Fatal(err)
			}
			if acc < tc.lo || acc > tc.hi {
				t.Errorf("kNN top-1 %.3f: expected within [%.2f, %.2f]", acc, tc.lo, tc.hi)
			}
		})
	}
}

// TestKNNVote checks the weighted vote by hand: three neighbours of one class just
// outweigh two closer ones of another at high temperature, and lose at low temperature.
func TestKNNVote(t *testing.T) {
	// Angles from the query (1, 0): class 0 at 0.1 rad x2, class 1 at 0.5 rad x3.
	vec := func(a float64) []float32 { return []float32{float32(math.Cos(a)), float32(math.Sin(a))} }
	var x []float32
	for _, a := range []float64{0.1, -0.1, 0.5, -0.5, 0.5} {
		x = append(x, vec(a)...)
	}
	train := Features{X: infer.Vectors{N: 5, D: 2, Data: x}, Y: []int{0, 0, 1, 1, 1}, Classes: 2}
	test := Features{X: infer.Vectors{N: 1, D: 2, Data: []float32{3, 0}}, Y: []int{1}, Classes: 2}
	// exp(cos/T): T=10 -> 2*e^0.0995 = 2.21 < 3*e^0.0878 = 3.28, class 1;
	// T=0.05 -> 2*e^19.9 > 3*e^17.55, class 0.
	for _, tc := range []struct {
		temp float64
		want float64
	}{{10, 1}, {0.05, 0}} {
		acc, err := KNN(train, test, 5, tc.temp)
		if err != nil {
			t.Fatal(err)
		}
		if acc != tc.want {
			t.Errorf("T=%v: accuracy %v: expected %v", tc.temp, acc, tc.want)
		}
	}
}

func TestKNNErrors(t *testing.T) {
	good := blobs(20, 4, 2, 3, 1)
	tests := []struct {
		name        string
		train, test Features
		k           int
		temp        float64
		want        []string
	}{
		{"k 0", good, good, 0, 0.5, []string{"k 0", ">= 1"}},
		{"temperature 0", good, good, 5, 0, []string{"temperature 0", "> 0"}},
		{"temperature NaN", good, good, 5, math.NaN(), []string{"temperature NaN"}},
		{"dimension mismatch", good, blobs(20, 3, 2, 3, 1), 5, 0.5, []string{"kNN", "dimension 3", "train dimension 4"}},
		{"no train rows", Features{Classes: 2}, good, 5, 0.5, []string{"train features are 0 x 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KNN(tc.train, tc.test, tc.k, tc.temp)
			wantErr(t, err, tc.want...)
		})
	}
}

func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ n, k int }{{1, 1}, {10, 3}, {10, 10}, {500, 200}, {1000, 7}} {
		sims := make([]float32, tc.n)
		for i := range sims {
			sims[i] = float32(r.IntN(20)) / 20 // many ties
		}
		hs, hi := make([]float32, tc.k), make([]int32, tc.k)
		topK(sims, hs, hi)
		want := make([]int32, tc.n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int {
			switch {
			case sims[a] > sims[b]:
				return -1
			case sims[a] < sims[b]:
				return 1
			}
			return 0
		})
		want = want[:tc.k]
		got := slices.Clone(hi)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d k=%d: top-k indices %v: expected %v", tc.n, tc.k, got, want)
		}
		for j, i := range hi {
			if hs[j] != sims[i] {
				t.Errorf("n=%d k=%d: value %v kept for index %d: expected %v", tc.n, tc.k, hs[j], i, sims[i])
			}
		}
	}
}

// BenchmarkKNN measures the kNN monitor at the reference size: 10000 train and 10000
// test rows of dimension 512.
func BenchmarkKNN(b *testing.B) {
	tr, te := blobs(10000, 512, 10, 3, 9), blobs(10000, 512, 10, 3, 10)
	b.ResetTimer()
	for range b.N {
		if _, err := KNN(tr, te, DefaultKNNK, DefaultKNNTemperature); err != nil {
			b.Fatal(err)
		}
	}
}
