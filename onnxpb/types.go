package onnxpb

import "fmt"

// DataType is the element type of a tensor (TensorProto.DataType).
type DataType int32

// Tensor element types, numbered as in onnx.proto.
const (
	DataTypeUndefined  DataType = 0
	DataTypeFloat      DataType = 1
	DataTypeUint8      DataType = 2
	DataTypeInt8       DataType = 3
	DataTypeUint16     DataType = 4
	DataTypeInt16      DataType = 5
	DataTypeInt32      DataType = 6
	DataTypeInt64      DataType = 7
	DataTypeString     DataType = 8
	DataTypeBool       DataType = 9
	DataTypeFloat16    DataType = 10
	DataTypeDouble     DataType = 11
	DataTypeUint32     DataType = 12
	DataTypeUint64     DataType = 13
	DataTypeComplex64  DataType = 14
	DataTypeComplex128 DataType = 15
	DataTypeBfloat16   DataType = 16
)

var dataTypeNames = map[DataType]string{
	DataTypeUndefined:  "UNDEFINED",
	DataTypeFloat:      "FLOAT",
	DataTypeUint8:      "UINT8",
	DataTypeInt8:       "INT8",
	DataTypeUint16:     "UINT16",
	DataTypeInt16:      "INT16",
	DataTypeInt32:      "INT32",
	DataTypeInt64:      "INT64",
	DataTypeString:     "STRING",
	DataTypeBool:       "BOOL",
	DataTypeFloat16:    "FLOAT16",
	DataTypeDouble:     "DOUBLE",
	DataTypeUint32:     "UINT32",
	DataTypeUint64:     "UINT64",
	DataTypeComplex64:  "COMPLEX64",
	DataTypeComplex128: "COMPLEX128",
	DataTypeBfloat16:   "BFLOAT16",
}

// String returns the onnx.proto name of the data type, e.g. "FLOAT".
func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// Size returns the number of bytes one element of the type occupies in
// raw_data, or 0 for types without a fixed size (STRING, UNDEFINED, unknown).
func (d DataType) Size() int {
	switch d {
	case DataTypeUint8, DataTypeInt8, DataTypeBool:
		return 1
	case DataTypeUint16, DataTypeInt16, DataTypeFloat16, DataTypeBfloat16:
		return 2
	case DataTypeFloat, DataTypeInt32, DataTypeUint32:
		return 4
	case DataTypeInt64, DataTypeDouble, DataTypeUint64, DataTypeComplex64:
		return 8
	case DataTypeComplex128:
		return 16
	}
	return 0
}

// AttributeType says which value field of an Attribute is in use
// (AttributeProto.AttributeType).
type AttributeType int32

// Attribute types, numbered as in onnx.proto. Only the types up to
// AttrTypeGraphs have struct fields in Attribute; values of the others are
// kept as raw bytes and written back unchanged.
const (
	AttrTypeUndefined     AttributeType = 0
	AttrTypeFloat         AttributeType = 1
	AttrTypeInt           AttributeType = 2
	AttrTypeString        AttributeType = 3
	AttrTypeTensor        AttributeType = 4
	AttrTypeGraph         AttributeType = 5
	AttrTypeFloats        AttributeType = 6
	AttrTypeInts          AttributeType = 7
	AttrTypeStrings       AttributeType = 8
	AttrTypeTensors       AttributeType = 9
	AttrTypeGraphs        AttributeType = 10
	AttrTypeSparseTensor  AttributeType = 11
	AttrTypeSparseTensors AttributeType = 12
	AttrTypeTypeProto     AttributeType = 13
	AttrTypeTypeProtos    AttributeType = 14
)

var attrTypeNames = map[AttributeType]string{
	AttrTypeUndefined:     "UNDEFINED",
	AttrTypeFloat:         "FLOAT",
	AttrTypeInt:           "INT",
	AttrTypeString:        "STRING",
	AttrTypeTensor:        "TENSOR",
	AttrTypeGraph:         "GRAPH",
	AttrTypeFloats:        "FLOATS",
	AttrTypeInts:          "INTS",
	AttrTypeStrings:       "STRINGS",
	AttrTypeTensors:       "TENSORS",
	AttrTypeGraphs:        "GRAPHS",
	AttrTypeSparseTensor:  "SPARSE_TENSOR",
	AttrTypeSparseTensors: "SPARSE_TENSORS",
	AttrTypeTypeProto:     "TYPE_PROTO",
	AttrTypeTypeProtos:    "TYPE_PROTOS",
}

