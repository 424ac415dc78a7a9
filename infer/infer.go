package infer

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxChunk is the largest number of images handed to a runtime in one run
// when the model's batch size is dynamic. Larger batches are split.
const MaxChunk = 256

// Images is a batch of N images, float32 NCHW.
type Images struct {
	N, C, H, W int
	Data       []float32
}

// Validate checks that the dimensions are sensible (N >= 0; C, H, W > 0) and
// that len(Data) == N*C*H*W. NaN and infinite values are allowed.
func (x Images) Validate() error {
	if x.N < 0 {
		return fmt.Errorf("infer: images: N must be >= 0, found N=%d", x.N)
	}
	if x.C <= 0 || x.H <= 0 || x.W <= 0 {
		return fmt.Errorf("infer: images: C, H and W must be positive, found C=%d H=%d W=%d", x.C, x.H, x.W)
	}
	per := int64(x.C) * int64(x.H) * int64(x.W)
	if per > math.MaxInt32 || (x.N > 0 && int64(x.N) > math.MaxInt64/per) {
		return fmt.Errorf("infer: images: N*C*H*W overflows (N=%d C=%d H=%d W=%d)", x.N, x.C, x.H, x.W)
	}
	if want := int64(x.N) * per; int64(len(x.Data)) != want {
		return fmt.Errorf("infer: images: len(Data) = %d, expected N*C*H*W = %d*%d*%d*%d = %d",
			len(x.Data), x.N, x.C, x.H, x.W, want)
	}
	return nil
}

// Vectors is a batch of N representations of dimension D, row-major.
type Vectors struct {
	N, D int
	Data []float32
}

// Row returns the i-th vector (a sub-slice of Data, not a copy).
// It panics if i is out of range, like a slice index.
func (v Vectors) Row(i int) []float32 { return v.Data[i*v.D : (i+1)*v.D] }

// Encoder turns a batch of images into a batch of vectors. Implementations
// say whether they are goroutine-safe.
type Encoder interface {
	// Encode runs the model on x. The result has x.N rows.
	Encode(ctx context.Context, x Images) (Vectors, error)
	// Info describes the model's input and output.
	Info() Info
	// Close releases the runtime's resources. Encode fails after Close.
	Close() error
}

// Info describes an encoder's input and output, discovered from the model file.
type Info struct {
	InputName  string
	OutputName string
	// InputShape is the declared NCHW input shape; -1 marks a dynamic dimension.
	InputShape []int64
	// OutputDim is the declared representation dimension D, 0 if dynamic.
	OutputDim int
	// FixedBatch is the model's fixed batch size, 0 if the batch is dynamic.
	FixedBatch int
	// Metadata holds the model's metadata_props (custom metadata).
	Metadata map[string]string
}

// Options configure OpenORT.
type Options struct {
	// Threads is the number of intra-op threads; 0 = number of cores.
	Threads int
	// Device is "cpu" (default, also "") or "cuda" / "cuda:N" for GPU N.
	Device string
	// Library is the path of libonnxruntime.so; "" resolves it with LibraryPath.
	Library string
	// Output names the output to use when the model has several; "" = first.
	Output string
	// NoSpin stops ONNX Runtime's intra-op threads from spin-waiting for work between and
	// within runs (they spin by default). A server wants this: its request handling shares
	// the cores with the model, and spinning threads take them away.
	NoSpin bool
}

// shapeString formats a shape as [a, b, ...] with "?" for dynamic dimensions.
func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// inputInfo checks a declared input shape and fills the input part of info.
func inputInfo(name string, shape []int64, info *Info) error {
	if len(shape) != 4 {
		return fmt.Errorf("infer: model input %q has shape %s (rank %d); expected rank 4 NCHW images",
			name, shapeString(shape), len(shape))
	}
	info.InputName = name
	info.InputShape = make([]int64, 4)
	for i, d := range shape {
		if d <= 0 {
			d = -1
		}
		info.InputShape[i] = d
	}
	if info.InputShape[0] > 0 {
		info.FixedBatch = int(info.InputShape[0])
	}
	return nil
}

// outputInfo checks a declared output shape and fills the output part of info.
// A shape of unknown rank (nil) is accepted and checked at run time.
func outputInfo(name string, shape []int64, info *Info) error {
	info.OutputName = name
	bad := func() error {
		return fmt.Errorf("infer: model output %q has shape %s; expected [N, D] or [N, D, 1, 1]",
			name, shapeString(shape))
	}
	switch len(shape) {
	case 0:
		if shape == nil {
			return nil
		}
		return bad()
	case 2:
	case 4:
		for _, d := range shape[2:] {
			if d > 1 {
				return bad()
			}
		}
	default:
		return bad()
	}
	if shape[1] > 0 {
		info.OutputDim = int(shape[1])
	}
	return nil
}

// checkInput validates x against the model's declared input shape.
func checkInput(x Images, info Info) error {
	if err := x.Validate(); err != nil {
		return err
	}
	got := [3]int{x.C, x.H, x.W}
	for i, name := range [3]string{"C", "H", "W"} {
		want := info.InputShape[i+1]
		if want > 0 && int64(got[i]) != want {
			return fmt.Errorf("infer: input %q expects %s=%d (model shape %s), found %s=%d (images %dx%dx%dx%d)",
				info.InputName, name, want, shapeString(info.InputShape), name, got[i], x.N, x.C, x.H, x.W)
		}
	}
	return nil
}

