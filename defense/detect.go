package defense

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Logger receives one decision of a detecting defense: for Detector, one per answered row
// (row = index in the request, score = max (cos+1)/2 against the caller's history, 0 when the
// history is empty); for PRADA, one per Shapiro-Wilk test (row = number of distances tested,
// score = W). key is the caller ("" = anonymous). It is called without locks held, possibly
// from several goroutines at once.
type Logger func(key string, row int, score float64, flagged bool)

// DetectConfig configures NewDetector. Start from DefaultDetectConfig.
type DetectConfig struct {
	// Threshold flags a query whose max similarity s = (cos+1)/2 to the caller's remembered
	// representations exceeds it; in [0, 1]. The reference used 0.8 on the projection head's
	// output. It is only meaningful on centered or signed representations: on raw post-ReLU
	// ResNet representations unrelated images already score s > 0.94 (see Center).
	Threshold float64
	// History is the number of representations remembered per caller (a ring), >= 1.
	History int
	// Keys is the number of callers remembered; the least recently seen is forgotten, >= 1.
	// Memory is at most Keys*History*D*4 bytes plus small change.
	Keys int
	// Sigma and Mu define the noise that replaces a flagged answer: each value is
	// Mu + Sigma*N(0,1), with Sigma multiplied by the row's RMS value unless Absolute is set.
	// The reference used N(1000, sigma^2), which an attacker spots and drops at once; the
	// default N(0, rms^2) has the scale of a genuine answer and carries no information.
	Sigma, Mu float64
	// Absolute makes Sigma absolute instead of relative to the row's RMS value.
	Absolute bool
	// Center is CenterAuto (subtract the mean of the first Calib representations seen from
	// all callers, frozen afterwards) or CenterNone (raw cosine, as the reference). Ignored
	// when Mean is set.
	Center string
	// Calib is the number of representations averaged for CenterAuto, >= 1.
	Calib int
	// Mean, when not nil, is a fixed centering mean (for example the mean representation of
	// the provider's own data), which an early attacker cannot skew as it can CenterAuto's.
	Mean []float32
	// Seed drives the replacement noise.
	Seed int64
	// Logger, when not nil, receives every decision.
	Logger Logger
}

// DefaultDetectConfig returns the defaults: threshold 0.8, history 1000, 1000 keys, noise
// N(0, rms^2), auto centering over 256 representations.
func DefaultDetectConfig() DetectConfig {
	return DetectConfig{Threshold: 0.8, History: 1000, Keys: 1000, Sigma: 1, Center: CenterAuto, Calib: 256}
}

// DetectStats counts a caller's (or all callers') queries.
type DetectStats struct {
	Queries int64 // rows answered
	Flagged int64 // rows whose answer was replaced by noise
	History int   // representations remembered (0 in Totals)
}

// Detector is the reference's similarity detector, fixed: for each query it compares the
// representation z with the caller's earlier ones - from earlier requests (the reference
// reset its memory every batch) and from earlier rows of the same request - by
// s = (cos(z, z_j)+1)/2, and when max s > Threshold it replaces the answer by noise. The
// memory is bounded per caller (a ring of History vectors, flagged ones included, as in the
// reference) and in callers (least recently used forgotten). Concurrent requests of one
// caller are processed one after the other; of different callers in parallel.
//
// It compares whatever the wrapped encoder returns (the reference compared the projection
// head's output), so it should wrap the raw encoder, before any noise defense.
type Detector struct {
	wrapper
	cfg     DetectConfig
	center  *center
	states  *keyed[detectState]
	logger  atomic.Pointer[Logger]
	queries atomic.Int64
	flagged atomic.Int64
}

type detectState struct {
	mu               sync.Mutex
	d                int // dimension, set by the first request
	ring             []histEntry
	next             int // ring slot to overwrite once full
	queries, flagged int64
}

// histEntry is one remembered representation with its squared norm and its inner product
// with the centering mean of version ver (recomputed when the mean changes).
type histEntry struct {
	z    []float32
	n2   float64
	mdot float64
	ver  uint64
}

