package defense

import (
	"fmt"

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
	if clean.N == 0 {
		return 0, 0, fmt.Errorf("defense: Distortion: no vectors to compare (N=0)")
	}
	meanCos, meanL2, err = infer.Similarity(clean, defended)
	if err != nil {
		return 0, 0, fmt.Errorf("defense: Distortion: %w", err)
	}
	return meanCos, meanL2, nil
}
