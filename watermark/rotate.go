// Package watermark embeds and verifies a rotation-prediction watermark in a self-supervised
// encoder (the defense studied in "On the Difficulty of Defending Self-Supervised Learning
// against Model Extraction", ICML 2022).
//
// The owner trains, jointly with the victim encoder f, a small secret MLP g (d -> 256 -> 128
// -> 2) on a rotation task: an image rotated by theta in [0, 360) degrees has label 0 when
// theta < 180 and 1 otherwise, and g sees f's representation of the rotated image. Both g and
// f get the gradient of the watermark loss (the reference code forgot to put g's parameters in
// its optimiser; here they are trained), so the rotation information is embedded in f's
// representations and inherited by a copy stolen from them. The owner keeps g secret
// (Head.Save). Verification runs g on a suspect encoder's representations of rotated held-out
// images: independent encoders score about 50%, stolen copies more; a one-sided one-sample
// t-test of the per-image correctness against 0.5 decides (Verify).
//
// The training side is a set of building blocks (RotationBatch, Head, Loss) that the training
// loop of package train combines with its contrastive loss.
package watermark

import (
	"fmt"
	"math"
	"math/rand"
)

// maxPixels bounds c*h*w of one image (the same bound as package data's images).
const maxPixels = 1 << 30

// checkImages validates the dimensions of n images of c x h x w held in a slice of length got.
func checkImages(what string, got, n, c, h, w int) error {
	if n < 0 || c <= 0 || h <= 0 || w <= 0 {
		return fmt.Errorf("watermark: %s: expected n >= 0 and positive c, h, w, got n=%d c=%d h=%d w=%d", what, n, c, h, w)
	}
	per := int64(c) * int64(h) * int64(w)
	if per > maxPixels || (n > 0 && int64(n) > math.MaxInt64/per) {
		return fmt.Errorf("watermark: %s: %d images of %dx%dx%d is too large", what, n, c, h, w)
	}
	if want := int64(n) * per; int64(got) != want {
		return fmt.Errorf("watermark: %s: got %d values, expected %d (%d images of %dx%dx%d)", what, got, want, n, c, h, w)
	}
	return nil
}

// Rotate writes into dst the image src (c x h x w, CHW float32) rotated by degrees about the
// image centre, counter-clockwise on screen for positive angles (rows pointing down), sampled
// bilinearly with zero fill outside the source. It computes what torchvision's
// F.rotate(img, angle, interpolation=BILINEAR) computes for a float tensor (an inverse affine
// grid with half-pixel centres fed to grid_sample(align_corners=False, padding_mode="zeros")),
// in float64 rather than float32. Rotate by 0 is the identity. src and dst must not overlap.
func Rotate(src []float32, c, h, w int, degrees float64, dst []float32) error {
	if err := checkImages("rotate source", len(src), 1, c, h, w); err != nil {
		return err
	}
	if err := checkImages("rotate destination", len(dst), 1, c, h, w); err != nil {
		return err
	}
	if math.IsNaN(degrees) || math.IsInf(degrees, 0) {
		return fmt.Errorf("watermark: rotate: angle %v degrees is not a finite number", degrees)
	}
	rotate(src, c, h, w, degrees, dst)
	return nil
}

// rotate is Rotate without the checks.
func rotate(src []float32, c, h, w int, degrees float64, dst []float32) {
	plane := h * w
	if math.Mod(degrees, 360) == 0 {
		copy(dst, src[:c*plane])
		return
	}
	rad := degrees * math.Pi / 180
	cos, sin := math.Cos(rad), math.Sin(rad)
	hw, hh := float64(w)/2, float64(h)/2
	for i := 0; i < h; i++ {
		yb := float64(i) - hh + 0.5 // output pixel centre relative to the image centre
		for j := 0; j < w; j++ {
			xb := float64(j) - hw + 0.5
			// Source pixel coordinates (pixel centres at integers).
			sx := cos*xb - sin*yb + hw - 0.5
			sy := sin*xb + cos*yb + hh - 0.5
			x0f, y0f := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0f, sy-y0f
			x0, y0 := int(x0f), int(y0f)
			// Corner weights; corners outside the image contribute zero.
			var idx [4]int
			var wt [4]float64
			k := 0
			for dy := 0; dy < 2; dy++ {
				yy := y0 + dy
				if yy < 0 || yy >= h {
					continue
				}
				wy := 1 - fy
				if dy == 1 {
					wy = fy
				}
				for dx := 0; dx < 2; dx++ {
					xx := x0 + dx
					if xx < 0 || xx >= w {
						continue
					}
					wx := 1 - fx
					if dx == 1 {
						wx = fx
					}
					idx[k], wt[k] = yy*w+xx, wx*wy
					k++
				}
			}
			o := i*w + j
			for ch := 0; ch < c; ch++ {
				s := src[ch*plane : (ch+1)*plane]
				var v float64
				for q := 0; q < k; q++ {
					v += wt[q] * float64(s[idx[q]])
				}
				dst[ch*plane+o] = float32(v)
			}
		}
	}
}

// AngleLabel is the watermark class of a rotation by degrees: 0 for an angle in [0, 180),
// 1 for [180, 360) (angles are taken modulo 360 first).
func AngleLabel(degrees float64) int64 {
	a := math.Mod(degrees, 360)
	if a < 0 {
		a += 360
	}
	if a < 180 {
		return 0
	}
	return 1
}

// RotationBatch rotates each of the n images (c x h x w, NCHW float32 in images) by its own
// angle drawn uniformly from [0, 360) with rng, and returns the rotated images with their
// watermark labels (AngleLabel of the angle). Rotate the images before any mean/std
// normalisation, so that the zero fill is a black pixel as in training.
func RotationBatch(rng *rand.Rand, images []float32, n, c, h, w int) (rotated []float32, labels []int64, err error) {
	rotated, labels, _, err = rotationBatch(rng, images, n, c, h, w)
	return rotated, labels, err
}

// rotationBatch is RotationBatch that also returns the angles drawn.
func rotationBatch(rng *rand.Rand, images []float32, n, c, h, w int) (rotated []float32, labels []int64, angles []float64, err error) {
	if rng == nil {
		return nil, nil, nil, fmt.Errorf("watermark: rotation batch: nil random source")
	}
	if err := checkImages("rotation batch", len(images), n, c, h, w); err != nil {
		return nil, nil, nil, err
	}
	size := c * h * w
	rotated = make([]float32, n*size)
	labels = make([]int64, n)
	angles = make([]float64, n)
	for i := 0; i < n; i++ {
		a := rng.Float64() * 360
		angles[i] = a
		labels[i] = AngleLabel(a)
		rotate(images[i*size:(i+1)*size], c, h, w, a, rotated[i*size:(i+1)*size])
	}
	return rotated, labels, angles, nil
}
