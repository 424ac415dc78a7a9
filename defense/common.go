package defense

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// wrapper is what every defense shares: the encoder it wraps. Close closes the wrapped
// encoder, so closing the outermost layer of a chain closes the whole chain.
type wrapper struct{ next infer.Encoder }

// Info describes the wrapped encoder (defenses that change the output dimension override it).
func (w wrapper) Info() infer.Info { return w.next.Info() }

// Close closes the wrapped encoder.
func (w wrapper) Close() error { return w.next.Close() }

// Unwrap returns the wrapped encoder.
func (w wrapper) Unwrap() infer.Encoder { return w.next }

// Unwrapper is implemented by every defense in this package: Unwrap returns the encoder
// the defense wraps.
type Unwrapper interface {
	Unwrap() infer.Encoder
}

// Layers lists a chain of wrappers from the outermost (enc itself) to the innermost
// encoder, following Unwrap.
func Layers(enc infer.Encoder) []infer.Encoder {
	var out []infer.Encoder
	for enc != nil {
		out = append(out, enc)
		u, ok := enc.(Unwrapper)
		if !ok {
			break
		}
		enc = u.Unwrap()
	}
	return out
}

// Find returns the outermost layer of type T in the chain enc (see Layers), for example
// Find[*Detector](enc) to read a detector's counters from a composed encoder.
func Find[T infer.Encoder](enc infer.Encoder) (T, bool) {
	for _, l := range Layers(enc) {
		if t, ok := l.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

// encodeNext runs the wrapped encoder, checks that its answer is consistent with x, and
// returns a copy the caller may modify.
func encodeNext(ctx context.Context, name string, next infer.Encoder, x infer.Images) (infer.Vectors, error) {
	if err := x.Validate(); err != nil {
		return infer.Vectors{}, fmt.Errorf("defense: %s: %w", name, err)
	}
	v, err := next.Encode(ctx, x)
	if err != nil {
		return infer.Vectors{}, err
	}
	if v.N != x.N || v.D < 0 || len(v.Data) != v.N*v.D {
		return infer.Vectors{}, fmt.Errorf("defense: %s: wrapped encoder returned %d vectors of dimension %d with %d values for %d images; expected N=%d and N*D values",
			name, v.N, v.D, len(v.Data), x.N, x.N)
	}
	v.Data = slices.Clone(v.Data)
	return v, nil
}

// mix64 is the splitmix64 finaliser.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// layerSeed derives the seed of layer i of a composed chain from the chain's seed.
func layerSeed(seed int64, i int) int64 {
	return int64(mix64(uint64(seed) ^ mix64(uint64(i)+0x9e3779b97f4a7c15)))
}

// rowRNG returns the random source for the answer to one image: a ChaCha8 stream keyed by
// SHA-256 of (seed, defense name, caller key, image values). The noise is therefore a
// function of what was asked and by whom: it does not depend on the order of concurrent
// requests, and asking the same image again returns the same answer, so averaging repeated
// queries does not remove it.
func rowRNG(seed int64, name, key string, img []float32) *rand.Rand {
	h := sha256.New()
	var buf [4096]byte
	b := binary.LittleEndian.AppendUint64(buf[:0], uint64(seed))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	h.Write(b)
	for len(img) > 0 {
		n := min(len(img), len(buf)/4)
		for i, f := range img[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
		}
		h.Write(buf[:4*n])
		img = img[n:]
	}
	var s [32]byte
	h.Sum(s[:0])
	return rand.New(rand.NewChaCha8(s))
}

// rms is the root mean square of v (0 for an empty vector).
func rms(v []float32) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, f := range v {
		s += float64(f) * float64(f)
	}
	return math.Sqrt(s / float64(len(v)))
}

// dot is the float32 inner product of a and b (len(b) >= len(a)), accumulated in four lanes.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// keyed keeps one state per caller key, at most max of them; the least recently used key
// is forgotten when a new one arrives. States carry their own lock; keyed only guards the map.
type keyed[S any] struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order *list.List // front = most recent; values are *keyedItem[S]
	fresh func() *S
}

