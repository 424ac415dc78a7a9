// Package infer runs ONNX image encoders: a batch of NCHW float32 images in,
// a batch of representation vectors out.
//
// Two runtimes are offered behind one Encoder interface:
//
//   - OpenORT uses ONNX Runtime (the CPU library that scripts/setup.sh puts in
//     .deps/onnxruntime, or a CUDA build with Options.Device "cuda"). It is
//     the runtime for serving and evaluation, and is goroutine-safe.
//   - OpenOnnxGo uses the pure-Go onnx-go/gorgonia runtime. It is 10-100x
//     slower and is meant for parity checks against ONNX Runtime, not serving.
//
// Both discover the model's input and output names and shapes from the file,
// so models written by other tools load as long as they take one float32
// NCHW input and give a [N, D] (or [N, D, 1, 1]) float32 output. A model with
// a fixed batch size is fed in chunks of that size, the last chunk padded
// with zeros and the padded rows dropped; other models are fed in chunks of
// at most MaxChunk images to bound memory. Context cancellation is checked
// between chunks.
//
// ONNX Runtime is loaded once per process: the first OpenORT call fixes the
// library (see LibraryPath), and a failure to load it is returned to every
// later caller.
package infer
