package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

func classifierCommand() *cli.Command {
	def := eval.DefaultConfig()
	return &cli.Command{
		Name:  "classifier",
		Usage: "turn an encoder into a classifier (encoder + linear probe, one ONNX file): the victim of the label-stealing baseline",
		Description: "Trains the linear probe of `ssl-onnx eval` on the encoder's features of the train split, folds the\n" +
			"standardisation into it and appends it to the encoder's graph; the new file outputs \"logits\" [batch, classes].\n" +
			"Serve it, then steal it with `ssl-onnx steal --loss labels` (argmax only) or `--loss logits` (scores).",
		Flags: append(probeFlags(def),
			&cli.StringFlag{Name: "model", Required: true, Usage: "ONNX encoder (or builtin:fmnist)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "ONNX classifier to write"},
		),
		Action: func(c *cli.Context) error {
			path, err := zoo.Resolve(c.String("model"))
			if err != nil {
				return err
			}
			probe, classes, err := eval.WriteClassifier(c.Context, probeConfig(c, def), path, c.String("out"), nil, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Printf("wrote %s: %s + linear classifier, %d classes, test top-1 %.4f (train %.4f)\n", c.String("out"), path, classes, probe.Top1, probe.TrainTop1)
			return nil
		},
	}
}
