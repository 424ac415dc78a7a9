package watermark

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// Hidden layer widths of the secret head: dim -> Hidden1 -> Hidden2 -> Classes, ReLU between.
const (
	Hidden1 = 256
	Hidden2 = 128
)

// Classes is the number of watermark classes (rotation in [0,180) or [180,360) degrees).
const Classes = 2

// Format names the secret-file format in the JSON sidecar.
const Format = "ssl-onnx watermark head v1"

// maxDim bounds the representation dimension a head accepts.
const maxDim = 1 << 20

// Protocol describes a secret head and how it was trained: the JSON sidecar written next to
// the weights by Save.
type Protocol struct {
	Format  string `json:"format"`
	Weights string `json:"weights"` // file name of the .ot weights, next to the sidecar
	Dim     int    `json:"dim"`     // representation dimension d (the head's input)
	Hidden  []int  `json:"hidden"`
	Classes int    `json:"classes"`
	// AngleRanges[k] is the half-open range of rotation angles, in degrees, of class k.
	AngleRanges [][2]float64 `json:"angle_ranges"`
	Rotation    string       `json:"rotation"` // how images are rotated (see Rotate)
	// ImageSize is the encoder's input height = width the watermark was embedded at (0 =
	// unknown); the trainer sets it before Save.
	ImageSize int `json:"image_size,omitempty"`
	// Normalization is the input normalisation used in training ("none" = pixels in [0,1]);
	// rotation is applied before it.
	Normalization string `json:"normalization,omitempty"`
	Seed          int64  `json:"seed"` // seed of the head's initial weights
}

// defaultProtocol is the protocol of a new head of input dimension dim.
func defaultProtocol(dim int, seed int64) Protocol {
	return Protocol{
		Format:      Format,
		Dim:         dim,
		Hidden:      []int{Hidden1, Hidden2},
		Classes:     Classes,
		AngleRanges: [][2]float64{{0, 180}, {180, 360}},
		Rotation:    "about the image centre, counter-clockwise for positive angles, bilinear, zero fill (torchvision F.rotate)",
		Seed:        seed,
	}
}

// Head is the owner's secret rotation classifier: an MLP dim -> 256 -> 128 -> 2 with ReLU
// between the layers, its weights in its own gotch VarStore (named as the state dict of
// torch.nn.Sequential(Linear, ReLU, Linear, ReLU, Linear): "0.weight", ..., "4.bias").
type Head struct {
	Protocol Protocol
	VS       *nn.VarStore
	Device   gotch.Device
	mlp      *torchnet.MLP
}

// NewHead creates a head for representations of dimension dim on device, initialised as
// torch.nn.Linear does (weights and biases U(+-1/sqrt(fan_in))) from a Go random stream seeded
// by seed, so the same seed gives the same head everywhere.
func NewHead(dim int, device gotch.Device, seed int64) (h *Head, err error) {
	if dim <= 0 || dim > maxDim {
		return nil, fmt.Errorf("watermark: head input dimension %d: expected 1..%d", dim, maxDim)
	}
	defer recoverTorch(&err)
	vs := nn.NewVarStore(device)
	h = &Head{Protocol: defaultProtocol(dim, seed), VS: vs, Device: device}
	if h.mlp, err = torchnet.NewMLP(vs, []int{dim, Hidden1, Hidden2, Classes}, seed); err != nil {
		vs.Destroy()
		return nil, fmt.Errorf("watermark: head: %w", err)
	}
	return h, nil
}

// recoverTorch turns a panic from gotch (a libtorch error) into an error.
func recoverTorch(err *error) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("watermark: libtorch: %w", e)
		} else {
			*err = fmt.Errorf("watermark: libtorch: %v", r)
		}
	}
}

// Dim is the representation dimension the head takes.
func (h *Head) Dim() int { return h.Protocol.Dim }

