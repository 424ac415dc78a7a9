package defense

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// ErrBlocked is wrapped by the error PRADA returns for a caller it has flagged as a model
// extraction attacker; a server recognises it with errors.Is and answers e.g. HTTP 429/403.
var ErrBlocked = errors.New("caller blocked as a suspected model-extraction attacker")

// PRADAConfig configures NewPRADA. Start from DefaultPRADAConfig.
type PRADAConfig struct {
	// Delta blocks a caller when the Shapiro-Wilk W of its distances falls below it; in
	// [0, 1]. Juuti et al. tuned it per model in roughly 0.87..0.96.
	Delta float64
	// Min is the number of distances a caller needs before it is tested, 3..5000.
	Min int
	// Set bounds the growing set of past queries kept per caller, >= 1 (PRADA keeps all;
	// here the oldest are forgotten). Memory per caller is at most Set*C*H*W*4 bytes and the
	// work per query Set*C*H*W multiply-adds.
	Set int
	// Window is the number of most recent distances tested, Min..5000 (Shapiro-Wilk's range).
	Window int
	// Keys is the number of callers whose history is remembered (least recently used
	// forgotten), >= 1. Blocked callers stay blocked regardless.
	Keys int
	// Logger, when not nil, receives each test (row = distances tested, score = W).
	Logger Logger
}

// DefaultPRADAConfig returns the defaults: delta 0.9, min 50, set 256, window 5000, 100 keys.
// The set bound keeps the search near 1 ms per 3x32x32 query on one core (about 4 ms at
// 1000); the recent queries it keeps are where a synthetic attack's near neighbours lie.
func DefaultPRADAConfig() PRADAConfig {
	return PRADAConfig{Delta: 0.9, Min: 50, Set: 256, Window: 5000, Keys: 100}
}

// PRADAStats describes what PRADA knows of a caller.
type PRADAStats struct {
	Queries    int64   // images asked (blocked requests included)
	Distances  int     // minimum distances in the tested window
	GrowingSet int     // past queries kept in the growing set
	Tested     bool    // whether a Shapiro-Wilk test has run
	W, P       float64 // the last test's statistic and p-value
	Blocked    bool
}

// PRADA is the detector of Juuti et al. (2019), "PRADA: Protecting against DNN Model
// Stealing Attacks", adapted to an encoder. It watches the INPUTS, as the original does:
// for each caller it keeps a growing set G of past query images and the list D of minimum
// L2 distances between each new image (flattened) and G. A new image joins G when its
// distance exceeds max(0, mean(D) - std(D)). Once D holds Min distances, every request
// ends with a Shapiro-Wilk test on the last Window of them; natural queries give roughly
// normally distributed distances, synthetic or systematically perturbed ones do not, and
// W < Delta blocks the caller: that request and all later ones fail with an error wrapping
// ErrBlocked, before the encoder runs (a refusal rather than noise, so that a server can
// answer 429/403 and an operator can see and lift it with Unblock). PRADA has no classes
// here (the original keeps one set per predicted class); there is one set per caller.
//
// A caller whose distances are all equal (for example the same image over and over) cannot
// be tested (W is undefined) and is not blocked on that account.
type PRADA struct {
	wrapper
	cfg     PRADAConfig
	states  *keyed[pradaState]
	logger  atomic.Pointer[Logger]
	mu      sync.Mutex
	blocked map[string]PRADAStats // stats at the time of blocking
}

type pradaState struct {
	mu        sync.Mutex
	per       int         // values per image, set by the first request
	set       [][]float32 // growing set (a ring once full)
	setNext   int
	dist      []float64 // window of minimum distances (a ring once full)
	sw        ShapiroWilkTest
	distNext  int
	sum, sum2 float64 // of all distances ever added, for the growing-set threshold
	count     int64
	queries   int64
	tested    bool
	w, p      float64
}

