package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// uniform draws from U(lo, hi).
func uniform(rng *rand.Rand, lo, hi float64) float64 {
	return lo + (hi-lo)*rng.Float64()
}

// SampleCrop draws a crop window (top, left, ch, cw) of an h x w image the way
// torchvision's RandomResizedCrop.get_params does: up to 10 attempts with area
// U(scale)*h*w and log-uniform aspect ratio in ratio, w = round(sqrt(a*r)),
// h = round(sqrt(a/r)) (round half to even), accepted if it fits, at a uniform
// position; otherwise the central crop with the aspect ratio clamped to ratio.
func SampleCrop(rng *rand.Rand, h, w int, scale, ratio [2]float64) (top, left, ch, cw int, err error) {
	if rng == nil {
		return 0, 0, 0, 0, fmt.Errorf("augment: SampleCrop: nil random source")
	}
	if h < 1 || w < 1 {
		return 0, 0, 0, 0, fmt.Errorf("augment: SampleCrop: image size %dx%d, want positive height and width", h, w)
	}
	if err := checkRange("scale", scale[0], scale[1]); err != nil {
		return 0, 0, 0, 0, err
	}
	if err := checkRange("ratio", ratio[0], ratio[1]); err != nil {
		return 0, 0, 0, 0, err
	}
	area := float64(h * w)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(rng, scale[0], scale[1])
		aspect := math.Exp(uniform(rng, logLo, logHi))
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top := rng.IntN(h - ch + 1)
			left := rng.IntN(w - cw + 1)
			return top, left, ch, cw, nil
		}
	}
	inRatio := float64(w) / float64(h)
	switch {
	case inRatio < ratio[0]:
		cw = w
		ch = int(math.RoundToEven(float64(cw) / ratio[0]))
	case inRatio > ratio[1]:
		ch = h
		cw = int(math.RoundToEven(float64(ch) * ratio[1]))
	default:
		cw, ch = w, h
	}
	ch = min(max(ch, 1), h)
	cw = min(max(cw, 1), w)
	return (h - ch) / 2, (w - cw) / 2, ch, cw, nil
}

// Jitter op identifiers, in torchvision's ColorJitter numbering.
const (
	OpBrightness = 0
	OpContrast   = 1
	OpSaturation = 2
	OpHue        = 3
)

// Plan holds every random decision of one augmented view, so the deterministic
// part (Apply) can be reproduced and checked on its own.
type Plan struct {
	// Top, Left, CropH and CropW locate the crop window in the source image.
	Top, Left, CropH, CropW int
	// Flip is true when the view is mirrored left to right.
	Flip bool
	// Jitter is true when colour jitter is applied.
	Jitter bool
	// Order is the order of the jitter ops (OpBrightness, ...).
	Order [4]int
	// Brightness, Contrast, Saturation and Hue are the jitter factors; an op whose
	// Params strength is 0 is skipped (its factor is left at 1, or 0 for hue).
	Brightness, Contrast, Saturation, Hue float64
	// Gray is true when the view is converted to grayscale.
	Gray bool
	// BlurK is the blur kernel size (1 = no blur) and Sigma its standard deviation.
	BlurK int
	// Sigma is the blur's standard deviation.
	Sigma float64
}

// Sample draws the random decisions of one view of an h x w image from rng.
func (p Params) Sample(rng *rand.Rand, h, w int) (Plan, error) {
	if err := p.Validate(); err != nil {
		return Plan{}, err
	}
	return p.sample(rng, h, w)
}

