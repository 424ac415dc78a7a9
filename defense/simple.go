package defense

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Noise adds Gaussian noise N(Mu, Sigma^2) to every value the wrapped encoder returns (the
// paper's "perturbation" defense). The reference scripts default to mu=5, sigma=0.5; a
// constant shift is undone by any attacker who fits a bias, so the default here is mu=0,
// sigma=0.5. The noise of a row is a function of (seed, caller key, image): repeating a
// query gives the same answer, so repeats cannot be averaged to remove the noise.
type Noise struct {
	wrapper
	sigma, mu float64
	seed      int64
}

// NewNoise wraps next in Gaussian noise N(mu, sigma^2), sigma >= 0.
func NewNoise(next infer.Encoder, sigma, mu float64, seed int64) (*Noise, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: noise: wrapped encoder is nil")
	}
	if !(sigma >= 0) || math.IsInf(sigma, 0) || math.IsNaN(mu) || math.IsInf(mu, 0) {
		return nil, fmt.Errorf("defense: noise: sigma must be finite and >= 0 and mu finite, found sigma=%v mu=%v", sigma, mu)
	}
	return &Noise{wrapper{next}, sigma, mu, seed}, nil
}

func parseNoise(p *params) (Factory, error) {
	sigma, err1 := p.float("sigma", 0, math.Inf(1))
	mu, err2 := p.float("mu", math.Inf(-1), math.Inf(1))
	if err := firstErr(err1, err2); err != nil {
		return nil, err
	}
	return func(next infer.Encoder, seed int64) (infer.Encoder, error) { return NewNoise(next, sigma, mu, seed) }, nil
}

// Encode returns the wrapped encoder's vectors plus noise.
func (n *Noise) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := encodeNext(ctx, "noise", n.next, x)
	if err != nil {
		return v, err
	}
	key, per := KeyFrom(ctx), x.C*x.H*x.W
	for i := range v.N {
		r := rowRNG(n.seed, "noise", key, x.Data[i*per:(i+1)*per])
		row := v.Row(i)
		for j := range row {
			row[j] += float32(n.mu + n.sigma*r.NormFloat64())
		}
	}
	return v, nil
}

// Round rounds every returned value to a number of decimal places.
type Round struct {
	wrapper
	decimals int
}

// NewRound wraps next in rounding to decimals places, 0..9.
func NewRound(next infer.Encoder, decimals int) (*Round, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: round: wrapped encoder is nil")
	}
	if decimals < 0 || decimals > 9 {
		return nil, fmt.Errorf("defense: round: decimals must be in [0, 9], found %d", decimals)
	}
	return &Round{wrapper{next}, decimals}, nil
}

func parseRound(p *params) (Factory, error) {
	d, err := p.int("decimals", 0, 9)
	if err != nil {
		return nil, err
	}
	return func(next infer.Encoder, _ int64) (infer.Encoder, error) { return NewRound(next, d) }, nil
}

// Encode returns the wrapped encoder's vectors, rounded.
func (r *Round) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := encodeNext(ctx, "round", r.next, x)
	if err != nil {
		return v, err
	}
	scale := math.Pow(10, float64(r.decimals))
	for i, f := range v.Data {
		v.Data[i] = float32(math.Round(float64(f)*scale) / scale)
	}
	return v, nil
}

// TopK keeps the k largest-magnitude values of each vector and sets the others to zero. Ties
// at the k-th magnitude are broken by keeping the lower dimension index.
type TopK struct {
	wrapper
	k int
}

// NewTopK wraps next in top-k sparsification; k >= 1 and, when next declares its output
// dimension, k <= that dimension.
func NewTopK(next infer.Encoder, k int) (*TopK, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: topk: wrapped encoder is nil")
	}
	if d := next.Info().OutputDim; k < 1 || (d > 0 && k > d) {
		return nil, fmt.Errorf("defense: topk: k must be in [1, %s], found %d", dimBound(d), k)
	}
	return &TopK{wrapper{next}, k}, nil
}

func parseTopK(p *params) (Factory, error) {
	k, err := p.int("k", 1, math.MaxInt)
	if err != nil {
		return nil, err
	}
	return func(next infer.Encoder, _ int64) (infer.Encoder, error) { return NewTopK(next, k) }, nil
}

// Encode returns the wrapped encoder's vectors with all but the k largest magnitudes zeroed.
func (t *TopK) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := encodeNext(ctx, "topk", t.next, x)
	if err != nil {
		return v, err
	}
	if t.k > v.D && v.N > 0 {
		return infer.Vectors{}, fmt.Errorf("defense: topk: k must be <= the representation dimension %d, found k=%d", v.D, t.k)
	}
	idx := make([]int, v.D)
	for i := range v.N {
		row := v.Row(i)
		for j := range idx {
			idx[j] = j
		}
		slices.SortFunc(idx, func(a, b int) int {
			if c := cmp.Compare(math.Abs(float64(row[b])), math.Abs(float64(row[a]))); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, j := range idx[t.k:] {
			row[j] = 0
		}
	}
	return v, nil
}

// Truncate returns only the first Dims dimensions of each vector; Info().OutputDim says so.
type Truncate struct {
	wrapper
	dims int
}

// NewTruncate wraps next in truncation to dims dimensions; dims >= 1 and, when next declares
// its output dimension, dims <= that dimension.
func NewTruncate(next infer.Encoder, dims int) (*Truncate, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: truncate: wrapped encoder is nil")
	}
	if d := next.Info().OutputDim; dims < 1 || (d > 0 && dims > d) {
		return nil, fmt.Errorf("defense: truncate: dims must be in [1, %s], found %d", dimBound(d), dims)
	}
	return &Truncate{wrapper{next}, dims}, nil
}

func parseTruncate(p *params) (Factory, error) {
	d, err := p.int("dims", 1, math.MaxInt)
	if err != nil {
		return nil, err
	}
	return func(next infer.Encoder, _ int64) (infer.Encoder, error) { return NewTruncate(next, d) }, nil
}

// Info describes the wrapped encoder with OutputDim set to the truncated dimension.
func (t *Truncate) Info() infer.Info {
	info := t.next.Info()
	info.OutputDim = t.dims
	return info
}

// Encode returns the first dims values of each of the wrapped encoder's vectors.
func (t *Truncate) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := t.next.Encode(ctx, x)
	if err != nil {
		return v, err
	}
	if v.N != x.N || len(v.Data) != v.N*v.D {
		return infer.Vectors{}, fmt.Errorf("defense: truncate: wrapped encoder returned %d vectors of dimension %d with %d values for %d images",
			v.N, v.D, len(v.Data), x.N)
	}
	if t.dims > v.D && v.N > 0 {
		return infer.Vectors{}, fmt.Errorf("defense: truncate: dims must be <= the representation dimension %d, found dims=%d", v.D, t.dims)
	}
	out := infer.Vectors{N: v.N, D: t.dims, Data: make([]float32, v.N*t.dims)}
	for i := range v.N {
		copy(out.Row(i), v.Row(i)[:t.dims])
	}
	return out, nil
}

// dimBound formats the upper bound of a dimension parameter.
func dimBound(d int) string {
	if d > 0 {
		return fmt.Sprintf("%d (the representation dimension)", d)
	}
	return "the representation dimension"
}