// NewPRADA wraps next in a PRADA detector.
func NewPRADA(next infer.Encoder, cfg PRADAConfig) (*PRADA, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: prada: wrapped encoder is nil")
	}
	switch {
	case !(cfg.Delta >= 0 && cfg.Delta <= 1):
		return nil, fmt.Errorf("defense: prada: Delta must be in [0, 1], found %v", cfg.Delta)
	case cfg.Min < 3 || cfg.Min > 5000:
		return nil, fmt.Errorf("defense: prada: Min must be in [3, 5000], found %d", cfg.Min)
	case cfg.Set < 1:
		return nil, fmt.Errorf("defense: prada: Set must be >= 1, found %d", cfg.Set)
	case cfg.Window < cfg.Min || cfg.Window > 5000:
		return nil, fmt.Errorf("defense: prada: Window must be in [Min=%d, 5000], found %d", cfg.Min, cfg.Window)
	case cfg.Keys < 1:
		return nil, fmt.Errorf("defense: prada: Keys must be >= 1, found %d", cfg.Keys)
	}
	p := &PRADA{
		wrapper: wrapper{next},
		cfg:     cfg,
		states:  newKeyed(cfg.Keys, func() *pradaState { return &pradaState{} }),
		blocked: map[string]PRADAStats{},
	}
	if cfg.Logger != nil {
		p.SetLogger(cfg.Logger)
	}
	return p, nil
}

func parsePRADA(p *params) (Factory, error) {
	c := DefaultPRADAConfig()
	var errs [5]error
	c.Delta, errs[0] = p.float("delta", 0, 1)
	c.Min, errs[1] = p.int("min", 3, 5000)
	c.Set, errs[2] = p.int("set", 1, math.MaxInt)
	c.Window, errs[3] = p.int("window", 3, 5000)
	c.Keys, errs[4] = p.int("keys", 1, math.MaxInt)
	if err := firstErr(errs[:]...); err != nil {
		return nil, err
	}
	if c.Window < c.Min {
		return nil, fmt.Errorf("defense: prada: parameter window must be >= min=%d, found %d", c.Min, c.Window)
	}
	return func(next infer.Encoder, _ int64) (infer.Encoder, error) { return NewPRADA(next, c) }, nil
}

// SetLogger replaces the decision logger (nil = none). Safe to call while serving.
func (p *PRADA) SetLogger(l Logger) {
	if l == nil {
		p.logger.Store(nil)
		return
	}
	p.logger.Store(&l)
}

// Blocked reports whether caller key is blocked.
func (p *PRADA) Blocked(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.blocked[key]
	return ok
}

// Unblock lifts caller key's block and forgets its history.
func (p *PRADA) Unblock(key string) {
	p.mu.Lock()
	delete(p.blocked, key)
	p.mu.Unlock()
	p.states.remove(key)
}

