package data

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// cifarBytes encodes n CIFAR records with label bytes from label(i).
func cifarBytes(n int, seed uint64, label func(i int) []byte) ([]byte, [][]byte) {
	var b []byte
	var imgs [][]byte
	for i := 0; i < n; i++ {
		img := randBytes(cifarPixels, seed*1000+uint64(i))
		imgs = append(imgs, img)
		b = append(b, label(i)...)
		b = append(b, img...)
	}
	return b, imgs
}

func TestCIFAR10(t *testing.T) {
	dir := t.TempDir()
	var want [][]byte
	var labels []int
	sizes := []int{3, 1, 4, 2, 5}
	for k, n := range sizes {
		b, imgs := cifarBytes(n, uint64(k+1), func(i int) []byte { return []byte{byte((k + i) % 10)} })
		writeFile(t, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", k+1)), b)
		want = append(want, imgs...)
		for i := 0; i < n; i++ {
			labels = append(labels, (k+i)%10)
		}
	}
	tb, timgs := cifarBytes(2, 9, func(i int) []byte { return []byte{9} })
	writeFile(t, filepath.Join(dir, "test_batch.bin"), tb)

	ds, err := Open("cifar10", dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 15 || ds.Shape() != (Shape{3, 32, 32}) || ds.Classes()[1] != "automobile" {
		t.Fatalf("got %d images of %v, classes %v", ds.Len(), ds.Shape(), ds.Classes())
	}
	for i, img := range readAll(t, ds) {
		if !bytes.Equal(img, want[i]) || ds.Label(i) != labels[i] {
			t.Fatalf("image %d: pixels equal %v, label %d expected %d", i, bytes.Equal(img, want[i]), ds.Label(i), labels[i])
		}
	}
	ts, err := Open("cifar10", dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, ts); len(got) != 2 || !bytes.Equal(got[1], timgs[1]) || ts.Label(1) != 9 {
		t.Fatal("test split differs")
	}

	// Truncating one batch is reported with its path and the record size.
	p := filepath.Join(dir, "data_batch_3.bin")
	writeFile(t, p, tb[:3073+100])
	_, err = Open("cifar10", dir, "train")
	mustContain(t, err, p, "3173", "3073")
}

func TestCIFAR100(t *testing.T) {
	dir := t.TempDir()
	b, imgs := cifarBytes(6, 3, func(i int) []byte { return []byte{byte(i % 20), byte(90 + i)} })
	writeFile(t, filepath.Join(dir, "train.bin"), b)
	ds, err := Open("cifar100", dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Classes()[95] != "class_95" {
		t.Fatalf("generic class names expected, got %q", ds.Classes()[95])
	}
	for i, img := range readAll(t, ds) {
		if !bytes.Equal(img, imgs[i]) || ds.Label(i) != 90+i {
			t.Fatalf("image %d: label %d expected %d (fine label)", i, ds.Label(i), 90+i)
		}
	}
	var names []string
	for k := 0; k < 100; k++ {
		names = append(names, fmt.Sprintf("name%02d", k))
	}
	writeFile(t, filepath.Join(dir, "fine_label_names.txt"), []byte(strings.Join(names, "\n")+"\n"))
	ds, err = Open("cifar100", dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Classes()[42] != "name42" {
		t.Fatalf("class 42 = %q", ds.Classes()[42])
	}
	writeFile(t, filepath.Join(dir, "fine_label_names.txt"), []byte("a\nb\n"))
	_, err = Open("cifar100", dir, "train")
	mustContain(t, err, "fine_label_names.txt", "2 class names", "100")
}

func TestCIFARRejectsBadRecords(t *testing.T) {
	good, _ := cifarBytes(3, 1, func(int) []byte { return []byte{3} })
	bad100, _ := cifarBytes(2, 1, func(int) []byte { return []byte{25, 3} })
	badFine, _ := cifarBytes(2, 1, func(int) []byte { return []byte{2, 100} })
	cases := []struct {
		name   string
		b      []byte
		nlabel int
		nclass int
		want   []string
	}{
		{"truncated", good[:len(good)-1], 1, 10, []string{"f.bin", "9218", "3073"}},
		{"empty", nil, 1, 10, []string{"f.bin", "size 0"}},
		{"label range", append([]byte{}, good...), 1, 3, []string{"f.bin", "record 0", "is 3", "0..2"}},
		{"coarse range", bad100, 2, 100, []string{"f.bin", "is 25", "0..19"}},
		{"fine range", badFine, 2, 100, []string{"f.bin", "is 100", "0..99"}},
		{"cifar10 as 100", good, 2, 100, []string{"f.bin", "9219", "3074"}},
	}
	for _, c := range cases {
		classes := make([]string, c.nclass)
		_, err := newCIFAR([]*region{memRegion("f.bin", c.b)}, c.nlabel, classes)
		mustContain(t, err, c.want...)
	}
}

// TestMappedFileOutlivesGC reads a memory-mapped dataset through a wrapper
// after garbage collections, which must not release the mapping early.
func TestMappedFileOutlivesGC(t *testing.T) {
	dir := t.TempDir()
	b, imgs := cifarBytes(4, 7, func(i int) []byte { return []byte{byte(i)} })
	writeFile(t, filepath.Join(dir, "test_batch.bin"), b)
	open := func() Dataset {
		ds, err := OpenCIFAR10(dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := Subset(ds, []int{3, 1})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	sub := open()
	for k := 0; k < 3; k++ {
		runtime.GC()
	}
	got := readAll(t, sub)
	if !bytes.Equal(got[0], imgs[3]) || !bytes.Equal(got[1], imgs[1]) {
		t.Fatal("images differ after GC")
	}
}
