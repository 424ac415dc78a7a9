package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// memSet is an in-memory Dataset used to test transforms.
type memSet struct {
	shape  Shape
	imgs   [][]byte
	labels []int
}

func (m *memSet) Len() int          { return len(m.imgs) }
func (m *memSet) Shape() Shape      { return m.shape }
func (m *memSet) Classes() []string { return []string{"a", "b", "c"} }
func (m *memSet) Label(i int) int {
	if i < 0 || i >= len(m.labels) {
		return -1
	}
	return m.labels[i]
}
func (m *memSet) Image(i int, dst []uint8) error {
	if err := checkImageArgs(m, i, dst); err != nil {
		return err
	}
	copy(dst, m.imgs[i])
	return nil
}

func newMemSet(n int, s Shape) *memSet {
	m := &memSet{shape: s}
	for i := 0; i < n; i++ {
		m.imgs = append(m.imgs, randBytes(s.Size(), uint64(100+i)))
		m.labels = append(m.labels, i%3)
	}
	return m
}

func TestGray3(t *testing.T) {
	m := newMemSet(2, Shape{1, 2, 3})
	g, err := Gray3(m)
	if err != nil {
		t.Fatal(err)
	}
	if g.Shape() != (Shape{3, 2, 3}) {
		t.Fatalf("shape %v", g.Shape())
	}
	img := readAll(t, g)[1]
	want := bytes.Repeat(m.imgs[1], 3)
	if !bytes.Equal(img, want) {
		t.Fatalf("got %v, expected %v", img, want)
	}
	rgb := newMemSet(1, Shape{3, 2, 2})
	if same, _ := Gray3(rgb); same != Dataset(rgb) {
		t.Fatal("Gray3 of a 3-channel dataset should return it unchanged")
	}
	_, err = Gray3(newMemSet(1, Shape{2, 2, 2}))
	mustContain(t, err, "2 channels", "1 or 3")
}

func TestPad(t *testing.T) {
	m := &memSet{shape: Shape{1, 2, 2}, imgs: [][]byte{{1, 2, 3, 4}}, labels: []int{0}}
	p, err := Pad(m, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0, 0, 0, 0, 0,
		0, 1, 2, 0, 0,
		0, 3, 4, 0, 0,
		0, 0, 0, 0, 0,
		0, 0, 0, 0, 0,
	}
	if got := readAll(t, p)[0]; !bytes.Equal(got, want) {
		t.Fatalf("got %v, expected %v", got, want)
	}
	// 28 -> 32 puts the image at offset 2 in each direction, per channel.
	m2 := newMemSet(1, Shape{3, 28, 28})
	p2, _ := Pad(m2, 32)
	got := readAll(t, p2)[0]
	for c := 0; c < 3; c++ {
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				v := got[(c*32+y)*32+x]
				var w byte
				if y >= 2 && y < 30 && x >= 2 && x < 30 {
					w = m2.imgs[0][(c*28+y-2)*28+x-2]
				}
				if v != w {
					t.Fatalf("pixel %d,%d,%d = %d, expected %d", c, y, x, v, w)
				}
			}
		}
	}
	_, err = Pad(m2, 20)
	mustContain(t, err, "20", "28x28")
}

func TestResizeKnownValues(t *testing.T) {
	// 2x2 -> 4x4 bilinear, half-pixel centres, edges clamped.
	m := &memSet{shape: Shape{1, 2, 2}, imgs: [][]byte{{0, 100, 200, 40}}, labels: []int{0}}
	r, err := Resize(m, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 (source row 0): 0, 25, 75, 100; row 3 (source row 1): 200, 160, 80, 40.
	got := readAll(t, r)[0]
	want := []byte{
		0, 25, 75, 100,
		50, 59, 76, 85, // 0.75*row0 + 0.25*row3
		150, 126, 79, 55, // 0.25*row0 + 0.75*row3
		200, 160, 80, 40,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %v, expected %v", got, want)
	}
	// Shrinking 4x4 -> 2x2 averages with the widened triangle filter.
	m4 := &memSet{shape: Shape{1, 4, 4}, imgs: [][]byte{{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150}}, labels: []int{0}}
	r2, _ := Resize(m4, 2)
	if got := readAll(t, r2)[0]; !bytes.Equal(got, []byte{36, 51, 99, 114}) {
		t.Fatalf("got %v, expected [36 51 99 114]", got)
	}
	if same, _ := Resize(m4, 4); same != Dataset(m4) {
		t.Fatal("Resize to the same size should return the dataset unchanged")
	}
	_, err = Resize(m4, 0)
	mustContain(t, err, "size 0")
}

// TestResizeMatchesTorch compares with torch's antialiased bilinear
// interpolation for enlarging and shrinking, square and non-square inputs.
func TestResizeMatchesTorch(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		in   Shape
		size int
	}{{Shape{1, 28, 28}, 32}, {Shape{3, 32, 32}, 96}, {Shape{3, 96, 96}, 32}, {Shape{3, 37, 50}, 24}, {Shape{1, 5, 9}, 13}}
	var script strings.Builder
	script.WriteString("import sys, numpy as np, torch, torch.nn.functional as F\nd = sys.argv[1]\n")
	for k, c := range cases {
		m := newMemSet(2, c.in)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("in%d.bin", k)), bytes.Join(m.imgs, nil))
		r, err := Resize(m, c.size)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("go%d.bin", k)), bytes.Join(readAll(t, r), nil))
		fmt.Fprintf(&script, "x = torch.from_numpy(np.fromfile(d+'/in%d.bin', dtype=np.uint8).reshape(2,%d,%d,%d).astype(np.float32))\n", k, c.in.C, c.in.H, c.in.W)
		fmt.Fprintf(&script, "y = F.interpolate(x, size=(%d,%d), mode='bilinear', align_corners=False, antialias=True).round().clamp(0,255).numpy().astype(np.int32)\n", c.size, c.size)
		fmt.Fprintf(&script, "g = np.fromfile(d+'/go%d.bin', dtype=np.uint8).astype(np.int32).reshape(y.shape)\n", k)
		script.WriteString("print(int(np.abs(g-y).max()), float((g != y).mean()))\n")
	}
	out := strings.Fields(runPython(t, script.String(), dir))
	for k := range cases {
		maxDiff, _ := strconv.Atoi(out[2*k])
		frac, _ := strconv.ParseFloat(out[2*k+1], 64)
		t.Logf("%v -> %d: max |go-torch| = %d, fraction differing %.4f", cases[k].in, cases[k].size, maxDiff, frac)
		if maxDiff > 1 || frac > 0.01 {
			t.Fatalf("%v -> %d differs from torch: max %d, fraction %.4f", cases[k].in, cases[k].size, maxDiff, frac)
		}
	}
	os.RemoveAll(dir)
}

