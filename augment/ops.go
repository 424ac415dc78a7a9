package augment

import (
	"fmt"
	"math"
)

// grayscale weights of torchvision's rgb_to_grayscale (ITU-R 601-2 luma, as torchvision rounds them).
const (
	grayR = float32(0.2989)
	grayG = float32(0.587)
	grayB = float32(0.114)
)

// checkImage verifies that img holds a 3 x h x w image.
func checkImage(name string, img []float32, h, w int) error {
	if h < 1 || w < 1 {
		return fmt.Errorf("augment: %s: image size %dx%d, want positive height and width", name, h, w)
	}
	if len(img) != Channels*h*w {
		return fmt.Errorf("augment: %s: image has %d values, want %d (3 x %d x %d)", name, len(img), Channels*h*w, h, w)
	}
	return nil
}

func clamp01(x float32) float32 {
	if x < 0 {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

// linearTaps holds, for each output position, the two input positions and
// their weights, as torch's CPU bilinear interpolation with align_corners=False
// computes them (source index and weights in float64, weights stored as float32).
type linearTaps struct {
	i0, i1 []int
	l0, l1 []float32
}

func newLinearTaps(in, out int) linearTaps {
	t := linearTaps{i0: make([]int, out), i1: make([]int, out), l0: make([]float32, out), l1: make([]float32, out)}
	scale := float64(in) / float64(out)
	for x := range out {
		s := max(scale*(float64(x)+0.5)-0.5, 0)
		x0 := min(int(s), in-1)
		l := min(max(s-float64(x0), 0), 1)
		x1 := x0
		if x0 < in-1 {
			x1 = x0 + 1
		}
		t.i0[x], t.i1[x], t.l0[x], t.l1[x] = x0, x1, float32(1-l), float32(l)
	}
	return t
}

// ResizedCrop crops the ch x cw window at (top, left) of src (3 x h x w) and
// resizes it bilinearly to size x size into dst, like torchvision's
// F.resized_crop(img, top, left, ch, cw, [size, size], BILINEAR, antialias=False).
// The window must lie inside the image.
func ResizedCrop(src []float32, h, w, top, left, ch, cw, size int, dst []float32) error {
	if err := checkImage("ResizedCrop source", src, h, w); err != nil {
		return err
	}
	if size < 1 {
		return fmt.Errorf("augment: ResizedCrop: size %d, want >= 1", size)
	}
	if len(dst) != Channels*size*size {
		return fmt.Errorf("augment: ResizedCrop: dst has %d values, want %d (3 x %d x %d)", len(dst), Channels*size*size, size, size)
	}
	if ch < 1 || cw < 1 || top < 0 || left < 0 || top+ch > h || left+cw > w {
		return fmt.Errorf("augment: ResizedCrop: window %dx%d at (%d, %d) is not inside the %dx%d image", ch, cw, top, left, h, w)
	}
	ty := newLinearTaps(ch, size)
	tx := newLinearTaps(cw, size)
	for c := range Channels {
		plane := src[c*h*w : (c+1)*h*w]
		out := dst[c*size*size : (c+1)*size*size]
		for y := range size {
			r0 := plane[(top+ty.i0[y])*w+left : (top+ty.i0[y])*w+left+cw]
			r1 := plane[(top+ty.i1[y])*w+left : (top+ty.i1[y])*w+left+cw]
			ly0, ly1 := ty.l0[y], ty.l1[y]
			row := out[y*size : (y+1)*size]
			for x := range size {
				lx0, lx1 := tx.l0[x], tx.l1[x]
				a, b := tx.i0[x], tx.i1[x]
				row[x] = ly0*(lx0*r0[a]+lx1*r0[b]) + ly1*(lx0*r1[a]+lx1*r1[b])
			}
		}
	}
	return nil
}

// HFlip mirrors img (3 x h x w) left to right in place, like F.hflip.
func HFlip(img []float32, h, w int) error {
	if err := checkImage("HFlip", img, h, w); err != nil {
		return err
	}
	for r := range Channels * h {
		row := img[r*w : (r+1)*w]
		for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
			row[i], row[j] = row[j], row[i]
		}
	}
	return nil
}

// Grayscale replaces every channel of img (3 x h x w) by its luma
// 0.2989 R + 0.587 G + 0.114 B, like F.rgb_to_grayscale(img, 3).
func Grayscale(img []float32, h, w int) error {
	if err := checkImage("Grayscale", img, h, w); err != nil {
		return err
	}
	n := h * w
	r, g, b := img[:n], img[n:2*n], img[2*n:]
	for i := range n {
		l := grayR*r[i] + grayG*g[i] + grayB*b[i]
		r[i], g[i], b[i] = l, l, l
	}
	return nil
}

func checkFactor(name string, f float64) error {
	if !finite(f) || f < 0 {
		return fmt.Errorf("augment: %s factor %v, want a finite value >= 0", name, f)
	}
	return nil
}

// AdjustBrightness scales img (3 x h x w) by factor >= 0 in place and clamps to
// [0, 1], like F.adjust_brightness.
func AdjustBrightness(img []float32, h, w int, factor float64) error {
	if err := checkImage("AdjustBrightness", img, h, w); err != nil {
		return err
	}
	if err := checkFactor("brightness", factor); err != nil {
		return err
	}
	f := float32(factor)
	for i, v := range img {
		img[i] = clamp01(f * v)
	}
	return nil
}

// AdjustContrast blends img (3 x h x w) in place with the mean of its grayscale
// image by factor >= 0 and clamps to [0, 1], like F.adjust_contrast.
func AdjustContrast(img []float32, h, w int, factor float64) error {
	if err := checkImage("AdjustContrast", img, h, w); err != nil {
		return err
	}
	if err := checkFactor("contrast", factor); err != nil {
		return err
	}
	n := h * w
	r, g, b := img[:n], img[n:2*n], img[2*n:]
	var sum float64
	for i := range n {
		sum += float64(grayR*r[i] + grayG*g[i] + grayB*b[i])
	}
	mean := float32(sum / float64(n))
	f, k := float32(factor), float32(1-factor)*mean
	for i, v := range img {
		img[i] = clamp01(f*v + k)
	}
	return nil
}

// AdjustSaturation blends img (3 x h x w) in place with its grayscale image by
// factor >= 0 and clamps to [0, 1], like F.adjust_saturation.
func AdjustSaturation(img []float32, h, w int, factor float64) error {
	if err := checkImage("AdjustSaturation", img, h, w); err != nil {
		return err
	}
	if err := checkFactor("saturation", factor); err != nil {
		return err
	}
	n := h * w
	r, g, b := img[:n], img[n:2*n], img[2*n:]
	f, f1 := float32(factor), float32(1-factor)
	for i := range n {
		l := f1 * (grayR*r[i] + grayG*g[i] + grayB*b[i])
		r[i] = clamp01(f*r[i] + l)
		g[i] = clamp01(f*g[i] + l)
		b[i] = clamp01(f*b[i] + l)
	}
	return nil
}

// AdjustHue shifts the hue of img (3 x h x w) in place by factor in [-0.5, 0.5]
// (a fraction of the hue circle) through HSV, like F.adjust_hue. Values stay in
// [0, 1] when the input is in [0, 1].
func AdjustHue(img []float32, h, w int, factor float64) error {
	if err := checkImage("AdjustHue", img, h, w); err != nil {
		return err
	}
	if !(factor >= -0.5 && factor <= 0.5) {
		return fmt.Errorf("augment: hue factor %v, want a value in [-0.5, 0.5]", factor)
	}
	n := h * w
	r, g, b := img[:n], img[n:2*n], img[2*n:]
	shift := float32(factor)
	for i := range n {
		hh, s, v := rgbToHSV(r[i], g[i], b[i])
		hh = mod1(hh + shift) // hh in [0, 1), shift in [-0.5, 0.5]
		r[i], g[i], b[i] = hsvToRGB(hh, s, v)
	}
	return nil
}

// mod1 returns x mod 1 for x in [-1, 2) as torch's float32 remainder computes
// it (fmod, then + 1 when negative, so a tiny negative x rounds up to 1).
func mod1(x float32) float32 {
	switch {
	case x < 0:
		return x + 1
	case x >= 1:
		return x - 1 // exact for x in [1, 2)
	}
	return x
}

// rgbToHSV converts one pixel with float32 arithmetic in the order torchvision uses.
func rgbToHSV(r, g, b float32) (h, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		// torchvision: s = 0 and h = fmod(6/6 + 1, 1) = 0.
		return 0, 0, maxc
	}
	cr := maxc - minc
	s = cr / maxc
	rc := (maxc - r) / cr
	gc := (maxc - g) / cr
	bc := (maxc - b) / cr
	switch {
	case maxc == r:
		h = bc - gc
	case maxc == g:
		h = 2 + rc - bc
	default:
		h = 4 + gc - rc
	}
	// h/6 + 1 lies in [5/6, 11/6], where fmod(., 1) is an exact subtraction.
	return mod1(h/6 + 1), s, maxc
}

