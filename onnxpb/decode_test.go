package onnxpb

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// msg builds a protobuf message from already-encoded fields.
func msg(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func fVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func fFixed32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func fFixed64(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func fBytes(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func fString(num protowire.Number, s string) []byte { return fBytes(num, []byte(s)) }

// TestDecodeUnpackedAndUnknown decodes hand-built wire data of the kind
// other writers produce: unpacked repeated scalars (as proto2 writers emit
// for dims), attributes without a type field, and fields this package has
// no struct field for, which must survive a re-encode.
func TestDecodeUnpackedAndUnknown(t *testing.T) {
	f1, f2 := math.Float32bits(1.5), math.Float32bits(-2)
	tensor := msg(
		fVarint(tensorDims, 2), fVarint(tensorDims, 1), // unpacked dims
		fVarint(tensorDataType, uint64(DataTypeFloat)),
		fFixed32(tensorFloatData, f1), fFixed32(tensorFloatData, f2), // unpacked float_data
		fString(tensorName, "w"),
		fBytes(13, msg(fString(1, "location"), fString(2, "w.bin"))), // external_data entry
	)
	attrInts := msg(fString(attrName, "pads"), fVarint(attrInts, 3), fVarint(attrInts, math.MaxUint64)) // no type, unpacked, -1
	attrF := msg(fString(attrName, "eps"), fFixed32(attrF, math.Float32bits(1e-5)))                     // no type
	attrTP := msg(fString(attrName, "tp"), fBytes(14, []byte{0x0a, 0x00}), fVarint(attrType, uint64(AttrTypeTypeProto)))
	seqType := fBytes(4, fBytes(1, fBytes(typeTensor, fVarint(ttElemType, 1)))) // sequence(tensor(float))
	node := msg(fString(nodeInput, "x"), fString(nodeOutput, "y"), fString(nodeOpType, "Pad"),
		fBytes(nodeAttribute, attrInts), fBytes(nodeAttribute, attrF), fBytes(nodeAttribute, attrTP),
		fVarint(99, 5)) // unknown varint field in a node
	graph := msg(
		fBytes(graphNode, node),
		fBytes(graphInitializer, tensor),
		fBytes(graphInput, msg(fString(viName, "seq"), fBytes(viType, seqType))),
		fBytes(graphInput, msg(fString(viName, "x"), fBytes(viType, msg(
			fBytes(typeTensor, msg(fVarint(ttElemType, 1), fBytes(ttShape, msg(
				fBytes(shapeDim, msg(fString(dimParam, "N"), fString(3, "DATA_BATCH"))), // with denotation
				fBytes(shapeDim, nil), // neither value nor param
				fBytes(shapeDim, msg(fVarint(dimValue, 8))),
			)))),
			fString(6, "IMAGE"), // TypeProto.denotation
		)))),
		fBytes(15, msg(fVarint(3, 4))), // sparse_initializer
		fString(graphName, "g"),
	)
	model := msg(
		fVarint(modelIRVersion, 7),
		fBytes(modelOpsetImport, msg(fString(1, ""), fVarint(2, 13))),
		fBytes(modelGraph, graph),
		fBytes(25, msg(fString(1, "func"))), // functions
		fFixed64(77, 0xdeadbeef),            // unknown fixed64
		fBytes(modelMetadataProps, msg(fString(1, "k"), fString(2, "v"))),
	)

	m, err := Unmarshal(model)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	check := func(m *Model) {
		t.Helper()
		g := m.Graph
		if m.IRVersion != 7 || !reflect.DeepEqual(m.OpsetImports, []OpsetID{{"", 13}}) || m.Metadata()["k"] != "v" || g.Name != "g" {
			t.Errorf("model header: ir %d opsets %v metadata %v graph name %q", m.IRVersion, m.OpsetImports, m.Metadata(), g.Name)
		}
		w := g.Initializers[0]
		if !reflect.DeepEqual(w.Dims, []int64{2, 1}) || !reflect.DeepEqual(w.FloatData, []float32{1.5, -2}) {
			t.Errorf("tensor dims %v float_data %v", w.Dims, w.FloatData)
		}
		if v, err := w.Float32s(); err != nil || !reflect.DeepEqual(v, []float32{1.5, -2}) {
			t.Errorf("Float32s = %v, %v", v, err)
		}
		n := g.Nodes[0]
		if a := n.Attr("pads"); a == nil || a.Type != AttrTypeInts || !reflect.DeepEqual(a.Ints, []int64{3, -1}) {
			t.Errorf("pads attribute = %+v", a)
		}
		if a := n.Attr("eps"); a == nil || a.Type != AttrTypeFloat || a.F != 1e-5 {
			t.Errorf("eps attribute = %+v", a)
		}
		if a := n.Attr("tp"); a == nil || a.Type != AttrTypeTypeProto {
			t.Errorf("tp attribute = %+v", a)
		}
		if seq := g.Inputs[0]; seq.Name != "seq" || seq.ElemType != 0 || seq.HasShape {
			t.Errorf("sequence input = %+v", seq)
		}
		x := g.Inputs[1]
		if want := []Dim{{Param: "N"}, {Value: -1}, {Value: 8}}; x.ElemType != DataTypeFloat || !x.HasShape || !reflect.DeepEqual(x.Shape, want) {
			t.Errorf("input x = %+v, want float shape %v", x, want)
		}
	}
	check(m)

	// Re-encoding keeps the fields without struct fields: functions, the
	// unknown fixed64, sparse_initializer, external_data, the TYPE_PROTO
	// attribute value, the node's unknown field and the sequence type.
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	m2, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal of re-encoded model: %v", err)
	}
	check(m2)
	keep := []struct {
		name      string
		got, want []byte
	}{
		{"model", m2.unknown, msg(fBytes(25, msg(fString(1, "func"))), fFixed64(77, 0xdeadbeef))},
		{"graph", m2.Graph.unknown, fBytes(15, msg(fVarint(3, 4)))},
		{"node", m2.Graph.Nodes[0].unknown, fVarint(99, 5)},
		{"attribute", m2.Graph.Nodes[0].Attributes[2].unknown, fBytes(14, []byte{0x0a, 0x00})},
		{"tensor", m2.Graph.Initializers[0].unknown, fBytes(13, msg(fString(1, "location"), fString(2, "w.bin")))},
		{"sequence type", m2.Graph.Inputs[0].rawType, seqType},
	}
	for _, k := range keep {
		if string(k.got) != string(k.want) {
			t.Errorf("%s: kept bytes %x, want %x", k.name, k.got, k.want)
		}
	}
}

func TestDecodeExternalTensor(t *testing.T) {
	tensor := msg(fVarint(tensorDims, 4), fVarint(tensorDataType, 1), fString(tensorName, "big"), fVarint(tensorDataLocation, 1))
	m, err := Unmarshal(fBytes(modelGraph, fBytes(graphInitializer, tensor)))
	if err != nil {
		t.Fatal(err)
	}
	w := m.Graph.Initializers[0]
	if !w.IsExternal() {
		t.Errorf("IsExternal() = false for data_location EXTERNAL")
	}
	if _, err := w.Float32s(); err == nil || !strings.Contains(err.Error(), "stored externally") {
		t.Errorf("Float32s on external tensor: err = %v", err)
	}
}

// nodeWithAttrs returns model bytes whose graph has three plain nodes
// followed by one holding attrs, so errors land at graph.node[3].
func nodeWithAttrs(attrs ...[]byte) []byte {
	plain := fBytes(graphNode, fString(nodeOpType, "Relu"))
	last := fString(nodeOpType, "Conv")
	for _, a := range attrs {
		last = append(last, fBytes(nodeAttribute, a)...)
	}
	return fBytes(modelGraph, msg(plain, plain, plain, fBytes(graphNode, last)))
}

func TestDecodeErrors(t *testing.T) {
	ok := msg(fString(attrName, "ok"), fVarint(attrI, 1))
	truncVarint := append(protowire.AppendTag(nil, attrI, protowire.VarintType), 0x80)
	tests := []struct {
		name string
		in   []byte
		path string // want FieldError.Path
		msg  string // want substring of the message
	}{
		{"truncated varint", nodeWithAttrs(ok, truncVarint), "graph.node[3].attribute[1]", "truncated varint"},
		{"truncated tag", []byte{0x80}, "", "truncated tag"},
		{"truncated length", append(protowire.AppendTag(nil, modelGraph, protowire.BytesType), 5, 1), "", "truncated length-delimited value of field 7"},
		{"field number zero", []byte{0x00}, "", "tag"},
		{"wrong wire type", fVarint(modelGraph, 1), "graph", "wire type varint, want length-delimited"},
		{"string as varint", nodeWithAttrs(ok, fVarint(attrName, 3)), "graph.node[3].attribute[1].name", "want length-delimited"},
		{"packed floats", nodeWithAttrs(fBytes(attrFloats, []byte{1, 2, 3})), "graph.node[3].attribute[0].floats", "packed float length 3 is not a multiple of 4"},
		{"packed ints truncated", fBytes(modelGraph, fBytes(graphInitializer, fBytes(tensorDims, []byte{0xff}))), "graph.initializer[0].dims", "truncated varint"},
		{"packed doubles", fBytes(modelGraph, fBytes(graphInitializer, fBytes(tensorDoubleData, make([]byte, 12)))), "graph.initializer[0].double_data", "not a multiple of 8"},
		{"bad float wire", nodeWithAttrs(fVarint(attrF, 1)), "graph.node[3].attribute[0].f", "wire type varint, want fixed32"},
		{"bad dim", fBytes(modelGraph, fBytes(graphOutput, fBytes(viType, fBytes(typeTensor, fBytes(ttShape, fBytes(shapeDim, fString(dimValue, "x"))))))),
			"graph.output[0].type.tensor_type.shape.dim[0].dim_value", "wire type length-delimited, want varint"},
		{"end group", []byte{0x0c}, "", "end-group"},
		{"opset", fBytes(modelOpsetImport, fString(2, "v")), "opset_import[0].version", "want varint"},
		{"metadata", msg(fBytes(modelMetadataProps, nil), fBytes(modelMetadataProps, fVarint(1, 1))), "metadata_props[1].key", "want length-delimited"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal(tc.in)
			if err == nil {
				t.Fatalf("Unmarshal succeeded (%+v), want error", m)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			if fe.Op != "decode" || fe.Path != tc.path || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q (op %q path %q), want path %q and message containing %q", err, fe.Op, fe.Path, tc.path, tc.msg)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	truncVarint := append(protowire.AppendTag(nil, attrI, protowire.VarintType), 0x80)
	_, err := Unmarshal(nodeWithAttrs(fString(attrName, "ok"), truncVarint))
	if want := "onnxpb: decode graph.node[3].attribute[1]: truncated varint value of field 3"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestDecodeDeepNesting(t *testing.T) {
	g := fString(graphName, "leaf")
	for range maxGraphDepth + 2 {
		g = fBytes(graphNode, fBytes(nodeAttribute, msg(fBytes(attrG, g), fVarint(attrType, uint64(AttrTypeGraph)))))
	}
	_, err := Unmarshal(fBytes(modelGraph, g))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Fatalf("err = %v, want nesting error", err)
	}
}

// TestDecodeTruncated cuts a valid model at every length: the prefix must
// decode exactly when the cut falls on a top-level field boundary, and fail
// with an error (never a panic) otherwise.
func TestDecodeTruncated(t *testing.T) {
	b, err := fullModel().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	boundary := map[int]bool{0: true}
	for off := 0; off < len(b); {
		_, _, n := protowire.ConsumeField(b[off:])
		if n < 0 {
			t.Fatalf("ConsumeField at %d: %v", off, protowire.ParseError(n))
		}
		off += n
		boundary[off] = true
	}
	for cut := 0; cut < len(b); cut++ {
		_, err := Unmarshal(b[:cut])
		if (err == nil) != boundary[cut] {
			t.Fatalf("cut at %d of %d: err = %v, boundary = %v", cut, len(b), err, boundary[cut])
		}
	}
}

// TestDecodeCorrupted flips each byte of a valid model in turn. Decoding
// may succeed or fail, but a success must re-encode, and any error must be a
// *FieldError.
func TestDecodeCorrupted(t *testing.T) {
	b, err := fullModel().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0xa5
		m, err := Unmarshal(c)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("flip at %d: error %v is %T, want *FieldError", i, err, err)
			}
			failures++
			continue
		}
		checkReencode(t, m)
	}
	if failures == 0 {
		t.Errorf("no corruption of %d bytes was detected", len(b))
	}
}

// checkReencode requires that a decoded model re-encodes (when its
// attributes have a defined type) and that the result decodes to an equal
// model.
func checkReencode(t *testing.T, m *Model) {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("Marshal of decoded model: error %v is %T, want *FieldError", err, err)
		}
		return // e.g. an attribute whose type byte was corrupted
	}
	m2, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("decode of re-encoded model: %v", err)
	}
	b2, err := m2.Marshal()
	if err != nil {
		t.Fatalf("Marshal of re-decoded model: %v", err)
	}
	if string(b) != string(b2) {
		t.Fatalf("encoding is not stable: %d vs %d bytes", len(b), len(b2))
	}
}

