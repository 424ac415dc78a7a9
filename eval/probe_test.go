package eval

import (
	"math"
	"strings"
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
		{"separable sgd simsiam config", blobs(400, 16, 4, 8, 6), blobs(400, 16, 4, 8, 6), SGDProbeConfig(), 0.97, 1},
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
		{"unknown optimizer", good, good, with(func(c *ProbeConfig) { c.Optimizer = "lars" }), []string{`probe optimizer "lars"`, "expected adam or sgd"}},
		{"optimizer case", good, good, with(func(c *ProbeConfig) { c.Optimizer = "SGD" }), []string{`probe optimizer "SGD"`, "expected adam or sgd"}},
		{"unknown schedule", good, good, with(func(c *ProbeConfig) { c.Schedule = "step" }), []string{`probe schedule "step"`, "expected constant or cosine"}},
		{"sgd unknown schedule", good, good, func() ProbeConfig { c := SGDProbeConfig(); c.Schedule = "linear"; return c }(), []string{`probe schedule "linear"`, "constant or cosine"}},
		{"momentum 1", good, good, func() ProbeConfig { c := SGDProbeConfig(); c.Momentum = 1; return c }(), []string{"probe momentum 1", "[0, 1)"}},
		{"negative momentum", good, good, func() ProbeConfig { c := SGDProbeConfig(); c.Momentum = -0.1; return c }(), []string{"probe momentum -0.1", "[0, 1)"}},
		{"NaN momentum", good, good, func() ProbeConfig { c := SGDProbeConfig(); c.Momentum = math.NaN(); return c }(), []string{"probe momentum NaN"}},
		{"momentum with adam", good, good, with(func(c *ProbeConfig) { c.Momentum = 0.9 }), []string{"probe momentum 0.9 with optimizer adam", "sgd setting"}},
		{"negative init std", good, good, func() ProbeConfig { c := SGDProbeConfig(); c.InitStd = -1; return c }(), []string{"initial weight std -1", ">= 0"}},
		{"infinite init std", good, good, with(func(c *ProbeConfig) { c.InitStd = math.Inf(1) }), []string{"initial weight std +Inf"}},
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

func TestProbeConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name                string
		cfg                 ProbeConfig
		optimizer, schedule string
	}{
		{"default", DefaultProbeConfig(), OptimizerAdam, ScheduleConstant},
		{"sgd config", SGDProbeConfig(), OptimizerSGD, ScheduleCosine},
		{"empty", ProbeConfig{}, OptimizerAdam, ScheduleConstant},
		{"sgd, empty schedule", ProbeConfig{Optimizer: OptimizerSGD}, OptimizerSGD, ScheduleCosine},
		{"adam, cosine", ProbeConfig{Schedule: ScheduleCosine}, OptimizerAdam, ScheduleCosine},
		{"sgd, constant", ProbeConfig{Optimizer: OptimizerSGD, Schedule: ScheduleConstant}, OptimizerSGD, ScheduleConstant},
	} {
		r := tc.cfg.Resolved()
		if r.Optimizer != tc.optimizer || r.Schedule != tc.schedule {
			t.Errorf("%s: resolves to optimizer %q schedule %q: expected %q, %q", tc.name, r.Optimizer, r.Schedule, tc.optimizer, tc.schedule)
		}
	}
	want := ProbeConfig{Optimizer: "sgd", Schedule: "cosine", LR: 0.1, Momentum: 0.9, WeightDecay: 0, Epochs: 90, Batch: 256, InitStd: 0.01}
	got := SGDProbeConfig()
	if got.Optimizer != want.Optimizer || got.Schedule != want.Schedule || got.LR != want.LR || got.Momentum != want.Momentum ||
		got.WeightDecay != want.WeightDecay || got.Epochs != want.Epochs || got.Batch != want.Batch || got.InitStd != want.InitStd ||
		got.Standardize {
		t.Errorf("SGDProbeConfig() = %+v: expected %+v (SimSiam's linear evaluation, raw features)", got, want)
	}
	if got.LR != SGDProbeBaseLR*float64(got.Batch)/256 {
		t.Errorf("SGDProbeConfig lr %v: expected base lr %v x batch %d / 256", got.LR, SGDProbeBaseLR, got.Batch)
	}
	for _, c := range []ProbeConfig{got, DefaultProbeConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestProbeSchedule(t *testing.T) {
	cos := ProbeConfig{Optimizer: OptimizerSGD, LR: 0.4, Epochs: 4} // schedule "" = cosine
	// lr * 0.5 * (1 + cos(pi * e / 4)) for e = 0..3, set at the start of epochs 1..4.
	want := []float64{0.4, 0.2 * (1 + math.Sqrt2/2), 0.2, 0.2 * (1 - math.Sqrt2/2)}
	for i, w := range want {
		if got := cos.epochLR(i + 1); math.Abs(got-w) > 1e-15 {
			t.Errorf("cosine lr of epoch %d of 4: %v, expected %v", i+1, got, w)
		}
	}
	constant := DefaultProbeConfig()
	for _, e := range []int{1, 50, 100} {
		if got := constant.epochLR(e); got != constant.LR {
			t.Errorf("constant lr of epoch %d: %v, expected %v", e, got, constant.LR)
		}
	}
}

func TestProbeInit(t *testing.T) {
	cfg := SGDProbeConfig()
	const n = 20001 // odd: the last value comes from half a Box-Muller pair
	w := probeInit(n, cfg)
	mean, sq := 0.0, 0.0
	for _, v := range w {
		mean += v
		sq += v * v
	}
	mean /= n
	sd := math.Sqrt(sq/n - mean*mean)
	if math.Abs(mean) > 4*cfg.InitStd/math.Sqrt(n) || math.Abs(sd-cfg.InitStd) > 0.03*cfg.InitStd || w[n-1] == 0 {
		t.Errorf("initial weights mean %.2e sd %.5f (last %v): expected mean 0 and sd %v", mean, sd, w[n-1], cfg.InitStd)
	}
	again := probeInit(n, cfg)
	cfg.Seed++
	other := probeInit(n, cfg)
	same, differ := true, false
	for i := range w {
		same = same && w[i] == again[i]
		differ = differ || w[i] != other[i]
	}
	if !same || !differ {
		t.Errorf("same seed gives same initial weights: %v (expected true); another seed changes them: %v (expected true)", same, differ)
	}
	for _, v := range probeInit(10, DefaultProbeConfig()) {
		if v != 0 {
			t.Fatalf("initial weights with InitStd 0: %v, expected zeros", v)
		}
	}
}

// TestReportPrintProbeSettings checks that the table's header line names the probe's
// optimizer and schedule (resolved when empty).
func TestReportPrintProbeSettings(t *testing.T) {
	for _, tc := range []struct {
		probe ProbeConfig
		want  string
	}{
		{DefaultProbeConfig(), "probe adam constant lr 0.0003, 100 epochs wd 0.0008 batch 256 standardize true;"},
		{ProbeConfig{LR: 1e-3, Epochs: 5, Batch: 64}, "probe adam constant lr 0.001, 5 epochs wd 0 batch 64 standardize false;"},
		{SGDProbeConfig(), "probe sgd momentum 0.9 cosine lr 0.1, 90 epochs wd 0 batch 256 init std 0.01 standardize false;"},
		{ProbeConfig{Optimizer: OptimizerSGD, LR: 0.2, Epochs: 3, Batch: 32, Schedule: ScheduleConstant}, "probe sgd momentum 0 constant lr 0.2, 3 epochs"},
	} {
		var b strings.Builder
		r := Report{Dataset: "cifar10", TrainN: 10, TestN: 5, Classes: 2, Probe: tc.probe, KNNK: 20, KNNTemperature: 0.1}
		if err := r.Print(&b); err != nil {
			t.Fatal(err)
		}
		if head, _, _ := strings.Cut(b.String(), "\n"); !strings.Contains(head, tc.want) {
			t.Errorf("header %q: expected it to contain %q", head, tc.want)
		}
	}
}
