package defense

import (
	"fmt"
	"math"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Distortion measures what a defense costs a legitimate user: the mean cosine similarity and
// the mean L2 distance between each clean vector and the defended answer to the same image.
// The two batches must have the same shape (compare a truncating defense against the clean
// vectors truncated alike, and clean vectors against B4B.Untransform of a B4B caller's answers). A
// pair with a zero vector counts as cosine 0.
func Distortion(clean, defended infer.Vectors) (meanCos, meanL2 float64, err error) {
	if clean.N != defended.N || clean.D != defended.D {
		return 0, 0, fmt.Errorf("defense: Distortion: clean is %dx%d, defended is %dx%d; expected the same shape",
			clean.N, clean.D, defended.N, defended.D)
	}
	for _, v := range []struct {
		name string
		v    infer.Vectors
	}{{"clean", clean}, {"defended", defended}} {
		if v.v.N < 0 || v.v.D < 0 || len(v.v.Data) != v.v.N*v.v.D {
			return 0, 0, fmt.Errorf("defense: Distortion: %s has %d values, expected N*D = %d*%d", v.name, len(v.v.Data), v.v.N, v.v.D)
		}
	}
	if clean.N == 0 {
		return 0, 0, fmt.Errorf("defense: Distortion: no vectors to compare (N=0)")
	}
	for i := range clean.N {
		a, b := clean.Row(i), defended.Row(i)
		var ab, aa, bb, dd float64
		for j := range a {
			x, y := float64(a[j]), float64(b[j])
			ab += x * y
			aa += x * x
			bb += y * y
			dd += (x - y) * (x - y)
		}
		if aa > 0 && bb > 0 {
			meanCos += ab / math.Sqrt(aa*bb)
		}
		meanL2 += math.Sqrt(dd)
	}
	return meanCos / float64(clean.N), meanL2 / float64(clean.N), nil
}
