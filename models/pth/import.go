package pth

import (
	"fmt"
	"path/filepath"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// Options say how to read a checkpoint into an encoder. Zero values are guessed from it.
type Options struct {
	Arch   string // resnet18 | resnet34 | resnet50 | "" (from the layer names)
	Stem   string // cifar | imagenet | "" (from conv1's kernel size)
	Size   int    // input height = width (0 = 224)
	Prefix string // key prefix to strip ("" or "auto" = guess from Prefixes; "none" keeps names)
	// Normalization is the input normalisation the model expects, recorded in its metadata
	// ("" = imagenet, which SimSiam and torchvision models use).
	Normalization string
	Output        string // representation (default) or projection
}

// Import reads a PyTorch checkpoint of a torchvision-style ResNet (SimSiam's
// "module.encoder." and MoCo v1/v2's "module.encoder_q." layouts included) and builds its ONNX model. It returns the graph too and
// the prefix it stripped.
func Import(path string, o Options) (*onnxpb.Model, *models.Graph, string, error) {
	sd, err := Load(path)
	if err != nil {
		return nil, nil, "", err
	}
	switch o.Prefix {
	case "", "auto":
		o.Prefix = "auto"
	case "none":
		o.Prefix = ""
	}
	sd, prefix := StripPrefix(sd, o.Prefix)
	if o.Arch == "" {
		if o.Arch, err = guessArch(sd); err != nil {
			return nil, nil, "", fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	if o.Stem == "" {
		o.Stem = "imagenet"
		if t, ok := sd["conv1.weight"]; ok && len(t.Shape) == 4 && t.Shape[3] == 3 {
			o.Stem = "cifar"
		}
	}
	if o.Size == 0 {
		o.Size = 224
	}
	if o.Normalization == "" {
		o.Normalization = "imagenet"
	}
	head, outDim := Head(sd)
	spec := models.Spec{Arch: o.Arch, Stem: o.Stem, Head: head, OutDim: outDim, InputC: 3, InputHW: o.Size}
	g, err := models.Build(spec)
	if err != nil {
		return nil, nil, "", err
	}
	w, err := Match(g, sd)
	if err != nil {
		return nil, nil, "", fmt.Errorf("checkpoint %s (prefix %q stripped): %w", path, prefix, err)
	}
	m, err := export.Model(g, w, export.Options{Output: o.Output, Metadata: map[string]string{
		"normalization": o.Normalization, "source": "pytorch checkpoint " + filepath.Base(path), "train_loss": head}})
	if err != nil {
		return nil, nil, "", err
	}
	return m, g, prefix, nil
}

// guessArch tells ResNet-18, -34 and -50 apart by their layer names.
func guessArch(sd StateDict) (string, error) {
	_, bottleneck := sd["layer1.0.conv3.weight"]
	_, deep := sd["layer3.5.conv1.weight"]
	_, basic := sd["layer1.0.conv1.weight"]
	switch {
	case bottleneck && deep:
		return "resnet50", nil
	case deep:
		return "resnet34", nil
	case basic:
		return "resnet18", nil
	}
	return "", fmt.Errorf("no torchvision ResNet layer names (layer1.0.conv1.weight ...) after the prefix; pass --prefix and --arch")
}