// checkReps validates a representation batch for the head without calling libtorch (whose
// errors in gotch's Must functions are fatal) and returns its row count.
func (h *Head) checkReps(x *ts.Tensor) (int64, error) {
	if h == nil || h.VS == nil {
		return 0, errors.New("watermark: head is nil or closed")
	}
	if x == nil || !x.MustDefined() {
		return 0, errors.New("watermark: head input is nil or undefined")
	}
	if x.DType() != gotch.Float {
		return 0, fmt.Errorf("watermark: head input has dtype %v, expected float32", x.DType())
	}
	sz, err := x.Size()
	if err != nil {
		return 0, fmt.Errorf("watermark: head input: %w", err)
	}
	if len(sz) != 2 || sz[1] != int64(h.Protocol.Dim) {
		return 0, fmt.Errorf("watermark: head input has shape %v, expected N x %d (the encoder's representation dimension must equal the head's)", sz, h.Protocol.Dim)
	}
	if d := x.MustDevice(); !sameDevice(d, h.Device) {
		return 0, fmt.Errorf("watermark: head input is on %v, the head on %v", d, h.Device)
	}
	return sz[0], nil
}

// sameDevice reports whether a and b name the same device (gotch's CPU value differs between
// gotch.CPU and a tensor's reported device).
func sameDevice(a, b gotch.Device) bool {
	return a.Name == b.Name && (a.Name == gotch.CPU.Name || a.Value == b.Value)
}

// Forward returns the head's logits (N x 2) for representations x (N x dim, float32, on the
// head's device), recording autograd history when grad mode is on. As torchnet.Model.Forward,
// it panics, with an error value, on a bad input (wrong rank, width, dtype or device): call it
// inside a function that recovers, as train's step does. The caller owns the result.
func (h *Head) Forward(x *ts.Tensor) *ts.Tensor {
	if _, err := h.checkReps(x); err != nil {
		panic(err)
	}
	out := h.mlp.Forward(x)
	runtime.KeepAlive(h.VS)
	return out
}

// Trainable returns the head's parameters in layer order (weight, bias of each layer), to be
// appended to the optimiser's parameters.
func (h *Head) Trainable() []*ts.Tensor {
	return h.mlp.Trainable()
}

// Loss is the watermark loss: the mean cross-entropy of the head's logits on reps (N x dim,
// the encoder's representations of rotated images, with autograd history so the encoder gets
// the gradient too) against labels (N values in {0, 1}, from RotationBatch). Like Forward it
// panics with an error value on bad input (checked before any libtorch call); call it inside a
// function that recovers. The caller owns the result (a scalar).
func Loss(head *Head, reps *ts.Tensor, labels []int64) *ts.Tensor {
	n, err := head.checkReps(reps)
	if err != nil {
		panic(err)
	}
	if n == 0 || int64(len(labels)) != n {
		panic(fmt.Errorf("watermark: loss: %d representations and %d labels, expected the same positive number", n, len(labels)))
	}
	for i, l := range labels {
		if l < 0 || l >= Classes {
			panic(fmt.Errorf("watermark: loss: label %d of image %d, expected 0..%d", l, i, Classes-1))
		}
	}
	logits := head.Forward(reps)
	targets := ts.MustOfSlice(labels)
	if head.Device != gotch.CPU {
		targets = targets.MustTo(head.Device, true)
	}
	loss := logits.CrossEntropyForLogits(targets)
	logits.MustDrop()
	targets.MustDrop()
	return loss
}

// Logits runs the head in inference mode (no autograd) on n representations of dimension
// Dim() given row-major in reps, and returns the n x 2 logits row-major.
func (h *Head) Logits(reps []float32, n int) (out []float32, err error) {
	if h == nil || h.VS == nil {
		return nil, errors.New("watermark: head is nil or closed")
	}
	d := h.Protocol.Dim
	if n < 0 || int64(len(reps)) != int64(n)*int64(d) {
		return nil, fmt.Errorf("watermark: logits: got %d values for %d representations of dimension %d (the encoder's output dimension must equal the head's)", len(reps), n, d)
	}
	if n == 0 {
		return nil, nil
	}
	defer recoverTorch(&err)
	torchnet.NoGrad(func() {
		x := ts.MustOfSlice(reps).MustView([]int64{int64(n), int64(d)}, true)
		if h.Device != gotch.CPU {
			x = x.MustTo(h.Device, true)
		}
		y := h.Forward(x).MustTo(gotch.CPU, true).MustContiguous(true)
		x.MustDrop()
		out = make([]float32, n*Classes)
		y.MustCopyData(out, uint(len(out)))
		y.MustDrop()
	})
	return out, nil
}

