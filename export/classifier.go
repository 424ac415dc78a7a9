package export

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// ClassifierOutput is the output name (and "output" metadata) of an encoder turned into a
// classifier by AppendClassifier.
const ClassifierOutput = "logits"

// AppendClassifier turns an exported encoder into a classifier, the victim of the
// label-stealing baseline: a linear layer on the encoder's single output, scores = x W^T + b
// with W (classes x D, row-major) and b (classes), written as MatMul + Add, becomes the
// model's only output "logits" [batch, classes]. Feature standardisation belongs in W and b
// already. meta is added to the metadata, which also records the new output.
func AppendClassifier(m *onnxpb.Model, w, b []float32, classes int, meta map[string]string) error {
	g := m.Graph
	if g == nil || len(g.Outputs) != 1 {
		return fmt.Errorf("classifier: expected an encoder with exactly one output")
	}
	out := g.Outputs[0]
	if len(out.Shape) != 2 || out.Shape[1].Value <= 0 {
		return fmt.Errorf("classifier: encoder output %q has shape %v, expected [batch, D]", out.Name, out.Shape)
	}
	d := int(out.Shape[1].Value)
	if classes < 2 || len(w) != classes*d || len(b) != classes {
		return fmt.Errorf("classifier: %d weights and %d biases for %d classes of %d features, expected %d and %d", len(w), len(b), classes, d, classes*d, classes)
	}
	wt := make([]float32, len(w))
	for c := 0; c < classes; c++ {
		for k := 0; k < d; k++ {
			wt[k*classes+c] = w[c*d+k]
		}
	}
	g.Initializers = append(g.Initializers,
		onnxpb.NewFloatTensor("classifier.weight_t", []int64{int64(d), int64(classes)}, wt),
		onnxpb.NewFloatTensor("classifier.bias", []int64{int64(classes)}, b))
	g.Nodes = append(g.Nodes,
		&onnxpb.Node{Name: "classifier", OpType: "MatMul", Inputs: []string{out.Name, "classifier.weight_t"}, Outputs: []string{"classifier_mm"}},
		&onnxpb.Node{Name: "classifier_bias", OpType: "Add", Inputs: []string{"classifier_mm", "classifier.bias"}, Outputs: []string{ClassifierOutput}})
	g.Outputs = []*onnxpb.ValueInfo{onnxpb.TensorValueInfo(ClassifierOutput, onnxpb.DataTypeFloat, []onnxpb.Dim{out.Shape[0], {Value: int64(classes)}})}

	md := m.Metadata()
	md["features"] = md["output"]
	md["output"] = ClassifierOutput
	md["output_dim"] = strconv.Itoa(classes)
	md["classes"] = strconv.Itoa(classes)
	for k, v := range meta {
		md[k] = v
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m.MetadataProps = m.MetadataProps[:0]
	for _, k := range keys {
		m.MetadataProps = append(m.MetadataProps, onnxpb.StringStringEntry{Key: k, Value: md[k]})
	}
	return nil
}
