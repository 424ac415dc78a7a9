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

// newCalibratedB4B returns a B4B whose centering mean was estimated from 64 images sent by a
// "calibration" caller.
func newCalibratedB4B(t *testing.T, enc infer.Encoder, mutate func(*B4BConfig)) *B4B {
	t.Helper()
	cfg := DefaultB4BConfig()
	cfg.Calib, cfg.Seed = 64, 5
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := NewB4B(enc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustEncode(t, b, asKey("calibration"), noiseImages(200, 64))
	return b
}

func TestB4BCoverageAndNoise(t *testing.T) {
	enc := encoder(t)
	b := newCalibratedB4B(t, enc, nil)
	ctx := context.Background()

	// A legitimate user with a few queries gets nearly clean answers (through its transform).
	legit := noiseImages(1, 10)
	got, err := b.Untransform("legit", mustEncode(t, b, asKey("legit"), legit))
	if err != nil {
		t.Fatal(err)
	}
	lc, ll2, err := Distortion(mustEncode(t, enc, ctx, legit), got)
	if err != nil {
		t.Fatal(err)
	}
	nb, frac := b.Coverage("legit")
	t.Logf("legit user, 10 queries: %d buckets (%.2f%%), sigma %.4f x RMS, cos to clean %.6f, L2 %.4f",
		nb, 100*frac, b.Sigma(frac), lc, ll2)
	if lc < 0.999 {
		t.Errorf("legit user: cos %.6f to the clean (transformed) answer; want >= 0.999", lc)
	}

	// A user repeating 5 images covers at most 5 buckets however long it goes on.
	rep := noiseImages(2, 5)
	for range 40 {
		mustEncode(t, b, asKey("repeat"), rep)
	}
	if n, _ := b.Coverage("repeat"); n > 5 || b.Queries("repeat") != 200 {
		t.Errorf("repeating user: %d buckets after %d queries; want <= 5", n, b.Queries("repeat"))
	}

	// An attacker with diverse queries covers ever more buckets and gets ever more noise
	// (measured in the original coordinates, after undoing its transform). 10 planes (1024
	// buckets) keep the test short.
	b = newCalibratedB4B(t, enc, func(c *B4BConfig) { c.Planes = 10 })
	x := noiseImages(3, 500)
	clean := mustEncode(t, enc, ctx, x)
	lastCov, lastCos := 0.0, 1.0
	for i := 0; i < x.N; i += 100 {
		ans := mustEncode(t, b, asKey("attacker"), slice(x, i, i+100))
		got, _ := b.Untransform("attacker", ans)
		cl := infer.Vectors{N: 100, D: clean.D, Data: clean.Data[i*clean.D : (i+100)*clean.D]}
		c, l2, err := Distortion(cl, got)
		if err != nil {
			t.Fatal(err)
		}
		n, frac := b.Coverage("attacker")
		t.Logf("attacker after %3d queries: %4d buckets (%5.2f%%), sigma %.4f x RMS, batch cos to clean %.4f, L2 %.3f",
			i+100, n, 100*frac, b.Sigma(frac), c, l2)
		if frac <= lastCov {
			t.Errorf("coverage did not grow: %.4f after %.4f", frac, lastCov)
		}
		if c > lastCos+1e-6 && !(b.Sigma(lastCov) == b.cfg.Cap && c < lastCos+0.02) {
			t.Errorf("distortion did not grow: cos %.4f after %.4f", c, lastCos)
		}
		lastCov, lastCos = frac, c
	}
	if lastCos > 0.5 {
		t.Errorf("attacker's final batch still has cos %.4f to the clean answers; want noisy (< 0.5)", lastCos)
	}
	// The counter matches the bitmap.
	st, _ := b.states.peek("attacker")
	if n, _ := b.Coverage("attacker"); popcount(st.bits) != n {
		t.Errorf("coverage counter %d, bitmap %d", n, popcount(st.bits))
	}
}

func TestB4BTransform(t *testing.T) {
	enc := encoder(t)
	b := newCalibratedB4B(t, enc, func(c *B4BConfig) { c.Alpha = 0 }) // transform only
	x := noiseImages(4, 64)
	clean := mustEncode(t, enc, context.Background(), x)

	a1 := mustEncode(t, b, asKey("alice"), x)
	a2 := mustEncode(t, b, asKey("alice"), slice(x, 10, 20))
	bob := mustEncode(t, b, asKey("bob"), x)
	if !slices.Equal(a2.Data, a1.Data[10*a1.D:20*a1.D]) {
		t.Error("one caller's answers to the same images differ between requests")
	}
	ta, _ := b.Transform("alice", clean)
	if _, l2, _ := Distortion(ta, a1); l2 > 1e-5 {
		t.Errorf("alice's answers differ from Transform(alice, clean) by L2 %g", l2)
	}
	back, _ := b.Untransform("alice", a1)
	if c, l2, _ := Distortion(clean, back); c < 0.999999 || l2 > 1e-4 {
		t.Errorf("Untransform(Transform(clean)) differs from clean: cos %v L2 %g", c, l2)
	}
	c, _, _ := Distortion(a1, bob)
	t.Logf("same images, two callers: mean cos between their answers %.4f", c)
	if c > 0.9 {
		t.Errorf("two callers' answers nearly agree (cos %.4f); transforms too similar", c)
	}

	// The transform is a permutation with per-dimension affine maps: each dimension of
	// alice's answers is an affine function of exactly one clean dimension. With paired
	// queries (the documented limit) per-dimension correlation finds that dimension; the
	// permutation is not the identity, so unpaired pooling cannot assume aligned dimensions.
	col := func(v infer.Vectors, j int) []float64 {
		out := make([]float64, v.N)
		for i := range v.N {
			out[i] = float64(v.Row(i)[j])
		}
		return out
	}
	tf := b.makeTransform("alice", clean.D)
	moved, matched := 0, 0
	for j := range clean.D {
		if tf.perm[j] != j {
			moved++
		}
		if slices.Max(col(clean, tf.perm[j])) == slices.Min(col(clean, tf.perm[j])) {
			continue // a constant (dead) clean dimension: nothing to correlate
		}
		if corr(col(a1, j), col(clean, tf.perm[j])) > 0.999999 {
			matched++
		}
	}
	if moved < clean.D*9/10 {
		t.Errorf("permutation moved only %d of %d dimensions", moved, clean.D)
	}
	if matched == 0 {
		t.Error("no dimension is an affine function of its source dimension")
	}
	t.Logf("permutation moves %d of %d dimensions; %d live dimensions recovered exactly from 64 paired queries", moved, clean.D, matched)

	// Another secret gives another transform for the same caller; transform=false none.
	b2, _ := NewB4B(enc, B4BConfig{Planes: 12, Transform: true, Spread: 2, Shift: 1, Keys: 10, Center: CenterNone, Secret: []byte("other")})
	if slices.Equal(b2.makeTransform("alice", 8).perm, b.makeTransform("alice", 8).perm) &&
		slices.Equal(b2.makeTransform("alice", 8).scale, b.makeTransform("alice", 8).scale) {
		t.Error("two secrets gave the same transform")
	}
	off := newCalibratedB4B(t, enc, func(c *B4BConfig) { c.Alpha, c.Transform = 0, false })
	if v := mustEncode(t, off, asKey("alice"), x); !slices.Equal(v.Data, clean.Data) {
		t.Error("alpha=0, transform=false: answers differ from the clean ones")
	}
}

// corr is Pearson's correlation.
func corr(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i] / float64(len(a))
		mb += b[i] / float64(len(b))
	}
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

