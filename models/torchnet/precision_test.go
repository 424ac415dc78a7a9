package torchnet

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestAutocastRunsConvolutionsInBF16: inside the trainer's autocast the network's
// convolutions and products compute in bfloat16 (its output is bf16, not a float32 tensor
// that merely passed through), the weights stay float32, and leaving autocast restores fp32.
func TestAutocastRunsConvolutionsInBF16(t *testing.T) {
	if err := CheckPrecision("bf16", gotch.CPU); err != nil {
		t.Skip(err)
	}
	s, err := Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := smallNet(t, s)
	tr, err := n.NewTrainer(TrainerConfig{Loss: "infonce", Temperature: 0.1, Pairs: true, Optimizer: "adam", Precision: "bf16"})
	if err != nil {
		t.Fatal(err)
	}
	var inside, after, weight gotch.DType
	err = s.do(func() error {
		x := s.input(make([]float32, 4*3*16*16), 4, 3, 16, 16)
		defer x.MustDrop()
		l := tr.autocast(func() *ts.Tensor {
			out := n.m.forward(x, true, n.m.graph.Projection)[0]
			inside = out.DType()
			return out.MustSum(gotch.Float, true)
		})
		l.MustDrop()
		out := n.m.forward(x, true, n.m.graph.Projection)[0]
		after = out.DType()
		out.MustDrop()
		weight = n.m.params["conv1.weight"].DType()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != gotch.BFloat16 || after != gotch.Float || weight != gotch.Float {
		t.Fatalf("output under autocast %v, after it %v, weights %v: expected BFloat16, Float, Float", inside, after, weight)
	}
}

// TestBF16StepsTrackFP32: the same net trained a few steps in bf16 and in fp32 from the same
// weights on the same batch: the losses agree to bf16's precision (not bit for bit), and both
// decrease.
func TestBF16StepsTrackFP32(t *testing.T) {
	if err := CheckPrecision("bf16", gotch.CPU); err != nil {
		t.Skip(err)
	}
	losses := map[string][]float64{}
	x := make([]float32, 8*3*16*16)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.37))
	}
	for _, p := range Precisions() {
		s, err := Open(Options{Threads: 1, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		n := smallNet(t, s)
		tr, err := n.NewTrainer(TrainerConfig{Loss: "infonce", Temperature: 0.5, Pairs: true, Optimizer: "adam", Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 4; step++ {
			l, err := tr.Step(Batch{Rows: 8, X: x}, 1e-3)
			if err != nil {
				t.Fatal(err)
			}
			losses[p] = append(losses[p], l)
		}
		s.Close()
	}
	f, b := losses["fp32"], losses["bf16"]
	t.Logf("fp32 %v\nbf16 %v", f, b)
	if math.Abs(f[0]-b[0]) > 0.02*f[0] {
		t.Errorf("first loss fp32 %.5f, bf16 %.5f: differ by more than 2%%", f[0], b[0])
	}
	if f[0] == b[0] {
		t.Errorf("bf16 loss %.7f equals fp32's exactly: autocast did not change the arithmetic", b[0])
	}
	if !(b[3] < b[0]) || !(f[3] < f[0]) {
		t.Errorf("losses did not decrease: fp32 %v, bf16 %v", f, b)
	}
}

func TestCheckPrecisionRefuses(t *testing.T) {
	if err := CheckPrecision("fp16", gotch.CPU); err == nil || !strings.Contains(err.Error(), "expected one of") {
		t.Errorf("fp16: %v", err)
	}
	if err := checkPrecision("bf16", gotch.CPU, false); err == nil || !strings.Contains(err.Error(), "AVX512-BF16") {
		t.Errorf("bf16 on a CPU without it: %v", err)
	}
	if err := checkPrecision("bf16", gotch.CPU, true); err != nil {
		t.Errorf("bf16 on a CPU with it: %v", err)
	}
	if err := CheckPrecision("fp32", gotch.CPU); err != nil {
		t.Error(err)
	}
}
