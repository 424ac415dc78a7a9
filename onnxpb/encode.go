package onnxpb

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxMessageSize is the largest serialized message protobuf implementations
// accept (2 GiB - 1).
const maxMessageSize = math.MaxInt32

// Marshal encodes the model in protobuf wire format. It fails with a
// *FieldError naming the field when the model has a nil element in a list,
// an attribute whose Type does not match a set value, or would exceed the
// 2 GiB protobuf size limit.
func (m *Model) Marshal() ([]byte, error) {
	if m == nil {
		return nil, &FieldError{Op: "encode", Err: errors.New("nil model")}
	}
	b, err := appendModel(nil, m)
	if err != nil {
		return nil, err
	}
	if len(b) > maxMessageSize {
		return nil, &FieldError{Op: "encode", Err: fmt.Errorf("encoded size %d bytes exceeds the protobuf limit of %d", len(b), maxMessageSize)}
	}
	return b, nil
}

func encErr(format string, args ...any) error {
	return &FieldError{Op: "encode", Err: fmt.Errorf(format, args...)}
}

// appendMessage appends field num as a length-delimited message whose body is
// written by body. It reserves five bytes for the length and moves the body
// back afterwards, so no temporary buffer is needed.
func appendMessage(b []byte, num protowire.Number, body func([]byte) ([]byte, error)) ([]byte, error) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	start := len(b)
	const reserve = 5 // enough for any length below 2^35
	b = append(b, make([]byte, reserve)...)
	b, err := body(b)
	if err != nil {
		return nil, err
	}
	size := len(b) - start - reserve
	if uint64(size) >= 1<<35 {
		return nil, encErr("message too large (%d bytes)", size)
	}
	k := protowire.SizeVarint(uint64(size))
	protowire.AppendVarint(b[start:start], uint64(size))
	copy(b[start+k:], b[start+reserve:])
	return b[:start+k+size], nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendStringIf(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, num, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendIntIf(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendInt(b, num, v)
}

func appendPackedInt64s(b []byte, num protowire.Number, vs []int64) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += protowire.SizeVarint(uint64(v))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

func appendPackedInt32s(b []byte, num protowire.Number, vs []int32) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += protowire.SizeVarint(uint64(int64(v)))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = protowire.AppendVarint(b, uint64(int64(v)))
	}
	return b
}

func appendPackedFloats(b []byte, num protowire.Number, vs []float32) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(4*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed32(b, math.Float32bits(v))
	}
	return b
}

func appendPackedDoubles(b []byte, num protowire.Number, vs []float64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	return b
}

// ModelProto field numbers.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDomain          = 4
	modelModelVersion    = 5
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14
)

func appendModel(b []byte, m *Model) ([]byte, error) {
	var err error
	b = appendIntIf(b, modelIRVersion, m.IRVersion)
	b = appendStringIf(b, modelProducerName, m.ProducerName)
	b = appendStringIf(b, modelProducerVersion, m.ProducerVersion)
	b = appendStringIf(b, modelDomain, m.Domain)
	b = appendIntIf(b, modelModelVersion, m.ModelVersion)
	b = appendStringIf(b, modelDocString, m.DocString)
	if m.Graph != nil {
		b, err = appendMessage(b, modelGraph, func(b []byte) ([]byte, error) { return appendGraph(b, m.Graph, 0) })
		if err != nil {
			return nil, within("encode", "graph", err)
		}
	}
	for _, op := range m.OpsetImports {
		b, _ = appendMessage(b, modelOpsetImport, func(b []byte) ([]byte, error) {
			b = appendStringIf(b, 1, op.Domain)
			return appendInt(b, 2, op.Version), nil
		})
	}
	for _, e := range m.MetadataProps {
		b, _ = appendMessage(b, modelMetadataProps, func(b []byte) ([]byte, error) {
			b = appendString(b, 1, e.Key)
			return appendString(b, 2, e.Value), nil
		})
	}
	return append(b, m.unknown...), nil
}

// GraphProto field numbers.
const (
	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphDocString   = 10
	graphInput       = 11
	graphOutput      = 12
	graphValueInfo   = 13
)

// maxGraphDepth bounds graph nesting through GRAPH attributes (If, Loop,
// Scan bodies) for both encoding and decoding.
const maxGraphDepth = 32

