package defense

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// syntheticQueries imitates a synthetic-sample extraction attack (JbDA-style, the attacks
// PRADA was built against): a few seed images, each followed by a chain of small random
// perturbation steps, so most queries lie very close to an earlier one.
func syntheticQueries(seed uint64, seeds, steps int) infer.Images {
	r := rand.New(rand.NewPCG(seed, 0xa77ac))
	base := patterns(seed, seeds)
	per := 3 * 32 * 32
	x := infer.Images{N: seeds * (steps + 1), C: 3, H: 32, W: 32}
	for s := range seeds {
		cur := slices.Clone(base.Data[s*per : (s+1)*per])
		x.Data = append(x.Data, cur...)
		for range steps {
			eps := float32(0.005 + 0.02*r.Float64())
			for j := range cur {
				if r.IntN(2) == 0 {
					cur[j] += eps
				} else {
					cur[j] -= eps
				}
			}
			x.Data = append(x.Data, cur...)
		}
	}
	return x
}

func TestPRADABenignVersusSynthetic(t *testing.T) {
	base := encoder(t)
	enc := base.(noClose)
	rec := &recorder{log: map[string][]decision{}}
	cfg := DefaultPRADAConfig()
	cfg.Logger = rec.logger
	p, err := NewPRADA(enc, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// A benign caller with varied natural-like images is never blocked.
	benign := patterns(21, 300)
	for i := 0; i < benign.N; i += 50 {
		if _, err := p.Encode(asKey("benign"), slice(benign, i, i+50)); err != nil {
			t.Fatalf("benign request %d: %v", i/50, err)
		}
	}
	sb := p.Stats("benign")
	if sb.Blocked || !sb.Tested || sb.Distances != 299 {
		t.Fatalf("benign caller: %+v", sb)
	}
	t.Logf("benign caller: W=%.4f p=%.3g over %d distances, growing set %d", sb.W, sb.P, sb.Distances, sb.GrowingSet)

	// The synthetic attacker is blocked once it has Min distances; the blocking request
	// fails with ErrBlocked, and later ones fail before reaching the encoder.
	attack := syntheticQueries(22, 6, 15) // 96 queries
	before := enc.images.Load()
	var blockedAt int = -1
	for i := 0; i < attack.N; i += 16 {
		_, err := p.Encode(asKey("attacker"), slice(attack, i, i+16))
		if err != nil {
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("attacker request %d: %v; want ErrBlocked", i/16, err)
			}
			wantErr(t, err, `defense: prada: caller "attacker"`, "Shapiro-Wilk W=", "< delta=0.9000")
			blockedAt = i + 16
			break
		}
	}
	sa := p.Stats("attacker")
	if blockedAt < 0 || !sa.Blocked || !p.Blocked("attacker") {
		t.Fatalf("synthetic attacker not blocked: %+v", sa)
	}
	t.Logf("synthetic attacker blocked after %d queries: W=%.4f p=%.3g over %d distances", blockedAt, sa.W, sa.P, sa.Distances)
	reached := enc.images.Load() - before
	if _, err := p.Encode(asKey("attacker"), slice(attack, 0, 4)); !errors.Is(err, ErrBlocked) {
		t.Fatalf("blocked caller answered: %v", err)
	}
	if got := enc.images.Load() - before; got != reached {
		t.Errorf("a blocked request reached the encoder (%d images)", got-reached)
	}
	if got := p.Stats("attacker").Queries; got != int64(blockedAt+4) {
		t.Errorf("attacker queries = %d, want %d", got, blockedAt+4)
	}
	if _, err := p.Encode(asKey("benign"), slice(benign, 0, 2)); err != nil {
		t.Errorf("benign caller affected by the attacker's block: %v", err)
	}

	// Decisions were logged: one per test, the last of the attacker flagged.
	logs := rec.take("attacker")
	if len(logs) == 0 || !logs[len(logs)-1].flagged || logs[len(logs)-1].row != sa.Distances {
		t.Errorf("attacker's logged tests: %+v", logs)
	}

	// Unblock lifts the block and the history.
	p.Unblock("attacker")
	if p.Blocked("attacker") {
		t.Fatal("still blocked after Unblock")
	}
	if _, err := p.Encode(asKey("attacker"), slice(attack, 0, 4)); err != nil {
		t.Fatalf("after Unblock: %v", err)
	}
	if s := p.Stats("attacker"); s.Queries != 4 || s.Blocked {
		t.Errorf("after Unblock: %+v", s)
	}
}

