package watermark

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// TestRotateMatchesTorchvision compares Rotate with torchvision's F.rotate (bilinear, zero
// fill) on random images, square and not, for angles including the exact quarter turns.
func TestRotateMatchesTorchvision(t *testing.T) {
	angles := []float64{0, 12.5, 45, 90, 137.3, 180, 200, 270, 359.9, -30, 725}
	sizes := []struct{ c, h, w int }{{3, 8, 8}, {2, 7, 10}, {1, 32, 32}}
	type refCase struct {
		Path   string    `json:"path"`
		C      int       `json:"c"`
		H      int       `json:"h"`
		W      int       `json:"w"`
		Angles []float64 `json:"angles"`
		img    []float32
	}
	dir := t.TempDir()
	var cases []refCase
	for k, sz := range sizes {
		rng := rand.New(rand.NewSource(int64(k + 1)))
		img := make([]float32, sz.c*sz.h*sz.w)
		for i := range img {
			img[i] = rng.Float32()
		}
		path := filepath.Join(dir, fmt.Sprintf("img%d.f32", k))
		pyref.WriteRaw(t, path, img)
		cases = append(cases, refCase{Path: path, C: sz.c, H: sz.h, W: sz.w, Angles: angles, img: img})
	}
	js, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(spec, js, 0o644); err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Torchvision string        `json:"torchvision"`
		Out         [][][]float64 `json:"out"`
	}
	runRef(t, "rotate_ref.py", &ref, spec)
	if len(ref.Out) != len(cases) {
		t.Fatalf("reference returned %d cases for %d", len(ref.Out), len(cases))
	}
	overall := 0.0
	for k, c := range cases {
		if len(ref.Out[k]) != len(angles) {
			t.Fatalf("reference returned %d images for %d angles", len(ref.Out[k]), len(angles))
		}
		dst := make([]float32, len(c.img))
		for j, a := range angles {
			if err := Rotate(c.img, c.C, c.H, c.W, a, dst); err != nil {
				t.Fatal(err)
			}
			if len(ref.Out[k][j]) != len(dst) {
				t.Fatalf("reference image has %d values, want %d", len(ref.Out[k][j]), len(dst))
			}
			worst := 0.0
			for i, want := range ref.Out[k][j] {
				worst = math.Max(worst, math.Abs(float64(dst[i])-want))
			}
			overall = math.Max(overall, worst)
			// torchvision builds the sampling grid in float32; Rotate works in float64.
			if worst > 1e-5 {
				t.Errorf("%dx%dx%d, angle %g: max |Rotate - torchvision %s| = %.3g, want <= 1e-5", c.C, c.H, c.W, a, ref.Torchvision, worst)
			}
		}
	}
	t.Logf("%d images x %d angles: max |Rotate - torchvision %s| = %.2g", len(cases), len(angles), ref.Torchvision, overall)
}

// TestRotateGeometry checks the direction of rotation and exact cases without a reference.
func TestRotateGeometry(t *testing.T) {
	// A 4x4 image with one bright pixel in the top-right corner.
	const n = 4
	img := make([]float32, n*n)
	img[0*n+3] = 1
	dst := make([]float32, n*n)
	if err := Rotate(img, 1, n, n, 0, dst); err != nil {
		t.Fatal(err)
	}
	for i := range img {
		if dst[i] != img[i] {
			t.Fatalf("rotation by 0 changed pixel %d: %v -> %v", i, img[i], dst[i])
		}
	}
	// Counter-clockwise by 90: top-right goes to top-left.
	if err := Rotate(img, 1, n, n, 90, dst); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(dst[0]-1)) > 1e-6 {
		t.Errorf("rotation by +90: top-left pixel %v, want 1 (counter-clockwise)", dst[0])
	}
	// 180 moves the top-right corner to the bottom-left.
	tmp := make([]float32, n*n)
	if err := Rotate(img, 1, n, n, 180, tmp); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(tmp[3*n+0]-1)) > 1e-6 {
		t.Errorf("rotation by 180: bottom-left pixel %v, want 1", tmp[3*n])
	}
}

