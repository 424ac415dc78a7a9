package torchnet

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// MaxMLPWidth bounds every width of an MLP (a head over representations: 2^20 covers any).
const MaxMLPWidth = 1 << 20

// MLP is torch.nn.Sequential(Linear, ReLU, Linear, ReLU, ..., Linear) over widths[0] ->
// widths[1] -> ... -> widths[n], its parameters named as that module's state dict ("0.weight",
// "0.bias", "2.weight", ...): the owner's watermark head, the attacker's recreated projection
// head.
type MLP struct {
	s   *Session
	mlp *mlp
}

type mlp struct {
	widths []int
	vs     *nn.VarStore
	w, b   []*ts.Tensor
}

func (m *mlp) free() { m.vs.Destroy() }

// NewMLP creates an MLP initialised as torch.nn.Linear does (weights and biases
// U(+-1/sqrt(fan_in))) from a Go random stream seeded by seed (layer by layer, weight then
// bias), so the same seed gives the same MLP everywhere.
func (s *Session) NewMLP(widths []int, seed int64) (*MLP, error) {
	if len(widths) < 2 {
		return nil, fmt.Errorf("mlp: widths %v: expected at least an input and an output width", widths)
	}
	for _, w := range widths {
		if w <= 0 || w > MaxMLPWidth {
			return nil, fmt.Errorf("mlp: widths %v: expected widths in 1..%d", widths, MaxMLPWidth)
		}
	}
	init := mlpInit(widths, seed)
	m := &mlp{widths: append([]int(nil), widths...)}
	err := s.do(func() error {
		m.vs = nn.NewVarStore(s.dev)
		for l := 0; l+1 < len(widths); l++ {
			in, out := int64(widths[l]), int64(widths[l+1])
			w, err := addVar(m.vs, fmt.Sprintf("%d.weight", 2*l), []int64{out, in}, init[2*l], true)
			if err != nil {
				m.free()
				return fmt.Errorf("mlp: %w", err)
			}
			b, err := addVar(m.vs, fmt.Sprintf("%d.bias", 2*l), []int64{out}, init[2*l+1], true)
			if err != nil {
				m.free()
				return fmt.Errorf("mlp: %w", err)
			}
			m.w, m.b = append(m.w, w), append(m.b, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.track(m)
	return &MLP{s: s, mlp: m}, nil
}

// mlpInit draws every layer's weight and bias, in that order, from one stream.
func mlpInit(widths []int, seed int64) [][]float32 {
	rng := rand.New(rand.NewSource(seed))
	var out [][]float32
	for l := 0; l+1 < len(widths); l++ {
		in, o := widths[l], widths[l+1]
		bound := 1 / math.Sqrt(float64(in))
		for _, n := range []int{o * in, o} {
			vals := make([]float32, n)
			for i := range vals {
				vals[i] = float32((2*rng.Float64() - 1) * bound)
			}
			out = append(out, vals)
		}
	}
	return out
}

// forward returns the MLP's output for x (N x widths[0]), recording autograd history when
// grad mode is on. The caller owns the result.
func (m *mlp) forward(x *ts.Tensor) *ts.Tensor {
	y := x
	for l := range m.w {
		z := ts.MustLinear(y, m.w[l], m.b[l])
		if l+1 < len(m.w) {
			z = z.MustRelu(true)
		}
		if y != x {
			y.MustDrop()
		}
		y = z
	}
	runtime.KeepAlive(m.vs)
	return y
}

func (m *mlp) params() []*ts.Tensor {
	var p []*ts.Tensor
	for l := range m.w {
		p = append(p, m.w[l], m.b[l])
	}
	return p
}

// Forward runs the MLP without autograd on n rows of widths[0] values and returns the n x
// widths[last] outputs row-major.
func (h *MLP) Forward(x []float32, n int) (out []float32, err error) {
	if h == nil || h.mlp == nil {
		return nil, fmt.Errorf("mlp: closed")
	}
	in := h.mlp.widths[0]
	if n < 1 || int64(len(x)) != int64(n)*int64(in) {
		return nil, fmt.Errorf("mlp: got %d values for %d rows of width %d", len(x), n, in)
	}
	err = h.s.do(func() error {
		noGrad(func() {
			xt := h.s.input(x, int64(n), int64(in))
			y := h.mlp.forward(xt)
			xt.MustDrop()
			out = toSlice(y)
			y.MustDrop()
		})
		return nil
	})
	return out, err
}

// Save writes the weights as a gotch .ot file.
func (h *MLP) Save(path string) error { return h.s.do(func() error { return saveVS(h.mlp.vs, path) }) }

// Load reads weights written by Save; each of the MLP's tensors must be in the file with its
// shape.
func (h *MLP) Load(path string) error {
	return h.s.do(func() error {
		return loadStrict(h.mlp.vs, path, fmt.Sprintf("is it a head of widths %v?", h.mlp.widths))
	})
}

// Close frees the MLP's tensors; closing twice is harmless.
func (h *MLP) Close() {
	if h == nil || h.mlp == nil {
		return
	}
	h.s.release(h.mlp)
	h.mlp = nil
}
