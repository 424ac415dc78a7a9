package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/train"
)

// precisionUsage describes --precision, the same in every command that trains.
const precisionUsage = "fp32, or bf16: forward pass and loss under autocast to bfloat16 (fp32 weights and optimiser), on a CPU with AVX512-BF16/AMX or on CUDA"

func trainCommand() *cli.Command {
	def := train.Config{Watermark: true} // the defaults shown are train's own
	def.Defaults()
	return &cli.Command{
		Name:  "train",
		Usage: "train a SimCLR encoder on libtorch (checkpoint every epoch; --resume continues)",
		Flags: append(datasetFlags(),
			&cli.StringFlag{Name: "split", Value: def.Split},
			&cli.IntFlag{Name: "limit", Usage: "train on the first N images only"},
			&cli.StringFlag{Name: "arch", Value: def.Arch, Usage: "resnet18, resnet34, resnet50"},
			&cli.StringFlag{Name: "stem", Value: def.Stem, Usage: "cifar (3x3/1, no maxpool), cifar-pool (3x3/1 + maxpool: half the resolution, a quarter of the compute) or imagenet (7x7/2 + maxpool)"},
			&cli.IntFlag{Name: "size", Value: def.Size, Usage: "input size (images are resized to size x size)"},
			&cli.IntFlag{Name: "out-dim", Value: def.OutDim, Usage: "projection head output size"},
			&cli.StringFlag{Name: "loss", Value: def.Loss, Usage: "infonce, softnn, supcon (contrastive), or ce (a supervised classifier: linear head on the labels, crop + flip only; its served output is the pooled representation)"},
			&cli.Float64Flag{Name: "temperature", Usage: "loss temperature (default: per loss, infonce 0.07, softnn 100)"},
			&cli.StringFlag{Name: "optimizer", Usage: "adam, sgd or lars (default: adam; sgd for supcon)"},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate (default: per loss/optimizer, adam 3e-4, sgd/lars 0.05)"},
			&cli.Float64Flag{Name: "weight-decay", Value: def.WeightDecay},
			&cli.Float64Flag{Name: "momentum", Usage: "sgd momentum (default 0.9)"},
			&cli.IntFlag{Name: "epochs", Value: def.Epochs},
			&cli.IntFlag{Name: "warmup", Usage: "warm-up epochs before cosine decay (default 10 when epochs > 10)"},
			&cli.IntFlag{Name: "batch-size", Value: def.BatchSize},
			&cli.Float64Flag{Name: "crop-min", Value: def.CropMin, Usage: "minimum scale of the random resized crop (1: the whole image of a square source, flips only)"},
			&cli.IntFlag{Name: "views", Value: def.Views, Usage: "views per image and step: 2, or 1 for --loss ce (one view against its label, half the compute)"},
			&cli.Int64Flag{Name: "seed", Value: 1},
			&cli.IntFlag{Name: "threads", Value: def.Threads, Usage: "libtorch intra-op threads"},
			&cli.IntFlag{Name: "workers", Usage: "augmentation goroutines (default: one per core)"},
			&cli.StringFlag{Name: "device", Value: def.Device, Usage: "cpu, cuda or cuda:N"},
			&cli.StringFlag{Name: "precision", Value: "fp32", Usage: precisionUsage},
			&cli.StringFlag{Name: "out", Value: "runs/victim", Usage: "run directory (checkpoints, log)"},
			&cli.BoolFlag{Name: "resume", Value: true, Usage: "continue from the run directory's last checkpoint (--resume=false starts over)"},
			&cli.StringFlag{Name: "init-from", Usage: "start from another run directory's last weights (and watermark head) with a fresh optimiser and schedule; --size may differ (progressive resizing)"},
			&cli.BoolFlag{Name: "watermark", Usage: "train the owner's secret rotation-task watermark head jointly (saved as <out>/watermark.ot)"},
			&cli.Float64Flag{Name: "watermark-weight", Value: def.WatermarkWeight, Usage: "weight of the watermark loss"},
			&cli.IntFlag{Name: "watermark-batch", Value: def.WatermarkBatch, Usage: "rotated images per step for the watermark loss"},
		),
		Action: func(c *cli.Context) error {
			cfg := train.Config{
				Dataset: c.String("dataset"), DataDir: c.String("data"), Split: c.String("split"), Limit: c.Int("limit"),
				Arch: c.String("arch"), Stem: c.String("stem"), Size: c.Int("size"), OutDim: c.Int("out-dim"),
				Loss: c.String("loss"), Temperature: c.Float64("temperature"), Optimizer: c.String("optimizer"),
				LR: c.Float64("lr"), WeightDecay: c.Float64("weight-decay"), Momentum: c.Float64("momentum"),
				Epochs: c.Int("epochs"), Warmup: c.Int("warmup"), BatchSize: c.Int("batch-size"), CropMin: c.Float64("crop-min"),
				Views: c.Int("views"),
				Seed:  c.Int64("seed"), Threads: c.Int("threads"), Workers: c.Int("workers"), Device: c.String("device"),
				Precision: c.String("precision"),
				Dir:       c.String("out"), Resume: c.Bool("resume"), InitFrom: c.String("init-from"),
				Watermark: c.Bool("watermark"), WatermarkWeight: c.Float64("watermark-weight"), WatermarkBatch: c.Int("watermark-batch"),
			}
			logs, err := train.Run(c.Context, cfg, os.Stderr)
			if err != nil {
				return err
			}
			if len(logs) > 0 {
				l := logs[len(logs)-1]
				fmt.Printf("trained %s: epoch %d loss %.4f (%.0f images/s); checkpoint %s\n", cfg.Dir, l.Epoch, l.Loss, l.ImagesPS, cfg.Dir)
			}
			return nil
		},
	}
}
