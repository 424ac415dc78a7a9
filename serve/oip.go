package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Open Inference Protocol v2 (KServe / Triton) messages. Only what an image encoder needs:
// one FP32 input tensor, one FP32 output tensor, JSON tensor data (flat or nested).

// Platform is what the model metadata reports as the serving platform.
const Platform = "onnxruntime_onnx"

// TensorMetadata describes one input or output in the v2 model metadata.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata is the body of GET /v2/models/{name}.
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
	// Parameters is an extension: "normalization" (the input normalisation the model
	// expects, from its metadata, when it declares one) and "max_images" (per request).
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferTensor is one tensor of a v2 inference request or response.
type InferTensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	// Data holds the values: in requests, flat or nested JSON arrays of numbers.
	Data json.RawMessage `json:"data"`
}

// InferRequest is the body of POST /v2/models/{name}/infer.
type InferRequest struct {
	ID      string           `json:"id,omitempty"`
	Inputs  []InferTensor    `json:"inputs"`
	Outputs []map[string]any `json:"outputs,omitempty"`
}

// InferOutput is one output tensor of a v2 inference response.
type InferOutput struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float32 `json:"data"`
}

// InferResponse is the body answered by POST /v2/models/{name}/infer.
type InferResponse struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version,omitempty"`
	ID           string        `json:"id,omitempty"`
	Outputs      []InferOutput `json:"outputs"`
}

// parseInfer validates a v2 request against the model and returns its images.
func (s inputSpec) parseInfer(body []byte, inputName, outputName string) (infer.Images, string, error) {
	var req InferRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return infer.Images{}, "", badRequest("bad_json", "request body is not a v2 inference request: %v", jsonErr(err))
	}
	if len(req.Inputs) != 1 {
		return infer.Images{}, "", badRequest("bad_inputs", "%d input tensors: expected exactly 1 (%q)", len(req.Inputs), inputName)
	}
	in := req.Inputs[0]
	if in.Name != inputName {
		return infer.Images{}, "", badRequest("unknown_input", "input %q: the model's input is %q", in.Name, inputName)
	}
	if in.Datatype != "FP32" {
		return infer.Images{}, "", badRequest("bad_datatype", "input %q datatype %q: expected FP32", in.Name, in.Datatype)
	}
	for i, o := range req.Outputs {
		if name, _ := o["name"].(string); name != outputName {
			return infer.Images{}, "", badRequest("unknown_output", "outputs[%d] %q: the model's output is %q", i, o["name"], outputName)
		}
	}
	n, err := s.checkShape(in.Shape)
	if err != nil {
		return infer.Images{}, "", err
	}
	want := n * s.C * s.H * s.W
	vals, err := flattenNumbers(in.Data, want)
	if err != nil {
		return infer.Images{}, "", badRequest("bad_data", "input %q data: %v", in.Name, err)
	}
	if len(vals) != want {
		return infer.Images{}, "", badRequest("bad_length", "input %q: shape %v needs %d values, data has %d", in.Name, in.Shape, want, len(vals))
	}
	x := infer.Images{N: n, C: s.C, H: s.H, W: s.W, Data: vals}
	return x, req.ID, checkFinite(x.Data, s)
}

// flattenNumbers reads a JSON number or (nested) array of numbers in order. It stops with
// an error past limit values, so a huge body cannot make it allocate more than the shape
// promised. raw is valid JSON (encoding/json checked the whole body); this scanner only walks
// it, about 10x faster than json.Decoder's tokens, which box every number.
func flattenNumbers(raw json.RawMessage, limit int) ([]float32, error) {
	p := numScanner{b: raw, limit: limit, out: make([]float32, 0, min(limit, 1<<20))}
	if p.skipSpace() == 0 {
		return nil, errors.New(`missing "data"`)
	}
	if err := p.value(0); err != nil {
		return nil, err
	}
	if p.skipSpace() != 0 {
		return nil, fmt.Errorf("data after value %d", len(p.out))
	}
	return p.out, nil
}

type numScanner struct {
	b     []byte
	i     int
	limit int
	out   []float32
}

// skipSpace skips JSON whitespace and returns the next byte (0 at the end).
func (p *numScanner) skipSpace() byte {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return c
		}
	}
	return 0
}

func (p *numScanner) value(depth int) error {
	switch c := p.skipSpace(); {
	case c == '[':
		if depth == 8 {
			return errors.New("arrays nested deeper than 8 levels")
		}
		p.i++
		if p.skipSpace() == ']' {
			p.i++
			return nil
		}
		for {
			if err := p.value(depth + 1); err != nil {
				return err
			}
			switch p.skipSpace() {
			case ',':
				p.i++
			case ']':
				p.i++
				return nil
			default:
				return fmt.Errorf("after value %d: expected ',' or ']'", len(p.out))
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		j := p.i
		for j < len(p.b) && strings.IndexByte("+-.eE0123456789", p.b[j]) >= 0 {
			j++
		}
		num := string(p.b[p.i:j])
		p.i = j
		if len(p.out) == p.limit {
			return fmt.Errorf("more than the %d values the shape needs", p.limit)
		}
		f, err := strconv.ParseFloat(num, 32)
		if err != nil || math.IsInf(f, 0) {
			return fmt.Errorf("value %d (%s) is not a finite float32", len(p.out), num)
		}
		p.out = append(p.out, float32(f))
		return nil
	case c == '{':
		return errors.New(`found "{": expected numbers in arrays`)
	case c == 0:
		return errors.New("unexpected end of data")
	default:
		return fmt.Errorf("value %d is not a number (%.10q...): expected a number", len(p.out), p.b[p.i:min(p.i+10, len(p.b))])
	}
}

// jsonErr makes encoding/json errors readable.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: found a JSON %s, expected %s", te.Field, te.Value, te.Type)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func (s *Server) modelMetadata() ModelMetadata {
	in := []int64{-1, int64(s.spec.C), int64(s.spec.H), int64(s.spec.W)}
	params := map[string]any{"max_images": s.spec.maxImages}
	if n := s.info.Metadata["normalization"]; n != "" {
		params["normalization"] = n
	}
	return ModelMetadata{
		Name: s.name, Versions: []string{"1"}, Platform: Platform,
		Inputs:     []TensorMetadata{{Name: s.info.InputName, Datatype: "FP32", Shape: in}},
		Outputs:    []TensorMetadata{{Name: s.info.OutputName, Datatype: "FP32", Shape: []int64{-1, int64(s.dim)}}},
		Parameters: params,
	}
}

// modelFromPath checks the {name} (and optional {version}) path values.
func (s *Server) modelFromPath(r *http.Request) error {
	if name := r.PathValue("name"); name != s.name {
		return errorf(http.StatusNotFound, "unknown_model", "model %q not found: this server serves %q", name, s.name)
	}
	if v := r.PathValue("version"); v != "" && v != "1" {
		return errorf(http.StatusNotFound, "unknown_version", "model %q version %q not found: the only version is \"1\"", s.name, v)
	}
	return nil
}