// NewDetector wraps next in a similarity detector.
func NewDetector(next infer.Encoder, cfg DetectConfig) (*Detector, error) {
	if next == nil {
		return nil, fmt.Errorf("defense: detect: wrapped encoder is nil")
	}
	switch {
	case !(cfg.Threshold >= 0 && cfg.Threshold <= 1):
		return nil, fmt.Errorf("defense: detect: Threshold must be in [0, 1], found %v", cfg.Threshold)
	case cfg.History < 1:
		return nil, fmt.Errorf("defense: detect: History must be >= 1, found %d", cfg.History)
	case cfg.Keys < 1:
		return nil, fmt.Errorf("defense: detect: Keys must be >= 1, found %d", cfg.Keys)
	case !(cfg.Sigma >= 0) || math.IsInf(cfg.Sigma, 0):
		return nil, fmt.Errorf("defense: detect: Sigma must be finite and >= 0, found %v", cfg.Sigma)
	case math.IsNaN(cfg.Mu) || math.IsInf(cfg.Mu, 0):
		return nil, fmt.Errorf("defense: detect: Mu must be finite, found %v", cfg.Mu)
	case cfg.Mean == nil && cfg.Center != CenterAuto && cfg.Center != CenterNone:
		return nil, fmt.Errorf("defense: detect: Center must be %q or %q, found %q", CenterAuto, CenterNone, cfg.Center)
	case cfg.Mean == nil && cfg.Center == CenterAuto && cfg.Calib < 1:
		return nil, fmt.Errorf("defense: detect: Calib must be >= 1, found %d", cfg.Calib)
	}
	if d := next.Info().OutputDim; cfg.Mean != nil && d > 0 && len(cfg.Mean) != d {
		return nil, fmt.Errorf("defense: detect: Mean has dimension %d, expected the representation dimension %d", len(cfg.Mean), d)
	}
	det := &Detector{
		wrapper: wrapper{next},
		cfg:     cfg,
		center:  newCenter(cfg.Center, cfg.Calib, cfg.Mean),
		states:  newKeyed(cfg.Keys, func() *detectState { return &detectState{} }),
	}
	if cfg.Logger != nil {
		det.SetLogger(cfg.Logger)
	}
	return det, nil
}

func parseDetect(p *params) (Factory, error) {
	c := DefaultDetectConfig()
	var errs [8]error
	c.Threshold, errs[0] = p.float("threshold", 0, 1)
	c.History, errs[1] = p.int("history", 1, math.MaxInt)
	c.Keys, errs[2] = p.int("keys", 1, math.MaxInt)
	c.Sigma, errs[3] = p.float("sigma", 0, math.Inf(1))
	c.Mu, errs[4] = p.float("mu", math.Inf(-1), math.Inf(1))
	var scale string
	scale, errs[5] = p.choice("scale", "rms", "abs")
	c.Absolute = scale == "abs"
	c.Center, errs[6] = p.choice("center", CenterAuto, CenterNone)
	c.Calib, errs[7] = p.int("calib", 1, math.MaxInt)
	if err := firstErr(errs[:]...); err != nil {
		return nil, err
	}
	return func(next infer.Encoder, seed int64) (infer.Encoder, error) {
		c.Seed = seed
		return NewDetector(next, c)
	}, nil
}

// SetLogger replaces the decision logger (nil = none). Safe to call while serving.
func (d *Detector) SetLogger(l Logger) {
	if l == nil {
		d.logger.Store(nil)
		return
	}
	d.logger.Store(&l)
}

