package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func savePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b.Bytes())
}

// rgbImage makes a w x h NRGBA image with deterministic content and its CHW
// RGB planes.
func rgbImage(w, h int, seed uint64, alpha uint8) (*image.NRGBA, []byte) {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	px := randBytes(3*w*h, seed)
	chw := make([]byte, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			k := 3 * (y*w + x)
			img.SetNRGBA(x, y, color.NRGBA{px[k], px[k+1], px[k+2], alpha})
			for c := 0; c < 3; c++ {
				chw[c*w*h+y*w+x] = px[k+c]
			}
		}
	}
	return img, chw
}

func TestFolder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "train")
	const w, h = 8, 6
	var want [][]byte
	var labels []int

	// Class "ant": an opaque RGB PNG and a gray PNG.
	a1, a1chw := rgbImage(w, h, 1, 255)
	savePNG(t, filepath.Join(dir, "ant", "a1.png"), a1)
	want, labels = append(want, a1chw), append(labels, 0)
	gray := image.NewGray(image.Rect(0, 0, w, h))
	copy(gray.Pix, randBytes(w*h, 2))
	savePNG(t, filepath.Join(dir, "ant", "a2.PNG"), gray)
	want, labels = append(want, bytes.Repeat(gray.Pix, 3)), append(labels, 0)
	writeFile(t, filepath.Join(dir, "ant", "notes.txt"), []byte("not an image"))

	// Class "bird": a translucent PNG (alpha dropped) and a larger PNG that
	// is resized to the first image's size.
	b1, b1chw := rgbImage(w, h, 3, 100)
	savePNG(t, filepath.Join(dir, "bird", "b1.png"), b1)
	want, labels = append(want, b1chw), append(labels, 1)
	big, bigchw := rgbImage(2*w, 2*h, 4, 255)
	savePNG(t, filepath.Join(dir, "bird", "b2.png"), big)
	rs := newResampler(3, 2*h, 2*w, h, w)
	bigSmall := make([]byte, 3*w*h)
	rs.apply(bigchw, bigSmall)
	want, labels = append(want, bigSmall), append(labels, 1)

	// Class "cat": a colour JPEG with constant chroma (so the decoders'
	// different chroma upsampling does not matter), checked against PIL.
	smooth := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(10*x + 15*y + 40)
			smooth.Set(x, y, color.RGBA{v + 30, v, v - 20, 255})
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, smooth, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, "cat", "c1.jpg")
	writeFile(t, jpath, jb.Bytes())
	labels = append(labels, 2)
	if err := os.MkdirAll(filepath.Join(dir, ".hidden"), 0o755); err != nil {
		t.Fatal(err)
	}

	ds, err := Open("folder", root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ds.Classes(), ","); got != "ant,bird,cat" {
		t.Fatalf("classes %s", got)
	}
	if ds.Len() != 5 || ds.Shape() != (Shape{3, h, w}) {
		t.Fatalf("%d images of %v, expected 5 of 3x%dx%d", ds.Len(), ds.Shape(), h, w)
	}
	got := readAll(t, ds)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("image %d differs:\n got %v\nwant %v", i, got[i][:12], want[i][:12])
		}
	}
	for i, l := range labels {
		if ds.Label(i) != l {
			t.Fatalf("label %d = %d, expected %d", i, ds.Label(i), l)
		}
	}

	// The JPEG decodes close to PIL's decoding (IDCTs differ slightly).
	out := runPython(t, `
import sys, numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).transpose(2, 0, 1).astype(int)
g = np.array([int(v) for v in sys.argv[2].split(",")]).reshape(a.shape)
print(int(np.abs(a - g).max()), float(np.abs(a - g).mean()))
`, jpath, joinInts(got[4]))
	f := strings.Fields(out)
	maxd, _ := strconv.Atoi(f[0])
	mean, _ := strconv.ParseFloat(f[1], 64)
	t.Logf("JPEG vs PIL: max diff %d, mean %.3f", maxd, mean)
	if maxd > 3 || mean > 1 {
		t.Fatalf("JPEG decode differs from PIL: max %d mean %.3f", maxd, mean)
	}

	// folder:N resizes everything to N x N.
	ds4, err := Open("folder:4", root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds4.Shape() != (Shape{3, 4, 4}) || len(readAll(t, ds4)) != 5 {
		t.Fatalf("folder:4 shape %v", ds4.Shape())
	}

	// A corrupt image is reported with its path when read.
	writeFile(t, filepath.Join(dir, "cat", "c2.jpg"), jb.Bytes()[:40])
	ds, err = OpenFolder(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, ds.Image(5, make([]byte, 3*w*h)), filepath.Join(dir, "cat", "c2.jpg"), "decode")

	_, err = OpenFolder(t.TempDir(), 0)
	mustContain(t, err, "no .png/.jpg/.jpeg images")
	_, err = OpenFolder(filepath.Join(root, "nope"), 0)
	mustContain(t, err, filepath.Join(root, "nope"), "not found")
	_, err = Open("folder:x", root, "")
	mustContain(t, err, "folder:N")
}

