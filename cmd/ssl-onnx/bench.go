package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure ONNX Runtime inference and SimCLR training-step throughput; write JSON",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "model", Usage: "ONNX file(s) to benchmark (default: random ResNet-18, CIFAR and ImageNet stems, 32x32)"},
			&cli.IntSliceFlag{Name: "batch", Value: cli.NewIntSlice(1, 64, 256), Usage: "inference batch sizes"},
			&cli.DurationFlag{Name: "min-time", Value: 3 * time.Second, Usage: "minimum time per inference measurement"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU()},
			&cli.StringSliceFlag{Name: "train-stem", Value: cli.NewStringSlice("imagenet", "cifar"), Usage: "stems for the training-step benchmark (none to skip)"},
			&cli.IntFlag{Name: "train-batch", Value: 64},
			&cli.IntFlag{Name: "steps", Value: 3, Usage: "timed training steps per round"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "gotch/PyTorch alternations (medians are compared)"},
			&cli.StringFlag{Name: "pytorch", Value: "bench/simclr_step.py", Usage: "PyTorch reference script to compare the training step with (empty to skip)"},
			&cli.StringFlag{Name: "python", Value: "/usr/bin/python3"},
			&cli.StringFlag{Name: "out", Value: "runs/bench.json"},
		},
		Action: func(c *cli.Context) error {
			tmp, err := os.MkdirTemp("", "ssl-onnx-bench")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			stems := c.StringSlice("train-stem")
			if len(stems) == 1 && stems[0] == "none" {
				stems = nil
			}
			py := c.String("pytorch")
			if py != "" {
				if _, err := os.Stat(py); err != nil {
					return fmt.Errorf("--pytorch %s: %w (run from the repository root, or pass --pytorch '')", py, err)
				}
			}
			r, err := bench.Run(c.Context, bench.Config{
				Models: c.StringSlice("model"), Batches: c.IntSlice("batch"), MinTime: c.Duration("min-time"),
				Threads: c.Int("threads"), TrainStem: stems, TrainBS: c.Int("train-batch"), Steps: c.Int("steps"), Rounds: c.Int("rounds"),
				PyTorch: py, Python: c.String("python"), TempDir: tmp,
			}, os.Stderr)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(c.String("out")), 0o755); err != nil {
				return err
			}
			if err := r.WriteJSON(c.String("out")); err != nil {
				return err
			}
			fmt.Printf("%-34s %6s %12s %9s %9s\n", "model", "batch", "images/s", "p50 ms", "p99 ms")
			for _, i := range r.Inference {
				fmt.Printf("%-34s %6d %12.0f %9.1f %9.1f\n", i.Model, i.Batch, i.ImagesPS, i.P50ms, i.P99ms)
			}
			if len(r.Training) > 0 {
				fmt.Printf("\n%-22s %6s %14s %16s %8s\n", "SimCLR step", "batch", "gotch img/s", "PyTorch img/s", "ratio")
				for _, t := range r.Training {
					fmt.Printf("%-22s %6d %14.1f %16.1f %8.2f\n", t.Arch+"/"+t.Stem, t.Batch, t.GotchIPS, t.PyTorchIPS, t.Ratio)
				}
			}
			fmt.Printf("\nwrote %s\n", c.String("out"))
			return nil
		},
	}
}
