package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"io"
	"os"
	"path/filepath"
	"strings"
)

// folderSet is an image-folder dataset: one sub-folder per class.
type folderSet struct {
	dir     string
	shape   Shape
	crop    bool // resize the shorter side to 256/224 of the size, then take the centre
	files   []string
	labels  []int
	classes []string
}

// imageExt reports whether name has a PNG or JPEG extension.
func imageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// OpenFolder opens dir laid out as dir/<class>/<image>.{png,jpg,jpeg} (the
// ImageNet layout). Classes are the sub-folder names in sorted order, and
// images within a class are in sorted file-name order. Images are decoded
// lazily, converted to RGB (3 channels; alpha dropped, gray replicated) and
// resized (see Resize) to size x size, or, when size is 0, to the size of
// the first image.
func OpenFolder(dir string, size int) (Dataset, error) {
	if size < 0 {
		return nil, fmt.Errorf("data: folder %s: image size %d, expected >= 0", dir, size)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, missing("folder", dir, "create it with one sub-folder of PNG/JPEG images per class", err)
	}
	d := &folderSet{dir: dir}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("data: folder: %w", err)
		}
		label := len(d.classes)
		d.classes = append(d.classes, e.Name())
		for _, f := range files {
			if f.Type().IsRegular() && imageExt(f.Name()) {
				d.files = append(d.files, filepath.Join(dir, e.Name(), f.Name()))
				d.labels = append(d.labels, label)
			}
		}
	}
	if len(d.files) == 0 {
		return nil, fmt.Errorf("data: folder %s: found %d class sub-folders and no .png/.jpg/.jpeg images in them; expected dir/<class>/<image>", dir, len(d.classes))
	}
	if size > 0 {
		d.shape = Shape{3, size, size}
		return d, nil
	}
	f, err := os.Open(d.files[0])
	if err != nil {
		return nil, fmt.Errorf("data: folder: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("data: folder: %s: cannot decode image header: %w", d.files[0], err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxFolderSide || cfg.Height > MaxFolderSide {
		return nil, fmt.Errorf("data: folder: %s: image size %dx%d, expected 1..%d pixels a side (or give a size to resize to)", d.files[0], cfg.Width, cfg.Height, MaxFolderSide)
	}
	d.shape = Shape{3, cfg.Height, cfg.Width}
	return d, nil
}

// MaxFolderPixels bounds an image of a folder dataset (width x height, 64 megapixels), and
// MaxFolderSide the size of a dataset that takes the first image's size.
const (
	MaxFolderPixels = 1 << 26
	MaxFolderSide   = 4096
)

