package onnxpb

import (
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Unmarshal decodes an ONNX model from protobuf wire format. It accepts
// packed and unpacked repeated scalars, skips (and keeps for re-encoding)
// fields it has no struct field for, and returns a *FieldError naming the
// field path for malformed input. The returned model does not alias b.
func Unmarshal(b []byte) (*Model, error) {
	m := &Model{}
	if err := decodeModel(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

func decErr(format string, args ...any) error {
	return &FieldError{Op: "decode", Err: fmt.Errorf(format, args...)}
}

// field is one decoded wire field.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // varint, fixed32 or fixed64 value
	b   []byte // bytes value (aliases the input)
	raw []byte // whole field including the tag (aliases the input)
}

func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("wire type %d", t)
}

// parseErr turns a negative protowire length into an error that says what
// was being read.
func parseErr(what string, n int) error {
	err := protowire.ParseError(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated %s", what)
	}
	return fmt.Errorf("%s: %v", what, err)
}

// nextField reads one field from the front of b.
func nextField(b []byte) (field, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return field{}, 0, parseErr("tag", n)
	}
	f := field{num: num, typ: typ}
	rest := b[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		f.v, m = protowire.ConsumeVarint(rest)
	case protowire.Fixed32Type:
		var v uint32
		v, m = protowire.ConsumeFixed32(rest)
		f.v = uint64(v)
	case protowire.Fixed64Type:
		f.v, m = protowire.ConsumeFixed64(rest)
	case protowire.BytesType:
		f.b, m = protowire.ConsumeBytes(rest)
	default:
		m = protowire.ConsumeFieldValue(num, typ, rest)
	}
	if m < 0 {
		return field{}, 0, parseErr(fmt.Sprintf("%s value of field %d", wireName(typ), num), m)
	}
	f.raw = b[:n+m]
	return f, n + m, nil
}

// eachField calls fn for every field of message b. Errors from fn are
// returned unchanged; framing errors are FieldErrors at the message itself.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		f, n, err := nextField(b)
		if err != nil {
			return &FieldError{Op: "decode", Err: err}
		}
		if err := fn(f); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (f field) want(name string, t protowire.Type) error {
	if f.typ != t {
		return within("decode", name, fmt.Errorf("wire type %s, want %s", wireName(f.typ), wireName(t)))
	}
	return nil
}

func (f field) str(name string) (string, error) {
	if err := f.want(name, protowire.BytesType); err != nil {
		return "", err
	}
	return string(f.b), nil
}

func (f field) bytes(name string) ([]byte, error) {
	if err := f.want(name, protowire.BytesType); err != nil {
		return nil, err
	}
	return cloneBytes(f.b), nil
}

func (f field) int64(name string) (int64, error) {
	if err := f.want(name, protowire.VarintType); err != nil {
		return 0, err
	}
	return int64(f.v), nil
}

func (f field) int32(name string) (int32, error) {
	v, err := f.int64(name)
	return int32(v), err
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// appendInt64s decodes a repeated int64 field given packed or unpacked.
func appendInt64s(dst []int64, f field, name string) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.v)), nil
	case protowire.BytesType:
		b := f.b
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, within("decode", name, parseErr("varint", n))
			}
			dst = append(dst, int64(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, within("decode", name, fmt.Errorf("wire type %s, want varint or packed", wireName(f.typ)))
}

func appendInt32s(dst []int32, f field, name string) ([]int32, error) {
	vs, err := appendInt64s(nil, f, name)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		dst = append(dst, int32(v))
	}
	return dst, nil
}

func appendFloats(dst []float32, f field, name string) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.v))), nil
	case protowire.BytesType:
		if len(f.b)%4 != 0 {
			return nil, within("decode", name, fmt.Errorf("packed float length %d is not a multiple of 4", len(f.b)))
		}
		for b := f.b; len(b) > 0; b = b[4:] {
			v, _ := protowire.ConsumeFixed32(b)
			dst = append(dst, math.Float32frombits(v))
		}
		return dst, nil
	}
	return nil, within("decode", name, fmt.Errorf("wire type %s, want fixed32 or packed", wireName(f.typ)))
}

