package data

import (
	"fmt"
	"sync"
)

// wrapper forwards everything but Image to an underlying dataset.
type wrapper struct{ base Dataset }

// Len is the base length.
func (w wrapper) Len() int { return w.base.Len() }

// Shape is the base shape.
func (w wrapper) Shape() Shape { return w.base.Shape() }

// Label is the base label.
func (w wrapper) Label(i int) int { return w.base.Label(i) }

// Classes are the base class names.
func (w wrapper) Classes() []string { return w.base.Classes() }

// gray3 replicates a single channel three times.
type gray3 struct{ wrapper }

// Gray3 turns 1-channel images into 3-channel ones by replicating the
// channel; a 3-channel dataset is returned unchanged. Other channel counts
// are an error.
func Gray3(ds Dataset) (Dataset, error) {
	switch c := ds.Shape().C; c {
	case 3:
		return ds, nil
	case 1:
		return gray3{wrapper{ds}}, nil
	default:
		return nil, fmt.Errorf("data: Gray3: dataset has %d channels, expected 1 or 3", c)
	}
}

// Square3 makes every image 3 x size x size: gray images get three channels (Gray3), and
// images of another size are resized bilinearly (Resize): what an encoder trained at that size
// is fed.
func Square3(ds Dataset, size int) (Dataset, error) {
	ds, err := Gray3(ds)
	if err != nil {
		return nil, err
	}
	if s := ds.Shape(); s.H != size || s.W != size {
		return Resize(ds, size)
	}
	return ds, nil
}

// Shape is the base shape with 3 channels.
func (g gray3) Shape() Shape { s := g.base.Shape(); s.C = 3; return s }

// Image reads the base image into the first plane and copies it twice.
func (g gray3) Image(i int, dst []uint8) error {
	if err := checkImageArgs(g, i, dst); err != nil {
		return err
	}
	p := len(dst) / 3
	if err := g.base.Image(i, dst[:p]); err != nil {
		return err
	}
	copy(dst[p:2*p], dst[:p])
	copy(dst[2*p:], dst[:p])
	return nil
}

// bufPool recycles scratch image buffers of one size.
type bufPool struct {
	size int
	pool sync.Pool
}

func newBufPool(size int) *bufPool {
	p := &bufPool{size: size}
	p.pool.New = func() any { b := make([]uint8, size); return &b }
	return p
}
func (p *bufPool) get() *[]uint8  { return p.pool.Get().(*[]uint8) }
func (p *bufPool) put(b *[]uint8) { p.pool.Put(b) }

// resized resamples every image to a fixed size.
type resized struct {
	wrapper
	shape Shape
	rs    *resampler
	bufs  *bufPool
}

// Resize resizes every image to size x size with a bilinear (triangle)
// filter and half-pixel centres, antialiased when shrinking: the result
// matches torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=True) rounded to the nearest integer.
// Resizing to the current size returns ds unchanged.
func Resize(ds Dataset, size int) (Dataset, error) {
	if size <= 0 {
		return nil, fmt.Errorf("data: Resize: size %d, expected > 0", size)
	}
	s := ds.Shape()
	if s.H == size && s.W == size {
		return ds, nil
	}
	if s.H <= 0 || s.W <= 0 {
		return nil, fmt.Errorf("data: Resize: dataset images are %s, expected non-empty", s)
	}
	return &resized{
		wrapper: wrapper{ds},
		shape:   Shape{s.C, size, size},
		rs:      newResampler(s.C, s.H, s.W, size, size),
		bufs:    newBufPool(s.Size()),
	}, nil
}

// Shape is C x size x size.
func (r *resized) Shape() Shape { return r.shape }

// Image reads the base image and resamples it.
func (r *resized) Image(i int, dst []uint8) error {
	if err := checkImageArgs(r, i, dst); err != nil {
		return err
	}
	b := r.bufs.get()
	defer r.bufs.put(b)
	if err := r.base.Image(i, *b); err != nil {
		return err
	}
	r.rs.apply(*b, dst)
	return nil
}

// padded places every image in the centre of a larger zero canvas.
type padded struct {
	wrapper
	shape     Shape
	top, left int
	bufs      *bufPool
}

