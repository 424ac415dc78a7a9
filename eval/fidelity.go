package eval

import (
	"fmt"
	"math"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// FidelityResult compares two encoders' representations of the same inputs.
type FidelityResult struct {
	// MeanCosine is the mean over rows of the cosine similarity of a's and b's row
	// (1 = same direction); a zero row has cosine 0 with anything.
	MeanCosine float64 `json:"mean_cosine"`
	// MeanL2 is the mean over rows of the Euclidean distance between a's and b's row.
	MeanL2 float64 `json:"mean_l2"`
	// CosineCI is the 95% interval of MeanCosine over the rows (normal approximation).
	CosineCI Interval `json:"mean_cosine_ci95"`
}

// Fidelity compares a and b row by row: both must hold the same number of rows (the
// representations of the same images, in the same order) of the same dimension.
// b is taken as the reference in error messages.
func Fidelity(a, b infer.Vectors) (FidelityResult, error) {
	for _, v := range []struct {
		name string
		x    infer.Vectors
	}{{"representations", a}, {"reference representations", b}} {
		if v.x.N < 1 || v.x.D < 1 || len(v.x.Data) != v.x.N*v.x.D {
			return FidelityResult{}, fmt.Errorf("fidelity: %s are %d x %d with %d values: expected N, D >= 1 and N*D values", v.name, v.x.N, v.x.D, len(v.x.Data))
		}
	}
	if a.D != b.D {
		return FidelityResult{}, fmt.Errorf("fidelity: representations have dimension %d: expected the reference's %d", a.D, b.D)
	}
	if a.N != b.N {
		return FidelityResult{}, fmt.Errorf("fidelity: %d representations: expected one per reference representation, %d", a.N, b.N)
	}
	cos, l2, err := infer.Similarity(a, b)
	if err != nil {
		return FidelityResult{}, err
	}
	r := FidelityResult{MeanCosine: cos, MeanL2: l2, CosineCI: MeanInterval(rowCosines(a, b))}
	if math.IsNaN(r.MeanCosine) || math.IsNaN(r.MeanL2) || math.IsInf(r.MeanL2, 0) {
		return FidelityResult{}, fmt.Errorf("fidelity: the representations hold non-finite values (cosine %v, L2 %v): expected finite values", r.MeanCosine, r.MeanL2)
	}
	return r, nil
}

// Agreement returns the fraction of positions where predA and predB hold the same
// class: how often a stolen model's probe agrees with the victim's. Both must be
// non-empty and of equal length.
func Agreement(predA, predB []int) (float64, error) {
	if len(predA) == 0 || len(predA) != len(predB) {
		return 0, fmt.Errorf("agreement: %d predictions: expected a non-empty list as long as the reference's %d", len(predA), len(predB))
	}
	same := 0
	for i, p := range predA {
		if p == predB[i] {
			same++
		}
	}
	return float64(same) / float64(len(predA)), nil
}

// rowCosines is the cosine similarity of each row of a with the same row of b (0 for a zero row).
func rowCosines(a, b infer.Vectors) []float64 {
	out := make([]float64, a.N)
	for i := range out {
		x, y := a.Row(i), b.Row(i)
		var dot, nx, ny float64
		for j := range x {
			dot += float64(x[j]) * float64(y[j])
			nx += float64(x[j]) * float64(x[j])
			ny += float64(y[j]) * float64(y[j])
		}
		if nx > 0 && ny > 0 {
			out[i] = dot / math.Sqrt(nx*ny)
		}
	}
	return out
}
