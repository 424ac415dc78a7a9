package train

import (
	"fmt"
	"math/rand"
	"runtime"
	"time"

	"github.com/sugarme/gotch/libtch"

	"github.com/ssl-onnx/ssl-onnx/augment"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// StepBenchmark measures the throughput of the SimCLR training step alone (forward of both
// views, loss, backward, optimiser update) on random images, as configured by c (Arch, Stem,
// Size, BatchSize, Loss, Optimizer, Threads). It runs warmup steps, then steps timed steps,
// and returns images per second (an image = one pair of views).
func StepBenchmark(c Config, warmup, steps int) (float64, error) {
	c.Defaults()
	ls, err := LookupLoss(c.Loss)
	if err != nil {
		return 0, err
	}
	if ls.NeedsLabels {
		return 0, fmt.Errorf("step benchmark: loss %s needs labels; use infonce or softnn", c.Loss)
	}
	dev, err := Device(c.Device)
	if err != nil {
		return 0, err
	}
	g, err := models.Build(models.Spec{Arch: c.Arch, Stem: c.Stem, Head: "simclr", OutDim: c.OutDim, InputC: 3, InputHW: c.Size})
	if err != nil {
		return 0, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchnet.FlushDenormals()
	libtch.AtSetNumThreads(c.Threads)
	m, err := torchnet.New(g, dev, c.Seed)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	opt, err := NewOptimizer(c.Optimizer, m.Trainable(), c.WeightDecay, c.Momentum)
	if err != nil {
		return 0, err
	}
	defer opt.Close()
	rng := rand.New(rand.NewSource(1))
	n := c.BatchSize * 3 * c.Size * c.Size
	pair := augment.Pair{N: c.BatchSize, View1: make([]float32, n), View2: make([]float32, n)}
	for i := 0; i < n; i++ {
		pair.View1[i], pair.View2[i] = rng.Float32(), rng.Float32()
	}
	var t0 time.Time
	for i := 0; i < warmup+steps; i++ {
		if i == warmup {
			t0 = time.Now()
		}
		if _, err := step(m, opt, ls, c, nil, pair, c.LR, dev, nil, 0); err != nil {
			return 0, err
		}
	}
	return float64(steps*c.BatchSize) / time.Since(t0).Seconds(), nil
}