// hsvToRGB converts one pixel back with float32 arithmetic in torchvision's order.
func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	i := int(h6) // h is in [0, 1], so truncation is floor
	f := h6 - float32(i)
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// gaussianKernel1D returns torchvision's normalised 1-D Gaussian kernel of odd size k.
func gaussianKernel1D(k int, sigma float64) []float32 {
	half := float64(k-1) * 0.5
	pdf := make([]float64, k)
	var sum float64
	for i := range k {
		x := -half + float64(i)
		pdf[i] = math.Exp(-0.5 * (x / sigma) * (x / sigma))
		sum += pdf[i]
	}
	out := make([]float32, k)
	for i := range k {
		out[i] = float32(pdf[i] / sum)
	}
	return out
}

// reflect maps an index outside [0, n) back inside by mirroring without
// repeating the edge (torch's "reflect" padding); |overhang| must be < n.
func reflect(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}

// GaussianBlur blurs img (3 x h x w) in place with a k x k Gaussian kernel of
// standard deviation sigma and reflect padding, like
// F.gaussian_blur(img, [k, k], [sigma, sigma]). k must be odd with k/2 smaller
// than h and w; k = 1 leaves img unchanged.
func GaussianBlur(img []float32, h, w, k int, sigma float64) error {
	return gaussianBlur(img, h, w, k, sigma, nil)
}