// String returns the onnx.proto name of the attribute type, e.g. "INTS".
func (a AttributeType) String() string {
	if s, ok := attrTypeNames[a]; ok {
		return s
	}
	return fmt.Sprintf("AttributeType(%d)", int32(a))
}

// Model is an ONNX ModelProto.
type Model struct {
	IRVersion       int64
	OpsetImports    []OpsetID
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           *Graph
	MetadataProps   []StringStringEntry

	unknown []byte // fields without a struct field, re-emitted verbatim
}

// OpsetID is an OperatorSetIdProto: an operator domain ("" is the default
// ai.onnx domain) and its version.
type OpsetID struct {
	Domain  string
	Version int64
}

// StringStringEntry is a StringStringEntryProto key/value pair, used for
// model metadata_props.
type StringStringEntry struct {
	Key, Value string
}

// Graph is an ONNX GraphProto.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	DocString    string
	Inputs       []*ValueInfo
	Outputs      []*ValueInfo
	ValueInfo    []*ValueInfo

	unknown []byte
}

// Node is an ONNX NodeProto: one operator application. Empty strings in
// Inputs mark omitted optional inputs.
type Node struct {
	Name       string
	OpType     string
	Domain     string
	DocString  string
	Inputs     []string
	Outputs    []string
	Attributes []*Attribute

	unknown []byte
}

// Attribute is an ONNX AttributeProto. Type selects the value field that is
// meaningful: F for AttrTypeFloat, I for AttrTypeInt, S for AttrTypeString,
// T for AttrTypeTensor, G for AttrTypeGraph, Floats, Ints, Strings, Tensors
// and Graphs for the list types.
type Attribute struct {
	Name    string
	Type    AttributeType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	G       *Graph
	Floats  []float32
	Ints    []int64
	Strings [][]byte
	Tensors []*Tensor
	Graphs  []*Graph

	unknown []byte
}

// Tensor is an ONNX TensorProto. The values live in exactly one of RawData
// (little-endian, the usual choice) or the typed *Data field that matches
// DataType.
type Tensor struct {
	Name       string
	Dims       []int64
	DataType   DataType
	RawData    []byte
	FloatData  []float32
	Int32Data  []int32
	Int64Data  []int64
	DoubleData []float64
	StringData [][]byte
	DocString  string

	external bool // data_location == EXTERNAL
	unknown  []byte
}

// ValueInfo is an ONNX ValueInfoProto whose type is a tensor type: element
// type plus an optional shape. HasShape distinguishes "rank unknown"
// (false) from a known shape, which for a scalar has no dims.
//
// A value whose type is not a tensor (sequence, map, optional, sparse
// tensor) decodes with ElemType 0 and HasShape false; its type is kept as
// raw bytes and written back unchanged as long as ElemType and HasShape stay
// unset.
type ValueInfo struct {
	Name      string
	DocString string
	ElemType  DataType
	Shape     []Dim
	HasShape  bool

	rawType []byte // non-tensor TypeProto, re-emitted verbatim
	unknown []byte
}

// Dim is one dimension of a tensor shape. A non-empty Param is a symbolic
// dimension (e.g. "batch"); otherwise Value is the fixed size. A dimension
// with neither set in the file decodes as Value -1, Param "", and any
// negative Value with an empty Param is written as such an unknown
// dimension.
type Dim struct {
	Value int64
	Param string
}

// Metadata returns the model's metadata_props as a map. When a key occurs
// more than once the last entry wins.
func (m *Model) Metadata() map[string]string {
	out := make(map[string]string, len(m.MetadataProps))
	for _, e := range m.MetadataProps {
		out[e.Key] = e.Value
	}
	return out
}

// FieldError reports a problem with one field while encoding or decoding.
// Path names the field from the model root, e.g. "graph.node[3].attribute[1]"
// (empty for the model itself).
type FieldError struct {
	Op   string // "decode" or "encode"
	Path string
	Err  error
}

// Error formats the error as "onnxpb: <op> <path>: <err>".
func (e *FieldError) Error() string {
	p := e.Path
	if p == "" {
		p = "model"
	}
	return "onnxpb: " + e.Op + " " + p + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// within prefixes err's path with seg; err of another type becomes a
// FieldError at seg.
func within(op, seg string, err error) error {
	if fe, ok := err.(*FieldError); ok {
		if fe.Path == "" {
			fe.Path = seg
		} else {
			fe.Path = seg + "." + fe.Path
		}
		return fe
	}
	return &FieldError{Op: op, Path: seg, Err: err}
}

func idx(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }
