package augment

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestBlurKernel(t *testing.T) {
	for _, c := range []struct{ size, want int }{{1, 1}, {19, 1}, {20, 3}, {28, 3}, {32, 3}, {39, 3}, {40, 5}, {96, 9}, {224, 23}} {
		if got := BlurKernel(c.size); got != c.want {
			t.Errorf("BlurKernel(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := SimCLR(32).Validate(); err != nil {
		t.Fatalf("SimCLR(32) invalid: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"zero size", func(p *Params) { p.Size = 0 }, "Size"},
		{"scale order", func(p *Params) { p.ScaleMin, p.ScaleMax = 0.9, 0.1 }, "scale"},
		{"zero scale", func(p *Params) { p.ScaleMin = 0 }, "scale"},
		{"NaN ratio", func(p *Params) { p.RatioMax = math.NaN() }, "ratio"},
		{"flip prob", func(p *Params) { p.FlipP = 1.5 }, "FlipP"},
		{"jitter prob", func(p *Params) { p.JitterP = -0.1 }, "JitterP"},
		{"gray prob NaN", func(p *Params) { p.GrayP = math.NaN() }, "GrayP"},
		{"negative brightness", func(p *Params) { p.Brightness = -1 }, "Brightness"},
		{"infinite contrast", func(p *Params) { p.Contrast = math.Inf(1) }, "Contrast"},
		{"hue too large", func(p *Params) { p.Hue = 0.6 }, "Hue"},
		{"sigma", func(p *Params) { p.SigmaMin = 0 }, "sigma"},
		{"mean without std", func(p *Params) { p.Mean = []float32{0, 0, 0} }, "Mean"},
		{"short mean", func(p *Params) { p.Mean, p.Std = []float32{0}, []float32{1} }, "Mean/Std"},
		{"zero std", func(p *Params) { p.Mean, p.Std = []float32{0, 0, 0}, []float32{1, 0, 1} }, "std"},
	} {
		p := SimCLR(32)
		c.edit(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	p := SimCLR(32)
	p.Blur, p.SigmaMin = false, 0 // sigma is unused without blur
	if err := p.Validate(); err != nil {
		t.Errorf("blur off with zero sigma: %v", err)
	}
}

func TestOpErrors(t *testing.T) {
	img := testImage(3, 8, 9)
	dst := make([]float32, 3*4*4)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"short image", AdjustBrightness(img[:10], 8, 9, 1)},
		{"zero height", HFlip(nil, 0, 9)},
		{"negative brightness", AdjustBrightness(img, 8, 9, -0.1)},
		{"NaN contrast", AdjustContrast(img, 8, 9, math.NaN())},
		{"negative saturation", AdjustSaturation(img, 8, 9, -2)},
		{"hue too large", AdjustHue(img, 8, 9, 0.51)},
		{"even kernel", GaussianBlur(img, 8, 9, 4, 1)},
		{"kernel too large", GaussianBlur(img, 8, 9, 17, 1)},
		{"zero sigma", GaussianBlur(img, 8, 9, 3, 0)},
		{"grayscale size", Grayscale(img, 9, 9)},
		{"crop outside", ResizedCrop(img, 8, 9, 5, 0, 4, 4, 4, dst)},
		{"empty crop", ResizedCrop(img, 8, 9, 0, 0, 0, 4, 4, dst)},
		{"dst size", ResizedCrop(img, 8, 9, 0, 0, 4, 4, 5, dst)},
		{"zero std", Normalize(img, 8, 9, []float32{0, 0, 0}, []float32{0, 1, 1})},
		{"view dst", SimCLR(32).View(RNG(1, 0, 0, 0), img, 8, 9, dst)},
		{"view params", Params{}.View(RNG(1, 0, 0, 0), img, 8, 9, dst)},
	} {
		if c.err == nil {
			t.Errorf("%s: got nil error", c.name)
		}
	}
	if _, _, _, _, err := SampleCrop(nil, 8, 8, [2]float64{0.1, 1}, [2]float64{1, 1}); err == nil {
		t.Error("SampleCrop with nil rng: got nil error")
	}
	if _, _, _, _, err := SampleCrop(RNG(1, 0, 0, 0), 8, 8, [2]float64{0.1, 1}, [2]float64{-1, 1}); err == nil {
		t.Error("SampleCrop with negative ratio: got nil error")
	}
}

// TestSampleCropBounds checks every window lies inside the image and that its
// rounded size is consistent with an area and a ratio inside the requested ranges.
func TestSampleCropBounds(t *testing.T) {
	scale, ratio := [2]float64{0.08, 1}, [2]float64{3.0 / 4.0, 4.0 / 3.0}
	for _, s := range [][2]int{{32, 32}, {224, 224}, {37, 45}, {1, 1}, {3, 100}} {
		h, w := s[0], s[1]
		rng := RNG(5, h, w, 0)
		for range 5000 {
			top, left, ch, cw, err := SampleCrop(rng, h, w, scale, ratio)
			if err != nil {
				t.Fatal(err)
			}
			if ch < 1 || cw < 1 || top < 0 || left < 0 || top+ch > h || left+cw > w {
				t.Fatalf("%dx%d: window %dx%d at (%d,%d) outside the image", h, w, ch, cw, top, left)
			}
			fch, fcw := float64(ch), float64(cw)
			// w = round(sqrt(a r)), h = round(sqrt(a / r)) bound a and r up to rounding.
			aLo, aHi := (fcw-0.5)*(fch-0.5), (fcw+0.5)*(fch+0.5)
			rLo, rHi := (fcw-0.5)/(fch+0.5), (fcw+0.5)/max(fch-0.5, 1e-9)
			area := float64(h * w)
			sampled := aHi >= scale[0]*area && aLo <= scale[1]*area && rHi >= ratio[0] && rLo <= ratio[1]
			fallback := top == (h-ch)/2 && left == (w-cw)/2 && (ch == h || cw == w)
			if !sampled && !fallback {
				t.Fatalf("%dx%d: window %dx%d at (%d,%d) is neither a sampled crop nor the fallback", h, w, ch, cw, top, left)
			}
		}
	}
}

// TestSampleFrequencies checks the probabilities and ranges of the random
// decisions of SimCLR(32) over many plans.
func TestSampleFrequencies(t *testing.T) {
	p := SimCLR(32)
	const n = 20000
	var flips, jitters, grays int
	var pos [4][4]int // pos[op][position]
	for i := range n {
		pl, err := p.Sample(RNG(11, 0, i, 0), 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Flip {
			flips++
		}
		if pl.Gray {
			grays++
		}
		if pl.BlurK != 3 || pl.Sigma < 0.1 || pl.Sigma > 2 {
			t.Fatalf("blur kernel %d sigma %v, want 3 and sigma in [0.1, 2]", pl.BlurK, pl.Sigma)
		}
		if !pl.Jitter {
			if pl.Brightness != 1 || pl.Contrast != 1 || pl.Saturation != 1 || pl.Hue != 0 {
				t.Fatalf("no jitter but factors %+v", pl)
			}
			continue
		}
		jitters++
		for _, f := range []float64{pl.Brightness, pl.Contrast, pl.Saturation} {
			if f < 0.2 || f > 1.8 {
				t.Fatalf("jitter factor %v outside [0.2, 1.8]", f)
			}
		}
		if pl.Hue < -0.2 || pl.Hue > 0.2 {
			t.Fatalf("hue %v outside [-0.2, 0.2]", pl.Hue)
		}
		order := pl.Order
		sorted := order
		slices.Sort(sorted[:])
		if sorted != [4]int{0, 1, 2, 3} {
			t.Fatalf("order %v is not a permutation", order)
		}
		for k, op := range order {
			pos[op][k]++
		}
	}
	// Standard errors are below 0.0036; allow about 4.5 of them.
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"flip rate", float64(flips) / n, 0.5},
		{"jitter rate", float64(jitters) / n, 0.8},
		{"gray rate", float64(grays) / n, 0.2},
	} {
		if math.Abs(c.got-c.want) > 0.016 {
			t.Errorf("%s = %.4f, want %.2f", c.what, c.got, c.want)
		}
	}
	for op := range 4 {
		for k := range 4 {
			if f := float64(pos[op][k]) / float64(jitters); math.Abs(f-0.25) > 0.02 {
				t.Errorf("op %d at position %d in %.3f of the orders, want 0.25", op, k, f)
			}
		}
	}
}

func TestViewDeterminism(t *testing.T) {
	const h, w = 40, 36
	src := testImage(4, h, w)
	p := SimCLR(32)
	view := func(seed int64, epoch, index, v int) []float32 {
		dst := make([]float32, 3*32*32)
		if err := p.View(RNG(seed, epoch, index, v), src, h, w, dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	base := view(1, 2, 3, 0)
	if !slices.Equal(base, view(1, 2, 3, 0)) {
		t.Fatal("same (seed, epoch, index, view) gave different views")
	}
	for _, c := range []struct {
		name                string
		seed                int64
		epoch, index, vwIdx int
	}{{"view", 1, 2, 3, 1}, {"index", 1, 2, 4, 0}, {"epoch", 1, 3, 3, 0}, {"seed", 2, 2, 3, 0}} {
		if slices.Equal(base, view(c.seed, c.epoch, c.index, c.vwIdx)) {
			t.Errorf("changing the %s gave the same view", c.name)
		}
	}
	for i, v := range base {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("view value %d = %v outside [0, 1]", i, v)
		}
	}
}

// TestRNGStreams checks that nearby keys give unrelated streams.
func TestRNGStreams(t *testing.T) {
	seen := map[uint64]bool{}
	for seed := range int64(4) {
		for epoch := range 4 {
			for index := range 64 {
				for v := range 2 {
					x := RNG(seed, epoch, index, v).Uint64()
					if seen[x] {
						t.Fatalf("RNG(%d, %d, %d, %d) repeats an earlier first draw", seed, epoch, index, v)
					}
					seen[x] = true
				}
			}
		}
	}
	var r *rand.Rand = RNG(-1, -1, -1, -1) // negative keys are valid
	if r.Uint64() == RNG(1, 1, 1, 1).Uint64() {
		t.Error("negative and positive keys collide")
	}
}

// BenchmarkView measures one SimCLR view of a 32x32 image on one goroutine.
func BenchmarkView(b *testing.B) {
	src := testImage(1, 32, 32)
	dst := make([]float32, 3*32*32)
	p := SimCLR(32)
	for i := 0; b.Loop(); i++ {
		if err := p.View(RNG(1, 0, i, 0), src, 32, 32, dst); err != nil {
			b.Fatal(err)
		}
	}
}