// checkPixels reads the image header at r and refuses an empty image or one over
// MaxFolderPixels.
func checkPixels(r io.Reader, name string) error {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return fmt.Errorf("data: folder: %s: cannot decode image header: %w", name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxFolderPixels {
		return fmt.Errorf("data: folder: %s: image size %dx%d, expected 1 to %d pixels", name, cfg.Width, cfg.Height, MaxFolderPixels)
	}
	return nil
}

// Len is the number of images found.
func (d *folderSet) Len() int { return len(d.files) }

// Shape is 3 x size x size (or the first image's size).
func (d *folderSet) Shape() Shape { return d.shape }

// Classes are the sorted class sub-folder names.
func (d *folderSet) Classes() []string { return d.classes }

// Label is the index of the image's class folder.
func (d *folderSet) Label(i int) int {
	if i < 0 || i >= len(d.labels) {
		return -1
	}
	return d.labels[i]
}

// Path returns the file of image i, "" when i is out of range.
func (d *folderSet) Path(i int) string {
	if i < 0 || i >= len(d.files) {
		return ""
	}
	return d.files[i]
}

// OpenFolderCrop is OpenFolder with the ImageNet evaluation transform instead of squashing:
// each image's shorter side is resized to size*256/224 (aspect kept), then its centre size x size
// is cut out, as torchvision's Resize(256) + CenterCrop(224) do for size 224.
func OpenFolderCrop(dir string, size int) (Dataset, error) {
	if size <= 0 {
		return nil, fmt.Errorf("data: folder %s: centre-crop size %d, expected > 0", dir, size)
	}
	ds, err := OpenFolder(dir, size)
	if err != nil {
		return nil, err
	}
	ds.(*folderSet).crop = true
	return ds, nil
}

// cropResize returns the size the shorter side of a w x h image is resized to before the
// centre crop, and the resized width and height (torchvision's Resize(int): the longer side is
// truncated, int(short_size * long / short)).
func cropResize(size, w, h int) (short, rw, rh int) {
	short = size * 256 / 224
	if w <= h {
		return short, short, int(int64(short) * int64(h) / int64(w))
	}
	return short, int(int64(short) * int64(w) / int64(h)), short
}

// centre crops src (3 x rh x rw) to the dataset's size into dst, torchvision's CenterCrop:
// offsets int(round((side - size) / 2)), rounding half to even as Python's round does.
func (d *folderSet) centre(src []uint8, rh, rw int, dst []uint8) {
	n := d.shape.H
	top, left := roundHalfEven(rh-n), roundHalfEven(rw-n)
	for c := range 3 {
		for y := range n {
			row := src[c*rh*rw+(top+y)*rw+left:]
			copy(dst[c*n*n+y*n:c*n*n+(y+1)*n], row[:n])
		}
	}
}

// roundHalfEven is round(v / 2) for an integer v >= 0, halves to even.
func roundHalfEven(v int) int {
	q := v / 2
	if v%2 == 1 && q%2 == 1 {
		q++
	}
	return q
}

// Image decodes, converts and resizes image i.
func (d *folderSet) Image(i int, dst []uint8) error {
	if err := checkImageArgs(d, i, dst); err != nil {
		return err
	}
	f, err := os.Open(d.files[i])
	if err != nil {
		return fmt.Errorf("data: folder: %w", err)
	}
	defer f.Close()
	// The header's size is checked before the decoder allocates the whole image: a 100-byte
	// PNG may declare 100000 x 100000 pixels.
	if err := checkPixels(f, d.files[i]); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("data: folder: %w", err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return fmt.Errorf("data: folder: %s: cannot decode image: %w", d.files[i], err)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return fmt.Errorf("data: folder: %s: image size %dx%d, expected non-empty", d.files[i], w, h)
	}
	if d.crop {
		return d.cropImage(img, w, h, dst, d.files[i])
	}
	chw := dst
	if w != d.shape.W || h != d.shape.H {
		chw = make([]uint8, 3*w*h)
	}
	toCHW(img, chw)
	if w != d.shape.W || h != d.shape.H {
		newResampler(3, h, w, d.shape.H, d.shape.W).apply(chw, dst)
	}
	return nil
}

// cropImage resizes img (w x h) for the centre crop and cuts the crop into dst. A very thin
// image would be resized to a huge one: the resized image is bounded by MaxFolderPixels.
func (d *folderSet) cropImage(img image.Image, w, h int, dst []uint8, name string) error {
	_, rw, rh := cropResize(d.shape.H, w, h)
	if int64(rw)*int64(rh) > MaxFolderPixels {
		return fmt.Errorf("data: folder: %s: image size %dx%d would be resized to %dx%d for the centre crop, over %d pixels: expected a less elongated image", name, w, h, rw, rh, MaxFolderPixels)
	}
	chw := make([]uint8, 3*w*h)
	toCHW(img, chw)
	resized := chw
	if rw != w || rh != h {
		resized = make([]uint8, 3*rw*rh)
		newResampler(3, h, w, rh, rw).apply(chw, resized)
	}
	d.centre(resized, rh, rw, dst)
	return nil
}

// toCHW writes img as RGB planes into dst (3*w*h), dropping alpha.
func toCHW(img image.Image, dst []uint8) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	plane := w * h
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := 0; x < w; x++ {
				v := row[x]
				dst[y*w+x], dst[plane+y*w+x], dst[2*plane+y*w+x] = v, v, v
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				px, py := b.Min.X+x, b.Min.Y+y
				yy := m.Y[m.YOffset(px, py)]
				ci := m.COffset(px, py)
				r, g, bl := color.YCbCrToRGB(yy, m.Cb[ci], m.Cr[ci])
				dst[y*w+x], dst[plane+y*w+x], dst[2*plane+y*w+x] = r, g, bl
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := 0; x < w; x++ {
				dst[y*w+x], dst[plane+y*w+x], dst[2*plane+y*w+x] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				dst[y*w+x], dst[plane+y*w+x], dst[2*plane+y*w+x] = c.R, c.G, c.B
			}
		}
	}
}
