package train

import (
	"testing"
)

// BenchmarkSimCLRStep measures one SimCLR training step (both views forward, InfoNCE,
// backward, Adam) of ResNet-18 at 32x32, batch 64, 2 threads, per stem. Compare with
// bench/simclr_step.py (the same step in PyTorch on the same libtorch); `ssl-onnx bench`
// runs both in one process tree and prints the ratio.
func BenchmarkSimCLRStep(b *testing.B) {
	for _, stem := range []string{"imagenet", "cifar"} {
		b.Run(stem, func(b *testing.B) {
			steps := max(b.N, 1)
			ips, err := StepBenchmark(Config{Arch: "resnet18", Stem: stem, Size: 32, BatchSize: 64, Threads: 2, Seed: 1}, 1, steps)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(ips, "images/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
