package data

import (
	"fmt"
	"math"
	"path/filepath"
)

// newSVHN builds a dataset from the variables X (uint8 [H,W,C,N],
// column-major) and y ([N,1] label values, 10 meaning digit 0) of a MAT file.
func newSVHN(r *region) (*rawSet, error) {
	vars, err := readMAT(r, "X", "y")
	if err != nil {
		return nil, err
	}
	x, y := vars["X"], vars["y"]
	if x == nil || y == nil {
		return nil, fmt.Errorf("%s: expected numeric variables X and y, found X=%v y=%v", r.name, x != nil, y != nil)
	}
	var sh Shape
	n := 1
	switch len(x.dims) {
	case 4:
		n = x.dims[3]
		fallthrough
	case 3:
		sh = Shape{x.dims[2], x.dims[0], x.dims[1]}
	default:
		return nil, fmt.Errorf("%s: X has dimensions %v, expected [H,W,C,N]", r.name, x.dims)
	}
	if err := checkShape("X", sh); err != nil {
		return nil, fmt.Errorf("%s: X has dimensions %v (expected [H,W,C,N]): %w", r.name, x.dims, err)
	}
	if len(y.dims) != 2 || y.dims[0]*y.dims[1] != n || (y.dims[0] != 1 && y.dims[1] != 1) {
		return nil, fmt.Errorf("%s: y has dimensions %v, expected [%d,1] to match X %v", r.name, y.dims, n, x.dims)
	}
	labels := make([]int16, n)
	for i := range labels {
		v := y.value(i)
		if v != math.Trunc(v) || v < 0 || v > 10 {
			return nil, fmt.Errorf("%s: y(%d) is %v, expected an integer label 0..10", r.name, i+1, v)
		}
		if v == 10 {
			v = 0
		}
		labels[i] = int16(v)
	}
	pix, off := x.r, x.off
	if x.dtype != miUINT8 {
		// Convert values stored in a wider type to bytes once.
		buf := make([]byte, x.count())
		for k := range buf {
			v := x.value(k)
			if v != math.Trunc(v) || v < 0 || v > 255 {
				return nil, fmt.Errorf("%s: X value %d is %v, expected an integer 0..255", r.name, k, v)
			}
			buf[k] = byte(v)
		}
		pix, off = memRegion(r.name, buf), 0
	}
	d := &rawSet{shape: sh, colMajor: true, labels: labels, classes: SVHNClasses}
	d.addSegment(pix, n, off, sh.Size())
	return d, nil
}

// OpenSVHN opens the SVHN cropped-digits dataset (format 2) in dir: split
// "train", "test" or "extra" reads <split>_32x32.mat, a MATLAB v5 file,
// compressed or not. Label 10 (digit 0) becomes class 0.
func OpenSVHN(dir, split string) (Dataset, error) {
	if split != "train" && split != "test" && split != "extra" {
		return nil, fmt.Errorf("data: svhn in %s: unknown split %q, expected train, test or extra", dir, split)
	}
	p := filepath.Join(dir, split+"_32x32.mat")
	r, err := openRegion(p)
	if err != nil {
		return nil, missing("svhn", p, "download the SVHN format 2 (cropped digits) files train_32x32.mat, test_32x32.mat, extra_32x32.mat into that directory", err)
	}
	return newSVHN(r)
}
