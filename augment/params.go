package augment

import (
	"errors"
	"fmt"
	"math"
)

// Channels is the number of colour channels every image has.
const Channels = 3

// Params configures the SimCLR augmentation of one view.
type Params struct {
	// Size is the side of the square output view.
	Size int
	// ScaleMin and ScaleMax bound the crop area as a fraction of the image area.
	ScaleMin, ScaleMax float64
	// RatioMin and RatioMax bound the crop aspect ratio (width / height).
	RatioMin, RatioMax float64
	// FlipP is the probability of a horizontal flip.
	FlipP float64
	// JitterP is the probability that colour jitter is applied.
	JitterP float64
	// Brightness, Contrast and Saturation x draw factors from U(max(0,1-x), 1+x); 0 disables the op.
	Brightness, Contrast, Saturation float64
	// Hue x draws a hue shift from U(-x, x), x in [0, 0.5]; 0 disables the op.
	Hue float64
	// GrayP is the probability of converting the view to grayscale.
	GrayP float64
	// Blur enables the Gaussian blur with kernel BlurKernel(Size) and sigma ~ U(SigmaMin, SigmaMax).
	Blur bool
	// SigmaMin and SigmaMax bound the blur's standard deviation.
	SigmaMin, SigmaMax float64
	// Mean and Std, when non-nil, normalise each channel as (x - Mean[c]) / Std[c].
	Mean, Std []float32
}

// SimCLR returns the reference SimCLR augmentation for square views of side size:
// RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)), flip p 0.5,
// ColorJitter(0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale p 0.2, Gaussian blur with
// sigma in (0.1, 2.0), and no normalisation.
func SimCLR(size int) Params {
	return Params{
		Size:     size,
		ScaleMin: 0.08, ScaleMax: 1,
		RatioMin: 3.0 / 4.0, RatioMax: 4.0 / 3.0,
		FlipP:      0.5,
		JitterP:    0.8,
		Brightness: 0.8, Contrast: 0.8, Saturation: 0.8, Hue: 0.2,
		GrayP:    0.2,
		Blur:     true,
		SigmaMin: 0.1, SigmaMax: 2.0,
	}
}

// Light is the augmentation of the supervised victim: a random resized crop of scale
// (scaleMin, 1) and ratio (3/4, 4/3), and a horizontal flip with p 0.5; no colour, grayscale
// or blur (a classifier learns its labels' invariances from the labels, not from views).
func Light(size int, scaleMin float64) Params {
	return Params{Size: size, ScaleMin: scaleMin, ScaleMax: 1, RatioMin: 3.0 / 4.0, RatioMax: 4.0 / 3.0, FlipP: 0.5}
}

// BlurKernel returns the odd blur kernel size used for views of side size:
// 2*floor(0.1*size/2)+1 (3 for 32, 23 for 224). A result of 1 means no blur.
func BlurKernel(size int) int {
	if size < 1 {
		return 1
	}
	return 2*(size/20) + 1
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func checkProb(name string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("augment: %s = %v, want a probability in [0, 1]", name, p)
	}
	return nil
}

// Validate reports the first invalid setting of p, or nil.
func (p Params) Validate() error {
	if p.Size < 1 {
		return fmt.Errorf("augment: Size = %d, want >= 1", p.Size)
	}
	if err := checkRange("scale", p.ScaleMin, p.ScaleMax); err != nil {
		return err
	}
	if err := checkRange("ratio", p.RatioMin, p.RatioMax); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"FlipP", p.FlipP}, {"JitterP", p.JitterP}, {"GrayP", p.GrayP}} {
		if err := checkProb(c.name, c.v); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"Brightness", p.Brightness}, {"Contrast", p.Contrast}, {"Saturation", p.Saturation}} {
		if !finite(c.v) || c.v < 0 {
			return fmt.Errorf("augment: %s = %v, want a finite value >= 0", c.name, c.v)
		}
	}
	if !(p.Hue >= 0 && p.Hue <= 0.5) {
		return fmt.Errorf("augment: Hue = %v, want a value in [0, 0.5]", p.Hue)
	}
	if p.Blur {
		if !finite(p.SigmaMin) || !finite(p.SigmaMax) || p.SigmaMin <= 0 || p.SigmaMin > p.SigmaMax {
			return fmt.Errorf("augment: blur sigma range (%v, %v), want 0 < SigmaMin <= SigmaMax", p.SigmaMin, p.SigmaMax)
		}
	}
	if (p.Mean == nil) != (p.Std == nil) {
		return errors.New("augment: Mean and Std must both be set or both be nil")
	}
	if p.Mean != nil {
		if len(p.Mean) != Channels || len(p.Std) != Channels {
			return fmt.Errorf("augment: Mean/Std have %d/%d values, want %d", len(p.Mean), len(p.Std), Channels)
		}
		for c := range Channels {
			if !finite(float64(p.Mean[c])) || !finite(float64(p.Std[c])) || p.Std[c] == 0 {
				return fmt.Errorf("augment: channel %d mean %v std %v, want finite values and std != 0", c, p.Mean[c], p.Std[c])
			}
		}
	}
	return nil
}

func checkRange(name string, lo, hi float64) error {
	if !finite(lo) || !finite(hi) || lo <= 0 || lo > hi {
		return fmt.Errorf("augment: %s range (%v, %v), want finite 0 < min <= max", name, lo, hi)
	}
	return nil
}