func TestViews(t *testing.T) {
	m := newMemSet(10, Shape{1, 2, 2})
	check := func(name string, ds Dataset, err error, want []int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ds.Len() != len(want) {
			t.Fatalf("%s: len %d, expected %d", name, ds.Len(), len(want))
		}
		for i, j := range want {
			img := make([]byte, 4)
			if err := ds.Image(i, img); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img, m.imgs[j]) || ds.Label(i) != m.labels[j] {
				t.Fatalf("%s: item %d is not base item %d", name, i, j)
			}
		}
		if ds.Label(len(want)) != -1 || ds.Image(len(want), make([]byte, 4)) == nil {
			t.Fatalf("%s: out-of-range access accepted", name)
		}
	}
	ds, err := Subset(m, []int{9, 0, 3, 3})
	check("Subset", ds, err, []int{9, 0, 3, 3})
	ds, err = First(m, 3)
	check("First", ds, err, []int{0, 1, 2})
	ds, err = Last(m, 2)
	check("Last", ds, err, []int{8, 9})
	ds, err = Range(m, 4, 7)
	check("Range", ds, err, []int{4, 5, 6})
	inner, _ := Range(m, 2, 8)
	ds, err = Last(inner, 2)
	check("Last of Range", ds, err, []int{6, 7})

	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"Subset", func() error { _, e := Subset(m, []int{1, 10}); return e }(), "index 10 (position 1)"},
		{"First", func() error { _, e := First(m, 11); return e }(), "11 images requested, dataset has 10"},
		{"Last", func() error { _, e := Last(m, -1); return e }(), "-1 images"},
		{"Range", func() error { _, e := Range(m, 5, 4); return e }(), "[5,4)"},
	} {
		mustContain(t, c.err, c.want)
	}
}

func TestShuffle(t *testing.T) {
	m := newMemSet(50, Shape{1, 1, 1})
	a, b, c := Shuffle(m, 1), Shuffle(m, 1), Shuffle(m, 2)
	var pa, pb, pc []int
	for i := 0; i < 50; i++ {
		for _, x := range []struct {
			ds Dataset
			p  *[]int
		}{{a, &pa}, {b, &pb}, {c, &pc}} {
			img := make([]byte, 1)
			x.ds.Image(i, img)
			for j, orig := range m.imgs {
				if orig[0] == img[0] && m.labels[j] == x.ds.Label(i) {
					*x.p = append(*x.p, j)
					break
				}
			}
		}
	}
	p := Permutation(50, 1)
	sorted := slices.Clone(p)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("Permutation(50,1) is not a permutation: %v", p)
		}
	}
	if !slices.Equal(Permutation(50, 1), p) || slices.Equal(Permutation(50, 2), p) {
		t.Fatal("same seed must give the same order, another seed another")
	}
	// Pinned values keep orders stable across Go versions.
	if got := Permutation(10, 42); !slices.Equal(got, pinnedPerm42) {
		t.Fatalf("Permutation(10, 42) = %v, pinned %v", got, pinnedPerm42)
	}
	if len(pa) != 50 || !slices.Equal(pa, pb) || slices.Equal(pa, pc) {
		t.Fatalf("Shuffle orders: seed1 %v, again %v, seed2 %v", pa, pb, pc)
	}
}

var pinnedPerm42 = []int{0, 9, 5, 8, 6, 4, 7, 2, 1, 3}