// vectorDim checks a run's output shape against the batch it was given and
// returns D.
func vectorDim(name string, shape []int64, batch int) (int, error) {
	ok := (len(shape) == 2 || (len(shape) == 4 && shape[2] == 1 && shape[3] == 1)) &&
		shape[0] == int64(batch) && shape[1] > 0
	if !ok {
		return 0, fmt.Errorf("infer: output %q has shape %s for a batch of %d; expected [%d, D] or [%d, D, 1, 1]",
			name, shapeString(shape), batch, batch, batch)
	}
	return int(shape[1]), nil
}

// runFunc runs a model on the images in data, whose NCHW shape is in, and
// returns the output values and their shape.
type runFunc func(data []float32, in []int64) ([]float32, []int64, error)

// encodeChunks feeds x to run in chunks: of info.FixedBatch images (the last
// one zero-padded) when the batch is fixed, else of at most maxChunk images.
func encodeChunks(ctx context.Context, x Images, info Info, maxChunk int, run runFunc) (Vectors, error) {
	if err := ctx.Err(); err != nil {
		return Vectors{}, fmt.Errorf("infer: encode not started: %w", err)
	}
	if x.N == 0 {
		return Vectors{N: 0, D: info.OutputDim, Data: []float32{}}, nil
	}
	per := x.C * x.H * x.W
	step := maxChunk
	if info.FixedBatch > 0 {
		step = info.FixedBatch
	}
	var out []float32
	d := 0
	for start := 0; start < x.N; start += step {
		if start > 0 {
			if err := ctx.Err(); err != nil {
				return Vectors{}, fmt.Errorf("infer: encode stopped after %d of %d images: %w", start, x.N, err)
			}
		}
		n := min(step, x.N-start)
		data, batch := x.Data[start*per:(start+n)*per], n
		if info.FixedBatch > 0 && n < step {
			padded := make([]float32, step*per)
			copy(padded, data)
			data, batch = padded, step
		}
		vals, shape, err := run(data, []int64{int64(batch), int64(x.C), int64(x.H), int64(x.W)})
		if err != nil {
			return Vectors{}, fmt.Errorf("infer: images %d..%d of %d: %w", start, start+n-1, x.N, err)
		}
		cd, err := vectorDim(info.OutputName, shape, batch)
		if err != nil {
			return Vectors{}, err
		}
		if len(vals) != batch*cd {
			return Vectors{}, fmt.Errorf("infer: output %q has %d values, expected %d for shape %s",
				info.OutputName, len(vals), batch*cd, shapeString(shape))
		}
		if out == nil {
			d = cd
			out = make([]float32, 0, x.N*d)
		} else if cd != d {
			return Vectors{}, fmt.Errorf("infer: output %q changed dimension between chunks: %d then %d", info.OutputName, d, cd)
		}
		out = append(out, vals[:n*d]...)
	}
	return Vectors{N: x.N, D: d, Data: out}, nil
}

// cloneInfo returns a copy of info that shares no slices or maps with it.
func cloneInfo(info Info) Info {
	c := info
	c.InputShape = append([]int64(nil), info.InputShape...)
	c.Metadata = make(map[string]string, len(info.Metadata))
	for k, v := range info.Metadata {
		c.Metadata[k] = v
	}
	return c
}

// Similarity compares a and b row by row (the representations of the same images, in the
// same order) and returns the mean cosine similarity (a zero row has cosine 0 with anything)
// and the mean Euclidean distance of matching rows. Both must be N x D with N >= 1.
func Similarity(a, b Vectors) (meanCos, meanL2 float64, err error) {
	for _, v := range []struct {
		name string
		x    Vectors
	}{{"first", a}, {"second", b}} {
		if v.x.N < 1 || v.x.D < 1 || len(v.x.Data) != v.x.N*v.x.D {
			return 0, 0, fmt.Errorf("infer: similarity: %s batch is %d x %d with %d values: expected N, D >= 1 and N*D values", v.name, v.x.N, v.x.D, len(v.x.Data))
		}
	}
	if a.N != b.N || a.D != b.D {
		return 0, 0, fmt.Errorf("infer: similarity: batches are %d x %d and %d x %d: expected the same shape", a.N, a.D, b.N, b.D)
	}
	for i := range a.N {
		ra, rb := a.Row(i), b.Row(i)
		var dot, na, nb, dist float64
		for j := range ra {
			x, y := float64(ra[j]), float64(rb[j])
			dot += x * y
			na += x * x
			nb += y * y
			dist += (x - y) * (x - y)
		}
		if na > 0 && nb > 0 {
			meanCos += dot / math.Sqrt(na*nb)
		}
		meanL2 += math.Sqrt(dist)
	}
	return meanCos / float64(a.N), meanL2 / float64(a.N), nil
}

// PartialError is an Encode failure after part of the batch was answered: the returned
// Vectors hold the first Answered rows. A remote victim that bills per answer has been paid
// for them, so a caller should keep them.
type PartialError struct {
	Answered int
	Err      error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("after %d answered images: %v", e.Answered, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// RequestKeys names the parts of one Encode call for a remote victim: the idempotency key of
// the request carrying images [lo, hi) of the batch. Deterministic keys let a resumed
// client repeat exactly the requests whose answers it lost, without paying for them twice.
type RequestKeys func(lo, hi int) string

type requestKeysCtx struct{}

// WithRequestKeys returns ctx carrying keys for the Encode calls made with it.
func WithRequestKeys(ctx context.Context, keys RequestKeys) context.Context {
	return context.WithValue(ctx, requestKeysCtx{}, keys)
}

// RequestKeysFrom returns the keys ctx carries, or nil.
func RequestKeysFrom(ctx context.Context) RequestKeys {
	k, _ := ctx.Value(requestKeysCtx{}).(RequestKeys)
	return k
}