// Predict returns the predicted class (argmax of the logits) of each of the n representations.
func (h *Head) Predict(reps []float32, n int) ([]int64, error) {
	lg, err := h.Logits(reps, n)
	if err != nil {
		return nil, err
	}
	pred := make([]int64, n)
	for i := range pred {
		if lg[i*Classes+1] > lg[i*Classes] {
			pred[i] = 1
		}
	}
	return pred, nil
}

// SidecarPath is the path of the JSON sidecar of the secret weights at path.
func SidecarPath(path string) string { return path + ".json" }

// Save writes the secret: the weights as a gotch .ot file at path and the Protocol as JSON at
// SidecarPath(path).
func (h *Head) Save(path string) error {
	if h == nil || h.VS == nil {
		return errors.New("watermark: save: head is nil or closed")
	}
	if path == "" {
		return errors.New("watermark: save: empty path")
	}
	if err := h.VS.Save(path); err != nil {
		return fmt.Errorf("watermark: save %s: %w", path, err)
	}
	p := h.Protocol
	p.Weights = filepath.Base(path)
	js, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("watermark: save %s: %w", SidecarPath(path), err)
	}
	if err := os.WriteFile(SidecarPath(path), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("watermark: save: %w", err)
	}
	return nil
}

// LoadHead reads a secret written by Save (path is the .ot file; its sidecar is
// SidecarPath(path)) onto the CPU.
func LoadHead(path string) (*Head, error) { return LoadHeadOn(path, gotch.CPU) }

// LoadHeadOn is LoadHead onto device.
func LoadHeadOn(path string, device gotch.Device) (h *Head, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("watermark: secret weights: %w", err)
	}
	side := SidecarPath(path)
	js, err := os.ReadFile(side)
	if err != nil {
		return nil, fmt.Errorf("watermark: secret %s: its protocol sidecar (written next to it by Save): %w", path, err)
	}
	var p Protocol
	if err := json.Unmarshal(js, &p); err != nil {
		return nil, fmt.Errorf("watermark: secret sidecar %s: %w", side, err)
	}
	switch {
	case p.Format != Format:
		return nil, fmt.Errorf("watermark: secret sidecar %s: format %q, expected %q", side, p.Format, Format)
	case p.Dim <= 0 || p.Dim > maxDim:
		return nil, fmt.Errorf("watermark: secret sidecar %s: dim %d, expected 1..%d", side, p.Dim, maxDim)
	case !slices.Equal(p.Hidden, []int{Hidden1, Hidden2}) || p.Classes != Classes:
		return nil, fmt.Errorf("watermark: secret sidecar %s: layers %v -> %d classes, this version supports [%d %d] -> %d", side, p.Hidden, p.Classes, Hidden1, Hidden2, Classes)
	}
	h, err = NewHead(p.Dim, device, p.Seed)
	if err != nil {
		return nil, err
	}
	if err := h.load(path); err != nil {
		h.Close()
		return nil, err
	}
	h.Protocol = p
	return h, nil
}

// load copies the weights of the .ot file at path into the head.
func (h *Head) load(path string) (err error) {
	defer recoverTorch(&err)
	// Loading copies under no-grad, which libtorch tracks per OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	missing, err := h.VS.LoadPartial(path)
	if err != nil {
		return fmt.Errorf("watermark: secret weights %s: %w", path, err)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("watermark: secret weights %s: %d of 6 tensors missing or of the wrong shape (e.g. %s): is it a watermark head of dimension %d?", path, len(missing), missing[0], h.Protocol.Dim)
	}
	return nil
}

// Close frees the head's tensors; the head is unusable afterwards. Closing twice is harmless.
func (h *Head) Close() {
	if h == nil || h.VS == nil {
		return
	}
	h.VS.Destroy()
	h.VS = nil
	h.mlp = nil
}