// Pad zero-pads every image to size x size, centred (for odd margins the
// extra row/column goes to the bottom/right), e.g. 28x28 -> 32x32. size
// must be at least the image height and width.
func Pad(ds Dataset, size int) (Dataset, error) {
	s := ds.Shape()
	if size < s.H || size < s.W {
		return nil, fmt.Errorf("data: Pad: size %d is smaller than the %dx%d images", size, s.H, s.W)
	}
	if size == s.H && size == s.W {
		return ds, nil
	}
	return &padded{
		wrapper: wrapper{ds},
		shape:   Shape{s.C, size, size},
		top:     (size - s.H) / 2,
		left:    (size - s.W) / 2,
		bufs:    newBufPool(s.Size()),
	}, nil
}

// Shape is C x size x size.
func (p *padded) Shape() Shape { return p.shape }

// Image reads the base image and copies it into a zeroed canvas.
func (p *padded) Image(i int, dst []uint8) error {
	if err := checkImageArgs(p, i, dst); err != nil {
		return err
	}
	b := p.bufs.get()
	defer p.bufs.put(b)
	if err := p.base.Image(i, *b); err != nil {
		return err
	}
	clear(dst)
	s := p.base.Shape()
	for c := 0; c < s.C; c++ {
		for y := 0; y < s.H; y++ {
			src := (*b)[(c*s.H+y)*s.W : (c*s.H+y+1)*s.W]
			copy(dst[(c*p.shape.H+p.top+y)*p.shape.W+p.left:], src)
		}
	}
	return nil
}

// view maps indices through idx (or through an offset when idx is nil).
type view struct {
	wrapper
	idx  []int
	from int
	n    int
}

func (v *view) at(i int) int {
	if v.idx != nil {
		return v.idx[i]
	}
	return v.from + i
}

// Len is the number of selected images.
func (v *view) Len() int { return v.n }

// Label is the label of the selected base image.
func (v *view) Label(i int) int {
	if i < 0 || i >= v.n {
		return -1
	}
	return v.base.Label(v.at(i))
}

// Image reads the selected base image.
func (v *view) Image(i int, dst []uint8) error {
	if i < 0 || i >= v.n {
		return fmt.Errorf("data: image index %d out of range [0,%d)", i, v.n)
	}
	return v.base.Image(v.at(i), dst)
}

// Subset selects the images idx of ds, in that order (repeats allowed).
// The index slice is copied.
func Subset(ds Dataset, idx []int) (Dataset, error) {
	n := ds.Len()
	for k, i := range idx {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("data: Subset: index %d (position %d) out of range [0,%d)", i, k, n)
		}
	}
	return &view{wrapper: wrapper{ds}, idx: append([]int{}, idx...), n: len(idx)}, nil
}

// Range selects images from..to-1 of ds.
func Range(ds Dataset, from, to int) (Dataset, error) {
	if from < 0 || to < from || to > ds.Len() {
		return nil, fmt.Errorf("data: Range: [%d,%d) is not within the %d images", from, to, ds.Len())
	}
	return &view{wrapper: wrapper{ds}, from: from, n: to - from}, nil
}

// First selects the first n images of ds.
func First(ds Dataset, n int) (Dataset, error) {
	if n < 0 || n > ds.Len() {
		return nil, fmt.Errorf("data: First: %d images requested, dataset has %d", n, ds.Len())
	}
	return Range(ds, 0, n)
}

// Last selects the last n images of ds.
func Last(ds Dataset, n int) (Dataset, error) {
	if n < 0 || n > ds.Len() {
		return nil, fmt.Errorf("data: Last: %d images requested, dataset has %d", n, ds.Len())
	}
	return Range(ds, ds.Len()-n, ds.Len())
}

// Shuffle returns ds in a pseudo-random order fixed by seed. The
// permutation is Permutation(ds.Len(), seed).
func Shuffle(ds Dataset, seed int64) Dataset {
	return &view{wrapper: wrapper{ds}, idx: Permutation(ds.Len(), seed), n: ds.Len()}
}

// SplitMix64 returns the SplitMix64 generator started at state s: a fixed sequence of 64-bit
// values, the same on every platform and Go release.
func SplitMix64(s uint64) func() uint64 {
	return func() uint64 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
}

// Permutation returns a permutation of 0..n-1 determined only by n and
// seed (Fisher-Yates driven by SplitMix64), stable across Go versions.
func Permutation(n int, seed int64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	next := SplitMix64(uint64(seed))
	for i := n - 1; i > 0; i-- {
		// Unbiased draw in [0,i] by rejection.
		bound := uint64(i + 1)
		limit := -bound % bound // 2^64 mod bound
		v := next()
		for v < limit {
			v = next()
		}
		j := int(v % bound)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
