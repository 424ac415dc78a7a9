package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

func evalCommand() *cli.Command {
	def := eval.DefaultConfig()
	return &cli.Command{
		Name:  "eval",
		Usage: "linear probe, kNN and fidelity of ONNX encoders (and baselines) on a downstream dataset; write JSON and a plot",
		Description: "Features are extracted once per model with ONNX Runtime (inference mode), then a standardised\n" +
			"logistic-regression probe (Adam, the reference's CIFAR pipeline) and a weighted kNN monitor are trained on\n" +
			"them; --simsiam-probe selects the ImageNet pipeline's probe instead (SimSiam's linear evaluation: SGD\n" +
			"momentum 0.9, lr 0.1 x batch/256 with cosine annealing, 90 epochs, raw features). With --reference,\n" +
			"every row is compared with the victim: cosine/L2 of test representations and probe agreement.",
		Flags: append(probeFlags(def),
			&cli.StringSliceFlag{Name: "model", Usage: "ONNX encoder to evaluate (repeatable; builtin:fmnist is the shipped victim)"},
			&cli.StringFlag{Name: "reference", Usage: "victim ONNX encoder to compare every row with (also evaluated)"},
			&cli.StringSliceFlag{Name: "baselines", Usage: "baselines: random (randomly initialised encoder), pixels (raw pixels), comma-separated"},
			&cli.Int64Flag{Name: "random-seed", Value: def.RandomSeed, Usage: "seed of the random baseline (its architecture and input size follow --reference's metadata, else the first --model's)"},
			&cli.IntFlag{Name: "knn-k", Value: def.KNNK, Usage: "kNN neighbours"},
			&cli.Float64Flag{Name: "knn-t", Value: def.KNNTemperature, Usage: "kNN temperature"},
			&cli.StringFlag{Name: "out", Value: "runs/eval.json", Usage: "JSON report to write (empty to skip)"},
			&cli.StringFlag{Name: "plot", Usage: "also write a bar chart of probe top-1 here (.png, .svg, .pdf)"},
		),
		Action: func(c *cli.Context) error {
			cfg := probeConfig(c, def)
			var err error
			for _, m := range c.StringSlice("model") {
				p, err := zoo.Resolve(m)
				if err != nil {
					return err
				}
				cfg.Models = append(cfg.Models, p)
			}
			if cfg.Reference, err = zoo.Resolve(c.String("reference")); err != nil {
				return err
			}
			cfg.Baselines = c.StringSlice("baselines")
			cfg.RandomSeed = c.Int64("random-seed")
			cfg.KNNK, cfg.KNNTemperature = c.Int("knn-k"), c.Float64("knn-t")
			r, err := eval.Evaluate(c.Context, cfg, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Println()
			if err := r.Print(os.Stdout); err != nil {
				return err
			}
			if p := c.String("out"); p != "" {
				if err := r.WriteJSON(p); err != nil {
					return err
				}
				fmt.Printf("\nwrote %s\n", p)
			}
			if p := c.String("plot"); p != "" {
				if err := eval.PlotProbe(r, p); err != nil {
					return err
				}
				fmt.Printf("wrote %s\n", p)
			}
			return nil
		},
	}
}

// probeFlags are the flags of a linear probe on a downstream dataset (eval, classifier).
func probeFlags(def eval.Config) []cli.Flag {
	return append(datasetFlags(),
		&cli.StringFlag{Name: "train-split", Value: "train", Usage: "split the probe is trained on"},
		&cli.StringFlag{Name: "test-split", Value: "test", Usage: "split the probe is tested on"},
		&cli.IntFlag{Name: "train-limit", Value: def.TrainLimit, Usage: "use the first N train images (0 = all)"},
		&cli.IntFlag{Name: "test-limit", Value: def.TestLimit, Usage: "use the first N test images (0 = all)"},
		&cli.StringFlag{Name: "norm", Value: def.Norm, Usage: "input normalisation: auto (from model metadata), none, or a dataset name"},
		&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "ONNX Runtime intra-op threads"},
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N (ONNX Runtime's CUDA execution provider)"},
		&cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, else .deps/onnxruntime)"},
		&cli.IntFlag{Name: "batch-size", Value: def.Batch, Usage: "images per inference call"},
		&cli.BoolFlag{Name: "simsiam-probe", Usage: "use the ImageNet pipeline's probe (SimSiam's linear evaluation): sgd, momentum 0.9, wd 0, lr 0.1 x probe-batch/256, cosine, 90 epochs, batch 256, weights ~ N(0, 0.01^2), raw features; probe flags given explicitly still override"},
		&cli.StringFlag{Name: "probe-optimizer", Value: eval.OptimizerAdam, Usage: "linear probe optimizer: adam or sgd (sgd alone changes only the optimizer and its own settings; --simsiam-probe sets the whole SimSiam recipe)"},
		&cli.Float64Flag{Name: "probe-momentum", DefaultText: "0.9 with sgd", Usage: "linear probe SGD momentum, in [0, 1) (sgd only)"},
		&cli.StringFlag{Name: "probe-schedule", DefaultText: "cosine with sgd, constant with adam", Usage: "linear probe learning-rate schedule: constant or cosine (lr x 0.5 (1 + cos(pi epoch/epochs)), set every epoch)"},
		&cli.Float64Flag{Name: "probe-init-std", DefaultText: "0.01 with sgd, 0 (zeros) with adam", Usage: "standard deviation of the linear probe's normal initial weights (0 = zeros)"},
		&cli.IntFlag{Name: "epochs", Value: def.Probe.Epochs, DefaultText: fmt.Sprintf("%d; %d with --simsiam-probe", def.Probe.Epochs, eval.SGDProbeConfig().Epochs), Usage: "linear probe epochs"},
		&cli.Float64Flag{Name: "lr", Value: def.Probe.LR, DefaultText: fmt.Sprintf("%g with adam, %g x probe-batch/256 with sgd", def.Probe.LR, eval.SGDProbeBaseLR), Usage: "linear probe (initial) learning rate"},
		&cli.Float64Flag{Name: "wd", Value: def.Probe.WeightDecay, DefaultText: fmt.Sprintf("%g; 0 with --simsiam-probe", def.Probe.WeightDecay), Usage: "linear probe weight decay (L2 added to the gradient)"},
		&cli.IntFlag{Name: "probe-batch", Value: def.Probe.Batch, Usage: "linear probe mini-batch size"},
		&cli.BoolFlag{Name: "standardize", Value: def.Probe.Standardize, DefaultText: fmt.Sprintf("%v; false with --simsiam-probe", def.Probe.Standardize), Usage: "standardise features with the train split's mean/std (--standardize=false to disable)"},
		&cli.Int64Flag{Name: "seed", Value: def.Probe.Seed, Usage: "linear probe shuffling (and initial weights) seed"},
	)
}