func TestRotateBadInput(t *testing.T) {
	img := make([]float32, 3*4*4)
	cases := []struct {
		name     string
		src, dst []float32
		c, h, w  int
		deg      float64
		want     string
	}{
		{"short source", img[:10], make([]float32, 48), 3, 4, 4, 10, "got 10 values"},
		{"short destination", img, make([]float32, 47), 3, 4, 4, 10, "got 47 values"},
		{"zero channels", img, make([]float32, 48), 0, 4, 4, 10, "positive"},
		{"negative height", img, make([]float32, 48), 3, -4, 4, 10, "positive"},
		{"NaN angle", img, make([]float32, 48), 3, 4, 4, math.NaN(), "not a finite"},
		{"infinite angle", img, make([]float32, 48), 3, 4, 4, math.Inf(1), "not a finite"},
	}
	for _, c := range cases {
		err := Rotate(c.src, c.c, c.h, c.w, c.deg, c.dst)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, _, err := RotationBatch(nil, img, 1, 3, 4, 4); err == nil {
		t.Error("RotationBatch with a nil random source: no error")
	}
	if _, _, err := RotationBatch(rand.New(rand.NewSource(1)), img, 2, 3, 4, 4); err == nil {
		t.Error("RotationBatch with 1 image's values for 2: no error")
	}
}

func TestAngleLabel(t *testing.T) {
	for _, c := range []struct {
		deg  float64
		want int64
	}{{0, 0}, {90, 0}, {179.999, 0}, {180, 1}, {270, 1}, {359.999, 1}, {360, 0}, {-1, 1}, {-181, 0}, {540, 1}} {
		if got := AngleLabel(c.deg); got != c.want {
			t.Errorf("AngleLabel(%g) = %d, want %d", c.deg, got, c.want)
		}
	}
}

// TestRotationBatch checks that each output is its input rotated by an angle in [0, 360)
// whose label it carries, and that the labels are balanced.
func TestRotationBatch(t *testing.T) {
	const n, c, h, w = 2000, 1, 5, 5
	rng := rand.New(rand.NewSource(7))
	imgs := make([]float32, n*c*h*w)
	for i := range imgs {
		imgs[i] = rng.Float32()
	}
	rot, labels, angles, err := rotationBatch(rand.New(rand.NewSource(11)), imgs, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	// The exported function draws the same angles from the same seed.
	rot2, labels2, err := RotationBatch(rand.New(rand.NewSource(11)), imgs, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	size := c * h * w
	want := make([]float32, size)
	ones := 0
	var lo, hi float64 = 360, 0
	for i := 0; i < n; i++ {
		a := angles[i]
		lo, hi = math.Min(lo, a), math.Max(hi, a)
		if a < 0 || a >= 360 {
			t.Fatalf("image %d: angle %g outside [0, 360)", i, a)
		}
		if labels[i] != AngleLabel(a) || labels2[i] != labels[i] {
			t.Fatalf("image %d: angle %g, label %d (exported %d), want %d", i, a, labels[i], labels2[i], AngleLabel(a))
		}
		if err := Rotate(imgs[i*size:(i+1)*size], c, h, w, a, want); err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if rot[i*size+j] != want[j] || rot2[i*size+j] != want[j] {
				t.Fatalf("image %d pixel %d: %v, want Rotate's %v", i, j, rot[i*size+j], want[j])
			}
		}
		ones += int(labels[i])
	}
	frac := float64(ones) / n
	t.Logf("%d images: %.3f labelled 1; angles in [%.2f, %.2f]", n, frac, lo, hi)
	// Binomial(2000, 0.5): sd 0.011; 0.45..0.55 is 4.5 sd.
	if frac < 0.45 || frac > 0.55 {
		t.Errorf("fraction of label 1 = %.3f over %d images, want about 0.5", frac, n)
	}
	if lo > 5 || hi < 355 {
		t.Errorf("angles span [%.1f, %.1f], want nearly all of [0, 360)", lo, hi)
	}
}
