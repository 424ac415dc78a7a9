package defense

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// newCalibratedDetector returns a detector whose auto-centering mean was estimated from 64
// distinct images sent by a "calibration" caller.
func newCalibratedDetector(t testing.TB, enc infer.Encoder, mutate func(*DetectConfig)) *Detector {
	t.Helper()
	cfg := DefaultDetectConfig()
	cfg.Calib = 64
	cfg.Seed = 3
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := NewDetector(enc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustEncode(t, d, asKey("calibration"), noiseImages(100, 64))
	if _, final := d.CenterMean(); !final && cfg.Center == CenterAuto && cfg.Mean == nil {
		t.Fatal("centering not final after Calib rows")
	}
	return d
}

// flags returns which rows of an answer were flagged, judged by the logger.
func flagsOf(decisions []decision) []bool {
	out := make([]bool, len(decisions))
	for i, d := range decisions {
		out[i] = d.flagged
	}
	return out
}

type recorder struct {
	mu  sync.Mutex
	log map[string][]decision
}

func (r *recorder) logger(key string, row int, score float64, flagged bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log[key] = append(r.log[key], decision{row, score, flagged})
}

// take returns and clears key's decisions.
func (r *recorder) take(key string) []decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.log[key]
	delete(r.log, key)
	return d
}

func TestDetectorHistoryAcrossRequests(t *testing.T) {
	enc := encoder(t)
	rec := &recorder{log: map[string][]decision{}}
	d := newCalibratedDetector(t, enc, func(c *DetectConfig) { c.Logger = rec.logger })
	a := noiseImages(1, 16)
	clean := mustEncode(t, enc, context.Background(), a)

	// First request of distinct images: nothing flagged, answers exactly clean.
	v := mustEncode(t, d, asKey("alice"), a)
	first := rec.take("alice")
	if slices.Contains(flagsOf(first), true) {
		t.Fatalf("distinct images flagged: %+v", first)
	}
	if !slices.Equal(v.Data, clean.Data) {
		t.Fatal("unflagged answers differ from the clean representations")
	}

	// A later request with near-duplicates (pixel noise 0.02): all flagged, answers replaced.
	dup := jitter(a, 0.02, 9)
	v = mustEncode(t, d, asKey("alice"), dup)
	second := rec.take("alice")
	for i, dc := range second {
		if !dc.flagged {
			t.Errorf("near-duplicate row %d not flagged (score %.4f)", i, dc.score)
		}
		if c := cos(v.Row(i), clean.Row(i)); math.Abs(c) > 0.3 {
			t.Errorf("flagged row %d still has cos %.3f with the clean answer", i, c)
		}
		// The replacement has the scale of a genuine answer (sigma=1 x row RMS, mu=0).
		if r, want := rms(v.Row(i)), rms(clean.Row(i)); math.Abs(r/want-1) > 0.15 {
			t.Errorf("flagged row %d: RMS %.4f, genuine %.4f", i, r, want)
		}
	}
	minDup := 1.0
	for _, dc := range second {
		minDup = min(minDup, dc.score)
	}
	maxFirst := 0.0
	for _, dc := range first {
		maxFirst = max(maxFirst, dc.score)
	}
	t.Logf("scores: distinct images max %.4f, near-duplicates min %.4f (threshold 0.8)", maxFirst, minDup)

	// Another caller asking the same near-duplicates is not affected by alice's history.
	mustEncode(t, d, asKey("carol"), dup)
	if f := flagsOf(rec.take("carol")); slices.Contains(f, true) {
		t.Errorf("carol flagged because of alice's history: %v", f)
	}
	if s := d.Stats("alice"); s != (DetectStats{Queries: 32, Flagged: 16, History: 32}) {
		t.Errorf("Stats(alice) = %+v", s)
	}
	if s := d.Totals(); s.Queries != 64+32+16 || s.Flagged != 16 {
		t.Errorf("Totals() = %+v", s)
	}
}

