package defense

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

func TestNoise(t *testing.T) {
	enc := encoder(t)
	x := patterns(3, 8)
	clean := mustEncode(t, enc, context.Background(), x)
	tests := []struct{ sigma, mu float64 }{{0.5, 0}, {0.5, 5}, {0, 1}, {2, -3}}
	for _, tc := range tests {
		n, err := NewNoise(enc, tc.sigma, tc.mu, 11)
		if err != nil {
			t.Fatal(err)
		}
		v := mustEncode(t, n, asKey("k"), x)
		var sum, ss float64
		for i, f := range v.Data {
			d := float64(f - clean.Data[i])
			sum += d
			ss += d * d
		}
		cnt := float64(len(v.Data))
		mean := sum / cnt
		std := math.Sqrt(max(0, ss/cnt-mean*mean))
		// 4096 draws: the mean is within 5 standard errors, the std within 5%.
		if !(math.Abs(mean-tc.mu) <= 5*tc.sigma/math.Sqrt(cnt)+1e-5) || !(math.Abs(std-tc.sigma) <= 0.05*tc.sigma+1e-3) {
			t.Errorf("sigma=%v mu=%v: noise mean %.4f std %.4f", tc.sigma, tc.mu, mean, std)
		}
		t.Logf("sigma=%v mu=%v: noise mean %.4f std %.4f over %d values", tc.sigma, tc.mu, mean, std, len(v.Data))
	}

	// The noise is a function of (seed, key, image): repeats give the same answer, another
	// caller or another image a different one, regardless of batch composition.
	n, _ := NewNoise(enc, 1, 0, 11)
	a1 := mustEncode(t, n, asKey("alice"), x)
	a2 := mustEncode(t, n, asKey("alice"), x)
	b := mustEncode(t, n, asKey("bob"), x)
	if !reflect.DeepEqual(a1.Data, a2.Data) {
		t.Error("a repeated query got different noise; repeats could be averaged")
	}
	if reflect.DeepEqual(a1.Data, b.Data) {
		t.Error("two callers got the same noise")
	}
	single := mustEncode(t, n, asKey("alice"), slice(x, 5, 6))
	for j, f := range single.Row(0) {
		if d := math.Abs(float64(f - a1.Row(5)[j])); d > 1e-4 {
			t.Fatalf("image 5 alone vs in a batch: dim %d differs by %g", j, d)
		}
	}
	if _, err := NewNoise(enc, -1, 0, 1); err == nil {
		t.Error("NewNoise accepted sigma=-1")
	}
	if _, err := n.Encode(context.Background(), infer.Images{N: 1, C: 3, H: 32, W: 32, Data: make([]float32, 5)}); err == nil {
		t.Error("Encode accepted images with too little data")
	}
}

func TestRound(t *testing.T) {
	enc := encoder(t)
	x := patterns(4, 4)
	clean := mustEncode(t, enc, context.Background(), x)
	for _, d := range []int{0, 1, 2, 4} {
		r, err := NewRound(enc, d)
		if err != nil {
			t.Fatal(err)
		}
		v := mustEncode(t, r, context.Background(), x)
		scale := math.Pow(10, float64(d))
		for i, f := range v.Data {
			if diff := math.Abs(float64(f) - float64(clean.Data[i])); diff > 0.5/scale+1e-6 {
				t.Fatalf("decimals=%d: %v rounded to %v", d, clean.Data[i], f)
			}
			if k := float64(f) * scale; math.Abs(k-math.Round(k)) > 1e-3 {
				t.Fatalf("decimals=%d: %v is not a multiple of 10^-%d", d, f, d)
			}
		}
	}
	if _, err := NewRound(enc, 10); err == nil {
		t.Error("NewRound accepted decimals=10")
	}
}

