package onnxpb

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// runPython runs script with args and decodes its stdout as JSON into out.
func runPython(t *testing.T, out any, script string, args ...string) {
	t.Helper()
	if err := pyref.Check(); err != nil {
		t.Fatalf("%s is required for the ONNX cross-checks (installed by scripts/setup.sh): %v", pyref.Python, err)
	}
	cmd := pyref.Command(append([]string{"-c", script}, args...)...)
	var stderr []byte
	stdout, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		t.Fatalf("python failed: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("python output is not JSON: %v\n%s", err, stdout)
	}
}

// pyTensor and pyValue mirror the JSON the scripts below print.
type pyTensor struct {
	Name     string    `json:"name"`
	Dims     []int64   `json:"dims"`
	DataType DataType  `json:"data_type"`
	Values   []float64 `json:"values"` // the first few values, flattened
}

type pyValue struct {
	Name string `json:"name"`
	Elem int32  `json:"elem"`
	Dims []any  `json:"dims"` // int for dim_value, string for dim_param
}

type pyNode struct {
	OpType string   `json:"op_type"`
	Inputs []string `json:"inputs"`
}

// pyModelSummary is printed for a loaded model by summarize (below).
const pySummarize = `
import json, onnx
from onnx import numpy_helper

def dims(t):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.type.tensor_type.shape.dim]

def summarize(m):
    g = m.graph
    return {
        "ir_version": m.ir_version,
        "opsets": {o.domain: o.version for o in m.opset_import},
        "producer": m.producer_name,
        "metadata": {p.key: p.value for p in m.metadata_props},
        "nodes": [{"op_type": n.op_type, "inputs": list(n.input)} for n in g.node],
        "inputs": [{"name": v.name, "elem": v.type.tensor_type.elem_type, "dims": dims(v)} for v in g.input],
        "outputs": [{"name": v.name, "elem": v.type.tensor_type.elem_type, "dims": dims(v)} for v in g.output],
        "value_info": [{"name": v.name, "elem": v.type.tensor_type.elem_type, "dims": dims(v)} for v in g.value_info],
        "initializers": [{"name": t.name, "dims": list(t.dims), "data_type": t.data_type,
                          "values": [float(x) for x in numpy_helper.to_array(t).flatten()[:6]]} for t in g.initializer],
    }
`

type pySummary struct {
	IRVersion    int64             `json:"ir_version"`
	Opsets       map[string]int64  `json:"opsets"`
	Producer     string            `json:"producer"`
	Metadata     map[string]string `json:"metadata"`
	Nodes        []pyNode          `json:"nodes"`
	Inputs       []pyValue         `json:"inputs"`
	Outputs      []pyValue         `json:"outputs"`
	ValueInfo    []pyValue         `json:"value_info"`
	Initializers []pyTensor        `json:"initializers"`
}

