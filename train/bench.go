package train

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// StepBenchmark measures the throughput of the SimCLR training step alone (forward of both
// views, loss, backward, optimiser update) on random images, as configured by c (Arch, Stem,
// Size, BatchSize, Loss, Optimizer, Precision, Threads). It runs warmup steps, then steps timed steps,
// and returns images per second (an image = one pair of views).
func StepBenchmark(c Config, warmup, steps int) (float64, error) {
	c.Defaults()
	ls, err := lookupLoss(c.Loss)
	if err != nil {
		return 0, err
	}
	if ls.NeedsLabels {
		return 0, fmt.Errorf("step benchmark: loss %s needs labels; use infonce or softnn", c.Loss)
	}
	g, err := models.Build(models.Spec{Arch: c.Arch, Stem: c.Stem, Head: "simclr", OutDim: c.OutDim, InputC: 3, InputHW: c.Size})
	if err != nil {
		return 0, err
	}
	sess, err := torchnet.Open(torchnet.Options{Device: c.Device, Threads: c.Threads, Seed: c.Seed})
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	net, err := sess.NewNet(g, c.Seed)
	if err != nil {
		return 0, err
	}
	tr, err := net.NewTrainer(torchnet.TrainerConfig{Loss: c.Loss, Temperature: c.Temperature, Pairs: true,
		Optimizer: c.Optimizer, WeightDecay: c.WeightDecay, Momentum: c.Momentum, Precision: c.Precision})
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewSource(1))
	b := torchnet.Batch{Rows: 2 * c.BatchSize, X: make([]float32, 2*c.BatchSize*3*c.Size*c.Size)}
	for i := range b.X {
		b.X[i] = rng.Float32()
	}
	var t0 time.Time
	for i := 0; i < warmup+steps; i++ {
		if i == warmup {
			t0 = time.Now()
		}
		if _, err := tr.Step(b, c.LR); err != nil {
			return 0, err
		}
	}
	return float64(steps*c.BatchSize) / time.Since(t0).Seconds(), nil
}
