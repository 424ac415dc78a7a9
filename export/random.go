package export

import (
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// RandomModel writes a randomly initialised encoder of the given spec (the representation
// output) to path: the random-init baseline, and a real model for tests and benchmarks. The
// weights are models.Graph.InitWeights(seed), drawn in pure Go: no libtorch is involved.
func RandomModel(path string, spec models.Spec, seed int64) error {
	return RandomModelOutput(path, spec, seed, models.OutputRepresentation)
}

// RandomModelOutput is RandomModel with the output to export (representation or projection).
func RandomModelOutput(path string, spec models.Spec, seed int64, output string) error {
	om, _, err := Random(spec, seed, output)
	if err != nil {
		return err
	}
	return onnxpb.WriteFile(path, om)
}

// Random is the ONNX model of a randomly initialised encoder and its graph.
func Random(spec models.Spec, seed int64, output string) (*onnxpb.Model, *models.Graph, error) {
	g, err := models.Build(spec)
	if err != nil {
		return nil, nil, err
	}
	om, err := Model(g, g.InitWeights(seed), Options{Output: output, Metadata: map[string]string{"train_dataset": "none (random init)", "epochs": "0"}})
	return om, g, err
}
