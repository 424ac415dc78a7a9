package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/train"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write an ONNX file (opset 17, dynamic batch, metadata) from a training checkpoint",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Value: "runs/victim", Usage: "run directory (or its checkpoint.json)"},
			&cli.StringFlag{Name: "layer", Aliases: []string{"output"}, Usage: "representation (pooled feature) or projection (after the head); default: representation, or projection for a stolen encoder with a linear head"},
			&cli.BoolFlag{Name: "softmax", Usage: "answer softmax(output) over the features: the seed's entropy victim (ResNetSimCLR entropy=True; usually with --layer projection)"},
			&cli.StringFlag{Name: "out", Value: "", Usage: "ONNX file to write (default: <checkpoint>/model.onnx)"},
			&cli.IntFlag{Name: "size", Usage: "input size of the exported model (default: the training size; a larger one often suits crop-trained encoders)"},
			&cli.StringFlag{Name: "triton", Usage: "also write a Triton model repository in this directory"},
			&cli.StringFlag{Name: "name", Value: "encoder", Usage: "model name in the Triton repository"},
			&cli.BoolFlag{Name: "random-init", Usage: "export a randomly initialised encoder (--arch, --stem, --size, --seed) instead of a checkpoint: the random-init baseline, or a model to benchmark"},
			&cli.StringFlag{Name: "arch", Value: "resnet18", Usage: "with --random-init: resnet18, resnet34, resnet50"},
			&cli.StringFlag{Name: "stem", Value: "imagenet", Usage: "with --random-init: cifar, cifar-pool or imagenet"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "with --random-init: seed of the weights"},
		},
		Action: func(c *cli.Context) error {
			var om *onnxpb.Model
			var graph *models.Graph
			var output string
			var err error
			if c.Bool("random-init") {
				om, graph, output, err = randomInit(c)
			} else {
				om, graph, output, err = train.Export(c.String("checkpoint"), c.String("layer"), c.Int("size"))
			}
			if err != nil {
				return err
			}
			if c.Bool("softmax") {
				if err := export.AppendSoftmax(om); err != nil {
					return err
				}
			}
			out := c.String("out")
			if out == "" && c.Bool("random-init") {
				return fmt.Errorf("--random-init needs --out")
			}
			if out == "" {
				dir := c.String("checkpoint")
				if filepath.Ext(dir) == ".json" {
					dir = filepath.Dir(dir)
				}
				out = filepath.Join(dir, "model.onnx")
			}
			if err := onnxpb.WriteFile(out, om); err != nil {
				return err
			}
			md := om.Metadata()
			if a := md[export.ActivationKey]; a != "" {
				md["output"] = a + "(" + md["output"] + ")"
			}
			fmt.Printf("wrote %s: %s/%s, input %s, output %s [batch, %s], %d nodes, %d initializers\n",
				out, md["architecture"], md["stem"], md["input_shape"], md["output"], md["output_dim"],
				len(om.Graph.Nodes), len(om.Graph.Initializers))
			if dir := c.String("triton"); dir != "" {
				if err := export.WriteTriton(dir, c.String("name"), om, graph, output, 256); err != nil {
					return err
				}
				fmt.Printf("wrote Triton repository %s/%s\n", dir, c.String("name"))
			}
			return nil
		},
	}
}

// randomInit builds the randomly initialised encoder export --random-init asks for.
func randomInit(c *cli.Context) (*onnxpb.Model, *models.Graph, string, error) {
	size := c.Int("size")
	if size <= 0 {
		return nil, nil, "", fmt.Errorf("--random-init needs --size (the input height and width)")
	}
	output := c.String("layer")
	if output == "" {
		output = models.OutputRepresentation
	}
	spec := models.Spec{Arch: c.String("arch"), Stem: c.String("stem"), Head: "simclr", OutDim: 128, InputC: 3, InputHW: size}
	om, g, err := export.Random(spec, c.Int64("seed"), output)
	return om, g, output, err
}
