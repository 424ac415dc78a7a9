package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const cifarPixels = 3 * 32 * 32

// cifarFile validates one CIFAR binary file of records made of nlabel label
// bytes followed by 3072 pixels, and appends its records to d. The label
// used is the last label byte of each record; it must be below nclass.
func cifarFile(d *rawSet, r *region, nlabel, nclass int) error {
	rec := nlabel + cifarPixels
	if r.size() == 0 || r.size()%rec != 0 {
		return fmt.Errorf("%s: file size %d is not a positive multiple of the %d-byte CIFAR record (%d label byte(s) + %d pixels); truncated or wrong file", r.name, r.size(), rec, nlabel, cifarPixels)
	}
	n := r.size() / rec
	for i := 0; i < n; i++ {
		for k := 0; k < nlabel; k++ {
			v := r.byteAt(i*rec + k)
			lim := nclass
			if nlabel == 2 && k == 0 {
				lim = 20 // CIFAR-100 coarse label
			}
			if int(v) >= lim {
				return fmt.Errorf("%s: record %d: label byte %d is %d, expected 0..%d", r.name, i, k, v, lim-1)
			}
			if k == nlabel-1 {
				d.labels = append(d.labels, int16(v))
			}
		}
	}
	d.addSegment(r, n, nlabel, rec)
	return nil
}

// newCIFAR builds a CIFAR dataset from the given files.
func newCIFAR(files []*region, nlabel int, classes []string) (*rawSet, error) {
	d := &rawSet{shape: Shape{3, 32, 32}, labels: []int16{}, classes: classes}
	for _, r := range files {
		if err := cifarFile(d, r, nlabel, len(classes)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func openAll(dataset, dir string, names []string, how string) ([]*region, error) {
	var rs []*region
	for _, n := range names {
		p := filepath.Join(dir, n)
		r, err := openRegion(p)
		if err != nil {
			return nil, missing(dataset, p, how, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// OpenCIFAR10 opens the CIFAR-10 binary version in dir: split "train" reads
// data_batch_1.bin .. data_batch_5.bin, split "test" reads test_batch.bin.
func OpenCIFAR10(dir, split string) (Dataset, error) {
	var names []string
	switch split {
	case "train":
		for k := 1; k <= 5; k++ {
			names = append(names, fmt.Sprintf("data_batch_%d.bin", k))
		}
	case "test":
		names = []string{"test_batch.bin"}
	default:
		return nil, fmt.Errorf("data: cifar10 in %s: unknown split %q, expected train or test", dir, split)
	}
	rs, err := openAll("cifar10", dir, names, "extract cifar-10-binary.tar.gz (the CIFAR-10 binary version) so that its cifar-10-batches-bin files are in that directory")
	if err != nil {
		return nil, err
	}
	return newCIFAR(rs, 1, CIFAR10Classes)
}

// OpenCIFAR100 opens the CIFAR-100 binary version in dir: split "train"
// reads train.bin, "test" reads test.bin; labels are the fine labels. Class
// names come from fine_label_names.txt in dir when present, else "class_N".
func OpenCIFAR100(dir, split string) (Dataset, error) {
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("data: cifar100 in %s: unknown split %q, expected train or test", dir, split)
	}
	rs, err := openAll("cifar100", dir, []string{split + ".bin"}, "extract cifar-100-binary.tar.gz (the CIFAR-100 binary version) so that train.bin and test.bin are in that directory")
	if err != nil {
		return nil, err
	}
	classes, err := cifar100Classes(dir)
	if err != nil {
		return nil, err
	}
	return newCIFAR(rs, 2, classes)
}

// cifar100Classes reads fine_label_names.txt or makes generic names.
func cifar100Classes(dir string) ([]string, error) {
	p := filepath.Join(dir, "fine_label_names.txt")
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		names := make([]string, 100)
		for k := range names {
			names[k] = fmt.Sprintf("class_%d", k)
		}
		return names, nil
	}
	if err != nil {
		return nil, fmt.Errorf("data: cifar100: %w", err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	if len(names) != 100 {
		return nil, fmt.Errorf("data: cifar100: %s has %d class names, expected 100", p, len(names))
	}
	return names, nil
}