func TestB4BErrors(t *testing.T) {
	enc := encoder(t)
	tests := []struct {
		name   string
		mutate func(*B4BConfig)
		want   string
	}{
		{"planes", func(c *B4BConfig) { c.Planes = 0 }, "Planes must be in [1, 20], found 0"},
		{"alpha", func(c *B4BConfig) { c.Alpha = -1 }, "Alpha must be finite and >= 0, found -1"},
		{"beta", func(c *B4BConfig) { c.Beta = math.NaN() }, "Beta must be finite and >= 0, found NaN"},
		{"cap", func(c *B4BConfig) { c.Cap = math.Inf(1) }, "Cap must be finite and >= 0, found +Inf"},
		{"spread", func(c *B4BConfig) { c.Spread = 0.5 }, "Spread must be finite and >= 1, found 0.5"},
		{"shift", func(c *B4BConfig) { c.Shift = -2 }, "Shift must be finite and >= 0, found -2"},
		{"keys", func(c *B4BConfig) { c.Keys = 0 }, "Keys must be >= 1, found 0"},
		{"center", func(c *B4BConfig) { c.Center = "pca" }, `Center must be "auto" or "none", found "pca"`},
		{"mean", func(c *B4BConfig) { c.Mean = []float32{1} }, "Mean has dimension 1, expected the representation dimension 512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultB4BConfig()
			tc.mutate(&cfg)
			_, err := NewB4B(enc, cfg)
			wantErr(t, err, "defense: b4b: "+tc.want)
		})
	}
	b, _ := NewB4B(enc, DefaultB4BConfig())
	_, err := b.Transform("k", infer.Vectors{N: 2, D: 3, Data: make([]float32, 5)})
	wantErr(t, err, "Transform: 2 vectors of dimension 3 need 6 values, found 5")
}

func TestB4BConcurrent(t *testing.T) {
	enc := encoder(t)
	b := newCalibratedB4B(t, enc, nil)
	x := noiseImages(5, 32)
	var wg sync.WaitGroup
	results := make([]infer.Vectors, 8)
	errs := make([]error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[g], errs[g] = b.Encode(asKey(fmt.Sprint("u", g%4)), slice(x, 8*(g/4), 8*(g/4)+8))
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Fatal(g, err)
		}
	}
	for k := range 4 {
		if q := b.Queries(fmt.Sprint("u", k)); q != 16 {
			t.Errorf("u%d: %d queries, want 16", k, q)
		}
	}
}
