package data

import (
	"math"
	"testing"
	"time"
)

// TestRealFashionMNIST reads the Debian dataset-fashion-mnist package,
// which the project setup installs.
func TestRealFashionMNIST(t *testing.T) {
	for _, c := range []struct {
		split string
		n     int
	}{{"train", 60000}, {"test", 10000}} {
		ds, err := Open("fmnist", "", c.split)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != c.n || ds.Shape() != (Shape{1, 28, 28}) {
			t.Fatalf("%s: %d images of %v, expected %d of 1x28x28", c.split, ds.Len(), ds.Shape(), c.n)
		}
		if len(ds.Classes()) != 10 || ds.Classes()[9] != "Ankle boot" {
			t.Fatalf("classes %q", ds.Classes())
		}
		start := time.Now()
		s, err := Inspect(ds)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: Inspect took %v", c.split, time.Since(start))
		if len(s.Labels) != 10 || s.Unlabeled != 0 {
			t.Fatalf("%s: label histogram %v, unlabeled %d", c.split, s.Labels, s.Unlabeled)
		}
		for k, n := range s.Labels {
			if n != c.n/10 {
				t.Fatalf("%s: class %d has %d images, expected %d", c.split, k, n, c.n/10)
			}
		}
		if s.Min != 0 || s.Max != 255 {
			t.Fatalf("%s: values %d..%d, expected 0..255", c.split, s.Min, s.Max)
		}
		if c.split == "train" {
			norm := NormalizationFor("fmnist")
			if math.Abs(s.Mean[0]-float64(norm.Mean[0])) > 1e-3 || math.Abs(s.Std[0]-float64(norm.Std[0])) > 1e-3 {
				t.Fatalf("measured mean/std %.4f/%.4f, NormalizationFor says %v/%v", s.Mean[0], s.Std[0], norm.Mean, norm.Std)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Inspect of 60000 images took %v, expected well under 2s", d)
			}
		}
	}
}