func TestTopK(t *testing.T) {
	enc := encoder(t)
	x := patterns(5, 4)
	clean := mustEncode(t, enc, context.Background(), x)
	for _, k := range []int{1, 64, 512} {
		tk, err := NewTopK(enc, k)
		if err != nil {
			t.Fatal(err)
		}
		v := mustEncode(t, tk, context.Background(), x)
		for i := range v.N {
			mags := make([]float64, v.D)
			for j, f := range clean.Row(i) {
				mags[j] = math.Abs(float64(f))
			}
			slices.Sort(mags)
			kth := mags[v.D-k]
			kept, nonzero := 0, 0
			for j, f := range v.Row(i) {
				c := clean.Row(i)[j]
				if c != 0 {
					nonzero++
				}
				switch {
				case f != 0 && f != c:
					t.Fatalf("k=%d row %d dim %d: kept %v, clean %v", k, i, j, f, c)
				case f != 0 && math.Abs(float64(c)) < kth:
					t.Fatalf("k=%d row %d: kept |%v| below the k-th magnitude %v", k, i, c, kth)
				case f == 0 && math.Abs(float64(c)) > kth:
					t.Fatalf("k=%d row %d dim %d: zeroed |%v| above the k-th magnitude %v", k, i, j, c, kth)
				case f != 0:
					kept++
				}
			}
			if kept > k || kept < min(k, nonzero)-1 {
				t.Fatalf("k=%d row %d: %d values kept (%d nonzero)", k, i, kept, nonzero)
			}
		}
	}
}

func TestTruncate(t *testing.T) {
	enc := encoder(t)
	x := patterns(6, 3)
	clean := mustEncode(t, enc, context.Background(), x)
	tr, err := NewTruncate(enc, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Info(); got.OutputDim != 100 || got.InputName != enc.Info().InputName {
		t.Fatalf("Info() = %+v; want OutputDim 100 and the rest passed through", got)
	}
	if enc.Info().OutputDim != 512 {
		t.Fatalf("truncation changed the wrapped encoder's Info: %d", enc.Info().OutputDim)
	}
	v := mustEncode(t, tr, context.Background(), x)
	if v.D != 100 {
		t.Fatalf("D = %d, want 100", v.D)
	}
	for i := range v.N {
		if !slices.Equal(v.Row(i), clean.Row(i)[:100]) {
			t.Fatalf("row %d is not the first 100 clean values", i)
		}
	}
	// Truncation cost measured on the kept prefix plus the lost energy.
	cut := infer.Vectors{N: clean.N, D: 100, Data: make([]float32, clean.N*100)}
	for i := range clean.N {
		copy(cut.Row(i), clean.Row(i)[:100])
	}
	if c, l2, err := Distortion(cut, v); err != nil || c < 0.999999 || l2 != 0 {
		t.Errorf("Distortion(prefix, truncated) = %v, %v, %v; want 1, 0", c, l2, err)
	}
}

func TestDistortion(t *testing.T) {
	v := func(n, d int, data ...float32) infer.Vectors { return infer.Vectors{N: n, D: d, Data: data} }
	tests := []struct {
		name            string
		clean, def      infer.Vectors
		wantCos, wantL2 float64
		wantErr         string
	}{
		{"identical", v(2, 2, 1, 0, 0, 2), v(2, 2, 1, 0, 0, 2), 1, 0, ""},
		{"orthogonal and opposite", v(2, 2, 1, 0, 0, 1), v(2, 2, 0, 3, 0, -1), -0.5, (math.Sqrt(10) + 2) / 2, ""},
		{"scaled", v(1, 2, 3, 4), v(1, 2, 6, 8), 1, 5, ""},
		{"zero vector", v(1, 2, 0, 0), v(1, 2, 3, 4), 0, 5, ""},
		{"shape", v(1, 2, 1, 2), v(1, 3, 1, 2, 3), 0, 0, "clean is 1x2, defended is 1x3"},
		{"short data", v(2, 2, 1, 2, 3), v(2, 2, 1, 2, 3, 4), 0, 0, "first batch is 2 x 2 with 3 values"},
		{"empty", v(0, 2), v(0, 2), 0, 0, "no vectors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, l2, err := Distortion(tc.clean, tc.def)
			if tc.wantErr != "" {
				wantErr(t, err, tc.wantErr)
				return
			}
			if err != nil || math.Abs(c-tc.wantCos) > 1e-9 || math.Abs(l2-tc.wantL2) > 1e-9 {
				t.Errorf("Distortion = %v, %v, %v; want %v, %v", c, l2, err, tc.wantCos, tc.wantL2)
			}
		})
	}
}
