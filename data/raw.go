package data

// segment is a run of fixed-size image records inside one region.
type segment struct {
	r      *region
	start  int // index of the first image of the segment in the dataset
	n      int // number of images
	off    int // byte offset of the first record's pixels
	stride int // bytes from one record to the next
}

// rawSet is a dataset of fixed-size uint8 records stored in regions, either
// already CHW or with every channel plane stored column-major.
type rawSet struct {
	shape    Shape
	segs     []segment
	n        int
	colMajor bool    // planes stored column-major (w columns of h pixels)
	labels   []int16 // nil when unlabeled
	classes  []string
}

// Len is the number of images.
func (d *rawSet) Len() int { return d.n }

// Shape is the shape of every image.
func (d *rawSet) Shape() Shape { return d.shape }

// Classes are the class names.
func (d *rawSet) Classes() []string { return d.classes }

// Label is the class of image i, -1 when unlabeled or out of range.
func (d *rawSet) Label(i int) int {
	if d.labels == nil || i < 0 || i >= len(d.labels) {
		return -1
	}
	return int(d.labels[i])
}

// Image copies image i into dst, transposing column-major planes.
func (d *rawSet) Image(i int, dst []uint8) error {
	if err := checkImageArgs(d, i, dst); err != nil {
		return err
	}
	s := &d.segs[0]
	for k := range d.segs {
		if i < d.segs[k].start+d.segs[k].n {
			s = &d.segs[k]
			break
		}
	}
	off := s.off + (i-s.start)*s.stride
	if d.colMajor {
		s.r.transposeAt(dst, off, d.shape.C, d.shape.H, d.shape.W)
	} else {
		s.r.copyAt(dst, off)
	}
	return nil
}

// addSegment appends a segment of n records of stride bytes at off.
func (d *rawSet) addSegment(r *region, n, off, stride int) {
	d.segs = append(d.segs, segment{r: r, start: d.n, n: n, off: off, stride: stride})
	d.n += n
}
