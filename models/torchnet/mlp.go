package torchnet

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// MLP is torch.nn.Sequential(Linear, ReLU, Linear, ReLU, ..., Linear) over widths[0] ->
// widths[1] -> ... -> widths[n], its parameters in a VarStore under the names of that module's
// state dict ("0.weight", "0.bias", "2.weight", ...). Heads on top of representations use it:
// the owner's watermark head, the attacker's recreated projection head.
type MLP struct {
	W, B []*ts.Tensor
}

// NewMLP adds an MLP's parameters to vs, initialised as torch.nn.Linear does (weights and
// biases U(+-1/sqrt(fan_in))) from a Go random stream seeded by seed (layer by layer, weight
// then bias), so the same seed gives the same MLP everywhere.
func NewMLP(vs *nn.VarStore, widths []int, seed int64) (*MLP, error) {
	if len(widths) < 2 {
		return nil, fmt.Errorf("mlp: widths %v: expected at least an input and an output width", widths)
	}
	rng := rand.New(rand.NewSource(seed))
	m := &MLP{}
	for l := 0; l+1 < len(widths); l++ {
		in, out := widths[l], widths[l+1]
		if in <= 0 || out <= 0 {
			return nil, fmt.Errorf("mlp: widths %v: expected positive widths", widths)
		}
		bound := 1 / math.Sqrt(float64(in))
		for _, shape := range [][]int64{{int64(out), int64(in)}, {int64(out)}} {
			vals := make([]float32, numel(shape))
			for i := range vals {
				vals[i] = float32((2*rng.Float64() - 1) * bound)
			}
			name := fmt.Sprintf("%d.weight", 2*l)
			if len(shape) == 1 {
				name = fmt.Sprintf("%d.bias", 2*l)
			}
			v, err := AddVar(vs, name, shape, vals, true)
			if err != nil {
				return nil, fmt.Errorf("mlp: %w", err)
			}
			if len(shape) == 2 {
				m.W = append(m.W, v)
			} else {
				m.B = append(m.B, v)
			}
		}
	}
	return m, nil
}

// Forward returns the MLP's output for x (N x widths[0]), recording autograd history when
// grad mode is on. The caller owns the result.
func (m *MLP) Forward(x *ts.Tensor) *ts.Tensor {
	y := x
	for l := range m.W {
		z := ts.MustLinear(y, m.W[l], m.B[l])
		if l+1 < len(m.W) {
			z = z.MustRelu(true)
		}
		if y != x {
			y.MustDrop()
		}
		y = z
	}
	return y
}

// Trainable returns the parameters in layer order (weight, bias of each layer).
func (m *MLP) Trainable() []*ts.Tensor {
	var p []*ts.Tensor
	for l := range m.W {
		p = append(p, m.W[l], m.B[l])
	}
	return p
}