// smallModel is an embedding head: Conv + Relu + GlobalAveragePool +
// Flatten + MatMul + Add with a dynamic batch dimension.
func smallModel() *Model {
	convW := make([]float32, 4*3*3*3)
	for i := range convW {
		convW[i] = float32(math.Sin(float64(i))) / 4
	}
	return &Model{
		IRVersion:       8,
		OpsetImports:    []OpsetID{{Version: 17}},
		ProducerName:    "ssl-onnx",
		ProducerVersion: "test",
		MetadataProps:   []StringStringEntry{{"victim", "tiny"}, {"embedding_dim", "2"}},
		Graph: &Graph{
			Name: "encoder",
			Nodes: []*Node{
				{Name: "conv", OpType: "Conv", Inputs: []string{"input", "conv.w", "conv.b"}, Outputs: []string{"c"},
					Attributes: []*Attribute{AttrInts("kernel_shape", 3, 3), AttrInts("pads", 1, 1, 1, 1), AttrInts("strides", 1, 1), AttrInt("group", 1)}},
				{Name: "relu", OpType: "Relu", Inputs: []string{"c"}, Outputs: []string{"r"}},
				{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{"r"}, Outputs: []string{"p"}},
				{Name: "flat", OpType: "Flatten", Inputs: []string{"p"}, Outputs: []string{"f"}, Attributes: []*Attribute{AttrInt("axis", 1)}},
				{Name: "proj", OpType: "MatMul", Inputs: []string{"f", "fc.w"}, Outputs: []string{"m"}},
				{Name: "bias", OpType: "Add", Inputs: []string{"m", "fc.b"}, Outputs: []string{"embedding"}},
			},
			Initializers: []*Tensor{
				NewFloatTensor("conv.w", []int64{4, 3, 3, 3}, convW),
				NewFloatTensor("conv.b", []int64{4}, []float32{0.1, -0.2, 0.3, -0.4}),
				NewFloatTensor("fc.w", []int64{4, 2}, []float32{1, 0, 0, 1, -1, 0, 0.5, 0.5}),
				NewFloatTensor("fc.b", []int64{2}, []float32{0.01, -0.01}),
			},
			Inputs:  []*ValueInfo{TensorValueInfo("input", DataTypeFloat, []Dim{{Param: "batch"}, {Value: 3}, {Value: 8}, {Value: 8}})},
			Outputs: []*ValueInfo{TensorValueInfo("embedding", DataTypeFloat, []Dim{{Param: "batch"}, {Value: 2}})},
		},
	}
}

// TestOnnxCheckerAcceptsWrittenModel writes a model with this package and
// has the onnx Python package validate it (full_check runs strict shape
// inference) and read back its metadata, shapes and weights. The script then
// rewrites the model with onnx.helper, storing weights as float_data and
// dims unpacked, and this package must read that file back.
func TestOnnxCheckerAcceptsWrittenModel(t *testing.T) {
	dir := t.TempDir()
	path, pyPath := filepath.Join(dir, "small.onnx"), filepath.Join(dir, "py.onnx")
	want := smallModel()
	if err := WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Summary  pySummary `json:"summary"`
		Inferred pySummary `json:"inferred"`
	}
	runPython(t, &got, pySummarize+`
import sys
from onnx import helper, shape_inference
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
inferred = shape_inference.infer_shapes(m, strict_mode=True)
# Rewrite with weights as float_data (not raw_data).
for i, t in enumerate(m.graph.initializer):
    arr = numpy_helper.to_array(t)
    m.graph.initializer[i].CopyFrom(helper.make_tensor(t.name, t.data_type, t.dims, arr.flatten().tolist(), raw=False))
onnx.checker.check_model(m, full_check=True)
onnx.save(m, sys.argv[2])
print(json.dumps({"summary": summarize(m), "inferred": summarize(inferred)}))
`, path, pyPath)

	s := got.Summary
	if s.IRVersion != 8 || s.Opsets[""] != 17 || s.Producer != "ssl-onnx" {
		t.Errorf("python sees ir_version %d opsets %v producer %q", s.IRVersion, s.Opsets, s.Producer)
	}
	if !reflect.DeepEqual(s.Metadata, want.Metadata()) {
		t.Errorf("python sees metadata %v, want %v", s.Metadata, want.Metadata())
	}
	if len(s.Nodes) != len(want.Graph.Nodes) {
		t.Fatalf("python sees %d nodes, want %d", len(s.Nodes), len(want.Graph.Nodes))
	}
	for i, n := range want.Graph.Nodes {
		if s.Nodes[i].OpType != n.OpType || !slices.Equal(s.Nodes[i].Inputs, n.Inputs) {
			t.Errorf("node %d: python sees %+v, want %s%v", i, s.Nodes[i], n.OpType, n.Inputs)
		}
	}
	if in := s.Inputs[0]; in.Name != "input" || !reflect.DeepEqual(in.Dims, []any{"batch", 3.0, 8.0, 8.0}) {
		t.Errorf("python sees input %+v", in)
	}
	inferred := map[string][]any{}
	for _, v := range got.Inferred.ValueInfo {
		inferred[v.Name] = v.Dims
	}
	if d := inferred["f"]; !reflect.DeepEqual(d, []any{"batch", 4.0}) {
		t.Errorf("shape inference gives Flatten output dims %v, want [batch 4]", d)
	}
	for i, w := range want.Graph.Initializers {
		vals, err := w.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		p := s.Initializers[i]
		if p.Name != w.Name || !reflect.DeepEqual(p.Dims, w.Dims) || p.DataType != DataTypeFloat {
			t.Errorf("initializer %d: python sees %s %v type %d", i, p.Name, p.Dims, p.DataType)
		}
		for j, v := range p.Values {
			if float32(v) != vals[j] {
				t.Errorf("initializer %s[%d]: python %v, Go %v", w.Name, j, v, vals[j])
			}
		}
	}

	// The helper-written file: float_data instead of raw_data.
	py, err := ReadFile(pyPath)
	if err != nil {
		t.Fatalf("reading the file written by onnx.helper: %v", err)
	}
	for i, w := range want.Graph.Initializers {
		pw := py.Graph.Initializers[i]
		if len(pw.RawData) != 0 || len(pw.FloatData) == 0 {
			t.Errorf("initializer %s from python: raw %d bytes, float_data %d values; want float_data only", pw.Name, len(pw.RawData), len(pw.FloatData))
		}
		a, errA := w.Float32s()
		b, errB := pw.Float32s()
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) || !reflect.DeepEqual(pw.Dims, w.Dims) {
			t.Errorf("initializer %s from python differs: %v %v", pw.Name, errA, errB)
		}
	}
	if !reflect.DeepEqual(py.Graph.Nodes, want.Graph.Nodes) || !reflect.DeepEqual(py.Graph.Inputs, want.Graph.Inputs) ||
		!reflect.DeepEqual(py.Graph.Outputs, want.Graph.Outputs) || !reflect.DeepEqual(py.Metadata(), want.Metadata()) {
		t.Errorf("graph read back from the python-written file differs from the original")
	}
}

