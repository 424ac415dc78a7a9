package data

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// stlEncode stores CHW 96x96 images the way STL-10 does: each channel
// plane column-major, raw[c][x][y] = img[c][y][x].
func stlEncode(imgs [][]byte) []byte {
	var out []byte
	for _, img := range imgs {
		raw := make([]byte, stlImage)
		for c := 0; c < 3; c++ {
			for y := 0; y < 96; y++ {
				for x := 0; x < 96; x++ {
					raw[c*9216+x*96+y] = img[c*9216+y*96+x]
				}
			}
		}
		out = append(out, raw...)
	}
	return out
}

func TestSTL10(t *testing.T) {
	dir := t.TempDir()
	var imgs [][]byte
	for i := 0; i < 3; i++ {
		imgs = append(imgs, randBytes(stlImage, uint64(40+i)))
	}
	raw := stlEncode(imgs)
	for _, s := range []string{"train", "test", "unlabeled"} {
		writeFile(t, filepath.Join(dir, s+"_X.bin"), raw)
	}
	writeFile(t, filepath.Join(dir, "train_y.bin"), []byte{1, 10, 4})
	writeFile(t, filepath.Join(dir, "test_y.bin"), []byte{2, 2, 2})

	ds, err := Open("stl10", dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 3 || ds.Shape() != (Shape{3, 96, 96}) || ds.Classes()[2] != "car" {
		t.Fatalf("got %d images of %v, classes %v", ds.Len(), ds.Shape(), ds.Classes())
	}
	got := readAll(t, ds)
	for i := range imgs {
		if !bytes.Equal(got[i], imgs[i]) {
			t.Fatalf("image %d not transposed back to CHW", i)
		}
	}
	if ds.Label(0) != 0 || ds.Label(1) != 9 || ds.Label(2) != 3 {
		t.Fatalf("labels %d %d %d, expected 0 9 3", ds.Label(0), ds.Label(1), ds.Label(2))
	}
	un, err := Open("stl10", dir, "unlabeled")
	if err != nil {
		t.Fatal(err)
	}
	if un.Len() != 3 || un.Label(1) != -1 {
		t.Fatalf("unlabeled: %d images, label %d", un.Len(), un.Label(1))
	}

	// Cross-check with the reading recipe published with STL-10:
	// reshape(-1,3,96,96) then transpose(0,3,2,1) gives HWC images.
	out := filepath.Join(dir, "chw.bin")
	runPython(t, `
import sys, numpy as np
x = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
np.ascontiguousarray(x.transpose(0, 3, 1, 2)).tofile(sys.argv[2])
`, filepath.Join(dir, "train_X.bin"), out)
	ref, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref, bytes.Join(got, nil)) {
		t.Fatal("images differ from numpy's reading of the file")
	}
}

func TestSTL10RejectsBadFiles(t *testing.T) {
	raw := randBytes(2*stlImage, 5)
	cases := []struct {
		name       string
		imgs, lbls []byte
		want       []string
	}{
		{"truncated", raw[:len(raw)-10], []byte{1, 2}, []string{"X.bin", "55286", "27648"}},
		{"count mismatch", raw, []byte{1, 2, 3}, []string{"y.bin", "3 labels", "2 images"}},
		{"label zero", raw, []byte{1, 0}, []string{"y.bin", "image 1", "is 0", "1..10"}},
		{"label 11", raw, []byte{11, 1}, []string{"y.bin", "is 11"}},
	}
	for _, c := range cases {
		_, err := newSTL10(memRegion("X.bin", c.imgs), memRegion("y.bin", c.lbls))
		mustContain(t, err, c.want...)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train_X.bin"), raw)
	_, err := Open("stl10", dir, "train")
	mustContain(t, err, filepath.Join(dir, "train_y.bin"), "not found")
}
