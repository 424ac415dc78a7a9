package watermark

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

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
// between the layers (a torchnet.MLP, named as the state dict of torch.nn.Sequential(Linear,
// ReLU, Linear, ReLU, Linear): "0.weight", ..., "4.bias").
type Head struct {
	Protocol Protocol
	mlp      *torchnet.MLP
	own      *torchnet.Session // the session LoadHead opened for it, closed with it
}

// NewHeadIn creates a head for representations of dimension dim in sess (the session that
// trains it with its encoder), initialised as torch.nn.Linear does (weights and biases
// U(+-1/sqrt(fan_in))) from a Go random stream seeded by seed, so the same seed gives the same
// head everywhere.
func NewHeadIn(sess *torchnet.Session, dim int, seed int64) (*Head, error) {
	if dim <= 0 || dim > maxDim {
		return nil, fmt.Errorf("watermark: head input dimension %d: expected 1..%d", dim, maxDim)
	}
	m, err := sess.NewMLP([]int{dim, Hidden1, Hidden2, Classes}, seed)
	if err != nil {
		return nil, fmt.Errorf("watermark: head: %w", err)
	}
	return &Head{Protocol: defaultProtocol(dim, seed), mlp: m}, nil
}

// NewHead is NewHeadIn in a CPU session of the head's own.
func NewHead(dim int, seed int64) (*Head, error) {
	sess, err := torchnet.Open(torchnet.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	h, err := NewHeadIn(sess, dim, seed)
	if err != nil {
		sess.Close()
		return nil, err
	}
	h.own = sess
	return h, nil
}

// Dim is the representation dimension the head takes.
func (h *Head) Dim() int { return h.Protocol.Dim }

// MLP is the head's network, for a trainer.
func (h *Head) MLP() *torchnet.MLP { return h.mlp }

// Logits runs the head in inference mode (no autograd) on n representations of dimension
// Dim() given row-major in reps, and returns the n x 2 logits row-major.
func (h *Head) Logits(reps []float32, n int) ([]float32, error) {
	if h == nil || h.mlp == nil {
		return nil, errors.New("watermark: head is nil or closed")
	}
	d := h.Protocol.Dim
	if n < 0 || int64(len(reps)) != int64(n)*int64(d) {
		return nil, fmt.Errorf("watermark: logits: got %d values for %d representations of dimension %d (the encoder's output dimension must equal the head's)", len(reps), n, d)
	}
	if n == 0 {
		return nil, nil
	}
	out, err := h.mlp.Forward(reps, n)
	if err != nil {
		return nil, fmt.Errorf("watermark: %w", err)
	}
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
	if h == nil || h.mlp == nil {
		return errors.New("watermark: save: head is nil or closed")
	}
	if path == "" {
		return errors.New("watermark: save: empty path")
	}
	if err := h.mlp.Save(path); err != nil {
		return fmt.Errorf("watermark: %w", err)
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
// SidecarPath(path)) into a CPU session of the head's own.
func LoadHead(path string) (*Head, error) {
	p, err := readProtocol(path)
	if err != nil {
		return nil, err
	}
	h, err := NewHead(p.Dim, p.Seed)
	if err != nil {
		return nil, err
	}
	return h, h.load(path, p)
}

// LoadHeadIn reads a secret written by Save into sess (to go on training it).
func LoadHeadIn(sess *torchnet.Session, path string) (*Head, error) {
	p, err := readProtocol(path)
	if err != nil {
		return nil, err
	}
	h, err := NewHeadIn(sess, p.Dim, p.Seed)
	if err != nil {
		return nil, err
	}
	return h, h.load(path, p)
}

// readProtocol reads and checks the sidecar of the secret weights at path.
func readProtocol(path string) (Protocol, error) {
	var p Protocol
	if _, err := os.Stat(path); err != nil {
		return p, fmt.Errorf("watermark: secret weights: %w", err)
	}
	side := SidecarPath(path)
	js, err := os.ReadFile(side)
	if err != nil {
		return p, fmt.Errorf("watermark: secret %s: its protocol sidecar (written next to it by Save): %w", path, err)
	}
	if err := json.Unmarshal(js, &p); err != nil {
		return p, fmt.Errorf("watermark: secret sidecar %s: %w", side, err)
	}
	switch {
	case p.Format != Format:
		return p, fmt.Errorf("watermark: secret sidecar %s: format %q, expected %q", side, p.Format, Format)
	case p.Dim <= 0 || p.Dim > maxDim:
		return p, fmt.Errorf("watermark: secret sidecar %s: dim %d, expected 1..%d", side, p.Dim, maxDim)
	case !slices.Equal(p.Hidden, []int{Hidden1, Hidden2}) || p.Classes != Classes:
		return p, fmt.Errorf("watermark: secret sidecar %s: layers %v -> %d classes, this version supports [%d %d] -> %d", side, p.Hidden, p.Classes, Hidden1, Hidden2, Classes)
	}
	return p, nil
}

// load copies the weights of the .ot file at path into the head and takes the protocol; on an
// error the head is closed.
func (h *Head) load(path string, p Protocol) error {
	if err := h.mlp.Load(path); err != nil {
		h.Close()
		return fmt.Errorf("watermark: secret weights: %w", err)
	}
	h.Protocol = p
	return nil
}

// Close frees the head's tensors; the head is unusable afterwards. Closing twice is harmless.
func (h *Head) Close() {
	if h == nil || h.mlp == nil {
		return
	}
	h.mlp.Close()
	h.mlp = nil
	if h.own != nil {
		h.own.Close()
	}
}