// pyExport exports a small conv net with torch.onnx.export (batch norm,
// max pooling, a shape-dependent reshape, a linear layer; dynamic batch
// axis) and prints a summary of the file.
const pyExport = pySummarize + `
import sys, torch
torch.manual_seed(0)

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        x = x.reshape(x.shape[0], -1)
        return self.fc(x)

net = Net()
with torch.no_grad():
    net.bn.running_mean.uniform_(-0.5, 0.5)
    net.bn.running_var.uniform_(0.5, 2.0)
net.eval()
torch.onnx.export(net, torch.randn(2, 3, 8, 8), sys.argv[1], opset_version=17,
                  input_names=["input"], output_names=["embedding"],
                  dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
print(json.dumps(summarize(onnx.load(sys.argv[1]))))
`

// pyCompare checks the re-encoded file and compares it with the original.
const pyCompare = `
import json, sys, onnx
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
onnx.checker.check_model(b, full_check=True)
print(json.dumps({
    "printable_equal": onnx.helper.printable_graph(a.graph) == onnx.helper.printable_graph(b.graph),
    "graph_equal": a.graph == b.graph,
    "model_equal": a == b,
}))
`

// TestTorchExportedModel decodes a model exported by PyTorch, checks what it
// decodes against what the onnx package reports, then re-encodes it and has
// onnx validate the result and compare it with the original.
func TestTorchExportedModel(t *testing.T) {
	dir := t.TempDir()
	path, out := filepath.Join(dir, "torch.onnx"), filepath.Join(dir, "again.onnx")
	var want pySummary
	runPython(t, &want, pyExport, path)

	m, err := ReadFile(path)
	if err != nil {
		t.Fatalf("decoding the torch export: %v", err)
	}
	if m.IRVersion != want.IRVersion || m.ProducerName != "pytorch" || len(m.OpsetImports) == 0 {
		t.Errorf("header: ir %d producer %q opsets %v", m.IRVersion, m.ProducerName, m.OpsetImports)
	}
	g := m.Graph
	if len(g.Nodes) != len(want.Nodes) {
		t.Fatalf("%d nodes, python sees %d", len(g.Nodes), len(want.Nodes))
	}
	ops := map[string]bool{}
	for i, n := range g.Nodes {
		ops[n.OpType] = true
		if n.OpType != want.Nodes[i].OpType || !slices.Equal(n.Inputs, want.Nodes[i].Inputs) {
			t.Errorf("node %d: %s%v, python sees %+v", i, n.OpType, n.Inputs, want.Nodes[i])
		}
	}
	for _, op := range []string{"Conv", "Relu", "MaxPool", "Reshape", "Gemm"} {
		if !ops[op] {
			t.Errorf("no %s node among %v", op, ops)
		}
	}
	valueEq := func(what string, got *ValueInfo, w pyValue) {
		t.Helper()
		dims := make([]any, len(got.Shape))
		for i, d := range got.Shape {
			if d.Param != "" {
				dims[i] = d.Param
			} else {
				dims[i] = float64(d.Value)
			}
		}
		if got.Name != w.Name || int32(got.ElemType) != w.Elem || !reflect.DeepEqual(dims, w.Dims) {
			t.Errorf("%s: %s %v %v, python sees %+v", what, got.Name, got.ElemType, dims, w)
		}
	}
	if len(g.Inputs) != 1 || len(g.Outputs) != 1 {
		t.Fatalf("%d inputs, %d outputs; want 1 and 1", len(g.Inputs), len(g.Outputs))
	}
	valueEq("input", g.Inputs[0], want.Inputs[0])
	valueEq("output", g.Outputs[0], want.Outputs[0])
	if d := g.Inputs[0].Shape[0]; d.Param != "batch" {
		t.Errorf("input batch dim = %+v, want symbolic \"batch\"", d)
	}
	if len(g.Initializers) != len(want.Initializers) || len(g.Initializers) < 4 {
		t.Fatalf("%d initializers, python sees %d", len(g.Initializers), len(want.Initializers))
	}
	floats := 0
	for i, w := range g.Initializers {
		p := want.Initializers[i]
		if w.Name != p.Name || !reflect.DeepEqual(w.Dims, p.Dims) || w.DataType != p.DataType {
			t.Errorf("initializer %d: %s %v %v, python sees %s %v %v", i, w.Name, w.Dims, w.DataType, p.Name, p.Dims, p.DataType)
			continue
		}
		var vals []float64
		switch w.DataType {
		case DataTypeFloat:
			floats++
			v, err := w.Float32s()
			if err != nil {
				t.Errorf("initializer %s: %v", w.Name, err)
			}
			for _, x := range v {
				vals = append(vals, float64(x))
			}
		case DataTypeInt64:
			v, err := w.Int64s()
			if err != nil {
				t.Errorf("initializer %s: %v", w.Name, err)
			}
			for _, x := range v {
				vals = append(vals, float64(x))
			}
		default:
			continue
		}
		if len(vals) < len(p.Values) || !reflect.DeepEqual(vals[:len(p.Values)], p.Values) {
			t.Errorf("initializer %s: first values %v, python sees %v", w.Name, vals[:min(len(vals), len(p.Values))], p.Values)
		}
	}
	t.Logf("torch export: %d nodes, %d initializers (%d FLOAT), ops %v", len(g.Nodes), len(g.Initializers), floats, ops)
	if floats < 4 {
		t.Errorf("only %d FLOAT initializers; want conv and fc weights and biases", floats)
	}

	if err := WriteFile(out, m); err != nil {
		t.Fatalf("re-encoding: %v", err)
	}
	var cmp struct {
		PrintableEqual bool `json:"printable_equal"`
		GraphEqual     bool `json:"graph_equal"`
		ModelEqual     bool `json:"model_equal"`
	}
	runPython(t, &cmp, pyCompare, path, out)
	if !cmp.PrintableEqual || !cmp.GraphEqual || !cmp.ModelEqual {
		t.Errorf("re-encoded model differs from the torch export: %+v", cmp)
	}
}
