package serve

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registered decoders for base64 images
	_ "image/png"
	"math"
	"strconv"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// inputSpec is what the served model takes: one image is C x H x W float32.
type inputSpec struct {
	C, H, W   int
	maxImages int
	maxPixels int // per decoded image
	maxTotal  int // decoded pixels per request, summed over its images
	norm      data.Normalization
}

func (s inputSpec) shape() string { return fmt.Sprintf("%d,%d,%d", s.C, s.H, s.W) }

// parseShapeHeader parses "N,C,H,W" (the X-Shape header).
func parseShapeHeader(v string) ([]int, error) {
	if strings.TrimSpace(v) == "" {
		return nil, badRequest("missing_shape", "raw float32 bodies need an X-Shape: N,C,H,W header")
	}
	parts := strings.Split(v, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, badRequest("bad_shape", "X-Shape %q: dimension %d (%q) is not an integer", v, i, strings.TrimSpace(p))
		}
		out[i] = n
	}
	return out, nil
}

// checkShape validates an NCHW shape against the model's input.
func (s inputSpec) checkShape(shape []int64) (int, error) {
	if len(shape) != 4 {
		return 0, badRequest("bad_shape", "shape %v: expected 4 dimensions N,C,H,W with C,H,W = %s", shape, s.shape())
	}
	n := shape[0]
	if n < 1 {
		return 0, badRequest("bad_shape", "shape %v: batch size N = %d, expected at least 1", shape, n)
	}
	if n > int64(s.maxImages) {
		return 0, errorf(413, "too_many_images", "shape %v: %d images in one request, the limit is %d", shape, n, s.maxImages)
	}
	if shape[1] != int64(s.C) || shape[2] != int64(s.H) || shape[3] != int64(s.W) {
		return 0, badRequest("shape_mismatch", "shape %v: expected C,H,W = %s (the model's input), found %d,%d,%d",
			shape, s.shape(), shape[1], shape[2], shape[3])
	}
	return int(n), nil
}

// rawImages reads a little-endian float32 NCHW body of the given shape.
func (s inputSpec) rawImages(shape []int, body []byte) (infer.Images, error) {
	sh := make([]int64, len(shape))
	for i, v := range shape {
		sh[i] = int64(v)
	}
	n, err := s.checkShape(sh)
	if err != nil {
		return infer.Images{}, err
	}
	want := n * s.C * s.H * s.W
	if len(body) != 4*want {
		return infer.Images{}, badRequest("bad_length", "body of %d bytes: shape %v needs %d float32 values = %d bytes", len(body), shape, want, 4*want)
	}
	// The body belongs to this request: its memory becomes the images' (no copy).
	x := infer.Images{N: n, C: s.C, H: s.H, W: s.W, Data: bytesAsFloats(body)}
	if allFinite(x.Data) {
		return x, nil
	}
	return x, checkFinite(x.Data, s)
}

// checkFinite rejects NaN and infinite inputs, naming the first one.
func checkFinite(v []float32, s inputSpec) error {
	per := s.C * s.H * s.W
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			r := i % per
			return badRequest("non_finite", "value %d (image %d, channel %d, row %d, column %d) is %v: inputs must be finite",
				i, i/per, r/(s.H*s.W), r%(s.H*s.W)/s.W, r%s.W, f)
		}
	}
	return nil
}

// checkCount validates the number of images in a JSON request.
func (s inputSpec) checkCount(n int) error {
	if n == 0 {
		return badRequest("no_images", `"images" is empty: expected 1 to %d base64-encoded PNG or JPEG images`, s.maxImages)
	}
	if n > s.maxImages {
		return errorf(413, "too_many_images", "%d images in one request, the limit is %d", n, s.maxImages)
	}
	return nil
}

// decodeImages turns base64 PNG/JPEG strings into model input: float32 CHW scaled to
// [0,1], then normalised with the model's normalisation; gray images are repeated to 3
// channels (or colour turned to luma for a 1-channel model) and resized to H x W with a
// bilinear, antialiased filter (package data's). Images are decoded one at a time, so
// memory stays bounded by one decoded image, and the decoding work by maxTotal pixels per
// request (small compressed files can expand to many pixels each).
func (s inputSpec) decodeImages(items []string) (infer.Images, error) {
	if err := s.checkCount(len(items)); err != nil {
		return infer.Images{}, err
	}
	per := s.C * s.H * s.W
	x := infer.Images{N: len(items), C: s.C, H: s.H, W: s.W, Data: make([]float32, len(items)*per)}
	left := s.maxTotal
	for i, item := range items {
		if err := s.decodeOne(item, x.Data[i*per:(i+1)*per], &left); err != nil {
			if errors.Is(err, errPixelBudget) {
				return infer.Images{}, errorf(413, "too_many_pixels", "images[%d]: %v", i, err)
			}
			return infer.Images{}, badRequest("bad_image", "images[%d]: %v", i, err)
		}
	}
	return x, nil
}

