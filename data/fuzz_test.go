package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"testing"
)

// exercise reads every image (up to a bound) and label of a dataset that
// parsed successfully; every read must succeed and labels must be in range.
func exercise(t *testing.T, ds Dataset) {
	t.Helper()
	if ds.Len() == 0 {
		return
	}
	buf := make([]byte, ds.Shape().Size())
	nc := len(ds.Classes())
	for i := 0; i < min(ds.Len(), 64); i++ {
		if err := ds.Image(i, buf); err != nil {
			t.Fatalf("parsed dataset fails to read image %d: %v", i, err)
		}
		if l := ds.Label(i); l < -1 || l >= nc {
			t.Fatalf("label %d of image %d outside -1..%d", l, i, nc-1)
		}
	}
	if err := ds.Image(ds.Len()-1, buf); err != nil {
		t.Fatalf("last image: %v", err)
	}
}

func FuzzIDX(f *testing.F) {
	imgs := idxBytes([]int{3, 4, 5}, randBytes(60, 1))
	lbls := idxBytes([]int{3}, []byte{0, 9, 4})
	f.Add(imgs, lbls, false)
	f.Add(gz(f, imgs), gz(f, lbls), true)
	f.Add(imgs[:20], lbls, false)
	f.Fuzz(func(t *testing.T, imgs, lbls []byte, gzipped bool) {
		if gzipped {
			var err error
			if imgs, err = gunzip("images.gz", imgs); err != nil {
				return
			}
			if lbls, err = gunzip("labels.gz", lbls); err != nil {
				return
			}
		}
		ds, err := newIDX(memRegion("images", imgs), memRegion("labels", lbls), MNISTClasses)
		if err != nil {
			return
		}
		exercise(t, ds)
	})
}

func FuzzCIFAR(f *testing.F) {
	one, _ := cifarBytes(2, 1, func(i int) []byte { return []byte{byte(i)} })
	two, _ := cifarBytes(2, 1, func(i int) []byte { return []byte{byte(i), byte(50 + i)} })
	f.Add(one, false)
	f.Add(two, true)
	f.Add(one[:100], false)
	f.Fuzz(func(t *testing.T, b []byte, hundred bool) {
		nlabel, classes := 1, CIFAR10Classes
		if hundred {
			nlabel, classes = 2, make([]string, 100)
		}
		ds, err := newCIFAR([]*region{memRegion("f.bin", b), memRegion("g.bin", b)}, nlabel, classes)
		if err != nil {
			return
		}
		exercise(t, ds)
	})
}

func FuzzSVHNMat(f *testing.F) {
	_, x := svhnImages(2, 32, 32, 1)
	for _, o := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, compress := range []bool{false, true} {
			w := newMatWriter(o, compress, compress)
			w.add("X", 9, []int{32, 32, 3, 2}, miUINT8, x)
			w.add("y", mxDOUBLE, []int{2, 1}, miDOUBLE, w.doubles([]float64{10, 3}))
			f.Add(w.buf.Bytes())
		}
	}
	// A small file with 2x2 images keeps mutations cheap.
	w := newMatWriter(binary.LittleEndian, false, true)
	w.add("X", 9, []int{2, 2, 3, 1}, miUINT8, randBytes(12, 3))
	w.add("y", mxDOUBLE, []int{1, 1}, miUINT8, []byte{4})
	f.Add(w.buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := newSVHN(memRegion("f.mat", b))
		if err != nil {
			return
		}
		exercise(t, ds)
	})
}

func FuzzSTL10(f *testing.F) {
	raw := randBytes(stlImage, 9)
	f.Add(raw, []byte{3}, true)
	f.Add(raw, []byte{}, false)
	f.Add(raw[:100], []byte{1}, true)
	f.Fuzz(func(t *testing.T, imgs, lbls []byte, labeled bool) {
		var lr *region
		if labeled {
			lr = memRegion("y.bin", lbls)
		}
		ds, err := newSTL10(memRegion("X.bin", imgs), lr)
		if err != nil {
			return
		}
		exercise(t, ds)
	})
}

// FuzzSVHNMatCompressed mutates the miMATRIX elements before they are
// wrapped in miCOMPRESSED, so mutations reach the inflated-element parser.
func FuzzSVHNMatCompressed(f *testing.F) {
	w := newMatWriter(binary.LittleEndian, true, true)
	f.Add(w.matrix("X", 9, []int{2, 2, 3, 2}, miUINT8, randBytes(24, 4)), w.matrix("y", mxDOUBLE, []int{2, 1}, miDOUBLE, w.doubles([]float64{10, 3})))
	f.Add(w.matrix("X", 9, []int{32, 32, 3, 1}, miUINT8, randBytes(3072, 5)), w.matrix("y", mxDOUBLE, []int{1, 1}, miUINT8, []byte{7}))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		w := newMatWriter(binary.LittleEndian, true, true)
		for _, m := range [][]byte{x, y} {
			var z bytes.Buffer
			zw := zlib.NewWriter(&z)
			zw.Write(m)
			zw.Close()
			w.buf.Write(w.o.AppendUint32(nil, miCOMPRESSED))
			w.buf.Write(w.o.AppendUint32(nil, uint32(z.Len())))
			w.buf.Write(z.Bytes())
		}
		ds, err := newSVHN(memRegion("f.mat", w.buf.Bytes()))
		if err != nil {
			return
		}
		exercise(t, ds)
	})
}
