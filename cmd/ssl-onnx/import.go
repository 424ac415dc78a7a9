package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/models/pth"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "turn a PyTorch checkpoint of a torchvision ResNet (e.g. SimSiam's checkpoint_0099.pth.tar) into an ONNX encoder",
		Description: "Reads the state dict (top level, or under \"state_dict\"), strips the DataParallel / SimSiam\n" +
			"prefix (module.encoder.) or MoCo v1/v2's (module.encoder_q., dropping its momentum encoder\n" +
			"and queue by name), checks every tensor against the architecture strictly (a missing,\n" +
			"unused or mis-shaped tensor is an error) and exports the pooled representation (2048-d for\n" +
			"ResNet-50) with ImageNet input normalisation recorded in the metadata.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pth", Required: true, Usage: "checkpoint written by torch.save"},
			&cli.StringFlag{Name: "arch", Usage: "resnet18, resnet34 or resnet50 (default: from the layer names)"},
			&cli.StringFlag{Name: "stem", Usage: "imagenet or cifar (default: from conv1's kernel)"},
			&cli.IntFlag{Name: "size", Value: 224, Usage: "input size"},
			&cli.StringFlag{Name: "prefix", Value: "auto", Usage: "key prefix to strip: auto (module.encoder_q., module.encoder., module., encoder_q., encoder.), none, or a prefix"},
			&cli.StringFlag{Name: "norm", Aliases: []string{"normalization"}, Value: "imagenet", Usage: "input normalisation the model expects (metadata): imagenet, none, or a dataset name"},
			&cli.StringFlag{Name: "layer", Aliases: []string{"output"}, Value: "representation", Usage: "representation or projection"},
			&cli.StringFlag{Name: "out", Value: "victim.onnx", Usage: "ONNX file to write"},
		},
		Action: func(c *cli.Context) error {
			m, g, prefix, err := pth.Import(c.String("pth"), pth.Options{Arch: c.String("arch"), Stem: c.String("stem"),
				Size: c.Int("size"), Prefix: c.String("prefix"), Normalization: c.String("norm"), Output: c.String("layer")})
			if err != nil {
				return err
			}
			if err := onnxpb.WriteFile(c.String("out"), m); err != nil {
				return err
			}
			md := m.Metadata()
			fmt.Printf("imported %s (prefix %q, %d tensors): %s/%s head %s, input %s, output %s [batch, %s] -> %s\n",
				c.String("pth"), prefix, len(g.Params()), md["architecture"], md["stem"], md["head"], md["input_shape"],
				md["output"], md["output_dim"], c.String("out"))
			return nil
		},
	}
}
