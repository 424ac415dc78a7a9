package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/bench"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure ONNX Runtime inference, the HTTP API and the SimCLR training step; write JSON",
		Description: `In-process ONNX Runtime at each --batch; then the same models served on a loopback port
   (one client per batch size, and --concurrency single-image clients with and without dynamic
   batching), each compared with raw ONNX Runtime measured in the same run; then the training
   step against PyTorch. --url benchmarks a running server instead: our API
   (http://host:port, --api-key) or any Open Inference Protocol v2 server such as Triton
   serving an exported repository (http://host:8000/v2/models/<name>).`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "model", Usage: "ONNX file(s) to benchmark (default: random ResNet-18, CIFAR and ImageNet stems, 32x32)"},
			&cli.IntSliceFlag{Name: "batch-size", Aliases: []string{"batch"}, Value: cli.NewIntSlice(1, 64, 256), Usage: "inference batch sizes"},
			&cli.DurationFlag{Name: "min-time", Value: 3 * time.Second, Usage: "minimum time per inference measurement"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU()},
			&cli.StringSliceFlag{Name: "train-stem", Value: cli.NewStringSlice("imagenet", "cifar"), Usage: "stems for the training-step benchmark (none to skip)"},
			&cli.IntSliceFlag{Name: "train-batch-size", Aliases: []string{"train-batch"}, Value: cli.NewIntSlice(64), Usage: "pairs per training step, each measured"},
			&cli.StringSliceFlag{Name: "precision", Value: cli.NewStringSlice("fp32"), Usage: "training-step precisions, each measured in gotch and PyTorch: fp32 and/or bf16 (autocast; a CPU with AVX512-BF16/AMX, or CUDA)"},
			&cli.IntFlag{Name: "steps", Value: 3, Usage: "timed training steps per round"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "gotch/PyTorch alternations (medians are compared)"},
			&cli.StringFlag{Name: "pytorch", Value: "bench/simclr_step.py", Usage: "PyTorch reference script to compare the training step with (empty to skip)"},
			&cli.StringFlag{Name: "python", Value: "/usr/bin/python3"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N, for ONNX Runtime, libtorch and the PyTorch reference alike"},
			&cli.BoolFlag{Name: "http", Value: true, Usage: "also measure each model through the HTTP API on a loopback port (--http=false to skip)"},
			&cli.IntSliceFlag{Name: "concurrency", Value: cli.NewIntSlice(1, 16, 64), Usage: "concurrent single-image HTTP clients"},
			&cli.IntFlag{Name: "serve-workers", Value: 1, Usage: "the in-process server's --workers (model calls at once); raw ONNX Runtime is then also measured with as many callers"},
			&cli.IntFlag{Name: "serve-threads", Usage: "the in-process server's --threads (default --threads)"},
			&cli.IntSliceFlag{Name: "batch-clients", Value: cli.NewIntSlice(1, 2), Usage: "concurrent HTTP clients sending each --batch (one waits for each reply; two overlap transfer and ledger commit with the model)"},
			&cli.StringFlag{Name: "url", Usage: "benchmark this running server (our API, or .../v2/models/<name> on any v2 server)"},
			&cli.StringFlag{Name: "api-key", EnvVars: []string{"SSL_ONNX_API_KEY"}, Usage: "API key for --url"},
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
			if len(stems) == 0 {
				py = "" // no training step to compare
			}
			if py != "" {
				if _, err := os.Stat(py); err != nil {
					return fmt.Errorf("--pytorch %s: %w (run from the repository root, or pass --pytorch '')", py, err)
				}
			}
			var models []string
			for _, m := range c.StringSlice("model") {
				p, err := zoo.Resolve(m)
				if err != nil {
					return err
				}
				models = append(models, p)
			}
			r, err := bench.Run(c.Context, bench.Config{
				Models: models, Batches: c.IntSlice("batch-size"), MinTime: c.Duration("min-time"),
				Threads: c.Int("threads"), Device: c.String("device"), TrainStem: stems, TrainBS: c.IntSlice("train-batch-size"), Precisions: c.StringSlice("precision"), Steps: c.Int("steps"), Rounds: c.Int("rounds"),
				PyTorch: py, Python: c.String("python"), TempDir: tmp,
				HTTP: c.Bool("http"), Concurrency: c.IntSlice("concurrency"), BatchClients: c.IntSlice("batch-clients"),
				ServeWorkers: c.Int("serve-workers"), ServeThreads: c.Int("serve-threads"), URL: c.String("url"), APIKey: c.String("api-key"),
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
			fmt.Printf("%-34s %6s %8s %8s %12s %9s %9s\n", "model", "batch", "threads", "callers", "images/s", "p50 ms", "p99 ms")
			for _, i := range r.Inference {
				fmt.Printf("%-34s %6d %8d %8d %12.0f %9.1f %9.1f\n", i.Model, i.Batch, i.Threads, i.Callers, i.ImagesPS, i.P50ms, i.P99ms)
			}
			if len(r.HTTP) > 0 {
				fmt.Printf("\n%-28s %-24s %6s %8s %10s %8s %8s %8s %10s\n", "HTTP model", "server", "batch", "clients", "images/s", "p50 ms", "p99 ms", "vs raw", "vs same")
				for _, h := range r.HTTP {
					vs, same := "-", "-"
					if h.VsRaw > 0 {
						vs = fmt.Sprintf("%.2fx@%d", h.VsRaw, h.RawBatch)
					}
					if h.VsRawSame > 0 {
						same = fmt.Sprintf("%.2fx@%d", h.VsRawSame, h.RawBatch)
					}
					fmt.Printf("%-28s %-24s %6d %8d %10.0f %8.1f %8.1f %8s %10s\n", h.Model, h.Server, h.Batch, h.Concurrency, h.ImagesPS, h.P50ms, h.P99ms, vs, same)
				}
			}
			if len(r.Training) > 0 {
				fmt.Printf("\n%-22s %6s %9s %14s %16s %8s\n", "SimCLR step", "batch", "precision", "gotch img/s", "PyTorch img/s", "ratio")
				for _, t := range r.Training {
					fmt.Printf("%-22s %6d %9s %14.1f %16.1f %8.2f\n", t.Arch+"/"+t.Stem, t.Batch, t.Precision, t.GotchIPS, t.PyTorchIPS, t.Ratio)
				}
			}
			fmt.Printf("\nwrote %s\n", c.String("out"))
			return nil
		},
	}
}
