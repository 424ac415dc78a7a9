package export

import (
	"fmt"

	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// ActivationKey is the metadata key that records an activation appended to the output.
const ActivationKey = "output_activation"

// AppendSoftmax makes m answer softmax(output) over its feature axis instead of its output:
// the seed's entropy victim (ResNetSimCLR(entropy=True) returns F.softmax(backbone(x), dim=1)).
// The graph's output keeps its name, shape and metadata; "output_activation" says softmax.
func AppendSoftmax(m *onnxpb.Model) error {
	g := m.Graph
	if g == nil || len(g.Outputs) != 1 || len(g.Nodes) == 0 {
		return fmt.Errorf("softmax: expected a graph with one output")
	}
	out := g.Outputs[0].Name
	for _, e := range m.MetadataProps {
		if e.Key == ActivationKey {
			return fmt.Errorf("softmax: the output already has the activation %q", e.Value)
		}
	}
	producer := -1
	for i, n := range g.Nodes {
		for j, o := range n.Outputs {
			if o == out {
				producer = i
				g.Nodes[i].Outputs[j] = out + "_scores"
			}
		}
	}
	if producer < 0 {
		return fmt.Errorf("softmax: no node produces the output %q", out)
	}
	g.Nodes = append(g.Nodes, &onnxpb.Node{Name: "output_softmax", OpType: "Softmax",
		Inputs: []string{out + "_scores"}, Outputs: []string{out}, Attributes: []*onnxpb.Attribute{onnxpb.AttrInt("axis", 1)}})
	m.MetadataProps = append(m.MetadataProps, onnxpb.StringStringEntry{Key: ActivationKey, Value: "softmax"})
	return nil
}