func TestDetectorWithinBatch(t *testing.T) {
	enc := encoder(t)
	rec := &recorder{log: map[string][]decision{}}
	d := newCalibratedDetector(t, enc, func(c *DetectConfig) { c.Logger = rec.logger })
	b := noiseImages(2, 12)
	mustEncode(t, d, asKey("bob"), concat(b, jitter(b, 0.02, 4)))
	got := flagsOf(rec.take("bob"))
	want := append(slices.Repeat([]bool{false}, 12), slices.Repeat([]bool{true}, 12)...)
	if !slices.Equal(got, want) {
		t.Errorf("flags = %v\nwant    %v", got, want)
	}
}

// TestDetectorFalsePositives measures how often distinct images of one caller are flagged,
// with centering (the default) and without (the reference's raw cosine).
func TestDetectorFalsePositives(t *testing.T) {
	enc := encoder(t)
	x := noiseImages(3, 200)
	for _, tc := range []struct {
		center  string
		maxRate float64
		minRate float64
	}{
		{CenterAuto, 0.05, 0},
		{CenterNone, 1, 0.95}, // raw post-ReLU cosines are all high: nearly everything flagged
	} {
		d := newCalibratedDetector(t, enc, func(c *DetectConfig) { c.Center = tc.center })
		for i := 0; i < x.N; i += 50 {
			mustEncode(t, d, asKey("user"), slice(x, i, i+50))
		}
		s := d.Stats("user")
		rate := float64(s.Flagged) / float64(s.Queries)
		t.Logf("center=%s: %d of %d distinct images flagged (%.1f%%)", tc.center, s.Flagged, s.Queries, 100*rate)
		if rate > tc.maxRate || rate < tc.minRate {
			t.Errorf("center=%s: flag rate %.3f outside [%v, %v]", tc.center, rate, tc.minRate, tc.maxRate)
		}
	}
}

func TestDetectorBounds(t *testing.T) {
	enc := encoder(t)
	rec := &recorder{log: map[string][]decision{}}
	d := newCalibratedDetector(t, enc, func(c *DetectConfig) { c.History, c.Keys, c.Logger = 4, 3, rec.logger })
	x := noiseImages(4, 8)
	for i := range 8 {
		mustEncode(t, d, asKey("k"), slice(x, i, i+1))
	}
	if h := d.Stats("k").History; h != 4 {
		t.Errorf("History = %d, want 4 (the ring size)", h)
	}
	rec.take("k")
	mustEncode(t, d, asKey("k"), jitter(slice(x, 0, 1), 0.02, 1)) // image 0 was forgotten
	mustEncode(t, d, asKey("k"), jitter(slice(x, 7, 8), 0.02, 1)) // image 7 is remembered
	if got := flagsOf(rec.take("k")); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("flags of (forgotten, remembered) duplicates = %v, want [false true]", got)
	}
	// Keys=3: "calibration" and "k" are tracked; two more callers evict the least recent.
	mustEncode(t, d, asKey("p"), slice(x, 0, 1))
	mustEncode(t, d, asKey("q"), slice(x, 0, 1))
	if d.Keys() != 3 {
		t.Errorf("Keys() = %d, want 3", d.Keys())
	}
	if s := d.Stats("calibration"); s != (DetectStats{}) {
		t.Errorf("least recent caller still tracked: %+v", s)
	}
	if s := d.Stats("q"); s.Queries != 1 {
		t.Errorf("Stats(q) = %+v", s)
	}
}