// gaussianBlur is GaussianBlur with an optional scratch buffer of h*w values.
func gaussianBlur(img []float32, h, w, k int, sigma float64, scratch []float32) error {
	if err := checkImage("GaussianBlur", img, h, w); err != nil {
		return err
	}
	if k < 1 || k%2 == 0 {
		return fmt.Errorf("augment: GaussianBlur: kernel size %d, want a positive odd number", k)
	}
	if !finite(sigma) || sigma <= 0 {
		return fmt.Errorf("augment: GaussianBlur: sigma %v, want a finite value > 0", sigma)
	}
	if k == 1 {
		return nil
	}
	pad := k / 2
	if pad >= h || pad >= w {
		return fmt.Errorf("augment: GaussianBlur: kernel size %d needs padding %d, which reflect padding allows only below the image size %dx%d", k, pad, h, w)
	}
	kern := gaussianKernel1D(k, sigma)
	if len(scratch) < h*w {
		scratch = make([]float32, h*w)
	}
	tmp := scratch[:h*w]
	for c := range Channels {
		plane := img[c*h*w : (c+1)*h*w]
		// Horizontal pass into tmp.
		for y := range h {
			row := plane[y*w : (y+1)*w]
			out := tmp[y*w : (y+1)*w]
			for x := range w {
				var acc float32
				if x >= pad && x+pad < w {
					win := row[x-pad : x+pad+1]
					for j, kv := range kern {
						acc += kv * win[j]
					}
				} else {
					for j, kv := range kern {
						acc += kv * row[reflect(x-pad+j, w)]
					}
				}
				out[x] = acc
			}
		}
		// Vertical pass back into the plane.
		for y := range h {
			out := plane[y*w : (y+1)*w]
			clear(out)
			for j, kv := range kern {
				src := tmp[reflect(y-pad+j, h)*w : (reflect(y-pad+j, h)+1)*w]
				for x := range w {
					out[x] += kv * src[x]
				}
			}
		}
	}
	return nil
}

// Normalize maps each channel c of img (3 x h x w) in place to (x - mean[c]) / std[c], like F.normalize.
func Normalize(img []float32, h, w int, mean, std []float32) error {
	if err := checkImage("Normalize", img, h, w); err != nil {
		return err
	}
	if len(mean) != Channels || len(std) != Channels {
		return fmt.Errorf("augment: Normalize: mean/std have %d/%d values, want %d", len(mean), len(std), Channels)
	}
	n := h * w
	for c := range Channels {
		if std[c] == 0 {
			return fmt.Errorf("augment: Normalize: std of channel %d is 0", c)
		}
		m, s := mean[c], std[c]
		plane := img[c*n : (c+1)*n]
		for i, v := range plane {
			plane[i] = (v - m) / s
		}
	}
	return nil
}
