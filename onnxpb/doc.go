// Package onnxpb reads and writes ONNX model files (the ModelProto protobuf
// message) with plain Go structs.
//
// The encoder and decoder are written by hand on top of
// google.golang.org/protobuf/encoding/protowire; no generated code and no
// protobuf registry are involved, so this package can live in the same
// binary as other ONNX libraries that register their own onnx.proto.
//
// Only the parts of ONNX that this project needs are exposed as struct
// fields: models, graphs, nodes, attributes, tensors and tensor-typed value
// infos. Every other field found in a file (functions, training info,
// sparse tensors, external-data descriptors, ...) is kept as raw bytes in the
// message it belongs to and written back unchanged by Marshal, so decoding
// and re-encoding a file produced by another tool does not lose it.
//
// Decoding never panics on malformed input. Errors are *FieldError values
// whose Path names the offending field, for example
// "graph.node[3].attribute[1].ints: truncated varint".
package onnxpb
