package defense

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/export"

	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
)

var shared struct {
	once sync.Once
	dir  string
	enc  infer.Encoder
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "defense-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	if shared.enc != nil {
		shared.enc.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// encoder returns the shared real encoder: a randomly initialised ResNet-18 (ImageNet stem,
// 512-d representation, 3x32x32 input) exported to ONNX and run by ONNX Runtime. It is
// goroutine-safe and must not be closed by tests; wrap it in noClose for defenses under test.
func encoder(tb testing.TB) infer.Encoder {
	tb.Helper()
	shared.once.Do(func() {
		path := filepath.Join(shared.dir, "resnet18-random.onnx")
		spec := models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}
		if shared.err = export.RandomModel(path, spec, 7); shared.err != nil {
			return
		}
		shared.enc, shared.err = infer.OpenORT(path, infer.Options{Threads: 2})
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return noClose{shared.enc, new(atomic.Int64)}
}

// noClose shares the real encoder between tests: Close is a no-op, and calls counts the
// images that reached the model.
type noClose struct {
	infer.Encoder
	images *atomic.Int64
}

func (n noClose) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	n.images.Add(int64(x.N))
	return n.Encoder.Encode(ctx, x)
}

func (noClose) Close() error { return nil }

// patterns returns n varied 3x32x32 images: per image random colour gratings of random
// frequency, orientation and phase plus pixel noise, in about [0, 1].
func patterns(seed uint64, n int) infer.Images {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	x := infer.Images{N: n, C: 3, H: 32, W: 32, Data: make([]float32, n*3*32*32)}
	for i := range n {
		var amp, fx, fy, ph [3]float64
		for c := range 3 {
			amp[c] = 0.5 * r.Float64()
			fx[c], fy[c] = 0.6*(r.Float64()-0.5), 0.6*(r.Float64()-0.5)
			ph[c] = 2 * math.Pi * r.Float64()
		}
		base, noise := 0.2+0.6*r.Float64(), 0.05+0.25*r.Float64()
		for c := range 3 {
			for y := range 32 {
				for xx := range 32 {
					v := base + amp[c]*math.Sin(fx[c]*float64(xx)+fy[c]*float64(y)+ph[c]) + noise*r.NormFloat64()
					x.Data[((i*3+c)*32+y)*32+xx] = float32(v)
				}
			}
		}
	}
	return x
}

// jitter returns a copy of x with N(0, eps^2) pixel noise (a near-duplicate query).
func jitter(x infer.Images, eps float64, seed uint64) infer.Images {
	r := rand.New(rand.NewPCG(seed, 0x7177))
	y := x
	y.Data = make([]float32, len(x.Data))
	for i, v := range x.Data {
		y.Data[i] = v + float32(eps*r.NormFloat64())
	}
	return y
}

// concat joins image batches of the same size.
func concat(xs ...infer.Images) infer.Images {
	out := infer.Images{C: xs[0].C, H: xs[0].H, W: xs[0].W}
	for _, x := range xs {
		out.N += x.N
		out.Data = append(out.Data, x.Data...)
	}
	return out
}

// slice returns images [i, j) of x.
func slice(x infer.Images, i, j int) infer.Images {
	per := x.C * x.H * x.W
	return infer.Images{N: j - i, C: x.C, H: x.H, W: x.W, Data: x.Data[i*per : j*per]}
}

func asKey(key string) context.Context { return WithKey(context.Background(), key) }

func mustEncode(tb testing.TB, enc infer.Encoder, ctx context.Context, x infer.Images) infer.Vectors {
	tb.Helper()
	v, err := enc.Encode(ctx, x)
	if err != nil {
		tb.Fatal(err)
	}
	if v.N != x.N || len(v.Data) != v.N*v.D {
		tb.Fatalf("Encode returned %d rows of %d (%d values) for %d images", v.N, v.D, len(v.Data), x.N)
	}
	return v
}

// wantErr fails unless err is non-nil and contains every part.
func wantErr(tb testing.TB, err error, parts ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			tb.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// cos is the cosine similarity of two vectors.
func cos(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// noiseImages returns n 3x32x32 images of independent N(0.5, 0.25^2) pixels. Through the
// random encoder, distinct such images have centered representations that are nearly
// orthogonal (mean cosine 0.003, max 0.44 over 4950 pairs), while near-duplicates
// (jitter 0.02) keep a cosine above 0.97: the clean setting for similarity tests. Structured
// images (patterns) are not: a random ResNet's features are dominated by a few global
// statistics, so distinct patterns often have centered cosines above 0.6.
func noiseImages(seed uint64, n int) infer.Images {
	r := rand.New(rand.NewPCG(seed, 0x9015e))
	x := infer.Images{N: n, C: 3, H: 32, W: 32, Data: make([]float32, n*3*32*32)}
	for i := range x.Data {
		x.Data[i] = float32(0.5 + 0.25*r.NormFloat64())
	}
	return x
}
