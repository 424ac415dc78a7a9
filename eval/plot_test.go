package eval

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// decodePNG fails unless path is a PNG of 768 x 432 pixels with more than one colour.
func decodePNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != 768 || b.Dy() != 432 {
		t.Fatalf("%s is %dx%d: expected 768x432", path, b.Dx(), b.Dy())
	}
	first := img.At(0, 0)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if img.At(x, y) != first {
				return
			}
		}
	}
	t.Fatalf("%s is a single colour: expected a drawn chart", path)
}

func TestPlotProbe(t *testing.T) {
	dir := t.TempDir()
	r := &Report{Dataset: "fmnist", TrainN: 300, TestN: 200, Rows: []Row{
		{Name: "victim", ProbeTop1: 0.8, ProbeCI: Interval{0.78, 0.82}}, {Name: "stolen", ProbeTop1: 0.7, ProbeCI: Interval{0.67, 0.73}}, {Name: "pixels", ProbeTop1: 0.75}}}
	p := filepath.Join(dir, "probe.png")
	if err := PlotProbe(r, p); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, p)
	wantErr(t, PlotProbe(&Report{}, p), "no rows")
	wantErr(t, PlotProbe(r, filepath.Join(dir, "probe.bmp")), "expected a .png")
	r.Rows[1].ProbeTop1 = math.NaN()
	wantErr(t, PlotProbe(r, p), "stolen is NaN")
}

func TestPlotLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lines.png")
	series := map[string][][2]float64{
		"mse":     {{1000, 0.5}, {5000, 0.62}, {2500, 0.58}},
		"infonce": {{1000, 0.55}, {2500, 0.64}, {5000, 0.7}},
		"single":  {{3000, 0.6}},
	}
	intervals := map[string][][2]float64{"mse": {{0.48, 0.52}, {0.6, 0.64}, {0.56, 0.6}}}
	if err := PlotLines(p, "accuracy vs queries", "queries", "probe top-1", series, intervals); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, p)
	tests := []struct {
		name   string
		series map[string][][2]float64
		want   string
	}{
		{"no series", nil, "no series"},
		{"empty series", map[string][][2]float64{"a": nil}, `series "a" has no points`},
		{"NaN", map[string][][2]float64{"a": {{1, math.NaN()}}}, "point 0 of series \"a\" is (1, NaN)"},
		{"intervals", map[string][][2]float64{"mse": {{1, 0.5}}}, `series "mse" has 1 points and 3 intervals`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, PlotLines(p, "t", "x", "y", tc.series, intervals), tc.want)
		})
	}
}
