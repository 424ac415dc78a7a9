package eval

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Reference settings of the kNN monitor (InstDisc, and the SimCLR/MoCo repositories
// that copied it).
const (
	// DefaultKNNK is the number of neighbours that vote.
	DefaultKNNK = 200
	// DefaultKNNTemperature divides the cosine similarity before exponentiation.
	DefaultKNNTemperature = 0.5
)

// KNN classifies every test row by a weighted vote of its k nearest train rows and
// returns the top-1 accuracy. Rows are L2-normalised, neighbours are those of highest
// cosine similarity s, and each votes for its class with weight exp(s/temperature)
// (ties in similarity go to the lower train row, ties in votes to the lower class).
// A k larger than the number of train rows uses all of them. Work is spread over
// GOMAXPROCS goroutines by blocks of test rows.
func KNN(train, test Features, k int, temperature float64) (float64, error) {
	pred, err := knnPredict(train, test, k, temperature)
	if err != nil {
		return 0, err
	}
	hit := 0
	for i, p := range pred {
		if p == test.Y[i] {
			hit++
		}
	}
	return float64(hit) / float64(len(pred)), nil
}

// knnPredict returns the kNN prediction of every test row.
func knnPredict(train, test Features, k int, temperature float64) ([]int, error) {
	if k < 1 {
		return nil, fmt.Errorf("kNN k %d: expected >= 1 (reference: %d)", k, DefaultKNNK)
	}
	if !(temperature > 0) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("kNN temperature %v: expected a finite value > 0 (reference: %v)", temperature, DefaultKNNTemperature)
	}
	if err := checkPair(train, test); err != nil {
		return nil, fmt.Errorf("kNN: %w", err)
	}
	ntr, nte, d, c := train.X.N, test.X.N, train.X.D, train.Classes
	k = min(k, ntr)
	tr := l2Normalized(train.X.Data, d)
	te := l2Normalized(test.X.Data, d)
	trm := blas32.General{Rows: ntr, Cols: d, Stride: d, Data: tr}

	const block = 64
	pred := make([]int, nte)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), (nte+block-1)/block)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sims := make([]float32, block*ntr)
			hs := make([]float32, k)
			hi := make([]int32, k)
			votes := make([]float64, c)
			for {
				s := int(next.Add(block)) - block
				if s >= nte {
					return
				}
				m := min(block, nte-s)
				sm := blas32.General{Rows: m, Cols: ntr, Stride: ntr, Data: sims[:m*ntr]}
				blas32.Gemm(blas.NoTrans, blas.Trans, 1, blas32.General{Rows: m, Cols: d, Stride: d, Data: te[s*d : (s+m)*d]}, trm, 0, sm)
				for i := range m {
					topK(sims[i*ntr:(i+1)*ntr], hs, hi)
					clear(votes)
					for j, t := range hi {
						votes[train.Y[t]] += math.Exp(float64(hs[j]) / temperature)
					}
					best := 0
					for j, v := range votes {
						if v > votes[best] {
							best = j
						}
					}
					pred[s+i] = best
				}
			}
		}()
	}
	wg.Wait()
	return pred, nil
}

// topK fills hs/hi (length k <= len(sims)) with the k largest values of sims and their
// indices, in no particular order; among equal values the lower index wins. It keeps a
// min-heap whose root is the worst kept entry.
func topK(sims []float32, hs []float32, hi []int32) {
	k := len(hs)
	worse := func(a, b int) bool { // entry a ranks below entry b
		return hs[a] < hs[b] || (hs[a] == hs[b] && hi[a] > hi[b])
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			if r := l + 1; r < k && worse(r, l) {
				l = r
			}
			if !worse(l, i) {
				return
			}
			hs[i], hs[l] = hs[l], hs[i]
			hi[i], hi[l] = hi[l], hi[i]
			i = l
		}
	}
	for i := range k {
		hs[i], hi[i] = sims[i], int32(i)
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := k; i < len(sims); i++ {
		// A later index with an equal value ranks lower, so only strictly larger values enter.
		if sims[i] > hs[0] {
			hs[0], hi[0] = sims[i], int32(i)
			down(0)
		}
	}
}

// l2Normalized returns a copy of x (rows of length d) with every row scaled to unit L2
// norm; a zero row stays zero (norms are floored at 1e-12, as torch's F.normalize does).
func l2Normalized(x []float32, d int) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < len(x); i += d {
		ss := 0.0
		for _, v := range x[i : i+d] {
			ss += float64(v) * float64(v)
		}
		inv := 1 / max(math.Sqrt(ss), 1e-12)
		for j, v := range x[i : i+d] {
			out[i+j] = float32(float64(v) * inv)
		}
	}
	return out
}
