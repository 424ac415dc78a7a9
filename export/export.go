// Package export turns a trained encoder (its models.Graph and weights) into an ONNX file:
// opset 17, a dynamic batch dimension, weights as raw-data initialisers, and metadata_props
// that say what the model is and what it outputs, so any runtime (ONNX Runtime, onnx-go,
// PyTorch, Triton) can load it and a reader can tell a representation from a projection.
package export

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// Opset and IR version of every exported file.
const (
	Opset     = 17
	IRVersion = 8
	InputName = "input"
	BatchDim  = "batch"
)

// Options say what to export and what to record about it.
type Options struct {
	// Output is models.OutputRepresentation (pooled feature h, the default) or
	// models.OutputProjection (z = head(h)).
	Output string
	// Metadata is recorded in metadata_props next to the fields derived from the graph
	// (e.g. "train_dataset", "epochs", "normalization").
	Metadata map[string]string
}

// Model builds the ONNX model of g with the weights in sd (torchvision names -> values).
func Model(g *models.Graph, sd map[string][]float32, opt Options) (*onnxpb.Model, error) {
	if opt.Output == "" {
		opt.Output = models.OutputRepresentation
	}
	out := g.Representation
	switch opt.Output {
	case models.OutputRepresentation:
	case models.OutputProjection:
		if g.Projection < 0 {
			return nil, fmt.Errorf("output %q: the %s model has no projection head", opt.Output, g.Spec.Arch)
		}
		out = g.Projection
	default:
		return nil, fmt.Errorf("output %q: expected %q or %q", opt.Output, models.OutputRepresentation, models.OutputProjection)
	}
	b := &builder{g: g, sd: sd, graph: &onnxpb.Graph{Name: g.Spec.Arch + "_" + g.Spec.Stem}}
	names := make([]string, out+1)
	names[0] = InputName
	for i := 1; i <= out; i++ {
		name, err := b.node(i, names)
		if err != nil {
			return nil, err
		}
		names[i] = name
	}
	// The graph's output gets a stable name: the one the metadata announces.
	last := b.graph.Nodes[len(b.graph.Nodes)-1]
	last.Outputs[0] = opt.Output
	s := g.Spec
	dim := outputDim(g, out)
	b.graph.Inputs = []*onnxpb.ValueInfo{onnxpb.TensorValueInfo(InputName, onnxpb.DataTypeFloat,
		[]onnxpb.Dim{{Param: BatchDim}, {Value: int64(s.InputC)}, {Value: int64(s.InputHW)}, {Value: int64(s.InputHW)}})}
	b.graph.Outputs = []*onnxpb.ValueInfo{onnxpb.TensorValueInfo(opt.Output, onnxpb.DataTypeFloat,
		[]onnxpb.Dim{{Param: BatchDim}, {Value: int64(dim)}})}

	meta := map[string]string{
		"architecture":       s.Arch,
		"stem":               s.Stem,
		"head":               s.Head,
		"input_shape":        fmt.Sprintf("%dx%dx%d", s.InputC, s.InputHW, s.InputHW),
		"input_layout":       "NCHW",
		"input_range":        "[0,1]",
		"normalization":      "none",
		"output":             opt.Output,
		"output_dim":         strconv.Itoa(dim),
		"representation_dim": strconv.Itoa(models.RepresentationDim(s.Arch)),
	}
	for k, v := range opt.Metadata {
		meta[k] = v
	}
	m := &onnxpb.Model{
		IRVersion:       IRVersion,
		OpsetImports:    []onnxpb.OpsetID{{Domain: "", Version: Opset}},
		ProducerName:    "ssl-onnx",
		ProducerVersion: "0.1",
		Graph:           b.graph,
	}
	for _, k := range sortedKeys(meta) {
		m.MetadataProps = append(m.MetadataProps, onnxpb.StringStringEntry{Key: k, Value: meta[k]})
	}
	return m, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// outputDim is the feature size produced by node i (a pooled feature or a linear/BN layer).
func outputDim(g *models.Graph, i int) int {
	for ; i > 0; i = g.Nodes[i].In[0] {
		n := g.Nodes[i]
		switch n.Op {
		case models.Linear:
			return n.OutF
		case models.BatchNorm:
			return n.Features
		case models.Conv:
			return n.OutC
		}
	}
	return g.Spec.InputC
}

type builder struct {
	g     *models.Graph
	sd    map[string][]float32
	graph *onnxpb.Graph
}

// weight adds the initialiser name (reshaped to shape) from the state dict.
func (b *builder) weight(name string, shape []int64) (string, error) {
	v, ok := b.sd[name]
	if !ok {
		return "", fmt.Errorf("weights: %s is missing", name)
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if int64(len(v)) != n {
		return "", fmt.Errorf("weights: %s has %d values, expected %d for shape %v", name, len(v), n, shape)
	}
	b.graph.Initializers = append(b.graph.Initializers, onnxpb.NewFloatTensor(name, shape, v))
	return name, nil
}

func (b *builder) constant(name string, n int, v float32) string {
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = v
	}
	b.graph.Initializers = append(b.graph.Initializers, onnxpb.NewFloatTensor(name, []int64{int64(n)}, vals))
	return name
}

func (b *builder) emit(op, name string, in []string, attrs ...*onnxpb.Attribute) string {
	out := name + "_out"
	b.graph.Nodes = append(b.graph.Nodes, &onnxpb.Node{Name: name, OpType: op, Inputs: in, Outputs: []string{out}, Attributes: attrs})
	return out
}

// node emits the ONNX node(s) of graph node i and returns the name of its output.
func (b *builder) node(i int, names []string) (string, error) {
	n := b.g.Nodes[i]
	in := names[n.In[0]]
	id := n.Name
	if id == "" {
		id = fmt.Sprintf("%s_%d", strings.ToLower(n.Op.String()), i)
	}
	switch n.Op {
	case models.Conv:
		w, err := b.weight(n.Name+".weight", []int64{int64(n.OutC), int64(n.InC), int64(n.Kernel), int64(n.Kernel)})
		if err != nil {
			return "", err
		}
		ins := []string{in, w}
		if n.Bias {
			bias, err := b.weight(n.Name+".bias", []int64{int64(n.OutC)})
			if err != nil {
				return "", err
			}
			ins = append(ins, bias)
		}
		k, s, p := int64(n.Kernel), int64(n.Stride), int64(n.Pad)
		return b.emit("Conv", id, ins, onnxpb.AttrInts("kernel_shape", k, k), onnxpb.AttrInts("strides", s, s),
			onnxpb.AttrInts("pads", p, p, p, p), onnxpb.AttrInts("dilations", 1, 1), onnxpb.AttrInt("group", 1)), nil
	case models.BatchNorm:
		f := []int64{int64(n.Features)}
		var scale, bias string
		var err error
		if n.Affine {
			if scale, err = b.weight(n.Name+".weight", f); err != nil {
				return "", err
			}
			if bias, err = b.weight(n.Name+".bias", f); err != nil {
				return "", err
			}
		} else {
			scale = b.constant(n.Name+".unit_scale", n.Features, 1)
			bias = b.constant(n.Name+".zero_bias", n.Features, 0)
		}
		mean, err := b.weight(n.Name+".running_mean", f)
		if err != nil {
			return "", err
		}
		vr, err := b.weight(n.Name+".running_var", f)
		if err != nil {
			return "", err
		}
		return b.emit("BatchNormalization", id, []string{in, scale, bias, mean, vr},
			onnxpb.AttrFloat("epsilon", models.BNEpsilon), onnxpb.AttrFloat("momentum", 1-models.BNMomentum)), nil
	case models.ReLU:
		return b.emit("Relu", id, []string{in}), nil
	case models.MaxPool:
		k, s, p := int64(n.Kernel), int64(n.Stride), int64(n.Pad)
		return b.emit("MaxPool", id, []string{in}, onnxpb.AttrInts("kernel_shape", k, k), onnxpb.AttrInts("strides", s, s),
			onnxpb.AttrInts("pads", p, p, p, p)), nil
	case models.Add:
		return b.emit("Add", id, []string{in, names[n.In[1]]}), nil
	case models.GlobalAvgPool:
		pooled := b.emit("GlobalAveragePool", id, []string{in})
		return b.emit("Flatten", id+"_flatten", []string{pooled}, onnxpb.AttrInt("axis", 1)), nil
	case models.Linear:
		// MatMul + Add rather than Gemm: onnx-go's Gemm corrupts its bias at batch 1.
		w, ok := b.sd[n.Name+".weight"]
		if !ok {
			return "", fmt.Errorf("weights: %s.weight is missing", n.Name)
		}
		if len(w) != n.InF*n.OutF {
			return "", fmt.Errorf("weights: %s.weight has %d values, expected %d", n.Name, len(w), n.InF*n.OutF)
		}
		wt := make([]float32, len(w))
		for o := 0; o < n.OutF; o++ {
			for k := 0; k < n.InF; k++ {
				wt[k*n.OutF+o] = w[o*n.InF+k]
			}
		}
		wname := n.Name + ".weight_t"
		b.graph.Initializers = append(b.graph.Initializers, onnxpb.NewFloatTensor(wname, []int64{int64(n.InF), int64(n.OutF)}, wt))
		y := b.emit("MatMul", id, []string{in, wname})
		if !n.Bias {
			return y, nil
		}
		bias, err := b.weight(n.Name+".bias", []int64{int64(n.OutF)})
		if err != nil {
			return "", err
		}
		return b.emit("Add", id+"_bias", []string{y, bias}), nil
	}
	return "", fmt.Errorf("node %d: op %v cannot be exported", i, n.Op)
}

// TritonConfig is a Triton Inference Server config.pbtxt for an exported model, with dynamic
// batching enabled.
func TritonConfig(name string, g *models.Graph, output string, dim, maxBatch int) string {
	s := g.Spec
	return fmt.Sprintf(`name: %q
backend: "onnxruntime"
max_batch_size: %d
input [
  {
    name: %q
    data_type: TYPE_FP32
    dims: [ %d, %d, %d ]
  }
]
output [
  {
    name: %q
    data_type: TYPE_FP32
    dims: [ %d ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 2000
}
instance_group [ { kind: KIND_AUTO } ]
`, name, maxBatch, InputName, s.InputC, s.InputHW, s.InputHW, output, dim)
}

// WriteTriton writes a Triton model repository: dir/name/config.pbtxt and dir/name/1/model.onnx.
func WriteTriton(dir, name string, m *onnxpb.Model, g *models.Graph, output string, maxBatch int) error {
	if err := os.MkdirAll(filepath.Join(dir, name, "1"), 0o755); err != nil {
		return fmt.Errorf("triton repository %s: %w", dir, err)
	}
	if err := onnxpb.WriteFile(filepath.Join(dir, name, "1", "model.onnx"), m); err != nil {
		return err
	}
	dim, _ := strconv.Atoi(m.Metadata()["output_dim"])
	cfg := TritonConfig(name, g, output, dim, maxBatch)
	return os.WriteFile(filepath.Join(dir, name, "config.pbtxt"), []byte(cfg), 0o644)
}
