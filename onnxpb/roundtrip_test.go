package onnxpb

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// fullModel returns a model that sets every struct field this package
// exposes, including a nested graph attribute.
func fullModel() *Model {
	body := &Graph{
		Name:    "then_branch",
		Nodes:   []*Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Outputs: []*ValueInfo{TensorValueInfo("y", DataTypeFloat, []Dim{{Value: 2}})},
	}
	return &Model{
		IRVersion:       8,
		OpsetImports:    []OpsetID{{Version: 17}, {Domain: "com.example", Version: 1}},
		ProducerName:    "onnxpb-test",
		ProducerVersion: "0.1",
		Domain:          "org.example",
		ModelVersion:    3,
		DocString:       "a model with every field",
		MetadataProps:   []StringStringEntry{{"victim", "resnet18"}, {"epochs", "10"}, {"", ""}},
		Graph: &Graph{
			Name:      "main",
			DocString: "graph doc",
			Nodes: []*Node{
				{
					Name: "n0", OpType: "Custom", Domain: "com.example", DocString: "node doc",
					Inputs:  []string{"x", "", "w"},
					Outputs: []string{"y"},
					Attributes: []*Attribute{
						AttrFloat("alpha", 0.25),
						AttrFloat("zero_f", 0),
						AttrInt("axis", -1),
						AttrInt("zero_i", 0),
						AttrInt("big", math.MaxInt64),
						AttrString("mode", "constant"),
						{Name: "empty_s", Type: AttrTypeString},
						AttrTensor("value", NewInt64Tensor("", []int64{2}, []int64{-5, 7})),
						AttrGraph("then_branch", body),
						AttrFloats("scales", 1, 2.5, float32(math.Inf(-1))),
						AttrInts("pads", 0, 1, -1, math.MinInt64),
						AttrStrings("names", "a", "", "ü"),
						{Name: "ts", Type: AttrTypeTensors, Tensors: []*Tensor{NewFloatTensor("t0", nil, []float32{1})}},
						{Name: "gs", Type: AttrTypeGraphs, Graphs: []*Graph{{Name: "g0"}, {Name: "g1"}}},
					},
				},
				{OpType: "Relu", Inputs: []string{"y"}, Outputs: []string{"z"}},
			},
			Initializers: []*Tensor{
				NewFloatTensor("w", []int64{2, 3}, []float32{1, -2, 3.5, 0, float32(math.SmallestNonzeroFloat32), math.MaxFloat32}),
				NewInt64Tensor("shape", []int64{2}, []int64{-1, 512}),
				{Name: "fd", Dims: []int64{2}, DataType: DataTypeFloat, FloatData: []float32{0.5, -0.5}, DocString: "typed floats"},
				{Name: "i32", Dims: []int64{3}, DataType: DataTypeInt32, Int32Data: []int32{-1, 0, math.MaxInt32}},
				{Name: "i64", Dims: []int64{1}, DataType: DataTypeInt64, Int64Data: []int64{math.MinInt64}},
				{Name: "dd", Dims: []int64{2}, DataType: DataTypeDouble, DoubleData: []float64{math.Pi, -0.0}},
				{Name: "ss", Dims: []int64{2}, DataType: DataTypeString, StringData: [][]byte{[]byte("hi"), []byte("\x00\xff")}},
				{Name: "scalar", DataType: DataTypeUint8, RawData: []byte{7}},
			},
			Inputs: []*ValueInfo{
				TensorValueInfo("x", DataTypeFloat, []Dim{{Param: "batch"}, {Value: 3}, {Value: 0}, {Value: -1}}),
				{Name: "s", ElemType: DataTypeInt64, HasShape: true, DocString: "scalar input"},
				{Name: "unranked", ElemType: DataTypeFloat},
			},
			Outputs:   []*ValueInfo{TensorValueInfo("z", DataTypeFloat, []Dim{{Param: "batch"}, {Value: 3}})},
			ValueInfo: []*ValueInfo{TensorValueInfo("y", DataTypeFloat16, nil), {Name: "untyped"}},
		},
	}
}

