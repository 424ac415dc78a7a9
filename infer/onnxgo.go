package infer

import (
	"context"
	"fmt"
	"os"
	"sync"

	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// onnxGoEncoder runs a model with the pure-Go onnx-go + gorgonia runtime.
//
// onnx-go v0.5.0's Gemm, at batch 1, accumulates into its own bias tensor,
// so running a decoded model twice drifts. The encoder therefore decodes the
// model afresh for every run and never reuses a decoded graph.
type onnxGoEncoder struct {
	mu     sync.Mutex // serialises runs; gorgonia is not known to be goroutine-safe
	raw    []byte     // the model file; decoded afresh per run
	info   Info
	output int // index of the chosen output among the graph's outputs
	path   string
	closed bool
}

// OpenOnnxGo loads the ONNX model at path for the pure-Go onnx-go runtime
// (backend gorgonia). It supports fewer operators than ONNX Runtime and is
// 10-100x slower: use it for parity checks, not serving. The encoder is
// goroutine-safe, but its Encode calls run one at a time. Each run decodes
// the model again (see the Gemm note on the type); Open does one trial build
// of the graph so that unsupported operators are reported here. The output
// used is the graph's first.
func OpenOnnxGo(path string) (Encoder, error) {
	if err := checkModelFile(path); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("infer: model file: %w", err)
	}
	m, err := onnxpb.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("infer: model %s is not a valid ONNX file: %w", path, err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("infer: model %s has no graph", path)
	}
	g := m.Graph
	inits := make(map[string]bool, len(g.Initializers))
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	var inputs []*onnxpb.ValueInfo
	for _, in := range g.Inputs {
		if !inits[in.Name] {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		names := make([]string, len(inputs))
		for i, in := range inputs {
			names[i] = in.Name
		}
		return nil, fmt.Errorf("infer: model %s has %d inputs %q; expected exactly 1 (NCHW images)", path, len(inputs), names)
	}
	if g.Inputs[0] != inputs[0] {
		return nil, fmt.Errorf("infer: model %s lists initializers before its input %q; onnx-go needs the image input first", path, inputs[0].Name)
	}
	e := &onnxGoEncoder{raw: raw, path: path}
	if err := checkElem(inputs[0], "input"); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if err := inputInfo(inputs[0].Name, dims(inputs[0]), &e.info); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if len(g.Outputs) == 0 {
		return nil, fmt.Errorf("infer: model %s has no outputs", path)
	}
	out := g.Outputs[0]
	if err := checkElem(out, "output"); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if err := outputInfo(out.Name, dims(out), &e.info); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	e.info.Metadata = m.Metadata()

	// Trial build with a batch of zeros, when C/H/W are declared: it reports
	// unsupported operators now rather than at the first Encode.
	s := e.info.InputShape
	if s[1] > 0 && s[2] > 0 && s[3] > 0 {
		b := max(e.info.FixedBatch, 1)
		shape := []int{b, int(s[1]), int(s[2]), int(s[3])}
		if err := e.build(make([]float32, b*shape[1]*shape[2]*shape[3]), shape, nil); err != nil {
			return nil, fmt.Errorf("infer: onnx-go cannot build %s: %w", path, err)
		}
	}
	return e, nil
}

func dims(v *onnxpb.ValueInfo) []int64 {
	if !v.HasShape {
		return nil
	}
	d := make([]int64, len(v.Shape))
	for i, x := range v.Shape {
		if x.Param != "" || x.Value <= 0 {
			d[i] = -1
		} else {
			d[i] = x.Value
		}
	}
	return d
}

func checkElem(v *onnxpb.ValueInfo, what string) error {
	if v.ElemType != onnxpb.DataTypeFloat {
		return fmt.Errorf("infer: model %s %q has element type %s, expected FLOAT (float32)", what, v.Name, v.ElemType)
	}
	return nil
}

// build decodes the model afresh and sets its input. With outs nil it only
// builds the gorgonia graph; otherwise it runs it and stores the outputs. Panics inside onnx-go or gorgonia come
// back as errors.
func (e *onnxGoEncoder) build(data []float32, shape []int, outs *[]tensor.Tensor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("onnx-go panicked: %v", r)
		}
	}()
	backend := gorgonnx.NewGraph()
	model := onnx.NewModel(backend)
	if err := model.UnmarshalBinary(e.raw); err != nil {
		return fmt.Errorf("onnx-go decode: %w", err)
	}
	in := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	if err := model.SetInput(0, in); err != nil {
		return fmt.Errorf("onnx-go set input: %w", err)
	}
	if outs == nil {
		if _, err := backend.GetExprGraph(); err != nil {
			return fmt.Errorf("onnx-go graph: %w", err)
		}
		return nil
	}
	if err := backend.Run(); err != nil {
		return fmt.Errorf("onnx-go run: %w", err)
	}
	*outs, err = model.GetOutputTensors()
	if err != nil {
		return fmt.Errorf("onnx-go outputs: %w", err)
	}
	return nil
}

// Encode runs the model on x, decoding it afresh for every chunk.
func (e *onnxGoEncoder) Encode(ctx context.Context, x Images) (Vectors, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Vectors{}, fmt.Errorf("infer: encoder for %s is closed", e.path)
	}
	if err := checkInput(x, e.info); err != nil {
		return Vectors{}, err
	}
	return encodeChunks(ctx, x, e.info, MaxChunk, e.run)
}

func (e *onnxGoEncoder) run(data []float32, in []int64) ([]float32, []int64, error) {
	shape := make([]int, len(in))
	for i, d := range in {
		shape[i] = int(d)
	}
	var outs []tensor.Tensor
	// onnx-go may write into its input; give it a copy of the caller's data.
	if err := e.build(append([]float32(nil), data...), shape, &outs); err != nil {
		return nil, nil, err
	}
	if len(outs) <= e.output || outs[e.output] == nil {
		return nil, nil, fmt.Errorf("onnx-go returned %d outputs, expected output %q", len(outs), e.info.OutputName)
	}
	t := outs[e.output]
	vals, ok := t.Data().([]float32)
	if !ok {
		return nil, nil, fmt.Errorf("onnx-go output %q holds %T, expected []float32", e.info.OutputName, t.Data())
	}
	ts := t.Shape()
	oshape := make([]int64, len(ts))
	for i, d := range ts {
		oshape[i] = int64(d)
	}
	return vals, oshape, nil
}

// Info returns a copy of the model's description.
func (e *onnxGoEncoder) Info() Info { return cloneInfo(e.info) }

// Close marks the encoder closed; the model bytes are released.
func (e *onnxGoEncoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.raw = nil
	return nil
}
