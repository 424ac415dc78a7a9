package eval

import (
	"math"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

func TestFidelity(t *testing.T) {
	ref := infer.Vectors{N: 2, D: 2, Data: []float32{3, 4, 0, 1}}
	tests := []struct {
		name    string
		a       infer.Vectors
		cos, l2 float64
	}{
		{"identical", ref, 1, 0},
		{"scaled by 2", infer.Vectors{N: 2, D: 2, Data: []float32{6, 8, 0, 2}}, 1, (5 + 1) / 2.0},
		{"negated", infer.Vectors{N: 2, D: 2, Data: []float32{-3, -4, 0, -1}}, -1, (10 + 2) / 2.0},
		{"orthogonal and zero", infer.Vectors{N: 2, D: 2, Data: []float32{-4, 3, 0, 0}}, 0, (math.Sqrt(50) + 1) / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Fidelity(tc.a, ref)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(f.MeanCosine-tc.cos) > 1e-9 || math.Abs(f.MeanL2-tc.l2) > 1e-9 {
				t.Errorf("cosine %v L2 %v: expected %v, %v", f.MeanCosine, f.MeanL2, tc.cos, tc.l2)
			}
		})
	}
}

func TestFidelityErrors(t *testing.T) {
	ref := infer.Vectors{N: 2, D: 2, Data: []float32{3, 4, 0, 1}}
	inf := float32(math.Inf(1))
	tests := []struct {
		name string
		a, b infer.Vectors
		want []string
	}{
		{"dimension", infer.Vectors{N: 2, D: 3, Data: make([]float32, 6)}, ref, []string{"dimension 3", "reference's 2"}},
		{"rows", infer.Vectors{N: 1, D: 2, Data: make([]float32, 2)}, ref, []string{"1 representations", "reference representation, 2"}},
		{"malformed", infer.Vectors{N: 2, D: 2, Data: make([]float32, 3)}, ref, []string{"2 x 2 with 3 values"}},
		{"empty reference", ref, infer.Vectors{}, []string{"reference representations are 0 x 0"}},
		{"infinite", infer.Vectors{N: 2, D: 2, Data: []float32{inf, 0, 0, 1}}, ref, []string{"non-finite"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fidelity(tc.a, tc.b)
			wantErr(t, err, tc.want...)
		})
	}
}

func TestAgreement(t *testing.T) {
	tests := []struct {
		name string
		a, b []int
		want float64
		err  string
	}{
		{"all", []int{1, 2, 3}, []int{1, 2, 3}, 1, ""},
		{"half", []int{1, 2, 3, 4}, []int{1, 0, 3, 0}, 0.5, ""},
		{"none", []int{1}, []int{0}, 0, ""},
		{"length", []int{1, 2}, []int{1, 2, 3}, 0, "2 predictions: expected a non-empty list as long as the reference's 3"},
		{"empty", nil, nil, 0, "0 predictions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Agreement(tc.a, tc.b)
			if tc.err != "" {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("agreement %v, %v: expected %v", got, err, tc.want)
			}
		})
	}
}