func TestRoundTripEveryField(t *testing.T) {
	want := fullModel()
	b, err := want.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\n got  %+v\n want %+v", got.Graph, want.Graph)
		for i := range want.Graph.Nodes[0].Attributes {
			if g, w := got.Graph.Nodes[0].Attributes[i], want.Graph.Nodes[0].Attributes[i]; !reflect.DeepEqual(g, w) {
				t.Errorf("attribute %d: got %+v want %+v", i, g, w)
			}
		}
	}
	b2, err := got.Marshal()
	if err != nil {
		t.Fatalf("re-Marshal: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("re-marshalled bytes differ (%d vs %d bytes)", len(b), len(b2))
	}
	md := got.Metadata()
	if md["victim"] != "resnet18" || md["epochs"] != "10" || len(md) != 3 {
		t.Errorf("Metadata() = %v", md)
	}
}

func TestDimEncoding(t *testing.T) {
	tests := []struct {
		name string
		in   Dim
		want Dim
	}{
		{"fixed", Dim{Value: 7}, Dim{Value: 7}},
		{"zero", Dim{Value: 0}, Dim{Value: 0}},
		{"symbolic", Dim{Param: "batch"}, Dim{Param: "batch"}},
		{"symbolic wins over value", Dim{Value: 4, Param: "n"}, Dim{Param: "n"}},
		{"unknown", Dim{Value: -1}, Dim{Value: -1}},
		{"negative is unknown", Dim{Value: -9}, Dim{Value: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Model{Graph: &Graph{Inputs: []*ValueInfo{TensorValueInfo("x", DataTypeFloat, []Dim{tc.in})}}}
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := got.Graph.Inputs[0].Shape; len(d) != 1 || d[0] != tc.want {
				t.Errorf("got %+v, want [%+v]", d, tc.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	withAttr := func(a *Attribute) *Model {
		return &Model{Graph: &Graph{Nodes: []*Node{{OpType: "Relu"}, {OpType: "X", Attributes: []*Attribute{AttrInt("ok", 1), a}}}}}
	}
	tests := []struct {
		name string
		m    *Model
		want string
	}{
		{"nil model", nil, "onnxpb: encode model: nil model"},
		{"nil node", &Model{Graph: &Graph{Nodes: []*Node{{}, nil}}}, "onnxpb: encode graph.node[1]: nil node"},
		{"nil initializer", &Model{Graph: &Graph{Initializers: []*Tensor{nil}}}, "onnxpb: encode graph.initializer[0]: nil tensor"},
		{"nil output", &Model{Graph: &Graph{Outputs: []*ValueInfo{nil}}}, "onnxpb: encode graph.output[0]: nil value info"},
		{"nil attribute", withAttr(nil), "onnxpb: encode graph.node[1].attribute[1]: nil attribute"},
		{"undefined type", withAttr(&Attribute{Name: "a"}), `onnxpb: encode graph.node[1].attribute[1]: attribute "a": type UNDEFINED, want one of`},
		{"bad type", withAttr(&Attribute{Name: "a", Type: 99}), `attribute "a": type AttributeType(99), want one of`},
		{"tensor nil", withAttr(&Attribute{Name: "v", Type: AttrTypeTensor}), `graph.node[1].attribute[1]: attribute "v" has type TENSOR but T is nil`},
		{"graph nil", withAttr(&Attribute{Name: "g", Type: AttrTypeGraph}), `attribute "g" has type GRAPH but G is nil`},
		{"nil graph in list", withAttr(&Attribute{Name: "gs", Type: AttrTypeGraphs, Graphs: []*Graph{nil}}), "graph.node[1].attribute[1].graphs[0]: nil graph"},
		{"sparse without value", withAttr(&Attribute{Name: "sp", Type: AttrTypeSparseTensor}), `attribute "sp": type SPARSE_TENSOR has no struct field`},
		{"nested nil node", withAttr(AttrGraph("body", &Graph{Nodes: []*Node{nil}})), "graph.node[1].attribute[1].g.node[0]: nil node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Marshal()
			if err == nil {
				t.Fatalf("Marshal succeeded, want error containing %q", tc.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestMarshalDeepNesting(t *testing.T) {
	g := &Graph{Name: "leaf"}
	for range maxGraphDepth + 2 {
		g = &Graph{Nodes: []*Node{{OpType: "If", Attributes: []*Attribute{AttrGraph("then_branch", g)}}}}
	}
	_, err := (&Model{Graph: g}).Marshal()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("nested deeper than")) {
		t.Fatalf("Marshal of %d nested graphs: err = %v, want nesting error", maxGraphDepth+2, err)
	}
}
