package train

import (
	"fmt"
	"strconv"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// Export builds the ONNX model of the checkpoint in dir, with output "" meaning the
// checkpoint's default (see Checkpoint.DefaultOutput) and metadata saying what it was trained
// on. size is the exported input size (0 = the training size): the encoders are fully
// convolutional with a global average pool, and one trained on random resized crops often
// represents whole images better at a larger size than its crops had (the "FixRes" effect).
// It returns the model's graph and the output used too (for a Triton repository).
func Export(dir, output string, size int) (*onnxpb.Model, *models.Graph, string, error) {
	ck, sd, err := LoadWeights(dir)
	if err != nil {
		return nil, nil, "", err
	}
	if output == "" {
		output = ck.DefaultOutput()
	}
	g, err := models.Build(ck.Spec)
	if err != nil {
		return nil, nil, "", err
	}
	if size != 0 && size != ck.Spec.InputHW {
		spec := ck.Spec
		spec.InputHW = size
		if g, err = models.Build(spec); err != nil {
			return nil, nil, "", fmt.Errorf("export size %d: %w", size, err)
		}
	}
	om, err := export.Model(g, sd, export.Options{Output: output, Metadata: map[string]string{
		"train_dataset": ck.Config.Dataset, "train_loss": ck.Config.Loss, "epochs": strconv.Itoa(ck.Epoch),
		"train_size": strconv.Itoa(ck.Spec.InputHW)}})
	return om, g, output, err
}

// LoadWeights reads the checkpoint in dir and its weights, by torchvision name, in a CPU
// session of its own.
func LoadWeights(dir string) (*Checkpoint, map[string][]float32, error) {
	sess, err := torchnet.Open(torchnet.Options{Threads: 1})
	if err != nil {
		return nil, nil, err
	}
	defer sess.Close()
	ck, net, err := LoadModel(sess, dir)
	if err != nil {
		return nil, nil, err
	}
	sd, err := net.StateDict()
	return ck, sd, err
}
