package data

import (
	"fmt"
	"strings"
)

// Normalization is a per-channel mean and standard deviation applied after
// scaling pixels to [0,1]: v = (p/255 - Mean[c]) / Std[c]. The zero value
// applies none. A one-element Mean/Std applies to every channel.
type Normalization struct{ Mean, Std []float32 }

// NormalizationFor returns the commonly published per-channel statistics
// of the named dataset (cifar10, cifar100, svhn, stl10, imagenet, fmnist,
// mnist), or the zero Normalization for other names.
func NormalizationFor(name string) Normalization {
	switch strings.ToLower(name) {
	case "cifar10", "cifar-10":
		return Normalization{[]float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}}
	case "cifar100", "cifar-100":
		return Normalization{[]float32{0.5071, 0.4865, 0.4409}, []float32{0.2673, 0.2564, 0.2762}}
	case "svhn":
		return Normalization{[]float32{0.4377, 0.4438, 0.4728}, []float32{0.1980, 0.2010, 0.1970}}
	case "stl10", "stl-10":
		return Normalization{[]float32{0.4467, 0.4398, 0.4066}, []float32{0.2603, 0.2566, 0.2713}}
	case "imagenet":
		return Normalization{[]float32{0.485, 0.456, 0.406}, []float32{0.229, 0.224, 0.225}}
	case "fmnist", "fashion-mnist", "fashionmnist":
		return Normalization{[]float32{0.2860}, []float32{0.3530}}
	case "mnist":
		return Normalization{[]float32{0.1307}, []float32{0.3081}}
	}
	return Normalization{}
}

// stats returns each of c channels' mean and std, checking that the statistics fit c channels
// (one set for all, or one per channel) and that every std is positive.
func (n Normalization) stats(c int) (mean, std []float32, err error) {
	if len(n.Mean) != len(n.Std) {
		return nil, nil, fmt.Errorf("data: normalization has %d means and %d stds, expected equal counts", len(n.Mean), len(n.Std))
	}
	if len(n.Mean) > 1 && len(n.Mean) != c {
		return nil, nil, fmt.Errorf("data: normalization has %d channels, images have %d (expected %d or 1)", len(n.Mean), c, c)
	}
	mean, std = make([]float32, c), make([]float32, c)
	for ch := range c {
		mean[ch], std[ch] = 0, 1
		if len(n.Mean) == 1 {
			mean[ch], std[ch] = n.Mean[0], n.Std[0]
		} else if len(n.Mean) == c {
			mean[ch], std[ch] = n.Mean[ch], n.Std[ch]
		}
		if !(std[ch] > 0) {
			return nil, nil, fmt.Errorf("data: normalization std %v for channel %d, expected > 0", std[ch], ch)
		}
	}
	return mean, std, nil
}

// table returns, for each channel, the 256-entry lookup of normalized values.
func (n Normalization) table(c int) ([][256]float32, error) {
	mean, std, err := n.stats(c)
	if err != nil {
		return nil, err
	}
	t := make([][256]float32, c)
	for ch := range t {
		for p := range 256 {
			t[ch][p] = (float32(p)/255 - mean[ch]) / std[ch]
		}
	}
	return t, nil
}

// Apply normalises x, c planes of [0,1] values (CHW, one image), in place: (x - mean) / std per
// channel, the values ToFloat gives for uint8 images.
func (n Normalization) Apply(x []float32, c int) error {
	if n.Mean == nil {
		return nil
	}
	if c <= 0 || len(x)%c != 0 {
		return fmt.Errorf("data: %d values are not %d whole channels", len(x), c)
	}
	mean, std, err := n.stats(c)
	if err != nil {
		return err
	}
	plane := len(x) / c
	for ch := range c {
		for j := ch * plane; j < (ch+1)*plane; j++ {
			x[j] = (x[j] - mean[ch]) / std[ch]
		}
	}
	return nil
}

// ToFloat converts image i of ds into dst (len C*H*W, CHW) as normalized
// float32 values.
func ToFloat(ds Dataset, i int, norm Normalization, dst []float32) error {
	return Batch(ds, []int{i}, norm, dst)
}

// Batch converts the images idx of ds into dst (len(idx)*C*H*W, NCHW) as
// normalized float32 values.
func Batch(ds Dataset, idx []int, norm Normalization, dst []float32) error {
	s := ds.Shape()
	size := s.Size()
	if len(dst) != len(idx)*size {
		return fmt.Errorf("data: float buffer has %d values, expected %d (%d images of %s)", len(dst), len(idx)*size, len(idx), s)
	}
	t, err := norm.table(s.C)
	if err != nil {
		return err
	}
	buf := make([]uint8, size)
	plane := s.H * s.W
	for k, i := range idx {
		if err := ds.Image(i, buf); err != nil {
			return err
		}
		out := dst[k*size : (k+1)*size]
		for ch := 0; ch < s.C; ch++ {
			lut := &t[ch]
			o := out[ch*plane : (ch+1)*plane]
			for j, p := range buf[ch*plane : (ch+1)*plane] {
				o[j] = lut[p]
			}
		}
	}
	return nil
}
