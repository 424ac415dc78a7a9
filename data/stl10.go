package data

import (
	"fmt"
	"path/filepath"
)

const stlImage = 3 * 96 * 96

// newSTL10 builds a dataset from an STL-10 image file (uint8 [N,3,96,96],
// each channel plane stored column-major) and an optional label file (one
// byte per image, 1..10). lbls nil means unlabeled.
func newSTL10(imgs, lbls *region) (*rawSet, error) {
	if imgs.size()%stlImage != 0 {
		return nil, fmt.Errorf("%s: file size %d is not a multiple of the %d-byte STL-10 image (3x96x96); truncated or wrong file", imgs.name, imgs.size(), stlImage)
	}
	n := imgs.size() / stlImage
	d := &rawSet{shape: Shape{3, 96, 96}, colMajor: true, classes: STL10Classes}
	if lbls != nil {
		if lbls.size() != n {
			return nil, fmt.Errorf("data: %s has %d labels but %s has %d images", lbls.name, lbls.size(), imgs.name, n)
		}
		d.labels = make([]int16, n)
		for i := range d.labels {
			v := lbls.byteAt(i)
			if v < 1 || v > 10 {
				return nil, fmt.Errorf("%s: label of image %d is %d, expected 1..10", lbls.name, i, v)
			}
			d.labels[i] = int16(v) - 1
		}
	}
	d.addSegment(imgs, n, 0, stlImage)
	return d, nil
}

// OpenSTL10 opens the STL-10 binary dataset in dir: split "train" or
// "test" reads <split>_X.bin and <split>_y.bin; split "unlabeled" reads
// unlabeled_X.bin and labels every image -1. Labels 1..10 become 0..9.
func OpenSTL10(dir, split string) (Dataset, error) {
	if split != "train" && split != "test" && split != "unlabeled" {
		return nil, fmt.Errorf("data: stl10 in %s: unknown split %q, expected train, test or unlabeled", dir, split)
	}
	how := "extract stl10_binary.tar.gz so that its stl10_binary/*.bin files are in that directory"
	p := filepath.Join(dir, split+"_X.bin")
	imgs, err := openRegion(p)
	if err != nil {
		return nil, missing("stl10", p, how, err)
	}
	var lbls *region
	if split != "unlabeled" {
		p = filepath.Join(dir, split+"_y.bin")
		if lbls, err = openRegion(p); err != nil {
			return nil, missing("stl10", p, how, err)
		}
	}
	return newSTL10(imgs, lbls)
}