// Stats describes caller key (zero if it is neither tracked nor blocked).
func (p *PRADA) Stats(key string) PRADAStats {
	p.mu.Lock()
	b, blocked := p.blocked[key]
	p.mu.Unlock()
	if blocked {
		return b // as at blocking time, with the refused queries counted since
	}
	s, ok := p.states.peek(key)
	if !ok {
		return PRADAStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return PRADAStats{Queries: s.queries, Distances: len(s.dist), GrowingSet: len(s.set), Tested: s.tested, W: s.w, P: s.p}
}

func (p *PRADA) blockedErr(key string, st PRADAStats) error {
	return fmt.Errorf("defense: prada: caller %q: %w (Shapiro-Wilk W=%.4f < delta=%.4f over %d distances)",
		key, ErrBlocked, st.W, p.cfg.Delta, st.Distances)
}

// Encode updates the caller's distances with x, tests them, and answers x with the wrapped
// encoder unless the caller is (now) blocked.
func (p *PRADA) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	if err := x.Validate(); err != nil {
		return infer.Vectors{}, fmt.Errorf("defense: prada: %w", err)
	}
	key := KeyFrom(ctx)
	p.mu.Lock()
	b, blocked := p.blocked[key]
	if blocked {
		b.Queries += int64(x.N)
		p.blocked[key] = b
	}
	p.mu.Unlock()
	if blocked {
		return infer.Vectors{}, p.blockedErr(key, b)
	}
	per := x.C * x.H * x.W
	st := p.states.get(key)

	st.mu.Lock()
	if x.N > 0 && st.per != 0 && st.per != per {
		st.mu.Unlock()
		return infer.Vectors{}, fmt.Errorf("defense: prada: caller %q earlier sent images of %d values, found %dx%dx%d = %d", key, st.per, x.C, x.H, x.W, per)
	}
	for i := range x.N {
		st.per = per
		st.add(x.Data[i*per:(i+1)*per], p.cfg)
	}
	st.queries += int64(x.N)
	var stats PRADAStats
	test := len(st.dist) >= p.cfg.Min && x.N > 0
	flag := false
	if test {
		w, pv, err := st.sw.Test(st.dist)
		if err == nil { // an undefined test (all distances equal) blocks nobody
			st.tested, st.w, st.p = true, w, pv
			flag = w < p.cfg.Delta
		} else {
			test = false
		}
	}
	stats = PRADAStats{Queries: st.queries, Distances: len(st.dist), GrowingSet: len(st.set), Tested: st.tested, W: st.w, P: st.p, Blocked: flag}
	st.mu.Unlock()

	if l := p.logger.Load(); l != nil && test {
		(*l)(key, stats.Distances, stats.W, flag)
	}
	if flag {
		p.mu.Lock()
		p.blocked[key] = stats
		p.mu.Unlock()
		return infer.Vectors{}, p.blockedErr(key, stats)
	}
	return p.next.Encode(ctx, x)
}

// add records one query image: its minimum distance to the growing set, and the image
// itself when that distance exceeds the threshold.
func (s *pradaState) add(img []float32, cfg PRADAConfig) {
	if len(s.set) == 0 {
		s.set = append(s.set, append([]float32(nil), img...))
		return
	}
	best := float32(math.Inf(1))
	for _, g := range s.set {
		best = min(best, sqDistBelow(img, g, best))
	}
	d := math.Sqrt(float64(best))
	// Threshold from the distances before this one, as in PRADA.
	thr := 0.0
	if s.count > 0 {
		mean := s.sum / float64(s.count)
		thr = max(0, mean-math.Sqrt(max(0, s.sum2/float64(s.count)-mean*mean)))
	}
	if len(s.dist) < cfg.Window {
		s.dist = append(s.dist, d)
	} else {
		s.dist[s.distNext] = d
		s.distNext = (s.distNext + 1) % cfg.Window
	}
	s.sum += d
	s.sum2 += d * d
	s.count++
	if d > thr {
		if len(s.set) < cfg.Set {
			s.set = append(s.set, append([]float32(nil), img...))
		} else {
			copy(s.set[s.setNext], img)
			s.setNext = (s.setNext + 1) % cfg.Set
		}
	}
}

// sqDistBelow returns the squared L2 distance between a and b, or any value >= bound as soon
// as the partial sum reaches bound (early abandoning for the nearest-neighbour search).
func sqDistBelow(a, b []float32, bound float32) float32 {
	b = b[:len(a)]
	var s float32
	for i := 0; i < len(a); i += 256 {
		end := min(i+256, len(a))
		var s0, s1, s2, s3 float32
		j := i
		for ; j+4 <= end; j += 4 {
			d0, d1, d2, d3 := a[j]-b[j], a[j+1]-b[j+1], a[j+2]-b[j+2], a[j+3]-b[j+3]
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		for ; j < end; j++ {
			d := a[j] - b[j]
			s0 += d * d
		}
		s += (s0 + s1) + (s2 + s3)
		if s >= bound {
			return s
		}
	}
	return s
}
