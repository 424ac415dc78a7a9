package data

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// idxHeader parses the header of an IDX file of unsigned bytes with ndims
// dimensions and checks the file holds exactly the data it declares. It
// returns the dimensions and the offset of the data.
func idxHeader(r *region, ndims int) ([]int, int, error) {
	b := r.b
	if len(b) < 4 {
		return nil, 0, fmt.Errorf("%s: truncated IDX header: %d bytes, expected at least 4", r.name, len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		return nil, 0, fmt.Errorf("%s: bad IDX magic % x, expected 00 00 08 %02x", r.name, b[:4], ndims)
	}
	if b[2] != 0x08 {
		return nil, 0, fmt.Errorf("%s: IDX element type 0x%02x, expected 0x08 (unsigned byte)", r.name, b[2])
	}
	if int(b[3]) != ndims {
		return nil, 0, fmt.Errorf("%s: IDX file has %d dimensions, expected %d", r.name, b[3], ndims)
	}
	hdr := 4 + 4*ndims
	if len(b) < hdr {
		return nil, 0, fmt.Errorf("%s: truncated IDX header: %d bytes, expected %d", r.name, len(b), hdr)
	}
	dims := make([]int, ndims)
	total := 1
	avail := len(b) - hdr
	for k := range dims {
		dims[k] = int(binary.BigEndian.Uint32(b[4+4*k:]))
		if dims[k] != 0 && total > (1<<50)/dims[k] {
			return nil, 0, fmt.Errorf("%s: IDX header declares dimensions %v, far more data than the %d bytes in the file (truncated or corrupt)", r.name, dims, avail)
		}
		total *= dims[k]
	}
	if total != avail {
		what := "truncated"
		if avail > total {
			what = "has trailing data"
		}
		return nil, 0, fmt.Errorf("%s: IDX file %s: header declares %v = %d data bytes, found %d", r.name, what, dims, total, avail)
	}
	return dims, hdr, nil
}

// newIDX builds a dataset from an IDX3 image file and an IDX1 label file.
func newIDX(imgs, lbls *region, classes []string) (*rawSet, error) {
	dims, off, err := idxHeader(imgs, 3)
	if err != nil {
		return nil, err
	}
	ldims, loff, err := idxHeader(lbls, 1)
	if err != nil {
		return nil, err
	}
	n, h, w := dims[0], dims[1], dims[2]
	if err := checkShape(imgs.name, Shape{1, h, w}); err != nil {
		return nil, err
	}
	if ldims[0] != n {
		return nil, fmt.Errorf("data: %s has %d labels but %s has %d images", lbls.name, ldims[0], imgs.name, n)
	}
	labels := make([]int16, n)
	for i := range labels {
		v := lbls.b[loff+i]
		if int(v) >= len(classes) {
			return nil, fmt.Errorf("%s: label %d of image %d out of range, expected 0..%d", lbls.name, v, i, len(classes)-1)
		}
		labels[i] = int16(v)
	}
	d := &rawSet{shape: Shape{1, h, w}, labels: labels, classes: classes}
	d.addSegment(imgs, n, off, h*w)
	return d, nil
}

// OpenIDX opens an MNIST-style dataset of IDX files in dir: split "train"
// reads train-images-idx3-ubyte and train-labels-idx1-ubyte, split "test"
// reads t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or with
// a .gz suffix. Labels must be below len(classes).
func OpenIDX(dir, split string, classes []string) (Dataset, error) {
	prefix := map[string]string{"train": "train", "test": "t10k"}[split]
	if prefix == "" {
		return nil, fmt.Errorf("data: IDX dataset in %s: unknown split %q, expected train or test", dir, split)
	}
	how := "for Fashion-MNIST run `apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist); for MNIST place the four IDX files (optionally .gz) in that directory"
	open := func(base string) (*region, error) {
		p := filepath.Join(dir, base)
		if _, err := os.Stat(p); err != nil {
			p += ".gz"
		}
		r, err := loadRegion(p)
		if err != nil {
			return nil, missing("IDX", p, how, err)
		}
		return r, nil
	}
	imgs, err := open(prefix + "-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lbls, err := open(prefix + "-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	return newIDX(imgs, lbls, classes)
}