// errPixelBudget marks an image that would take a request over its decoded-pixel budget.
var errPixelBudget = errors.New("over the request's decoded-pixel budget")

// decodeOne decodes one base64 image into dst, charging its pixels to *left.
func (s inputSpec) decodeOne(item string, dst []float32, left *int) error {
	if strings.HasPrefix(item, "data:") { // data URL: data:image/png;base64,....
		comma := strings.IndexByte(item, ',')
		if comma < 0 || !strings.HasSuffix(item[:comma], ";base64") {
			return errors.New(`data URL without ";base64,": expected data:image/png;base64,<data>`)
		}
		item = item[comma+1:]
	}
	raw, err := base64.StdEncoding.DecodeString(item)
	if err != nil {
		if raw2, err2 := base64.RawStdEncoding.DecodeString(item); err2 == nil {
			raw, err = raw2, nil
		}
	}
	if err != nil {
		return fmt.Errorf("invalid base64 (%v): expected standard base64 of a PNG or JPEG file", err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("cannot decode image of %d bytes (%v): expected PNG or JPEG", len(raw), err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width*cfg.Height > s.maxPixels {
		return fmt.Errorf("%s image of %dx%d pixels: expected at least 1x1 and at most %d pixels", format, cfg.Width, cfg.Height, s.maxPixels)
	}
	if cfg.Width*cfg.Height > *left {
		return fmt.Errorf("%s image of %dx%d pixels is %w: %d pixels per request in all, %d left",
			format, cfg.Width, cfg.Height, errPixelBudget, s.maxTotal, *left)
	}
	*left -= cfg.Width * cfg.Height
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("cannot decode %s image (%v)", format, err)
	}
	pix, c, h, w := toCHW(img, s.C)
	ds := data.Dataset(&oneImage{pix: pix, shape: data.Shape{C: c, H: h, W: w}})
	if c == 1 && s.C == 3 {
		if ds, err = data.Gray3(ds); err != nil {
			return err
		}
	}
	if h != s.H || w != s.W {
		if s.H != s.W {
			return fmt.Errorf("image of %dx%d pixels: the model takes %dx%d (not square), send images of exactly that size", w, h, s.W, s.H)
		}
		if ds, err = data.Resize(ds, s.H); err != nil {
			return err
		}
	}
	return data.ToFloat(ds, 0, s.norm, dst)
}

// toCHW converts img to uint8 CHW: 1 channel for gray images or a 1-channel model, else 3
// (RGB, alpha dropped).
func toCHW(img image.Image, modelC int) (pix []uint8, c, h, w int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	_, gray := img.(*image.Gray)
	if gray || modelC == 1 {
		pix = make([]uint8, h*w)
		if g, ok := img.(*image.Gray); ok {
			for y := 0; y < h; y++ {
				copy(pix[y*w:(y+1)*w], g.Pix[y*g.Stride:y*g.Stride+w])
			}
			return pix, 1, h, w
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				// ITU-R 601-2 luma, as PIL's convert("L").
				pix[y*w+x] = uint8((299*r + 587*g + 114*bb + 500*257) / (1000 * 257))
			}
		}
		return pix, 1, h, w
	}
	pix = make([]uint8, 3*h*w)
	plane := h * w
	switch m := img.(type) {
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				pix[y*w+x], pix[plane+y*w+x], pix[2*plane+y*w+x] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				pix[y*w+x], pix[plane+y*w+x], pix[2*plane+y*w+x] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				pix[y*w+x], pix[plane+y*w+x], pix[2*plane+y*w+x] = uint8(r>>8), uint8(g>>8), uint8(bb>>8)
			}
		}
	}
	return pix, 3, h, w
}

// oneImage is a one-image data.Dataset, to reuse package data's transforms.
type oneImage struct {
	pix   []uint8
	shape data.Shape
}

func (o *oneImage) Len() int          { return 1 }
func (o *oneImage) Shape() data.Shape { return o.shape }
func (o *oneImage) Label(int) int     { return -1 }
func (o *oneImage) Classes() []string { return nil }
func (o *oneImage) Image(i int, dst []uint8) error {
	if i != 0 || len(dst) != len(o.pix) {
		return fmt.Errorf("image %d of 1 (buffer %d, want %d)", i, len(dst), len(o.pix))
	}
	copy(dst, o.pix)
	return nil
}