func joinInts(b []byte) string {
	s := make([]string, len(b))
	for i, v := range b {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

// hugePNG is a valid PNG header declaring w x h gray pixels, with no pixel data.
func hugePNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8] = 8 // bit depth; colour type 0 (gray)
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	return b.Bytes()
}

// A 60-byte PNG that declares 100000 x 100000 pixels is refused from its header, before the
// decoder allocates 10 GB for it.
func TestFolderRefusesHugeImages(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "x.png"), hugePNG(100000, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFolder(dir, 0); err == nil || !strings.Contains(err.Error(), "100000x100000") {
		t.Fatalf("size from a huge first image: %v", err)
	}
	ds, err := OpenFolder(dir, 32)
	if err != nil {
		t.Fatal(err)
	}
	err = ds.Image(0, make([]uint8, 3*32*32))
	if err == nil || !strings.Contains(err.Error(), "100000x100000") {
		t.Fatalf("decoding a huge image: %v, want an error naming its size", err)
	}
}

// FuzzFolderImage decodes arbitrary bytes as a folder dataset's PNG: an error or an image,
// never a panic or a decode of more pixels than MaxFolderPixels.
func FuzzFolderImage(f *testing.F) {
	f.Add(hugePNG(100000, 100000))
	f.Add(hugePNG(4, 4))
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 5, 3))); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a", "x.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := OpenFolder(dir, 16)
		if err != nil {
			return
		}
		_ = ds.Image(0, make([]uint8, 3*16*16)) // an error is fine; a panic is not
	})
}

// TestFolderCropMatchesTorchvision: folder-crop:N is torchvision's evaluation transform,
// Resize(N*256/224) then CenterCrop(N), for tall, wide, odd-offset and enlarged images.
func TestFolderCropMatchesTorchvision(t *testing.T) {
	root := t.TempDir()
	sizes := [][2]int{{37, 23}, {23, 61}, {50, 50}, {9, 12}, {120, 81}}
	for k, wh := range sizes {
		img, _ := rgbImage(wh[0], wh[1], uint64(10+k), 255)
		savePNG(t, filepath.Join(root, "train", "c", fmt.Sprintf("i%d.png", k)), img)
	}
	const n = 14 // shorter side resized to 16
	ds, err := Open("folder-crop:14", root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Shape() != (Shape{3, n, n}) {
		t.Fatalf("shape %v, want 3x14x14", ds.Shape())
	}
	out := filepath.Join(root, "go.bin")
	writeFile(t, out, bytes.Join(readAll(t, ds), nil))
	script := fmt.Sprintf(`import sys, glob, numpy as np, torch
from PIL import Image
import torchvision.transforms.functional as TF
d = sys.argv[1]
want = []
for p in sorted(glob.glob(d + "/train/c/*.png")):
    x = TF.pil_to_tensor(Image.open(p).convert("RGB"))
    x = TF.center_crop(TF.resize(x, %d, antialias=True), %d)
    want.append(x.numpy().astype(np.int32))
y = np.stack(want)
g = np.fromfile(d + "/go.bin", dtype=np.uint8).astype(np.int32).reshape(y.shape)
print(int(np.abs(g - y).max()), float((g != y).mean()))
`, n*256/224, n)
	f := strings.Fields(runPython(t, script, root))
	maxDiff, _ := strconv.Atoi(f[0])
	frac, _ := strconv.ParseFloat(f[1], 64)
	t.Logf("folder-crop:%d vs torchvision Resize+CenterCrop: max diff %d, fraction differing %.4f", n, maxDiff, frac)
	if maxDiff > 1 || frac > 0.02 {
		t.Fatalf("folder-crop differs from torchvision: max %d, fraction %.4f", maxDiff, frac)
	}
	// A thin image would be resized to far more pixels than it has: refused, naming it.
	thin := image.NewGray(image.Rect(0, 0, 1, 3000))
	savePNG(t, filepath.Join(root, "thin", "c", "t.png"), thin)
	big, err := OpenFolderCrop(filepath.Join(root, "thin"), 2000)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, big.Image(0, make([]byte, 3*2000*2000)), "t.png", "less elongated")
	_, err = Open("folder-crop:0", root, "")
	mustContain(t, err, "folder-crop:N")
}
