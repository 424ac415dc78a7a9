package data

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"text/tabwriter"
)

// Summary describes a whole dataset.
type Summary struct {
	Len       int       // number of images
	Shape     Shape     // shape of every image
	Min, Max  uint8     // smallest and largest pixel value over all images
	Mean, Std []float64 // per-channel mean and standard deviation of p/255
	Labels    []int     // Labels[k] is the number of images with label k
	Unlabeled int       // number of images with label -1
}

// Inspect scans every image and label of ds. Work is spread over
// GOMAXPROCS goroutines.
func Inspect(ds Dataset) (Summary, error) {
	s := Summary{Len: ds.Len(), Shape: ds.Shape()}
	c, plane := s.Shape.C, s.Shape.H*s.Shape.W
	workers := max(1, min(runtime.GOMAXPROCS(0), s.Len/256))
	hists := make([][][256]int64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := make([][256]int64, c)
			buf := make([]uint8, s.Shape.Size())
			for i := w * s.Len / workers; i < (w+1)*s.Len/workers; i++ {
				if err := ds.Image(i, buf); err != nil {
					errs[w] = fmt.Errorf("data: Inspect: image %d: %w", i, err)
					return
				}
				for ch := range c {
					hc := &h[ch]
					for _, p := range buf[ch*plane : (ch+1)*plane] {
						hc[p]++
					}
				}
			}
			hists[w] = h
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Summary{}, err
		}
	}
	total := make([][256]int64, c)
	for _, h := range hists {
		for ch := range h {
			for p, n := range h[ch] {
				total[ch][p] += n
			}
		}
	}
	lo, hi := 256, -1
	s.Mean, s.Std = make([]float64, c), make([]float64, c)
	for ch := range total {
		var n, sum, sq float64
		for p, k := range total[ch] {
			if k == 0 {
				continue
			}
			lo, hi = min(lo, p), max(hi, p)
			v := float64(p) / 255
			n += float64(k)
			sum += float64(k) * v
			sq += float64(k) * v * v
		}
		if n > 0 {
			m := sum / n
			s.Mean[ch], s.Std[ch] = m, math.Sqrt(max(0, sq/n-m*m))
		}
	}
	if hi >= 0 {
		s.Min, s.Max = uint8(lo), uint8(hi)
	}
	for i := range s.Len {
		l := ds.Label(i)
		if l < 0 {
			s.Unlabeled++
			continue
		}
		for len(s.Labels) <= l {
			s.Labels = append(s.Labels, 0)
		}
		s.Labels[l]++
	}
	return s, nil
}

// Print writes the summary as aligned text; classes (may be nil) names the
// labels.
func (s Summary) Print(w io.Writer, classes []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "images\t%d\n", s.Len)
	fmt.Fprintf(tw, "shape (CxHxW)\t%s\n", s.Shape)
	fmt.Fprintf(tw, "values\t%d..%d\n", s.Min, s.Max)
	fmt.Fprintf(tw, "mean\t%s\n", floats(s.Mean))
	fmt.Fprintf(tw, "std\t%s\n", floats(s.Std))
	if s.Unlabeled > 0 {
		fmt.Fprintf(tw, "unlabeled\t%d\n", s.Unlabeled)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(s.Labels) > 0 {
		fmt.Fprintf(tw, "label\tclass\tcount\n")
		for k, n := range s.Labels {
			name := "-"
			if k < len(classes) {
				name = classes[k]
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\n", k, name, n)
		}
	}
	return tw.Flush()
}

func floats(v []float64) string {
	out := ""
	for k, x := range v {
		if k > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.4f", x)
	}
	return out
}

// WriteGrid writes a PNG at path showing the first n images of ds (all of
// them when it has fewer) in rows of cols, separated by 2-pixel gaps.
// Images smaller than 64 pixels are upscaled 2x (nearest neighbour).
func WriteGrid(ds Dataset, n, cols int, path string) error {
	s := ds.Shape()
	if n <= 0 || cols <= 0 {
		return fmt.Errorf("data: WriteGrid: %d images in %d columns, expected both > 0", n, cols)
	}
	if s.C != 1 && s.C != 3 {
		return fmt.Errorf("data: WriteGrid: images have %d channels, expected 1 or 3", s.C)
	}
	n = min(n, ds.Len())
	if n == 0 {
		return fmt.Errorf("data: WriteGrid: dataset is empty")
	}
	scale := 1
	if max(s.H, s.W) < 64 {
		scale = 2
	}
	const gap = 2
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	cw, chh := s.W*scale+gap, s.H*scale+gap
	img := image.NewRGBA(image.Rect(0, 0, cols*cw+gap, rows*chh+gap))
	for k := range img.Pix {
		img.Pix[k] = 0x80 // gray background and gaps
	}
	buf := make([]uint8, s.Size())
	plane := s.H * s.W
	for i := range n {
		if err := ds.Image(i, buf); err != nil {
			return fmt.Errorf("data: WriteGrid: image %d: %w", i, err)
		}
		x0, y0 := gap+(i%cols)*cw, gap+(i/cols)*chh
		for y := range s.H * scale {
			for x := range s.W * scale {
				p := (y/scale)*s.W + x/scale
				var c color.RGBA
				if s.C == 1 {
					c = color.RGBA{buf[p], buf[p], buf[p], 255}
				} else {
					c = color.RGBA{buf[p], buf[plane+p], buf[2*plane+p], 255}
				}
				img.SetRGBA(x0+x, y0+y, c)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("data: WriteGrid: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("data: WriteGrid: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("data: WriteGrid: %s: %w", path, err)
	}
	return nil
}