func TestDetectorReferenceNoise(t *testing.T) {
	enc := encoder(t)
	f, err := Parse("detect:threshold=0.8,mu=1000,sigma=0.5,scale=abs,calib=64")
	if err != nil {
		t.Fatal(err)
	}
	e, err := f(enc, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustEncode(t, e, asKey("calibration"), noiseImages(100, 64))
	x := noiseImages(5, 4)
	v := mustEncode(t, e, asKey("a"), concat(x, x))
	for i := 4; i < 8; i++ {
		r := v.Row(i)
		var mean float64
		for _, f := range r {
			mean += float64(f) / float64(len(r))
		}
		if math.Abs(mean-1000) > 0.2 {
			t.Errorf("row %d: replacement mean %.3f, want about 1000", i, mean)
		}
	}
}

func TestDetectorErrors(t *testing.T) {
	enc := encoder(t)
	tests := []struct {
		name   string
		mutate func(*DetectConfig)
		want   string
	}{
		{"threshold", func(c *DetectConfig) { c.Threshold = -0.1 }, "Threshold must be in [0, 1], found -0.1"},
		{"history", func(c *DetectConfig) { c.History = 0 }, "History must be >= 1, found 0"},
		{"keys", func(c *DetectConfig) { c.Keys = 0 }, "Keys must be >= 1, found 0"},
		{"sigma", func(c *DetectConfig) { c.Sigma = math.Inf(1) }, "Sigma must be finite and >= 0, found +Inf"},
		{"center", func(c *DetectConfig) { c.Center = "" }, `Center must be "auto" or "none", found ""`},
		{"calib", func(c *DetectConfig) { c.Calib = 0 }, "Calib must be >= 1, found 0"},
		{"mean", func(c *DetectConfig) { c.Mean = make([]float32, 10) }, "Mean has dimension 10, expected the representation dimension 512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultDetectConfig()
			tc.mutate(&cfg)
			_, err := NewDetector(enc, cfg)
			wantErr(t, err, "defense: detect: "+tc.want)
		})
	}
	// A representation dimension that changes for a caller is an error, not a panic.
	tr, _ := NewTruncate(enc, 64)
	d, _ := NewDetector(dimSwitch{enc, tr}, DefaultDetectConfig())
	mustEncode(t, d, asKey("z"), noiseImages(1, 2))
	_, err := d.Encode(WithKey(context.WithValue(context.Background(), switchKey{}, true), "z"), noiseImages(1, 2))
	wantErr(t, err, "centering mean has dimension 512, found representations of dimension 64")
}

type switchKey struct{}

// dimSwitch answers with b instead of a when the context asks for it.
type dimSwitch struct{ a, b infer.Encoder }

func (s dimSwitch) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	if ctx.Value(switchKey{}) != nil {
		return s.b.Encode(ctx, x)
	}
	return s.a.Encode(ctx, x)
}
func (s dimSwitch) Info() infer.Info { return s.a.Info() }
func (s dimSwitch) Close() error     { return nil }

// TestDetectorConcurrent runs callers in parallel (run with -race to check locking): each
// caller's counters must add up and repeats within a caller must be flagged.
func TestDetectorConcurrent(t *testing.T) {
	enc := encoder(t)
	d := newCalibratedDetector(t, enc, nil)
	x := noiseImages(6, 8)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 4 {
		for rep := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := d.Encode(asKey(fmt.Sprint("user", g)), jitter(x, 0.01, uint64(rep))); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range 4 {
		s := d.Stats(fmt.Sprint("user", g))
		if s.Queries != 16 || s.Flagged != 8 {
			t.Errorf("user%d: %+v; want 16 queries, the 8 of the second request flagged", g, s)
		}
	}
}

// TestDetectorOverhead measures the detector's cost per query with a full history of 1000,
// against the encoder's own cost.
// BenchmarkDetectorOverhead times a 64-image request of a key whose history is full (1000 x
// 512-d) through the detector; BenchmarkDetectorRawEncoder is the same request without it.
func BenchmarkDetectorOverhead(b *testing.B) {
	enc := encoder(b)
	d := newCalibratedDetector(b, enc, nil)
	x := noiseImages(7, 250)
	for range 4 {
		mustEncode(b, d, asKey("heavy"), slice(x, 0, 250))
	}
	if h := d.Stats("heavy").History; h != 1000 {
		b.Fatalf("history %d, want 1000", h)
	}
	benchEncode(b, d, noiseImages(8, 64))
}

func BenchmarkDetectorRawEncoder(b *testing.B) { benchEncode(b, encoder(b), noiseImages(8, 64)) }

func benchEncode(b *testing.B, e infer.Encoder, q infer.Images) {
	ctx := asKey("heavy")
	b.ResetTimer()
	for b.Loop() {
		mustEncode(b, e, ctx, q)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*q.N), "us/query")
}
