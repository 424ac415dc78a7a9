package defense

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// B4BConfig configures NewB4B. Start from DefaultB4BConfig.
type B4BConfig struct {
	// Planes is the number of random hyperplanes of the locality-sensitive hash; the
	// representation space is cut into 2^Planes buckets. 1..20; each caller costs
	// 2^Planes/8 bytes.
	Planes int
	// Alpha, Beta and Cap set the noise: a caller that has covered a fraction c of the
	// buckets gets Gaussian noise of standard deviation
	// min(Cap, Alpha*(exp(Beta*c)-1)) times the row's RMS value. All >= 0.
	Alpha, Beta, Cap float64
	// Transform applies the caller's secret transform to every answer (see B4B).
	Transform bool
	// Spread bounds the transform's per-dimension scales, log-uniform in [1/Spread, Spread]; >= 1.
	Spread float64
	// Shift is the standard deviation of the transform's per-dimension shifts, >= 0.
	Shift float64
	// Secret keys the per-caller transforms (HMAC-SHA256(Secret, caller key)). nil derives it
	// from Seed, which is reproducible but only as secret as the seed; set a real secret in
	// production.
	Secret []byte
	// Keys is the number of callers remembered (least recently used forgotten, which resets
	// its coverage), >= 1.
	Keys int
	// Center is CenterAuto (hash representations minus the mean of the first Calib ones,
	// frozen afterwards; buckets of rows hashed during calibration use the provisional mean)
	// or CenterNone (hyperplanes through the origin, which barely split post-ReLU
	// representations). Ignored when Mean is set.
	Center string
	// Calib is the number of representations averaged for CenterAuto, >= 1.
	Calib int
	// Mean, when not nil, is a fixed centering mean.
	Mean []float32
	// Seed drives the hyperplanes, the noise and (without Secret) the transforms.
	Seed int64
}

// DefaultB4BConfig returns the defaults: 12 planes (4096 buckets), alpha 0.01, beta 20, cap
// 4, transform on with spread 2 and shift 1, 10000 keys, auto centering over 256 rows. With
// them a caller that covered 1% of the buckets gets sigma = 0.0022 x RMS, 10% gets 0.064,
// 25% gets 1.5 and 30% or more gets the cap.
func DefaultB4BConfig() B4BConfig {
	return B4BConfig{Planes: 12, Alpha: 0.01, Beta: 20, Cap: 4, Transform: true, Spread: 2, Shift: 1,
		Keys: 10000, Center: CenterAuto, Calib: 256}
}

// B4B is "Bucks for Buckets" (Dubiński et al., NeurIPS 2023), the active defense for SSL
// encoders: the representations a caller receives are hashed into buckets by random
// hyperplanes (sign of <w_p, z - mean>), and the noise added to its answers grows with the
// fraction of buckets it has covered - a legitimate user, whose queries stay in a small part
// of the space, gets nearly clean answers, while an extraction attack, which must cover the
// space, gets ever noisier ones. Coverage is counted on the clean representation; the noise
// of a row is a function of (seed, caller, image), so repeats cannot be averaged away.
//
// Every answer to a caller then goes through that caller's secret transform
// y = s ⊙ z[perm] + t: a permutation of the dimensions and a per-dimension scale s
// (log-uniform in [1/Spread, Spread]) and shift t (N(0, Shift^2)), derived from
// HMAC-SHA256(Secret, caller key). Answers of one caller are consistent (a linear probe
// trained on them works as well as on clean ones), but answers of two sybil accounts live in
// different coordinates, so an attacker cannot simply pool them to stay below each
// account's coverage. Limits: the transform is affine, so an attacker that sends the same
// D+1 (in practice a few hundred, with noise) images through two accounts can fit the map
// between them by least squares and pool from then on - the paired queries cost coverage on
// both accounts; and per-dimension statistics (the mean and spread of each output dimension)
// can hint at the permutation. It raises the cost of pooling, it does not prevent it.
type B4B struct {
	wrapper
	cfg    B4BConfig
	secret []byte
	center *center
	states *keyed[b4bState]
	once   sync.Mutex
	planes []float32 // Planes x D hyperplane normals, made on the first request
	d      int
}

type b4bState struct {
	mu      sync.Mutex
	bits    []uint64
	covered int
	queries int64
	tf      *transform
}

// transform is one caller's secret map y[i] = scale[i]*z[perm[i]] + shift[i].
type transform struct {
	perm         []int
	scale, shift []float32
}