func appendGraph(b []byte, g *Graph, depth int) ([]byte, error) {
	if depth > maxGraphDepth {
		return nil, encErr("graphs nested deeper than %d levels", maxGraphDepth)
	}
	var err error
	for i, n := range g.Nodes {
		if n == nil {
			return nil, within("encode", idx("node", i), errors.New("nil node"))
		}
		b, err = appendMessage(b, graphNode, func(b []byte) ([]byte, error) { return appendNode(b, n, depth) })
		if err != nil {
			return nil, within("encode", idx("node", i), err)
		}
	}
	b = appendStringIf(b, graphName, g.Name)
	for i, t := range g.Initializers {
		if t == nil {
			return nil, within("encode", idx("initializer", i), errors.New("nil tensor"))
		}
		b, _ = appendMessage(b, graphInitializer, func(b []byte) ([]byte, error) { return appendTensor(b, t), nil })
	}
	b = appendStringIf(b, graphDocString, g.DocString)
	lists := []struct {
		name string
		num  protowire.Number
		vis  []*ValueInfo
	}{{"input", graphInput, g.Inputs}, {"output", graphOutput, g.Outputs}, {"value_info", graphValueInfo, g.ValueInfo}}
	for _, l := range lists {
		for i, v := range l.vis {
			if v == nil {
				return nil, within("encode", idx(l.name, i), errors.New("nil value info"))
			}
			b, _ = appendMessage(b, l.num, func(b []byte) ([]byte, error) { return appendValueInfo(b, v), nil })
		}
	}
	return append(b, g.unknown...), nil
}

// NodeProto field numbers.
const (
	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDocString = 6
	nodeDomain    = 7
)

func appendNode(b []byte, n *Node, depth int) ([]byte, error) {
	var err error
	for _, s := range n.Inputs {
		b = appendString(b, nodeInput, s)
	}
	for _, s := range n.Outputs {
		b = appendString(b, nodeOutput, s)
	}
	b = appendStringIf(b, nodeName, n.Name)
	b = appendStringIf(b, nodeOpType, n.OpType)
	for i, a := range n.Attributes {
		if a == nil {
			return nil, within("encode", idx("attribute", i), errors.New("nil attribute"))
		}
		b, err = appendMessage(b, nodeAttribute, func(b []byte) ([]byte, error) { return appendAttribute(b, a, depth) })
		if err != nil {
			return nil, within("encode", idx("attribute", i), err)
		}
	}
	b = appendStringIf(b, nodeDocString, n.DocString)
	b = appendStringIf(b, nodeDomain, n.Domain)
	return append(b, n.unknown...), nil
}

// AttributeProto field numbers.
const (
	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrS       = 4
	attrT       = 5
	attrG       = 6
	attrFloats  = 7
	attrInts    = 8
	attrStrings = 9
	attrTensors = 10
	attrGraphs  = 11
	attrType    = 20
)

// appendAttribute writes the value field selected by a.Type even when it
// holds the zero value, so that readers (and onnx.checker) see exactly one
// value field.
func appendAttribute(b []byte, a *Attribute, depth int) ([]byte, error) {
	var err error
	b = appendStringIf(b, attrName, a.Name)
	switch a.Type {
	case AttrTypeFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrTypeInt:
		b = appendInt(b, attrI, a.I)
	case AttrTypeString:
		b = appendBytes(b, attrS, a.S)
	case AttrTypeTensor:
		if a.T == nil {
			return nil, encErr("attribute %q has type TENSOR but T is nil", a.Name)
		}
		b, _ = appendMessage(b, attrT, func(b []byte) ([]byte, error) { return appendTensor(b, a.T), nil })
	case AttrTypeGraph:
		if a.G == nil {
			return nil, encErr("attribute %q has type GRAPH but G is nil", a.Name)
		}
		b, err = appendMessage(b, attrG, func(b []byte) ([]byte, error) { return appendGraph(b, a.G, depth+1) })
		if err != nil {
			return nil, within("encode", "g", err)
		}
	case AttrTypeFloats:
		b = appendPackedFloats(b, attrFloats, a.Floats)
	case AttrTypeInts:
		b = appendPackedInt64s(b, attrInts, a.Ints)
	case AttrTypeStrings:
		for _, s := range a.Strings {
			b = appendBytes(b, attrStrings, s)
		}
	case AttrTypeTensors:
		for i, t := range a.Tensors {
			if t == nil {
				return nil, within("encode", idx("tensors", i), errors.New("nil tensor"))
			}
			b, _ = appendMessage(b, attrTensors, func(b []byte) ([]byte, error) { return appendTensor(b, t), nil })
		}
	case AttrTypeGraphs:
		for i, g := range a.Graphs {
			if g == nil {
				return nil, within("encode", idx("graphs", i), errors.New("nil graph"))
			}
			b, err = appendMessage(b, attrGraphs, func(b []byte) ([]byte, error) { return appendGraph(b, g, depth+1) })
			if err != nil {
				return nil, within("encode", idx("graphs", i), err)
			}
		}
	case AttrTypeSparseTensor, AttrTypeSparseTensors, AttrTypeTypeProto, AttrTypeTypeProtos:
		if len(a.unknown) == 0 {
			return nil, encErr("attribute %q: type %v has no struct field and no decoded value to write back", a.Name, a.Type)
		}
	default:
		return nil, encErr("attribute %q: type %v, want one of FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS, TENSORS, GRAPHS", a.Name, a.Type)
	}
	b = appendInt(b, attrType, int64(a.Type))
	return append(b, a.unknown...), nil
}