func appendDoubles(dst []float64, f field, name string) ([]float64, error) {
	switch f.typ {
	case protowire.Fixed64Type:
		return append(dst, math.Float64frombits(f.v)), nil
	case protowire.BytesType:
		if len(f.b)%8 != 0 {
			return nil, within("decode", name, fmt.Errorf("packed double length %d is not a multiple of 8", len(f.b)))
		}
		for b := f.b; len(b) > 0; b = b[8:] {
			v, _ := protowire.ConsumeFixed64(b)
			dst = append(dst, math.Float64frombits(v))
		}
		return dst, nil
	}
	return nil, within("decode", name, fmt.Errorf("wire type %s, want fixed64 or packed", wireName(f.typ)))
}

// sub decodes a nested message field with dec, prefixing errors with name.
func sub(f field, name string, dec func([]byte) error) error {
	if err := f.want(name, protowire.BytesType); err != nil {
		return err
	}
	if err := dec(f.b); err != nil {
		return within("decode", name, err)
	}
	return nil
}

func decodeModel(b []byte, m *Model) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case modelIRVersion:
			m.IRVersion, err = f.int64("ir_version")
		case modelProducerName:
			m.ProducerName, err = f.str("producer_name")
		case modelProducerVersion:
			m.ProducerVersion, err = f.str("producer_version")
		case modelDomain:
			m.Domain, err = f.str("domain")
		case modelModelVersion:
			m.ModelVersion, err = f.int64("model_version")
		case modelDocString:
			m.DocString, err = f.str("doc_string")
		case modelGraph:
			// A repeated occurrence of a message field merges into the
			// first one, as in protobuf.
			if m.Graph == nil {
				m.Graph = &Graph{}
			}
			err = sub(f, "graph", func(b []byte) error { return decodeGraph(b, m.Graph, 0) })
		case modelOpsetImport:
			var op OpsetID
			err = sub(f, idx("opset_import", len(m.OpsetImports)), func(b []byte) error { return decodeOpset(b, &op) })
			m.OpsetImports = append(m.OpsetImports, op)
		case modelMetadataProps:
			var e StringStringEntry
			err = sub(f, idx("metadata_props", len(m.MetadataProps)), func(b []byte) error { return decodeEntry(b, &e) })
			m.MetadataProps = append(m.MetadataProps, e)
		default:
			m.unknown = append(m.unknown, f.raw...)
		}
		return err
	})
}

func decodeOpset(b []byte, op *OpsetID) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case 1:
			op.Domain, err = f.str("domain")
		case 2:
			op.Version, err = f.int64("version")
		}
		return err
	})
}

func decodeEntry(b []byte, e *StringStringEntry) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case 1:
			e.Key, err = f.str("key")
		case 2:
			e.Value, err = f.str("value")
		}
		return err
	})
}

func decodeGraph(b []byte, g *Graph, depth int) error {
	if depth > maxGraphDepth {
		return decErr("graphs nested deeper than %d levels", maxGraphDepth)
	}
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case graphNode:
			n := &Node{}
			err = sub(f, idx("node", len(g.Nodes)), func(b []byte) error { return decodeNode(b, n, depth) })
			g.Nodes = append(g.Nodes, n)
		case graphName:
			g.Name, err = f.str("name")
		case graphInitializer:
			t := &Tensor{}
			err = sub(f, idx("initializer", len(g.Initializers)), func(b []byte) error { return decodeTensor(b, t) })
			g.Initializers = append(g.Initializers, t)
		case graphDocString:
			g.DocString, err = f.str("doc_string")
		case graphInput:
			v := &ValueInfo{}
			err = sub(f, idx("input", len(g.Inputs)), func(b []byte) error { return decodeValueInfo(b, v) })
			g.Inputs = append(g.Inputs, v)
		case graphOutput:
			v := &ValueInfo{}
			err = sub(f, idx("output", len(g.Outputs)), func(b []byte) error { return decodeValueInfo(b, v) })
			g.Outputs = append(g.Outputs, v)
		case graphValueInfo:
			v := &ValueInfo{}
			err = sub(f, idx("value_info", len(g.ValueInfo)), func(b []byte) error { return decodeValueInfo(b, v) })
			g.ValueInfo = append(g.ValueInfo, v)
		default:
			g.unknown = append(g.unknown, f.raw...)
		}
		return err
	})
}