type keyedItem[S any] struct {
	key   string
	state *S
}

func newKeyed[S any](max int, fresh func() *S) *keyed[S] {
	return &keyed[S]{max: max, items: map[string]*list.Element{}, order: list.New(), fresh: fresh}
}

// get returns key's state, creating it (and evicting the least recently used key) if needed.
func (k *keyed[S]) get(key string) *S {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.items[key]; ok {
		k.order.MoveToFront(e)
		return e.Value.(*keyedItem[S]).state
	}
	for len(k.items) >= k.max {
		old := k.order.Back()
		k.order.Remove(old)
		delete(k.items, old.Value.(*keyedItem[S]).key)
	}
	s := k.fresh()
	k.items[key] = k.order.PushFront(&keyedItem[S]{key, s})
	return s
}

// peek returns key's state without creating it or changing the recency order.
func (k *keyed[S]) peek(key string) (*S, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.items[key]; ok {
		return e.Value.(*keyedItem[S]).state, true
	}
	return nil, false
}

// remove forgets key's state.
func (k *keyed[S]) remove(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.items[key]; ok {
		k.order.Remove(e)
		delete(k.items, key)
	}
}

// len is the number of keys tracked.
func (k *keyed[S]) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.items)
}

// Centering modes of the representation-space defenses (detect, b4b).
const (
	// CenterAuto estimates the mean representation from the first Calib rows the defense
	// sees (from all callers) and then freezes it.
	CenterAuto = "auto"
	// CenterNone uses the representations as they are (the reference implementation's choice).
	CenterNone = "none"
)

// center is the mean representation subtracted before cosine similarity (detect) or
// hyperplane hashing (b4b). Post-ReLU representations are all non-negative, so that raw
// cosines between unrelated images are already 0.9 or more and hyperplanes through the origin
// barely split them; centering restores the contrast.
type center struct {
	mu      sync.Mutex
	calib   int       // rows still to average; 0 = frozen
	n       int       // rows averaged so far
	sum     []float64 // running sum while calibrating
	mean    []float32 // current mean, replaced (never modified) on update; nil = no centering
	version uint64    // incremented whenever mean changes
}

// newCenter returns a centering in the given mode: CenterNone, CenterAuto (with calib rows),
// or a fixed mean when fixed is not nil.
func newCenter(mode string, calib int, fixed []float32) *center {
	switch {
	case fixed != nil:
		return &center{mean: slices.Clone(fixed), version: 1}
	case mode == CenterAuto:
		return &center{calib: calib}
	default:
		return &center{}
	}
}

// observe adds v's rows to the estimate while calibrating and returns the mean to use now
// (nil = none) and its version. It fails if a fixed or estimated mean has another dimension.
func (c *center) observe(name string, v infer.Vectors) ([]float32, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.mean != nil || c.sum != nil) && v.N > 0 {
		d := len(c.mean)
		if c.sum != nil {
			d = len(c.sum)
		}
		if d != v.D {
			return nil, 0, fmt.Errorf("defense: %s: centering mean has dimension %d, found representations of dimension %d", name, d, v.D)
		}
	}
	if c.calib > 0 && v.N > 0 {
		if c.sum == nil {
			c.sum = make([]float64, v.D)
		}
		take := min(v.N, c.calib)
		for i := range take {
			for j, f := range v.Row(i) {
				c.sum[j] += float64(f)
			}
		}
		c.n += take
		c.calib -= take
		mean := make([]float32, v.D)
		for j, s := range c.sum {
			mean[j] = float32(s / float64(c.n))
		}
		c.mean = mean
		c.version++
	}
	return c.mean, c.version, nil
}

// Mean returns the centering mean in use (nil = none) and whether it is final (a fixed or
// no centering, or auto calibration complete).
func (c *center) Mean() ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mean, c.calib == 0
}