// TestPRADAGrowingSet checks the distance bookkeeping on hand-computed 2-D points.
func TestPRADAGrowingSet(t *testing.T) {
	cfg := PRADAConfig{Delta: 0.9, Min: 3, Set: 3, Window: 4, Keys: 1}
	var s pradaState
	points := [][]float32{{0, 0}, {3, 4}, {3, 4.5}, {10, 0}, {0, 20}, {0, 0.1}}
	for _, p := range points {
		s.add(p, cfg)
	}
	// Distances: (3,4)->5; (3,4.5)->0.5 (threshold mean 5 - std 0 = 5: not added);
	// (10,0)->min(10, sqrt(49+16)=8.062)=8.062 (threshold mean 2.75 - std 2.25 = 0.5: added);
	// (0,20)->min(20, sqrt(9+256)=16.279, sqrt(100+400)=22.36)=16.279 (added; the set of 3
	// is full, so (0,0) is overwritten);
	// (0,0.1)->min(|(3,3.9)|=4.920, |(10,-0.1)|=10.0005, 19.9)=4.920.
	want := []float64{4.9204, 0.5, 8.0623, 16.2788} // ring of 4: the 5th distance overwrote slot 0
	if len(s.dist) != 4 {
		t.Fatalf("%d distances, want 4", len(s.dist))
	}
	got := slices.Clone(s.dist)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-3 {
			t.Fatalf("distances %v, want %v", got, want)
		}
	}
	if len(s.set) != 3 || s.set[0][1] != 20 {
		t.Errorf("growing set %v; want (0,20), (3,4), (10,0)", s.set)
	}
}

func TestPRADAErrors(t *testing.T) {
	enc := encoder(t)
	tests := []struct {
		name   string
		mutate func(*PRADAConfig)
		want   string
	}{
		{"delta", func(c *PRADAConfig) { c.Delta = 1.5 }, "Delta must be in [0, 1], found 1.5"},
		{"min", func(c *PRADAConfig) { c.Min = 2 }, "Min must be in [3, 5000], found 2"},
		{"set", func(c *PRADAConfig) { c.Set = 0 }, "Set must be >= 1, found 0"},
		{"window", func(c *PRADAConfig) { c.Window = 10 }, "Window must be in [Min=50, 5000], found 10"},
		{"keys", func(c *PRADAConfig) { c.Keys = 0 }, "Keys must be >= 1, found 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultPRADAConfig()
			tc.mutate(&cfg)
			_, err := NewPRADA(enc, cfg)
			wantErr(t, err, "defense: prada: "+tc.want)
		})
	}
	p, _ := NewPRADA(enc, DefaultPRADAConfig())
	_, err := p.Encode(context.Background(), infer.Images{N: 1, C: 3, H: 32, W: 32, Data: make([]float32, 7)})
	wantErr(t, err, "defense: prada: infer: images: len(Data) = 7")
	mustEncode(t, p, asKey("a"), patterns(1, 2))
	_, err = p.Encode(asKey("a"), infer.Images{N: 1, C: 3, H: 16, W: 16, Data: make([]float32, 3*16*16)})
	wantErr(t, err, `caller "a" earlier sent images of 3072 values, found 3x16x16 = 768`)
}

// TestPRADARepeatedImage: a caller repeating one image has all distances 0, which
// Shapiro-Wilk cannot test; it is not blocked on that account.
func TestPRADARepeatedImage(t *testing.T) {
	enc := encoder(t)
	cfg := DefaultPRADAConfig()
	cfg.Min = 10
	p, _ := NewPRADA(enc, cfg)
	one := patterns(3, 1)
	x := concat(slices.Repeat([]infer.Images{one}, 20)...)
	if _, err := p.Encode(asKey("r"), x); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats("r"); s.Blocked || s.Tested || s.Distances != 19 {
		t.Errorf("Stats = %+v; want 19 distances, untested, not blocked", s)
	}
}

// TestPRADAOverhead measures PRADA's bookkeeping per query (nearest-neighbour search over a
// full growing set of 3x32x32 images) and per Shapiro-Wilk test on 5000 distances.
// BenchmarkPRADAAdd times adding one 3x32x32 query to a growing set of 256 and of 1000.
func BenchmarkPRADAAdd(b *testing.B) {
	x := noiseImages(9, 1100)
	per := 3 * 32 * 32
	for _, size := range []int{256, 1000} {
		b.Run(fmt.Sprintf("set%d", size), func(b *testing.B) {
			cfg := DefaultPRADAConfig()
			cfg.Set = size
			var s pradaState
			for i := range size {
				s.set = append(s.set, slices.Clone(x.Data[i*per:(i+1)*per]))
			}
			s.dist, s.count, s.sum, s.sum2 = []float64{1}, 1, 1, 1
			i := 0
			for b.Loop() {
				s.add(x.Data[(1000+i%100)*per:(1001+i%100)*per], cfg)
				i++
			}
		})
	}
}

// BenchmarkShapiroWilk5000 times one test on 5000 distances (coefficients cached).
func BenchmarkShapiroWilk5000(b *testing.B) {
	d := make([]float64, 5000)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range d {
		d[i] = r.NormFloat64()
	}
	for b.Loop() {
		if _, _, err := ShapiroWilk(d); err != nil {
			b.Fatal(err)
		}
	}
}
