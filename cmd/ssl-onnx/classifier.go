package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
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
			cfg := probeConfig(c, def)
			probe, classes, err := eval.TrainClassifier(c.Context, cfg, path, os.Stderr)
			if err != nil {
				return err
			}
			m, err := onnxpb.ReadFile(path)
			if err != nil {
				return err
			}
			w, b := probe.RawWeights()
			if err := export.AppendClassifier(m, w, b, classes, map[string]string{
				"classifier_dataset": cfg.Dataset, "classifier_test_top1": strconv.FormatFloat(probe.Top1, 'f', 4, 64),
			}); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if err := onnxpb.WriteFile(c.String("out"), m); err != nil {
				return err
			}
			fmt.Printf("wrote %s: %s + linear classifier, %d classes, test top-1 %.4f (train %.4f)\n", c.String("out"), path, classes, probe.Top1, probe.TrainTop1)
			return nil
		},
	}
}
