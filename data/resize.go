package data

import "math"

// kernel holds, for every output position of a 1-D resampling, the first
// contributing input position and the normalized weights.
type kernel struct {
	start []int
	w     [][]float64
}

// triangleKernel builds the bilinear (triangle filter) resampling from in
// to out samples with half-pixel centres. When shrinking, the filter is
// widened by the scale factor (antialiasing), as PIL and
// torch.nn.functional.interpolate(mode="bilinear", antialias=True) do; when
// enlarging it equals plain bilinear interpolation with align_corners=False.
func triangleKernel(in, out int) kernel {
	k := kernel{start: make([]int, out), w: make([][]float64, out)}
	scale := float64(in) / float64(out)
	support := math.Max(scale, 1)
	for o := 0; o < out; o++ {
		c := (float64(o) + 0.5) * scale
		lo := max(int(math.Floor(c-support)), 0)
		hi := min(int(math.Ceil(c+support)), in-1)
		var ws []float64
		sum := 0.0
		first := -1
		for i := lo; i <= hi; i++ {
			x := math.Abs(float64(i)+0.5-c) / support
			if x >= 1 {
				if first >= 0 {
					break
				}
				continue
			}
			if first < 0 {
				first = i
			}
			ws = append(ws, 1-x)
			sum += 1 - x
		}
		if first < 0 { // cannot happen for in >= 1, kept for safety
			first, ws, sum = min(max(int(c), 0), in-1), []float64{1}, 1
		}
		for j := range ws {
			ws[j] /= sum
		}
		k.start[o], k.w[o] = first, ws
	}
	return k
}

// resampler resizes CHW uint8 images from one size to another.
type resampler struct {
	c, ih, iw, oh, ow int
	kx, ky            kernel
}

func newResampler(c, ih, iw, oh, ow int) *resampler {
	return &resampler{c: c, ih: ih, iw: iw, oh: oh, ow: ow, kx: triangleKernel(iw, ow), ky: triangleKernel(ih, oh)}
}

// apply resizes src (c*ih*iw) into dst (c*oh*ow), rounding to nearest.
func (r *resampler) apply(src, dst []uint8) {
	tmp := make([]float64, r.ih*r.ow)
	for ch := 0; ch < r.c; ch++ {
		s := src[ch*r.ih*r.iw : (ch+1)*r.ih*r.iw]
		for y := 0; y < r.ih; y++ {
			row := s[y*r.iw : (y+1)*r.iw]
			for x := 0; x < r.ow; x++ {
				acc := 0.0
				st := r.kx.start[x]
				for j, w := range r.kx.w[x] {
					acc += w * float64(row[st+j])
				}
				tmp[y*r.ow+x] = acc
			}
		}
		d := dst[ch*r.oh*r.ow : (ch+1)*r.oh*r.ow]
		for y := 0; y < r.oh; y++ {
			st := r.ky.start[y]
			ws := r.ky.w[y]
			for x := 0; x < r.ow; x++ {
				acc := 0.0
				for j, w := range ws {
					acc += w * tmp[(st+j)*r.ow+x]
				}
				d[y*r.ow+x] = clamp8(acc)
			}
		}
	}
}

// clamp8 rounds v to the nearest integer in 0..255.
func clamp8(v float64) uint8 {
	v = math.Round(v)
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v)
}