// Stats returns the counters of caller key (zero if the key is not, or no longer, tracked).
func (d *Detector) Stats(key string) DetectStats {
	s, ok := d.states.peek(key)
	if !ok {
		return DetectStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return DetectStats{Queries: s.queries, Flagged: s.flagged, History: len(s.ring)}
}

// Totals returns the counters summed over all callers since the detector was made
// (forgotten callers included).
func (d *Detector) Totals() DetectStats {
	return DetectStats{Queries: d.queries.Load(), Flagged: d.flagged.Load()}
}

// Keys returns the number of callers currently remembered.
func (d *Detector) Keys() int { return d.states.len() }

// decision is one row's outcome, logged after the caller's lock is released.
type decision struct {
	row     int
	score   float64
	flagged bool
}

// Encode answers x, replacing the answers of flagged rows by noise.
func (d *Detector) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := encodeNext(ctx, "detect", d.next, x)
	if err != nil || v.N == 0 {
		return v, err
	}
	mean, ver, err := d.center.observe("detect", v)
	if err != nil {
		return infer.Vectors{}, err
	}
	key := KeyFrom(ctx)
	st := d.states.get(key)
	st.mu.Lock()
	if st.d != 0 && st.d != v.D {
		st.mu.Unlock()
		return infer.Vectors{}, fmt.Errorf("defense: detect: caller %q earlier got representations of dimension %d, found %d", key, st.d, v.D)
	}
	st.d = v.D
	c := centering{mean: mean, ver: ver, zc: make([]float32, v.D)}
	for _, m := range mean {
		c.mu2 += float64(m) * float64(m)
	}
	decisions := make([]decision, v.N)
	per := x.C * x.H * x.W
	for i := range v.N {
		z := v.Row(i)
		score := st.score(z, &c)
		flagged := score > d.cfg.Threshold
		decisions[i] = decision{i, score, flagged}
		st.remember(z, &c, d.cfg.History) // the genuine representation, before it is replaced
		st.queries++
		if flagged {
			st.flagged++
			d.perturb(z, key, x.Data[i*per:(i+1)*per])
		}
	}
	st.mu.Unlock()
	d.record(key, decisions)
	return v, nil
}

// centering is one batch's centring mean (nil = none), its version and scratch space.
type centering struct {
	mean []float32
	ver  uint64
	mu2  float64   // |mean|^2
	zc   []float32 // the centred row
}

// score is the highest cosine similarity (mapped to [0, 1]) of z, centred, to the caller's
// history, centred by the same mean; 0 with no history.
func (st *detectState) score(z []float32, c *centering) float64 {
	copy(c.zc, z)
	for j, m := range c.mean {
		c.zc[j] -= m
	}
	var nzc2, zcmu float64
	for _, f := range c.zc {
		nzc2 += float64(f) * float64(f)
	}
	if c.mean != nil {
		zcmu = float64(dot(c.zc, c.mean))
	}
	best := math.Inf(-1)
	for e := range st.ring {
		h := &st.ring[e]
		if h.ver != c.ver {
			h.mdot, h.ver = 0, c.ver
			if c.mean != nil {
				h.mdot = float64(dot(c.mean, h.z))
			}
		}
		den2 := h.n2 - 2*h.mdot + c.mu2
		if den2 <= 0 || nzc2 <= 0 {
			continue
		}
		best = max(best, (float64(dot(c.zc, h.z))-zcmu)/math.Sqrt(nzc2*den2))
	}
	if math.IsInf(best, -1) {
		return 0
	}
	return (min(1, max(-1, best)) + 1) / 2
}

// remember adds z to the caller's history ring of at most history entries.
func (st *detectState) remember(z []float32, c *centering, history int) {
	var h *histEntry
	if len(st.ring) < history {
		st.ring = append(st.ring, histEntry{z: make([]float32, len(z))})
		h = &st.ring[len(st.ring)-1]
	} else {
		h = &st.ring[st.next]
		st.next = (st.next + 1) % history
	}
	copy(h.z, z)
	h.n2, h.ver = 0, c.ver
	for _, f := range z {
		h.n2 += float64(f) * float64(f)
	}
	h.mdot = 0
	if c.mean != nil {
		h.mdot = float64(dot(c.mean, z))
	}
}

// perturb replaces a flagged answer by noise seeded by the detector's seed, the caller and the
// image.
func (d *Detector) perturb(z []float32, key string, image []float32) {
	scale := d.cfg.Sigma
	if !d.cfg.Absolute {
		scale *= rms(z)
	}
	r := rowRNG(d.cfg.Seed, "detect", key, image)
	for j := range z {
		z[j] = float32(d.cfg.Mu + scale*r.NormFloat64())
	}
}

// record counts the batch's decisions and logs them, outside the caller's lock.
func (d *Detector) record(key string, decisions []decision) {
	var nflag int64
	for _, dc := range decisions {
		if dc.flagged {
			nflag++
		}
	}
	d.queries.Add(int64(len(decisions)))
	d.flagged.Add(nflag)
	if l := d.logger.Load(); l != nil {
		for _, dc := range decisions {
			(*l)(key, dc.row, dc.score, dc.flagged)
		}
	}
}

// CenterMean returns the centering mean in use (nil = none) and whether it is final.
func (d *Detector) CenterMean() ([]float32, bool) { return d.center.Mean() }