// probeSettings reads the probe flags: def's settings, or eval.SGDProbeConfig() with
// --simsiam-probe, overridden by the flags given (all of them without --simsiam-probe,
// where their defaults are def's). The SGD-only settings follow the optimizer unless
// given: momentum 0.9, initial weight std 0.01 and lr 0.1 x batch/256 with sgd; no
// momentum and zero initial weights with adam. An empty schedule becomes cosine with
// sgd, constant with adam.
func probeSettings(c *cli.Context, def eval.ProbeConfig) eval.ProbeConfig {
	p := def
	simsiam := c.Bool("simsiam-probe")
	if simsiam {
		p = eval.SGDProbeConfig()
	}
	use := func(name string) bool { return !simsiam || c.IsSet(name) }
	if use("probe-optimizer") {
		p.Optimizer = c.String("probe-optimizer")
	}
	if use("probe-schedule") {
		p.Schedule = c.String("probe-schedule")
	}
	if use("epochs") {
		p.Epochs = c.Int("epochs")
	}
	if use("wd") {
		p.WeightDecay = c.Float64("wd")
	}
	if use("probe-batch") {
		p.Batch = c.Int("probe-batch")
	}
	if use("standardize") {
		p.Standardize = c.Bool("standardize")
	}
	if use("seed") {
		p.Seed = c.Int64("seed")
	}
	sgd := p.Optimizer == eval.OptimizerSGD
	switch {
	case c.IsSet("lr"):
		p.LR = c.Float64("lr")
	case sgd:
		p.LR = eval.SGDProbeBaseLR * float64(p.Batch) / 256
	default:
		p.LR = def.LR
	}
	p.Momentum, p.InitStd = 0, 0
	if sgd {
		p.Momentum, p.InitStd = eval.SGDProbeMomentum, eval.SGDProbeInitStd
	}
	if c.IsSet("probe-momentum") {
		p.Momentum = c.Float64("probe-momentum")
	}
	if c.IsSet("probe-init-std") {
		p.InitStd = c.Float64("probe-init-std")
	}
	return p.Resolved()
}

// probeConfig reads probeFlags into a copy of def.
func probeConfig(c *cli.Context, def eval.Config) eval.Config {
	cfg := def
	cfg.Dataset, cfg.DataDir = c.String("dataset"), c.String("data")
	cfg.TrainSplit, cfg.TestSplit = c.String("train-split"), c.String("test-split")
	cfg.TrainLimit, cfg.TestLimit = c.Int("train-limit"), c.Int("test-limit")
	cfg.Norm = c.String("norm")
	cfg.Threads, cfg.Device, cfg.Library = c.Int("threads"), c.String("device"), c.String("ort-lib")
	cfg.Batch = c.Int("batch-size")
	cfg.Probe = probeSettings(c, def.Probe)
	return cfg
}
