package train

import (
	"strconv"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// Export builds the ONNX model of the checkpoint in dir, with output "" meaning the
// checkpoint's default (see Checkpoint.DefaultOutput) and metadata saying what it was trained
// on. It returns the model's graph and the output used too (for a Triton repository).
func Export(dir, output string) (*onnxpb.Model, *models.Graph, string, error) {
	ck, m, err := LoadModel(dir)
	if err != nil {
		return nil, nil, "", err
	}
	defer m.Close()
	sd, err := m.StateDict()
	if err != nil {
		return nil, nil, "", err
	}
	if output == "" {
		output = ck.DefaultOutput()
	}
	om, err := export.Model(m.Graph, sd, export.Options{Output: output, Metadata: map[string]string{
		"train_dataset": ck.Config.Dataset, "train_loss": ck.Config.Loss, "epochs": strconv.Itoa(ck.Epoch)}})
	return om, m.Graph, output, err
}
