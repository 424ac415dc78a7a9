package main

import (
	"fmt"
	"math"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

func watermarkCommand() *cli.Command {
	return &cli.Command{
		Name:  "watermark",
		Usage: "check a suspect encoder for the owner's rotation watermark",
		Subcommands: []*cli.Command{
			{
				Name:  "verify",
				Usage: "run the secret head on a suspect encoder's representations of rotated held-out images and t-test its accuracy against 50%",
				Flags: append(append(datasetFlags(), runtimeFlags()...),
					&cli.StringFlag{Name: "secret", Required: true, Usage: "the owner's secret head (.ot, with its .ot.json sidecar)"},
					&cli.StringFlag{Name: "model", Required: true, Usage: "suspect ONNX encoder (representation output)"},
					&cli.StringFlag{Name: "split", Value: "test", Usage: "held-out split to draw images from"},
					&cli.IntFlag{Name: "n", Value: 1000, Usage: "number of rotated images"},
					&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the image choice and the rotation angles"},
					&cli.Float64Flag{Name: "alpha", Value: watermark.DefaultAlpha, Usage: "significance level of the one-sided t-test"},
					&cli.StringFlag{Name: "norm", Value: "auto", Usage: "suspect's input normalisation: auto (from model metadata), none, or a dataset name"},
					&cli.IntFlag{Name: "batch-size", Value: 128},
					&cli.StringFlag{Name: "out", Usage: "also write the result as JSON here"},
				),
				Action: func(c *cli.Context) error {
					if c.Args().Present() {
						return fmt.Errorf("unexpected arguments %v (every input is a flag)", c.Args().Slice())
					}
					if a := c.Float64("alpha"); !(a > 0 && a < 1) {
						return fmt.Errorf("--alpha %v: expected 0 < alpha < 1", a)
					}
					if c.Int("batch-size") < 1 {
						return fmt.Errorf("--batch-size %d: expected a positive number", c.Int("batch-size"))
					}
					ds, enc, err := openDataAndModel(c)
					if err != nil {
						return err
					}
					defer enc.Close()
					secret, err := zoo.ResolveSecret(c.String("secret"))
					if err != nil {
						return err
					}
					res, err := watermark.VerifyWith(c.Context, enc, secret, ds, c.Int("n"), c.Int64("seed"),
						watermark.VerifyConfig{Alpha: c.Float64("alpha"), Normalization: c.String("norm"), Batch: c.Int("batch-size")})
					if err != nil {
						return err
					}
					t := fmt.Sprintf("%.3f", res.TStat)
					if math.IsInf(res.TStat, 0) {
						t = fmt.Sprint(res.TStat)
					}
					fmt.Printf("model %s, secret %s: %s/%s, %d rotated images at %dx%d (seed %d)\n", c.String("model"), c.String("secret"),
						c.String("dataset"), c.String("split"), res.Images, res.ImageSize, res.ImageSize, res.Seed)
					if res.Note != "" {
						fmt.Printf("note: %s\n", res.Note)
					}
					fmt.Printf("rotation accuracy %.4f (%d/%d), t = %s, one-sided p = %.3g, alpha %g\n", res.Accuracy, res.Correct, res.Images, t, res.PValue, res.Alpha)
					fmt.Printf("verdict: %s\n", res.Verdict)
					if p := c.String("out"); p != "" {
						if err := res.WriteJSON(p); err != nil {
							return err
						}
						fmt.Printf("wrote %s\n", p)
					}
					return nil
				},
			},
			{
				Name:  "refit",
				Usage: "re-key the owner's secret for the served encoder (e.g. exported at another input size than it was trained at)",
				Flags: append(append(datasetFlags(), runtimeFlags()...),
					&cli.StringFlag{Name: "model", Required: true, Usage: "the owner's ONNX encoder as served"},
					&cli.StringFlag{Name: "split", Value: "train", Usage: "the owner's images (not the split verification draws from)"},
					&cli.IntFlag{Name: "n", Value: 5000, Usage: "number of rotated images"},
					&cli.IntFlag{Name: "epochs", Value: 30},
					&cli.Int64Flag{Name: "seed", Value: 1},
					&cli.StringFlag{Name: "out", Required: true, Usage: "new secret (.ot; its .ot.json sidecar is written beside it)"},
				),
				Action: func(c *cli.Context) error {
					ds, enc, err := openDataAndModel(c)
					if err != nil {
						return err
					}
					defer enc.Close()
					h, acc, err := watermark.Refit(c.Context, enc, ds, c.Int("n"), c.Int("epochs"), c.Int64("seed"))
					if err != nil {
						return err
					}
					defer h.Close()
					if err := h.Save(c.String("out")); err != nil {
						return err
					}
					fmt.Printf("wrote %s: head on %s's representations at %dx%d, rotation accuracy %.4f on its %d training images\n",
						c.String("out"), c.String("model"), h.Protocol.ImageSize, h.Protocol.ImageSize, acc, c.Int("n"))
					return nil
				},
			},
		},
	}
}

// openDataAndModel opens the images (--dataset, --data, --split) and the suspect or served
// encoder (--model) that both watermark subcommands read.
func openDataAndModel(c *cli.Context) (data.Dataset, infer.Encoder, error) {
	ds, err := data.Open(c.String("dataset"), c.String("data"), c.String("split"))
	if err != nil {
		return nil, nil, err
	}
	enc, err := openEncoder(c, c.String("model"), false)
	if err != nil {
		return nil, nil, err
	}
	return ds, enc, nil
}
