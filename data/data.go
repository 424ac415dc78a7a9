// Package data reads labelled image datasets from their original on-disk
// formats (IDX, CIFAR binary, MATLAB v5 .mat, STL-10 binary, image folders)
// and offers transforms, float conversion and inspection helpers.
//
// Raw files are memory-mapped and read lazily; gzip files are decompressed
// once into memory. Every Dataset returned by this package is safe for
// concurrent use by multiple goroutines.
package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Shape is channels x height x width of every image in a dataset.
type Shape struct{ C, H, W int }

// Size returns C*H*W, the number of bytes of one image.
func (s Shape) Size() int { return s.C * s.H * s.W }

// String formats the shape as CxHxW.
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// Dataset is a random-access labelled image collection. Images are uint8 CHW.
type Dataset interface {
	// Len is the number of images.
	Len() int
	// Shape is the shape shared by every image.
	Shape() Shape
	// Image fills dst (len C*H*W) with image i, CHW order.
	Image(i int, dst []uint8) error
	// Label is the class index of image i, -1 when unlabeled or i is out of range.
	Label(i int) int
	// Classes lists the class names (nil/empty when unknown).
	Classes() []string
}

// Default directories used by Open when dir is empty.
var defaultDirs = map[string]string{
	"fmnist": "/usr/share/datasets/fashion-mnist",
}

// Names lists the dataset names accepted by Open.
func Names() []string {
	return []string{"fmnist", "mnist", "cifar10", "cifar100", "svhn", "stl10", "folder"}
}

// Open opens the dataset called name stored in dir, split "train" or "test"
// (plus "extra" for svhn and "unlabeled" for stl10; an empty split means
// "train"). An empty dir selects the default location where one exists
// (fmnist: /usr/share/datasets/fashion-mnist, the Debian package
// dataset-fashion-mnist).
//
// The name "folder" opens an image-folder tree (see OpenFolder) at dir, or at
// dir/split when that directory exists; "folder:N" resizes its images to NxN, "folder-crop:N"
// resizes the shorter side to N*256/224 and cuts the centre NxN (the ImageNet evaluation).
func Open(name, dir, split string) (Dataset, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if dir == "" {
		dir = defaultDirs[name]
	}
	if split == "" {
		split = "train"
	}
	if dir == "" && !strings.HasPrefix(name, "folder") {
		if !known(name) {
			return nil, fmt.Errorf("data: unknown dataset %q (expected one of %s)", name, strings.Join(Names(), ", "))
		}
		return nil, fmt.Errorf("data: %s: no directory given and no default location for it", name)
	}
	switch name {
	case "fmnist", "fashion-mnist", "fashionmnist":
		return OpenIDX(dir, split, FMNISTClasses)
	case "mnist":
		return OpenIDX(dir, split, MNISTClasses)
	case "cifar10", "cifar-10":
		return OpenCIFAR10(dir, split)
	case "cifar100", "cifar-100":
		return OpenCIFAR100(dir, split)
	case "svhn":
		return OpenSVHN(dir, split)
	case "stl10", "stl-10":
		return OpenSTL10(dir, split)
	}
	if name == "folder" || strings.HasPrefix(name, "folder:") || strings.HasPrefix(name, "folder-crop:") {
		size, crop := 0, strings.HasPrefix(name, "folder-crop:")
		if s, ok := strings.CutPrefix(strings.TrimPrefix(name, "folder-crop:"), "folder:"); ok || crop {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > MaxFolderSide {
				return nil, fmt.Errorf("data: dataset name %q: expected folder:N or folder-crop:N with N a size in 1..%d", name, MaxFolderSide)
			}
			size = n
		}
		if split != "" {
			sub := filepath.Join(dir, split)
			if st, err := os.Stat(sub); err == nil && st.IsDir() {
				dir = sub
			}
		}
		if crop {
			return OpenFolderCrop(dir, size)
		}
		return OpenFolder(dir, size)
	}
	return nil, fmt.Errorf("data: unknown dataset %q (expected one of %s)", name, strings.Join(Names(), ", "))
}

func known(name string) bool {
	for _, n := range Names() {
		if n == name {
			return true
		}
	}
	return false
}

// maxImageBytes bounds C*H*W of a dataset's images so that corrupt headers
// cannot demand absurd buffers.
const maxImageBytes = 1 << 30

// checkShape rejects non-positive or absurdly large image shapes.
func checkShape(file string, s Shape) error {
	if s.C <= 0 || s.H <= 0 || s.W <= 0 || s.H > maxImageBytes/s.W || s.C > maxImageBytes/(s.H*s.W) {
		return fmt.Errorf("%s: image shape %dx%dx%d, expected positive sizes with at most %d bytes per image", file, s.C, s.H, s.W, maxImageBytes)
	}
	return nil
}

// checkImageArgs validates the arguments of Dataset.Image.
func checkImageArgs(ds Dataset, i int, dst []uint8) error {
	if i < 0 || i >= ds.Len() {
		return fmt.Errorf("data: image index %d out of range [0,%d)", i, ds.Len())
	}
	if want := ds.Shape().Size(); len(dst) != want {
		return fmt.Errorf("data: image buffer has %d bytes, expected %d (%s)", len(dst), want, ds.Shape())
	}
	return nil
}

// missing builds the error for a dataset file that does not exist.
func missing(dataset, path, how string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data: %s: %s not found; %s", dataset, path, how)
	}
	return fmt.Errorf("data: %s: %w", dataset, err)
}

// Class name lists of the built-in datasets.
var (
	// FMNISTClasses are the Fashion-MNIST class names.
	FMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	// MNISTClasses are the MNIST digit names.
	MNISTClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	// CIFAR10Classes are the CIFAR-10 class names.
	CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	// SVHNClasses are the SVHN digit names (label 10 in the .mat files is digit 0).
	SVHNClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	// STL10Classes are the STL-10 class names.
	STL10Classes = []string{"airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"}
)
