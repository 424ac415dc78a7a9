package eval

import (
	"math"
	"testing"
)

func TestLinearProbeAccuracy(t *testing.T) {
	fast := DefaultProbeConfig()
	fast.LR = 1e-2
	fast.Epochs = 30
	tests := []struct {
		name        string
		train, test Features
		cfg         ProbeConfig
		lo, hi      float64 // expected test top-1 range
	}{
		{"separable default config", blobs(400, 16, 4, 8, 1), blobs(400, 16, 4, 8, 1), DefaultProbeConfig(), 0.97, 1},
		{"separable not standardized", blobs(400, 16, 4, 8, 2), blobs(400, 16, 4, 8, 2), func() ProbeConfig { c := fast; c.Standardize = false; return c }(), 0.97, 1},
		{"shuffled labels", shuffledLabels(blobs(400, 16, 4, 8, 3), 1), shuffledLabels(blobs(400, 16, 4, 8, 3), 2), fast, 0.1, 0.4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			epochs := 0
			tc.cfg.Progress = func(e int, loss float64) {
				epochs = e
				if math.IsNaN(loss) || loss <= 0 {
					t.Fatalf("epoch %d loss %v: expected a positive number", e, loss)
				}
			}
			r, err := LinearProbe(tc.train, tc.test, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Top1 < tc.lo || r.Top1 > tc.hi {
				t.Errorf("top-1 %.3f: expected within [%.2f, %.2f]", r.Top1, tc.lo, tc.hi)
			}
			if r.Top5 != 1 { // 4 classes: top-5 covers all
				t.Errorf("top-5 %.3f with 4 classes: expected 1", r.Top5)
			}
			if epochs != tc.cfg.Epochs {
				t.Errorf("progress saw %d epochs: expected %d", epochs, tc.cfg.Epochs)
			}
			if len(r.Pred) != tc.test.X.N || len(r.W) != 4*16 || len(r.B) != 4 {
				t.Errorf("result sizes pred %d W %d B %d: expected %d, 64, 4", len(r.Pred), len(r.W), len(r.B), tc.test.X.N)
			}
			hit := 0
			for i, p := range r.Pred {
				if p == tc.test.Y[i] {
					hit++
				}
			}
			if got := float64(hit) / float64(len(r.Pred)); got != r.Top1 {
				t.Errorf("predictions give accuracy %.4f: expected Top1 %.4f", got, r.Top1)
			}
		})
	}
}

// TestLinearProbeTop5 checks top-5 against top-1 with more than 5 classes on an overlapping problem.
func TestLinearProbeTop5(t *testing.T) {
	cfg := DefaultProbeConfig()
	cfg.Epochs, cfg.LR = 20, 1e-2
	r, err := LinearProbe(blobs(600, 8, 12, 1.5, 4), blobs(600, 8, 12, 1.5, 4), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Top5 > r.Top1 && r.Top5 < 1 && r.Top1 > 1.0/12) {
		t.Errorf("top-1 %.3f top-5 %.3f on 12 overlapping classes: expected chance < top-1 < top-5 < 1", r.Top1, r.Top5)
	}
}

func TestLinearProbeDeterministic(t *testing.T) {
	cfg := DefaultProbeConfig()
	cfg.Epochs = 3
	tr, te := blobs(300, 8, 3, 2, 5), blobs(100, 8, 3, 2, 5)
	a, err := LinearProbe(tr, te, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LinearProbe(tr, te, cfg)
	cfg.Seed = 99
	c, _ := LinearProbe(tr, te, cfg)
	same, differ := true, false
	for i := range a.W {
		same = same && a.W[i] == b.W[i]
		differ = differ || a.W[i] != c.W[i]
	}
	if !same || !differ {
		t.Errorf("same seed gives same weights: %v (expected true); another seed changes them: %v (expected true)", same, differ)
	}
}

func TestLinearProbeErrors(t *testing.T) {
	good := blobs(20, 4, 2, 3, 1)
	bad := func(f func(*Features)) Features {
		g := good
		g.X.Data = append([]float32(nil), good.X.Data...)
		g.Y = append([]int(nil), good.Y...)
		f(&g)
		return g
	}
	cfg := DefaultProbeConfig()
	with := func(f func(*ProbeConfig)) ProbeConfig { c := cfg; f(&c); return c }
	tests := []struct {
		name        string
		train, test Features
		cfg         ProbeConfig
		want        []string
	}{
		{"zero config", good, good, ProbeConfig{}, []string{"learning rate 0", "expected a finite value > 0"}},
		{"NaN lr", good, good, with(func(c *ProbeConfig) { c.LR = math.NaN() }), []string{"learning rate NaN"}},
		{"negative wd", good, good, with(func(c *ProbeConfig) { c.WeightDecay = -1 }), []string{"weight decay -1", ">= 0"}},
		{"no epochs", good, good, with(func(c *ProbeConfig) { c.Epochs = 0 }), []string{"epochs 0", ">= 1"}},
		{"no batch", good, good, with(func(c *ProbeConfig) { c.Batch = 0 }), []string{"batch 0", ">= 1"}},
		{"empty", Features{Classes: 2}, good, cfg, []string{"train features are 0 x 0", "at least one row"}},
		{"short data", bad(func(f *Features) { f.X.Data = f.X.Data[:5] }), good, cfg, []string{"hold 5 values", "expected N*D = 20*4 = 80"}},
		{"missing labels", bad(func(f *Features) { f.Y = f.Y[:3] }), good, cfg, []string{"3 labels", "one per row, 20"}},
		{"label out of range", good, bad(func(f *Features) { f.Y[7] = 2 }), cfg, []string{"test", "label 2 of row 7", "0..1"}},
		{"negative label", bad(func(f *Features) { f.Y[0] = -1 }), good, cfg, []string{"label -1 of row 0"}},
		{"NaN feature", bad(func(f *Features) { f.X.Data[9] = float32(math.NaN()) }), good, cfg, []string{"feature 1 of row 2 is NaN", "finite"}},
		{"no classes", bad(func(f *Features) { f.Classes = 0 }), good, cfg, []string{"0 classes"}},
		{"dimension mismatch", good, blobs(20, 5, 2, 3, 1), cfg, []string{"dimension 5", "train dimension 4"}},
		{"class mismatch", good, bad(func(f *Features) { f.Classes = 3 }), cfg, []string{"3 classes", "train's 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LinearProbe(tc.train, tc.test, tc.cfg)
			wantErr(t, err, tc.want...)
		})
	}
}

// TestLinearProbeSpeed measures the reference-sized probe (10000 x 512, 10 classes,
// 100 epochs) unless -short.
// BenchmarkLinearProbe measures the probe at the reference size: 10000 x 512 features,
// 10 classes, 100 epochs.
func BenchmarkLinearProbe(b *testing.B) {
	tr, te := blobs(10000, 512, 10, 3, 9), blobs(2000, 512, 10, 3, 9)
	b.ResetTimer()
	for range b.N {
		r, err := LinearProbe(tr, te, DefaultProbeConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Top1, "top1")
	}
}

func TestStandardizer(t *testing.T) {
	// Column 0: values 1,3 (mean 2, population sd 1); column 1 constant 5.
	x := []float32{1, 5, 3, 5}
	mean, inv := standardizer(x, 2, 2)
	got := applyStandardizer(x, mean, inv)
	want := []float32{-1, 0, 1, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("standardised %v: expected %v", got, want)
		}
	}
}
