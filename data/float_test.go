package data

import (
	"math"
	"testing"
)

func TestToFloatAndBatch(t *testing.T) {
	m := &memSet{shape: Shape{3, 1, 2}, imgs: [][]byte{{0, 255, 51, 102, 153, 204}, {255, 255, 0, 0, 10, 20}}, labels: []int{0, 1}}
	cases := []struct {
		name string
		norm Normalization
		want []float32 // for image 0
	}{
		{"none", Normalization{}, []float32{0, 1, 0.2, 0.4, 0.6, 0.8}},
		{"per channel", Normalization{Mean: []float32{0.5, 0.2, 0.1}, Std: []float32{0.5, 0.1, 0.2}}, []float32{-1, 1, 0, 2, 2.5, 3.5}},
		{"broadcast", Normalization{Mean: []float32{0.5}, Std: []float32{0.25}}, []float32{-2, 2, -1.2, -0.4, 0.4, 1.2}},
	}
	for _, c := range cases {
		got := make([]float32, 6)
		if err := ToFloat(m, 0, c.norm, got); err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if math.Abs(float64(got[k]-c.want[k])) > 1e-5 {
				t.Fatalf("%s: value %d = %v, expected %v", c.name, k, got[k], c.want[k])
			}
		}
	}
	batch := make([]float32, 12)
	if err := Batch(m, []int{1, 0}, Normalization{}, batch); err != nil {
		t.Fatal(err)
	}
	if batch[0] != 1 || batch[2] != 0 || math.Abs(float64(batch[6+2]-0.2)) > 1e-6 {
		t.Fatalf("batch not NCHW in index order: %v", batch)
	}
	for _, c := range []struct {
		norm Normalization
		dst  int
		idx  []int
		want string
	}{
		{Normalization{}, 5, []int{0}, "5 values, expected 6"},
		{Normalization{Mean: []float32{0, 0}, Std: []float32{1, 1}}, 6, []int{0}, "2 channels, images have 3"},
		{Normalization{Mean: []float32{0}, Std: []float32{1, 1}}, 6, []int{0}, "1 means and 2 stds"},
		{Normalization{Mean: []float32{0}, Std: []float32{0}}, 6, []int{0}, "std 0"},
		{Normalization{}, 6, []int{7}, "index 7 out of range"},
	} {
		mustContain(t, Batch(m, c.idx, c.norm, make([]float32, c.dst)), c.want)
	}
	for _, name := range []string{"cifar10", "cifar100", "svhn", "stl10", "imagenet", "fmnist", "mnist"} {
		n := NormalizationFor(name)
		if len(n.Mean) == 0 || len(n.Mean) != len(n.Std) {
			t.Fatalf("NormalizationFor(%q) = %v", name, n)
		}
	}
	if n := NormalizationFor("other"); n.Mean != nil {
		t.Fatalf("unknown name should give no normalization, got %v", n)
	}
}