func FuzzUnmarshal(f *testing.F) {
	full, err := fullModel().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add(nodeWithAttrs(msg(fString(attrName, "pads"), fVarint(attrInts, 3), fBytes(attrInts, []byte{1, 2}))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			return
		}
		if m.Graph != nil {
			for _, w := range m.Graph.Initializers {
				w.Float32s() // must not panic whatever the dims and data
				w.Int64s()
			}
		}
		checkReencode(t, m)
	})
}

// A FLOAT tensor whose element count times 4 overflows to its raw_data length must be refused,
// not allocated (dims [2^62+1], 4 bytes: n*size wraps to 4).
func TestTensorSizeOverflow(t *testing.T) {
	for _, dims := range [][]int64{{1<<62 + 1}, {1 << 61, 2, 1}, {1<<62 + 1, 1}} {
		tn := &Tensor{Name: "w", Dims: dims, DataType: DataTypeFloat, RawData: make([]byte, 4)}
		if v, err := tn.Float32s(); err == nil {
			t.Fatalf("dims %v with 4 bytes of raw_data: got %d values, want an error", dims, len(v))
		}
		ti := &Tensor{Name: "i", Dims: dims, DataType: DataTypeInt64, RawData: make([]byte, 8)}
		if _, err := ti.Int64s(); err == nil {
			t.Fatalf("int64 dims %v with 8 bytes: want an error", dims)
		}
	}
}