func decodeNode(b []byte, n *Node, depth int) error {
	return eachField(b, func(f field) (err error) {
		var s string
		switch f.num {
		case nodeInput:
			s, err = f.str(idx("input", len(n.Inputs)))
			n.Inputs = append(n.Inputs, s)
		case nodeOutput:
			s, err = f.str(idx("output", len(n.Outputs)))
			n.Outputs = append(n.Outputs, s)
		case nodeName:
			n.Name, err = f.str("name")
		case nodeOpType:
			n.OpType, err = f.str("op_type")
		case nodeAttribute:
			a := &Attribute{}
			err = sub(f, idx("attribute", len(n.Attributes)), func(b []byte) error { return decodeAttribute(b, a, depth) })
			n.Attributes = append(n.Attributes, a)
		case nodeDocString:
			n.DocString, err = f.str("doc_string")
		case nodeDomain:
			n.Domain, err = f.str("domain")
		default:
			n.unknown = append(n.unknown, f.raw...)
		}
		return err
	})
}

func decodeAttribute(b []byte, a *Attribute, depth int) error {
	// seen records which value fields were present, to infer Type for
	// files written before AttributeProto.type existed.
	var seen [attrGraphs + 1]bool
	err := eachField(b, func(f field) (err error) {
		if f.num > 0 && f.num <= attrGraphs {
			seen[f.num] = true
		}
		switch f.num {
		case attrName:
			a.Name, err = f.str("name")
		case attrType:
			var t int32
			t, err = f.int32("type")
			a.Type = AttributeType(t)
		case attrF:
			if err = f.want("f", protowire.Fixed32Type); err == nil {
				a.F = math.Float32frombits(uint32(f.v))
			}
		case attrI:
			a.I, err = f.int64("i")
		case attrS:
			a.S, err = f.bytes("s")
		case attrT:
			if a.T == nil {
				a.T = &Tensor{}
			}
			err = sub(f, "t", func(b []byte) error { return decodeTensor(b, a.T) })
		case attrG:
			if a.G == nil {
				a.G = &Graph{}
			}
			err = sub(f, "g", func(b []byte) error { return decodeGraph(b, a.G, depth+1) })
		case attrFloats:
			a.Floats, err = appendFloats(a.Floats, f, "floats")
		case attrInts:
			a.Ints, err = appendInt64s(a.Ints, f, "ints")
		case attrStrings:
			var s []byte
			s, err = f.bytes(idx("strings", len(a.Strings)))
			a.Strings = append(a.Strings, s)
		case attrTensors:
			t := &Tensor{}
			err = sub(f, idx("tensors", len(a.Tensors)), func(b []byte) error { return decodeTensor(b, t) })
			a.Tensors = append(a.Tensors, t)
		case attrGraphs:
			g := &Graph{}
			err = sub(f, idx("graphs", len(a.Graphs)), func(b []byte) error { return decodeGraph(b, g, depth+1) })
			a.Graphs = append(a.Graphs, g)
		default:
			a.unknown = append(a.unknown, f.raw...)
		}
		return err
	})
	if err != nil {
		return err
	}
	if a.Type == AttrTypeUndefined {
		for _, c := range []struct {
			num int
			t   AttributeType
		}{{attrF, AttrTypeFloat}, {attrI, AttrTypeInt}, {attrS, AttrTypeString}, {attrT, AttrTypeTensor},
			{attrG, AttrTypeGraph}, {attrFloats, AttrTypeFloats}, {attrInts, AttrTypeInts},
			{attrStrings, AttrTypeStrings}, {attrTensors, AttrTypeTensors}, {attrGraphs, AttrTypeGraphs}} {
			if seen[c.num] {
				a.Type = c.t
				break
			}
		}
	}
	return nil
}