// sample is Sample for validated p.
func (p Params) sample(rng *rand.Rand, h, w int) (Plan, error) {
	var pl Plan
	var err error
	pl.Top, pl.Left, pl.CropH, pl.CropW, err = SampleCrop(rng, h, w,
		[2]float64{p.ScaleMin, p.ScaleMax}, [2]float64{p.RatioMin, p.RatioMax})
	if err != nil {
		return Plan{}, err
	}
	pl.Flip = rng.Float64() < p.FlipP
	pl.Jitter = rng.Float64() < p.JitterP
	pl.Brightness, pl.Contrast, pl.Saturation = 1, 1, 1
	if pl.Jitter {
		perm := rng.Perm(4)
		copy(pl.Order[:], perm)
		if p.Brightness > 0 {
			pl.Brightness = uniform(rng, max(0, 1-p.Brightness), 1+p.Brightness)
		}
		if p.Contrast > 0 {
			pl.Contrast = uniform(rng, max(0, 1-p.Contrast), 1+p.Contrast)
		}
		if p.Saturation > 0 {
			pl.Saturation = uniform(rng, max(0, 1-p.Saturation), 1+p.Saturation)
		}
		if p.Hue > 0 {
			pl.Hue = uniform(rng, -p.Hue, p.Hue)
		}
	} else {
		pl.Order = [4]int{0, 1, 2, 3}
	}
	pl.Gray = rng.Float64() < p.GrayP
	pl.BlurK = 1
	if p.Blur {
		pl.BlurK = BlurKernel(p.Size)
		pl.Sigma = uniform(rng, p.SigmaMin, p.SigmaMax)
	}
	return pl, nil
}

// Apply renders the view described by pl from src (3 x h x w) into dst
// (3 x Size x Size): resized crop, flip, jitter ops in pl.Order, grayscale,
// blur, then normalisation when Mean/Std are set.
func (p Params) Apply(pl Plan, src []float32, h, w int, dst []float32) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return p.apply(pl, src, h, w, dst, nil)
}

// apply is Apply for validated p, with an optional blur scratch buffer of Size*Size values.
func (p Params) apply(pl Plan, src []float32, h, w int, dst, scratch []float32) error {
	s := p.Size
	if err := ResizedCrop(src, h, w, pl.Top, pl.Left, pl.CropH, pl.CropW, s, dst); err != nil {
		return err
	}
	if pl.Flip {
		if err := HFlip(dst, s, s); err != nil {
			return err
		}
	}
	if pl.Jitter {
		for _, op := range pl.Order {
			var err error
			switch op {
			case OpBrightness:
				if p.Brightness > 0 {
					err = AdjustBrightness(dst, s, s, pl.Brightness)
				}
			case OpContrast:
				if p.Contrast > 0 {
					err = AdjustContrast(dst, s, s, pl.Contrast)
				}
			case OpSaturation:
				if p.Saturation > 0 {
					err = AdjustSaturation(dst, s, s, pl.Saturation)
				}
			case OpHue:
				if p.Hue > 0 {
					err = AdjustHue(dst, s, s, pl.Hue)
				}
			default:
				err = fmt.Errorf("augment: plan has unknown jitter op %d", op)
			}
			if err != nil {
				return err
			}
		}
	}
	if pl.Gray {
		if err := Grayscale(dst, s, s); err != nil {
			return err
		}
	}
	if pl.BlurK > 1 {
		if err := gaussianBlur(dst, s, s, pl.BlurK, pl.Sigma, scratch); err != nil {
			return err
		}
	}
	if p.Mean != nil {
		if err := Normalize(dst, s, s, p.Mean, p.Std); err != nil {
			return err
		}
	}
	return nil
}

// View writes one augmented view of src (3 x h x w, CHW, values in [0, 1]) into
// dst (3 x Size x Size), drawing its random decisions from rng.
func (p Params) View(rng *rand.Rand, src []float32, h, w int, dst []float32) error {
	if err := p.Validate(); err != nil {
		return err
	}
	pl, err := p.sample(rng, h, w)
	if err != nil {
		return err
	}
	return p.apply(pl, src, h, w, dst, nil)
}

// splitmix64 is the finaliser of the SplitMix64 generator, a bijective bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// RNG returns the random stream of one view: it depends only on (seed, epoch,
// index, view), so augmentations are reproducible whatever the worker count or
// batch order.
func RNG(seed int64, epoch, index, view int) *rand.Rand {
	k := splitmix64(uint64(seed))
	k = splitmix64(k ^ uint64(int64(epoch)))
	k = splitmix64(k ^ uint64(int64(index)))
	k = splitmix64(k ^ uint64(int64(view)))
	return rand.New(rand.NewPCG(k, splitmix64(k^0x5851f42d4c957f2d)))
}