// NewB4B wraps next in B4B.
func NewB4B(next infer.Encoder, cfg B4BConfig) (*B4B, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: b4b: wrapped encoder is nil")
	}
	finiteNonNeg := func(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }
	switch {
	case cfg.Planes < 1 || cfg.Planes > 20:
		return nil, fmt.Errorf("defense: b4b: Planes must be in [1, 20], found %d", cfg.Planes)
	case !finiteNonNeg(cfg.Alpha):
		return nil, fmt.Errorf("defense: b4b: Alpha must be finite and >= 0, found %v", cfg.Alpha)
	case !finiteNonNeg(cfg.Beta):
		return nil, fmt.Errorf("defense: b4b: Beta must be finite and >= 0, found %v", cfg.Beta)
	case !finiteNonNeg(cfg.Cap):
		return nil, fmt.Errorf("defense: b4b: Cap must be finite and >= 0, found %v", cfg.Cap)
	case !(cfg.Spread >= 1) || math.IsInf(cfg.Spread, 1):
		return nil, fmt.Errorf("defense: b4b: Spread must be finite and >= 1, found %v", cfg.Spread)
	case !finiteNonNeg(cfg.Shift):
		return nil, fmt.Errorf("defense: b4b: Shift must be finite and >= 0, found %v", cfg.Shift)
	case cfg.Keys < 1:
		return nil, fmt.Errorf("defense: b4b: Keys must be >= 1, found %d", cfg.Keys)
	case cfg.Mean == nil && cfg.Center != CenterAuto && cfg.Center != CenterNone:
		return nil, fmt.Errorf("defense: b4b: Center must be %q or %q, found %q", CenterAuto, CenterNone, cfg.Center)
	case cfg.Mean == nil && cfg.Center == CenterAuto && cfg.Calib < 1:
		return nil, fmt.Errorf("defense: b4b: Calib must be >= 1, found %d", cfg.Calib)
	}
	if d := next.Info().OutputDim; cfg.Mean != nil && d > 0 && len(cfg.Mean) != d {
		return nil, fmt.Errorf("defense: b4b: Mean has dimension %d, expected the representation dimension %d", len(cfg.Mean), d)
	}
	secret := cfg.Secret
	if secret == nil {
		s := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("ssl-onnx b4b secret"), uint64(cfg.Seed)))
		secret = s[:]
	}
	words := max(1, (1<<cfg.Planes)/64)
	return &B4B{
		wrapper: wrapper{next},
		cfg:     cfg,
		secret:  append([]byte(nil), secret...),
		center:  newCenter(cfg.Center, cfg.Calib, cfg.Mean),
		states:  newKeyed(cfg.Keys, func() *b4bState { return &b4bState{bits: make([]uint64, words)} }),
	}, nil
}

func parseB4B(p *params) (Factory, error) {
	c := DefaultB4BConfig()
	var errs [10]error
	c.Planes, errs[0] = p.int("planes", 1, 20)
	c.Alpha, errs[1] = p.float("alpha", 0, math.Inf(1))
	c.Beta, errs[2] = p.float("beta", 0, math.Inf(1))
	c.Cap, errs[3] = p.float("cap", 0, math.Inf(1))
	c.Transform, errs[4] = p.bool("transform")
	c.Spread, errs[5] = p.float("spread", 1, math.Inf(1))
	c.Shift, errs[6] = p.float("shift", 0, math.Inf(1))
	c.Keys, errs[7] = p.int("keys", 1, math.MaxInt)
	c.Center, errs[8] = p.choice("center", CenterAuto, CenterNone)
	c.Calib, errs[9] = p.int("calib", 1, math.MaxInt)
	if err := firstErr(errs[:]...); err != nil {
		return nil, err
	}
	return func(next infer.Encoder, seed int64) (infer.Encoder, error) {
		c.Seed = seed
		return NewB4B(next, c)
	}, nil
}