// TensorProto field numbers.
const (
	tensorDims         = 1
	tensorDataType     = 2
	tensorFloatData    = 4
	tensorInt32Data    = 5
	tensorStringData   = 6
	tensorInt64Data    = 7
	tensorName         = 8
	tensorRawData      = 9
	tensorDoubleData   = 10
	tensorDocString    = 12
	tensorDataLocation = 14
)

func appendTensor(b []byte, t *Tensor) []byte {
	b = appendPackedInt64s(b, tensorDims, t.Dims)
	b = appendIntIf(b, tensorDataType, int64(t.DataType))
	b = appendPackedFloats(b, tensorFloatData, t.FloatData)
	b = appendPackedInt32s(b, tensorInt32Data, t.Int32Data)
	for _, s := range t.StringData {
		b = appendBytes(b, tensorStringData, s)
	}
	b = appendPackedInt64s(b, tensorInt64Data, t.Int64Data)
	b = appendStringIf(b, tensorName, t.Name)
	if len(t.RawData) > 0 {
		b = appendBytes(b, tensorRawData, t.RawData)
	}
	b = appendPackedDoubles(b, tensorDoubleData, t.DoubleData)
	b = appendStringIf(b, tensorDocString, t.DocString)
	return append(b, t.unknown...)
}

// ValueInfoProto / TypeProto / TensorShapeProto field numbers.
const (
	viName      = 1
	viType      = 2
	viDocString = 3
	typeTensor  = 1 // TypeProto.tensor_type
	ttElemType  = 1 // TypeProto.Tensor.elem_type
	ttShape     = 2 // TypeProto.Tensor.shape
	shapeDim    = 1 // TensorShapeProto.dim
	dimValue    = 1 // Dimension.dim_value
	dimParam    = 2 // Dimension.dim_param
)

func appendValueInfo(b []byte, v *ValueInfo) []byte {
	b = appendStringIf(b, viName, v.Name)
	switch {
	case v.ElemType != 0 || v.HasShape:
		b, _ = appendMessage(b, viType, func(b []byte) ([]byte, error) {
			return appendMessage(b, typeTensor, func(b []byte) ([]byte, error) {
				b = appendIntIf(b, ttElemType, int64(v.ElemType))
				if !v.HasShape {
					return b, nil
				}
				return appendMessage(b, ttShape, func(b []byte) ([]byte, error) {
					for _, d := range v.Shape {
						b, _ = appendMessage(b, shapeDim, func(b []byte) ([]byte, error) {
							switch {
							case d.Param != "":
								b = appendString(b, dimParam, d.Param)
							case d.Value >= 0:
								b = appendInt(b, dimValue, d.Value)
							}
							return b, nil
						})
					}
					return b, nil
				})
			})
		})
	case len(v.rawType) > 0:
		b = appendBytes(b, viType, v.rawType)
	}
	b = appendStringIf(b, viDocString, v.DocString)
	return append(b, v.unknown...)
}
