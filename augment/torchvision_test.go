package augment

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

type refInput struct {
	File string `json:"file"`
	H    int    `json:"h"`
	W    int    `json:"w"`
}

type refCase struct {
	Name  string         `json:"name"`
	Input string         `json:"input"`
	Op    string         `json:"op"`
	Args  map[string]any `json:"args"`
	tol   float64
	got   []float32
}

// testImage returns a random 3 x h x w image in [0, 1] with some pixels set to
// the edge cases of the HSV conversion (gray, black, white, ties for the maximum).
func testImage(seed uint64, h, w int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := make([]float32, Channels*h*w)
	for i := range img {
		img[i] = rng.Float32()
	}
	special := [][3]float32{{0, 0, 0}, {1, 1, 1}, {0.5, 0.5, 0.5}, {1, 0, 0}, {0.7, 0.7, 0.2},
		{0.2, 0.7, 0.7}, {0.7, 0.2, 0.7}, {0, 1, 0}, {0.3, 0.3, 0.9}, {1, 1, 0}, {0.4, 0.1, 0.1000001}}
	n := h * w
	for k, px := range special {
		at := (k * 7919) % n
		for c := range Channels {
			img[c*n+at] = px[c]
		}
	}
	return img
}

func writeFloats(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTorchvisionCrossCheck runs every deterministic op and whole view plans
// here and through torchvision.transforms.functional in one Python process,
// and compares the outputs value by value.
func TestTorchvisionCrossCheck(t *testing.T) {
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s is required for the torchvision cross-check (scripts/setup.sh installs it): %v", pyref.Python, err)
	}
	const rh, rw = 37, 45 // a non-square source
	rect := testImage(1, rh, rw)
	const sq = 32
	square := testImage(2, sq, sq)
	images := map[string]struct {
		img  []float32
		h, w int
	}{"rect": {rect, rh, rw}, "square": {square, sq, sq}}

	var cases []*refCase
	inPlace := func(name, input, op string, args map[string]any, tol float64, f func(img []float32, h, w int) error) {
		in := images[input]
		img := append([]float32(nil), in.img...)
		if err := f(img, in.h, in.w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cases = append(cases, &refCase{Name: name, Input: input, Op: op, Args: args, tol: tol, got: img})
	}

	for _, c := range []struct{ top, left, ch, cw, size int }{
		{0, 0, rh, rw, 32},  // whole image, downscale
		{3, 5, 20, 30, 32},  // upscale
		{10, 10, 5, 7, 32},  // strong upscale
		{1, 2, 36, 40, 16},  // downscale
		{0, 0, rh, rw, 37},  // one side unchanged
		{36, 44, 1, 1, 4},   // single pixel in the corner
		{17, 0, 20, 45, 24}, // touches the bottom-right edge
	} {
		dst := make([]float32, Channels*c.size*c.size)
		if err := ResizedCrop(rect, rh, rw, c.top, c.left, c.ch, c.cw, c.size, dst); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, &refCase{
			Name: fmt.Sprintf("crop_%d_%d_%d_%d_%d", c.top, c.left, c.ch, c.cw, c.size), Input: "rect", Op: "resized_crop",
			Args: map[string]any{"top": c.top, "left": c.left, "ch": c.ch, "cw": c.cw, "size": c.size}, tol: 1e-6, got: dst,
		})
	}
	for _, f := range []float64{0, 0.2, 0.93, 1.8} {
		inPlace(fmt.Sprintf("brightness_%v", f), "rect", "brightness", map[string]any{"f": f}, 1e-6,
			func(img []float32, h, w int) error { return AdjustBrightness(img, h, w, f) })
		inPlace(fmt.Sprintf("contrast_%v", f), "rect", "contrast", map[string]any{"f": f}, 1e-6,
			func(img []float32, h, w int) error { return AdjustContrast(img, h, w, f) })
		inPlace(fmt.Sprintf("saturation_%v", f), "rect", "saturation", map[string]any{"f": f}, 1e-6,
			func(img []float32, h, w int) error { return AdjustSaturation(img, h, w, f) })
	}
	for _, f := range []float64{-0.5, -0.2, -0.013, 0, 0.1, 0.37, 0.5} {
		inPlace(fmt.Sprintf("hue_%v", f), "rect", "hue", map[string]any{"f": f}, 1e-5,
			func(img []float32, h, w int) error { return AdjustHue(img, h, w, f) })
	}
	for _, c := range []struct {
		k     int
		sigma float64
	}{{1, 1}, {3, 0.1}, {3, 0.7}, {3, 2}, {5, 1.3}, {23, 5}} {
		inPlace(fmt.Sprintf("blur_%d_%v", c.k, c.sigma), "rect", "blur", map[string]any{"k": c.k, "sigma": c.sigma}, 1e-6,
			func(img []float32, h, w int) error { return GaussianBlur(img, h, w, c.k, c.sigma) })
	}
	inPlace("hflip", "rect", "hflip", nil, 0, HFlip)
	inPlace("gray", "rect", "gray", nil, 1e-7, Grayscale)

	// Whole views: random plans rendered by Apply and by the torchvision ops.
	params := []Params{SimCLR(sq), SimCLR(sq), SimCLR(24)}
	params[1].Brightness, params[1].Hue = 0, 0 // disabled ops are skipped
	params[2].Mean, params[2].Std = []float32{0.4914, 0.4822, 0.4465}, []float32{0.247, 0.243, 0.261}
	for pi, p := range params {
		for v := range 12 {
			pl, err := p.Sample(RNG(9, pi, v, 0), sq, sq)
			if err != nil {
				t.Fatal(err)
			}
			if v < 4 { // make sure the rarer branches are exercised
				pl.Jitter, pl.Gray, pl.Flip = true, v%2 == 0, v%2 == 1
			}
			dst := make([]float32, Channels*p.Size*p.Size)
			if err := p.Apply(pl, square, sq, sq, dst); err != nil {
				t.Fatal(err)
			}
			args := map[string]any{"top": pl.Top, "left": pl.Left, "ch": pl.CropH, "cw": pl.CropW, "size": p.Size,
				"flip": pl.Flip, "jitter": pl.Jitter, "order": pl.Order, "gray": pl.Gray, "k": pl.BlurK, "sigma": pl.Sigma}
			for _, f := range []struct {
				key string
				on  bool
				val float64
			}{{"brightness", p.Brightness > 0, pl.Brightness}, {"contrast", p.Contrast > 0, pl.Contrast},
				{"saturation", p.Saturation > 0, pl.Saturation}, {"hue", p.Hue > 0, pl.Hue}} {
				if f.on {
					args[f.key] = f.val
				}
			}
			if p.Mean != nil {
				args["mean"], args["std"] = p.Mean, p.Std
			}
			// Chained float32 ops (and the division by std) accumulate a few ulps more than one op.
			cases = append(cases, &refCase{Name: fmt.Sprintf("plan_%d_%d", pi, v), Input: "square", Op: "plan", Args: args, tol: 2e-5, got: dst})
		}
	}

	// Crop window statistics of SampleCrop against RandomResizedCrop.get_params.
	const draws = 10000
	scale, ratio := [2]float64{0.08, 1}, [2]float64{3.0 / 4.0, 4.0 / 3.0}
	var stats []refStat
	for _, s := range [][2]int{{224, 224}, {32, 32}, {37, 45}, {8, 64}, {64, 8}} {
		stats = append(stats, refStat{Name: fmt.Sprintf("stats_%dx%d", s[0], s[1]), H: s[0], W: s[1], N: draws, Scale: scale, Ratio: ratio})
	}

	dir := t.TempDir()
	spec := struct {
		Inputs map[string]refInput `json:"inputs"`
		Cases  []*refCase          `json:"cases"`
		Stats  []refStat           `json:"stats"`
	}{Inputs: map[string]refInput{}, Cases: cases, Stats: stats}
	for name, in := range images {
		writeFloats(t, filepath.Join(dir, name+".in"), in.img)
		spec.Inputs[name] = refInput{File: name + ".in", H: in.h, W: in.w}
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := pyref.Command("testdata/torchvision_ref.py", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torchvision reference failed: %v\n%s", err, out)
	}

	for _, c := range cases {
		want := pyref.ReadFloat32(t, filepath.Join(dir, c.Name+".bin"))
		if len(want) != len(c.got) {
			t.Errorf("%s: torchvision gave %d values, Go %d", c.Name, len(want), len(c.got))
			continue
		}
		worst, at := 0.0, 0
		for i := range want {
			if d := math.Abs(float64(want[i]) - float64(c.got[i])); d > worst || math.IsNaN(d) {
				worst, at = d, i
			}
		}
		if !(worst <= c.tol) {
			t.Errorf("%s: max |Go - torchvision| = %.3g at %d (Go %v, torchvision %v), tolerance %.1g", c.Name, worst, at, c.got[at], want[at], c.tol)
		} else if testing.Verbose() {
			t.Logf("%s: max abs diff %.3g", c.Name, worst)
		}
	}

	for _, st := range stats {
		want := pyref.ReadFloat32(t, filepath.Join(dir, st.Name+".bin"))
		got, err := cropStats(RNG(3, 0, st.H, st.W), st.H, st.W, st.N, st.Scale, st.Ratio)
		if err != nil {
			t.Fatal(err)
		}
		// With 10000 draws the standard error of each mean is below 0.003 (area
		// fraction) and 0.0015 (log ratio); allow about 5 of them (fallback rate: SE 0.005).
		for k, m := range []struct {
			what string
			tol  float64
		}{{"mean area fraction", 0.015}, {"mean log ratio", 0.01}, {"std of area fraction", 0.015}, {"fallback rate", 0.025}} {
			if d := math.Abs(got[k] - float64(want[k])); !(d <= m.tol) {
				t.Errorf("%s: %s Go %.4f, torchvision %.4f (tolerance %.3f)", st.Name, m.what, got[k], want[k], m.tol)
			} else if testing.Verbose() {
				t.Logf("%s: %s Go %.4f, torchvision %.4f", st.Name, m.what, got[k], want[k])
			}
		}
	}
}

type refStat struct {
	Name  string     `json:"name"`
	H     int        `json:"h"`
	W     int        `json:"w"`
	N     int        `json:"n"`
	Scale [2]float64 `json:"scale"`
	Ratio [2]float64 `json:"ratio"`
}

// cropStats mirrors crop_stats in testdata/torchvision_ref.py for SampleCrop.
func cropStats(rng *rand.Rand, h, w, n int, scale, ratio [2]float64) ([4]float64, error) {
	var fw, fh int
	switch in := float64(w) / float64(h); {
	case in < ratio[0]:
		fw, fh = w, int(math.RoundToEven(float64(w)/ratio[0]))
	case in > ratio[1]:
		fh, fw = h, int(math.RoundToEven(float64(h)*ratio[1]))
	default:
		fw, fh = w, h
	}
	var sum, sum2, logr, fb float64
	for range n {
		top, left, ch, cw, err := SampleCrop(rng, h, w, scale, ratio)
		if err != nil {
			return [4]float64{}, err
		}
		f := float64(ch*cw) / float64(h*w)
		sum += f
		sum2 += f * f
		logr += math.Log(float64(cw) / float64(ch))
		if top == (h-fh)/2 && left == (w-fw)/2 && ch == fh && cw == fw {
			fb++
		}
	}
	mean := sum / float64(n)
	return [4]float64{mean, logr / float64(n), math.Sqrt(sum2/float64(n) - mean*mean), fb / float64(n)}, nil
}