// Coverage returns how many buckets caller key has covered and what fraction of all
// 2^Planes buckets that is (zero if the key is not, or no longer, tracked).
func (b *B4B) Coverage(key string) (buckets int, fraction float64) {
	s, ok := b.states.peek(key)
	if !ok {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.covered, float64(s.covered) / float64(uint64(1)<<b.cfg.Planes)
}

// Sigma returns the noise level (relative to the row RMS) for a caller with coverage
// fraction c: min(Cap, Alpha*(exp(Beta*c)-1)).
func (b *B4B) Sigma(c float64) float64 {
	return min(b.cfg.Cap, b.cfg.Alpha*math.Expm1(b.cfg.Beta*c))
}

// Queries returns the number of rows answered to caller key (zero if not tracked).
func (b *B4B) Queries(key string) int64 {
	s, ok := b.states.peek(key)
	if !ok {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Transform applies caller key's secret transform to v (without noise), for example to
// compare clean representations with what a caller received, or to measure a legitimate
// caller's cost. It returns v unchanged (a copy) when transforms are off.
func (b *B4B) Transform(key string, v infer.Vectors) (infer.Vectors, error) {
	if v.N < 0 || v.D < 0 || len(v.Data) != v.N*v.D {
		return infer.Vectors{}, fmt.Errorf("defense: b4b: Transform: %d vectors of dimension %d need %d values, found %d", v.N, v.D, v.N*v.D, len(v.Data))
	}
	out := infer.Vectors{N: v.N, D: v.D, Data: append([]float32(nil), v.Data...)}
	if !b.cfg.Transform {
		return out, nil
	}
	tf := b.makeTransform(key, v.D)
	tmp := make([]float32, v.D)
	for i := range v.N {
		tf.apply(out.Row(i), tmp)
	}
	return out, nil
}

// Untransform inverts caller key's secret transform on v (what the provider, who holds the
// secret, can do and a caller cannot), for example to measure the noise a caller received in
// the original coordinates: Distortion(clean, Untransform(key, answers)). It returns a copy
// of v when transforms are off.
func (b *B4B) Untransform(key string, v infer.Vectors) (infer.Vectors, error) {
	if v.N < 0 || v.D < 0 || len(v.Data) != v.N*v.D {
		return infer.Vectors{}, fmt.Errorf("defense: b4b: Untransform: %d vectors of dimension %d need %d values, found %d", v.N, v.D, v.N*v.D, len(v.Data))
	}
	out := infer.Vectors{N: v.N, D: v.D, Data: append([]float32(nil), v.Data...)}
	if !b.cfg.Transform {
		return out, nil
	}
	tf := b.makeTransform(key, v.D)
	tmp := make([]float32, v.D)
	for i := range v.N {
		z := out.Row(i)
		copy(tmp, z)
		for j, p := range tf.perm {
			z[p] = (tmp[j] - tf.shift[j]) / tf.scale[j]
		}
	}
	return out, nil
}

// makeTransform derives caller key's transform for dimension d from HMAC-SHA256(secret, key).
func (b *B4B) makeTransform(key string, d int) *transform {
	mac := hmac.New(sha256.New, b.secret)
	mac.Write([]byte("ssl-onnx b4b transform\x00"))
	mac.Write([]byte(key))
	var s [32]byte
	mac.Sum(s[:0])
	r := rand.New(rand.NewChaCha8(s))
	tf := &transform{perm: r.Perm(d), scale: make([]float32, d), shift: make([]float32, d)}
	ls := math.Log(b.cfg.Spread)
	for i := range d {
		tf.scale[i] = float32(math.Exp(ls * (2*r.Float64() - 1)))
		tf.shift[i] = float32(b.cfg.Shift * r.NormFloat64())
	}
	return tf
}

// apply transforms z in place, using tmp (len(z)) as scratch.
func (t *transform) apply(z, tmp []float32) {
	copy(tmp, z)
	for i, p := range t.perm {
		z[i] = t.scale[i]*tmp[p] + t.shift[i]
	}
}

// hyperplanes returns the Planes x d hyperplane normals, drawing them on first use.
func (b *B4B) hyperplanes(d int) ([]float32, error) {
	b.once.Lock()
	defer b.once.Unlock()
	if b.planes == nil {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], uint64(b.cfg.Seed))
		copy(s[8:], "ssl-onnx b4b planes")
		r := rand.New(rand.NewChaCha8(s))
		b.planes = make([]float32, b.cfg.Planes*d)
		for i := range b.planes {
			b.planes[i] = float32(r.NormFloat64())
		}
		b.d = d
	}
	if d != b.d {
		return nil, fmt.Errorf("defense: b4b: representations had dimension %d, found %d", b.d, d)
	}
	return b.planes, nil
}

// Encode answers x with noise grown from the caller's coverage, through its transform.
func (b *B4B) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := encodeNext(ctx, "b4b", b.next, x)
	if err != nil || v.N == 0 {
		return v, err
	}
	planes, err := b.hyperplanes(v.D)
	if err != nil {
		return infer.Vectors{}, err
	}
	mean, _, err := b.center.observe("b4b", v)
	if err != nil {
		return infer.Vectors{}, err
	}
	key := KeyFrom(ctx)
	per := x.C * x.H * x.W
	total := float64(uint64(1) << b.cfg.Planes)
	zc := make([]float32, v.D)
	tmp := make([]float32, v.D)

	st := b.states.get(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	if b.cfg.Transform && (st.tf == nil || len(st.tf.perm) != v.D) {
		st.tf = b.makeTransform(key, v.D)
	}
	for i := range v.N {
		z := v.Row(i)
		copy(zc, z)
		for j, m := range mean {
			zc[j] -= m
		}
		bucket := 0
		for p := range b.cfg.Planes {
			if dot(zc, planes[p*v.D:(p+1)*v.D]) > 0 {
				bucket |= 1 << p
			}
		}
		w, bit := bucket/64, uint64(1)<<(bucket%64)
		if st.bits[w]&bit == 0 {
			st.bits[w] |= bit
			st.covered++
		}
		st.queries++
		if sigma := b.Sigma(float64(st.covered) / total); sigma > 0 {
			scale := sigma * rms(z)
			r := rowRNG(b.cfg.Seed, "b4b", key, x.Data[i*per:(i+1)*per])
			for j := range z {
				z[j] += float32(scale * r.NormFloat64())
			}
		}
		if st.tf != nil {
			st.tf.apply(z, tmp)
		}
	}
	return v, nil
}

// popcount is the number of set bits (used by tests to cross-check the coverage counter).
func popcount(ws []uint64) int {
	n := 0
	for _, w := range ws {
		n += bits.OnesCount64(w)
	}
	return n
}
