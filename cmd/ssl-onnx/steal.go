package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/attack"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

// openVictim opens the victim named by --victim: an ONNX file, or the URL of a server that
// speaks the embeddings API (with --api-key).
func openVictim(c *cli.Context) (infer.Encoder, error) {
	v := c.String("victim")
	if isURL(v) {
		return dialVictim(v, c.String("api-key"))
	}
	v, err := zoo.Resolve(v)
	if err != nil {
		return nil, err
	}
	return infer.OpenORT(v, infer.Options{Threads: c.Int("threads"), Device: c.String("device"), Library: c.String("ort-lib")})
}

// isURL says whether a --victim or --model value names a server rather than a file.
func isURL(v string) bool { return strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") }

func stealCommand() *cli.Command {
	return &cli.Command{
		Name:  "steal",
		Usage: "extract a victim encoder from its answers (every view sent counts against the budget)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "victim", Required: true, Usage: "victim ONNX file, or http://host:port of an ssl-onnx server"},
			&cli.StringFlag{Name: "api-key", EnvVars: []string{"SSL_ONNX_API_KEY"}, Usage: "API key for a remote victim"},
			&cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so"},
			&cli.StringFlag{Name: "query-dataset", Value: "fmnist"},
			&cli.StringFlag{Name: "query-data", Usage: "directory of the query dataset's files"},
			&cli.StringFlag{Name: "query-split", Value: "train"},
			&cli.IntFlag{Name: "query-offset", Usage: "first image of the query set in the split"},
			&cli.IntFlag{Name: "num-queries", Value: 9000, Usage: "query budget: images sent to the victim (each view counts)"},
			&cli.IntFlag{Name: "holdout", Usage: "images at the end of a test split never queried (default 1000 for test splits)"},
			&cli.StringFlag{Name: "loss", Value: "infonce", Usage: strings.Join(attack.LossNames(), ", ")},
			&cli.Float64Flag{Name: "temperature", Usage: "loss temperature (default per loss)"},
			&cli.BoolFlag{Name: "augment", Usage: "query each image once, train on augmented views against that answer"},
			&cli.BoolFlag{Name: "requery-each-epoch", Usage: "re-query every epoch like the reference code (each counts against the budget)"},
			&cli.StringFlag{Name: "head", Usage: "recreate: first train a projection head on the victim's answers to two views of each query image (2 queries per image), then steal through it (losses mse, infonce, softnn, msewithhead)"},
			&cli.IntFlag{Name: "head-epochs", Usage: "epochs of head training (default 2 x --epochs)"},
			&cli.StringFlag{Name: "head-loss", Usage: "the recreated head's training loss: infonce (default), softnn or mse (the reference's --losshead)"},
			&cli.StringFlag{Name: "arch", Value: "resnet18"},
			&cli.StringFlag{Name: "stem", Value: "cifar"},
			&cli.IntFlag{Name: "size", Value: 32},
			&cli.IntFlag{Name: "epochs", Value: 100},
			&cli.IntFlag{Name: "batch-size", Usage: "default per loss (mse 64, infonce 256 ...)"},
			&cli.StringFlag{Name: "optimizer", Usage: "adam|sgd|lars (default per loss; momentum 0.9 for sgd and lars)"},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate (default: the loss's own with its optimiser, e.g. mse 1e-3 with adam; 0.05 for sgd/lars chosen over it; not with --base-lr)"},
			&cli.Float64Flag{Name: "base-lr", Usage: "learning rate per 256 images: lr = base-lr x batch-size / 256, e.g. 0.1 with --optimizer sgd or lars as the ImageNet/SimSiam pipeline"},
			&cli.Float64Flag{Name: "weight-decay", Value: 1e-4},
			&cli.Int64Flag{Name: "seed", Value: 1},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU()},
			&cli.BoolFlag{Name: "stolen-head", Usage: "train the stolen encoder through an MLP head of its own (the reference's --stolenhead); the copy serves the representation before it"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N: the stolen encoder's training and a local victim's ONNX Runtime"},
			&cli.StringFlag{Name: "precision", Value: "fp32", Usage: "the stolen encoder's training: " + precisionUsage},
			&cli.StringFlag{Name: "out", Value: "runs/stolen", Usage: "run directory (answer cache, checkpoints)"},
			&cli.BoolFlag{Name: "resume", Value: true, Usage: "continue from the run directory's checkpoint (answers are always reused)"},
		},
		Action: func(c *cli.Context) error {
			cfg := attack.Config{
				VictimName:   c.String("victim"),
				QueryDataset: c.String("query-dataset"), QueryDir: c.String("query-data"), QuerySplit: c.String("query-split"),
				QueryOffset: c.Int("query-offset"), NumQueries: c.Int("num-queries"), Holdout: c.Int("holdout"),
				Loss: c.String("loss"), Temperature: c.Float64("temperature"), Augment: c.Bool("augment"), RequeryEachEpoch: c.Bool("requery-each-epoch"),
				Head: c.String("head"), HeadEpochs: c.Int("head-epochs"), HeadLoss: c.String("head-loss"), StolenHead: c.Bool("stolen-head"),
				Arch: c.String("arch"), Stem: c.String("stem"), Size: c.Int("size"), Epochs: c.Int("epochs"), BatchSize: c.Int("batch-size"),
				Optimizer: c.String("optimizer"), LR: c.Float64("lr"), BaseLR: c.Float64("base-lr"), WeightDecay: c.Float64("weight-decay"),
				Seed: c.Int64("seed"), Threads: c.Int("threads"), Device: c.String("device"), Precision: c.String("precision"),
				Dir: c.String("out"), Resume: c.Bool("resume"),
			}
			if err := cfg.CheckLR(); err != nil { // before loading the victim
				return err
			}
			victim, err := openVictim(c)
			if err != nil {
				return err
			}
			defer victim.Close()
			cfg.Victim = victim
			res, err := attack.Run(c.Context, cfg, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Printf("stole %s with %s (%s, lr %g): %d queries (%d images x %d views), %d epochs, final loss %.4f, %.0f s; checkpoint %s\n",
				c.String("victim"), c.String("loss"), res.Config.Optimizer, res.Config.LR, res.QueriesSpent, res.Images, res.Views, res.Epochs, res.FinalLoss, res.Seconds, c.String("out"))
			return nil
		},
	}
}
