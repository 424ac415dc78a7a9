package infer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// BenchmarkORTResNet18 measures OpenORT throughput on torchvision resnet18
// (fc = Identity) at 32x32 input, with the ImageNet stem (7x7 stride-2 conv
// and max-pool) and with the CIFAR stem (3x3 stride-1 conv, no max-pool),
// using all cores. The models come from testdata/gen_models.py.
func BenchmarkORTResNet18(b *testing.B) {
	dir := modelDir(b)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, stem := range []struct{ name, file string }{
		{"imagenet", "resnet18_dyn.onnx"},
		{"cifar", "resnet18_cifar.onnx"},
	} {
		enc, err := OpenORT(filepath.Join(dir, stem.file), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 64, 256} {
			x := Images{N: n, C: 3, H: 32, W: 32, Data: make([]float32, n*3*32*32)}
			for i := range x.Data {
				x.Data[i] = float32(rng.NormFloat64())
			}
			b.Run(fmt.Sprintf("stem=%s/batch=%d", stem.name, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := enc.Encode(context.Background(), x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
