package data

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInspectAndPrint(t *testing.T) {
	m := &memSet{shape: Shape{2, 1, 2}, imgs: [][]byte{{10, 20, 0, 0}, {30, 40, 255, 255}, {50, 60, 0, 255}}, labels: []int{2, 0, 2}}
	s, err := Inspect(m)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len != 3 || s.Shape != m.shape || s.Min != 0 || s.Max != 255 {
		t.Fatalf("summary %+v", s)
	}
	if len(s.Labels) != 3 || s.Labels[0] != 1 || s.Labels[1] != 0 || s.Labels[2] != 2 {
		t.Fatalf("histogram %v", s.Labels)
	}
	if math.Abs(s.Mean[0]-35.0/255) > 1e-9 || math.Abs(s.Mean[1]-0.5) > 1e-9 || math.Abs(s.Std[1]-0.5) > 1e-9 {
		t.Fatalf("mean %v std %v", s.Mean, s.Std)
	}
	var buf bytes.Buffer
	if err := s.Print(&buf, m.Classes()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"images         3", "shape (CxHxW)  2x1x2", "values         0..255", "label  class  count\n", "2      c      2\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteGrid(t *testing.T) {
	dir := t.TempDir()
	m := newMemSet(5, Shape{3, 4, 4})
	p := filepath.Join(dir, "grid.png")
	if err := WriteGrid(m, 5, 2, p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 2 columns x 3 rows of 8x8 cells (2x upscale) with 2-pixel gaps.
	if b := img.Bounds(); b != image.Rect(0, 0, 2+2*10, 2+3*10) {
		t.Fatalf("grid bounds %v", b)
	}
	// Image 3 sits in row 1, column 1; its pixel (y=1,x=2) covers 2x2 cells.
	x0, y0 := 2+10, 2+10
	r, g, b, _ := img.At(x0+2*2+1, y0+1*2+1).RGBA()
	src := m.imgs[3]
	if byte(r>>8) != src[1*4+2] || byte(g>>8) != src[16+1*4+2] || byte(b>>8) != src[32+1*4+2] {
		t.Fatalf("grid pixel (%d,%d,%d) differs from source", r>>8, g>>8, b>>8)
	}
	mustContain(t, WriteGrid(m, 0, 2, p), "0 images")
	mustContain(t, WriteGrid(newMemSet(1, Shape{2, 2, 2}), 1, 1, p), "2 channels")
}