func decodeTensor(b []byte, t *Tensor) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case tensorDims:
			t.Dims, err = appendInt64s(t.Dims, f, "dims")
		case tensorDataType:
			var v int32
			v, err = f.int32("data_type")
			t.DataType = DataType(v)
		case tensorFloatData:
			t.FloatData, err = appendFloats(t.FloatData, f, "float_data")
		case tensorInt32Data:
			t.Int32Data, err = appendInt32s(t.Int32Data, f, "int32_data")
		case tensorStringData:
			var s []byte
			s, err = f.bytes(idx("string_data", len(t.StringData)))
			t.StringData = append(t.StringData, s)
		case tensorInt64Data:
			t.Int64Data, err = appendInt64s(t.Int64Data, f, "int64_data")
		case tensorName:
			t.Name, err = f.str("name")
		case tensorRawData:
			t.RawData, err = f.bytes("raw_data")
		case tensorDoubleData:
			t.DoubleData, err = appendDoubles(t.DoubleData, f, "double_data")
		case tensorDocString:
			t.DocString, err = f.str("doc_string")
		case tensorDataLocation:
			var v int64
			v, err = f.int64("data_location")
			t.external = v == 1
			t.unknown = append(t.unknown, f.raw...)
		default:
			t.unknown = append(t.unknown, f.raw...)
		}
		return err
	})
}

func decodeValueInfo(b []byte, v *ValueInfo) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case viName:
			v.Name, err = f.str("name")
		case viType:
			err = sub(f, "type", func(b []byte) error { return decodeType(b, v) })
		case viDocString:
			v.DocString, err = f.str("doc_string")
		default:
			v.unknown = append(v.unknown, f.raw...)
		}
		return err
	})
}

// decodeType reads a TypeProto. Tensor types fill ElemType and Shape; any
// other type is kept verbatim in rawType.
func decodeType(b []byte, v *ValueInfo) error {
	tensor := false
	err := eachField(b, func(f field) error {
		if f.num != typeTensor {
			return nil
		}
		tensor = true
		return sub(f, "tensor_type", func(b []byte) error { return decodeTensorType(b, v) })
	})
	if err != nil {
		return err
	}
	if !tensor {
		v.rawType = cloneBytes(b)
	}
	return nil
}

func decodeTensorType(b []byte, v *ValueInfo) error {
	return eachField(b, func(f field) (err error) {
		switch f.num {
		case ttElemType:
			var t int32
			t, err = f.int32("elem_type")
			v.ElemType = DataType(t)
		case ttShape:
			v.HasShape = true
			err = sub(f, "shape", func(b []byte) error { return decodeShape(b, v) })
		}
		return err
	})
}

func decodeShape(b []byte, v *ValueInfo) error {
	return eachField(b, func(f field) error {
		if f.num != shapeDim {
			return nil
		}
		d := Dim{Value: -1}
		err := sub(f, idx("dim", len(v.Shape)), func(b []byte) error {
			return eachField(b, func(f field) (err error) {
				switch f.num {
				case dimValue:
					d.Value, err = f.int64("dim_value")
					d.Param = ""
				case dimParam:
					d.Param, err = f.str("dim_param")
					d.Value = 0
				}
				return err
			})
		})
		v.Shape = append(v.Shape, d)
		return err
	})
}
