package data

import (
	"bytes"
	"path/filepath"
	"testing"
)

// writeIDXSet writes train and test IDX files (gzipped or raw) of n images
// of h x w to dir and returns the train images and labels.
func writeIDXSet(t *testing.T, dir string, n, h, w int, gzipped bool) ([]byte, []byte) {
	t.Helper()
	pix := randBytes(n*h*w, 1)
	lbl := make([]byte, n)
	for i := range lbl {
		lbl[i] = byte(i * 7 % 10)
	}
	for _, p := range []string{"train", "t10k"} {
		imgs := idxBytes([]int{n, h, w}, pix)
		lbls := idxBytes([]int{n}, lbl)
		ext := ""
		if gzipped {
			imgs, lbls, ext = gz(t, imgs), gz(t, lbls), ".gz"
		}
		writeFile(t, filepath.Join(dir, p+"-images-idx3-ubyte"+ext), imgs)
		writeFile(t, filepath.Join(dir, p+"-labels-idx1-ubyte"+ext), lbls)
	}
	return pix, lbl
}

func TestIDXReadsRawAndGzip(t *testing.T) {
	for _, gzipped := range []bool{false, true} {
		dir := t.TempDir()
		const n, h, w = 23, 5, 7
		pix, lbl := writeIDXSet(t, dir, n, h, w, gzipped)
		for _, split := range []string{"train", "test"} {
			ds, err := Open("mnist", dir, split)
			if err != nil {
				t.Fatalf("gz=%v %s: %v", gzipped, split, err)
			}
			if ds.Len() != n || ds.Shape() != (Shape{1, h, w}) {
				t.Fatalf("gz=%v: got %d images of %v, expected %d of 1x%dx%d", gzipped, ds.Len(), ds.Shape(), n, h, w)
			}
			for i, img := range readAll(t, ds) {
				if !bytes.Equal(img, pix[i*h*w:(i+1)*h*w]) {
					t.Fatalf("gz=%v image %d differs", gzipped, i)
				}
				if ds.Label(i) != int(lbl[i]) {
					t.Fatalf("label %d = %d, expected %d", i, ds.Label(i), lbl[i])
				}
			}
			if ds.Label(-1) != -1 || ds.Label(n) != -1 {
				t.Fatal("out-of-range labels should be -1")
			}
			if err := ds.Image(n, make([]byte, h*w)); err == nil {
				t.Fatal("out-of-range image accepted")
			}
			if err := ds.Image(0, make([]byte, 3)); err == nil {
				t.Fatal("short buffer accepted")
			}
		}
	}
}

func TestIDXRejectsBadFiles(t *testing.T) {
	good := idxBytes([]int{4, 3, 3}, randBytes(36, 2))
	lbl := idxBytes([]int{4}, []byte{1, 2, 3, 4})
	cases := []struct {
		name       string
		imgs, lbls []byte
		want       []string
	}{
		{"truncated images", good[:len(good)-5], lbl, []string{"images", "truncated", "36", "found 31"}},
		{"truncated header", good[:9], lbl, []string{"images", "truncated IDX header"}},
		{"trailing data", append(append([]byte{}, good...), 1, 2), lbl, []string{"images", "trailing data"}},
		{"bad magic", append([]byte{1, 0, 8, 3}, good[4:]...), lbl, []string{"images", "bad IDX magic"}},
		{"wrong type", append([]byte{0, 0, 0x0d, 3}, good[4:]...), lbl, []string{"images", "element type 0x0d", "0x08"}},
		{"labels as images", lbl, lbl, []string{"images", "1 dimensions, expected 3"}},
		{"count mismatch", good, idxBytes([]int{3}, []byte{1, 2, 3}), []string{"labels", "3 labels", "4 images"}},
		{"label range", good, idxBytes([]int{4}, []byte{1, 2, 30, 4}), []string{"labels", "label 30", "0..9"}},
		{"huge dims", idxBytes([]int{1 << 30, 1 << 30, 1 << 30}, nil), lbl, []string{"images", "more data than"}},
	}
	for _, c := range cases {
		_, err := newIDX(memRegion("images", c.imgs), memRegion("labels", c.lbls), MNISTClasses)
		mustContain(t, err, c.want...)
	}
}

func TestIDXRejectsTruncatedGzipFile(t *testing.T) {
	dir := t.TempDir()
	writeIDXSet(t, dir, 50, 8, 8, true)
	p := filepath.Join(dir, "train-images-idx3-ubyte.gz")
	full := gz(t, idxBytes([]int{50, 8, 8}, randBytes(50*64, 1)))
	writeFile(t, p, full[:len(full)/2])
	_, err := Open("mnist", dir, "train")
	mustContain(t, err, p, "gzip")
}

func TestOpenMissingNamesPathAndHowTo(t *testing.T) {
	dir := t.TempDir()
	_, err := Open("fmnist", dir, "test")
	mustContain(t, err, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), "apt-get install dataset-fashion-mnist")
	for _, name := range []string{"cifar10", "cifar100", "svhn", "stl10"} {
		_, err := Open(name, dir, "test")
		mustContain(t, err, dir, "not found")
	}
	_, err = Open("cifar10", dir, "validation")
	mustContain(t, err, "validation", "train or test")
	_, err = Open("nope", dir, "")
	mustContain(t, err, "unknown dataset", "fmnist")
	_, err = Open("svhn", "", "")
	mustContain(t, err, "svhn", "no directory")
}

func TestIDXRejectsAbsurdShapeWithNoImages(t *testing.T) {
	_, err := newIDX(memRegion("images", idxBytes([]int{0, 1 << 30, 1 << 30}, nil)), memRegion("labels", idxBytes([]int{0}, nil)), MNISTClasses)
	mustContain(t, err, "images", "image shape 1x1073741824x1073741824")
	_, err = newIDX(memRegion("images", idxBytes([]int{0, 0, 5}, nil)), memRegion("labels", idxBytes([]int{0}, nil)), MNISTClasses)
	mustContain(t, err, "images", "1x0x5")
}
