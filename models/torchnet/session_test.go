package torchnet

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// tracked reports whether an op on a leaf that requires grad records a graph on this thread.
// The scalar is kept alive past the call: gotch frees a Scalar's C object in a finalizer, which
// may otherwise run while libtorch still reads it.
func tracked(x *ts.Tensor) bool {
	two := ts.FloatScalar(2)
	y := x.MustMulScalar(two, false)
	runtime.KeepAlive(two)
	defer y.MustDrop()
	return y.MustRequiresGrad()
}

func smallNet(t *testing.T, s *Session) *Net {
	t.Helper()
	g, err := models.Build(models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 8, InputC: 3, InputHW: 16})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.NewNet(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSessionKeepsGradModeAcrossCalls: inference calls (no autograd) from many goroutines
// leave grad mode on for the session's next call, and the trainer still trains.
func TestSessionKeepsGradModeAcrossCalls(t *testing.T) {
	s, err := Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := smallNet(t, s)
	img := make([]float32, 2*3*16*16)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := n.Embed(img, 2, n.Graph().Representation); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var on bool
	if err := s.do(func() error {
		x := ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
		defer x.MustDrop()
		on = tracked(x)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !on {
		t.Fatal("grad mode is off on the session's thread after Embed calls")
	}
	tr, err := n.NewTrainer(TrainerConfig{Loss: "infonce", Temperature: 0.5, Pairs: true, Optimizer: "adam"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step(Batch{Rows: 4, X: make([]float32, 4*3*16*16)}, 1e-3); err != nil {
		t.Fatalf("a step after Embed: %v", err)
	}
	if tr.Steps() != 1 {
		t.Fatalf("Steps() = %d after one step", tr.Steps())
	}
	// A closed net refuses work instead of touching freed tensors.
	n.Close()
	n.Close()
	if _, _, err := n.Embed(img, 2, n.Graph().Representation); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Embed after Close: %v", err)
	}
	if _, err := tr.Step(Batch{Rows: 4, X: make([]float32, 4*3*16*16)}, 1e-3); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Step after the net's Close: %v", err)
	}
}

// TestSessionTurnsPanicsIntoErrors and refuses calls once closed.
func TestSessionTurnsPanicsIntoErrors(t *testing.T) {
	s, err := Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.do(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "libtorch: boom") {
		t.Fatalf("a panicking call returned %v, want an error naming it", err)
	}
	if err := s.do(func() error { return nil }); err != nil {
		t.Fatalf("the session stopped after a panic: %v", err)
	}
	s.Close()
	s.Close()
	g, _ := models.Build(models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "none", InputC: 3, InputHW: 16})
	if _, err := s.NewNet(g, 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("NewNet on a closed session = %v, want an error", err)
	}
}

// TestTrainerRejectsBadBatches: sizes and labels are checked in Go (gotch's Must functions
// end the process on a libtorch error), each with an error naming what is wrong.
func TestTrainerRejectsBadBatches(t *testing.T) {
	s, err := Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := smallNet(t, s)
	per := 3 * 16 * 16
	pairs, err := n.NewTrainer(TrainerConfig{Loss: "ce", Pairs: true, Optimizer: "sgd", Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	steal, err := n.NewTrainer(TrainerConfig{Loss: "mse", Optimizer: "adam"})
	if err != nil {
		t.Fatal(err)
	}
	x4 := make([]float32, 4*per)
	tests := []struct {
		name string
		tr   *Trainer
		b    Batch
		want string
	}{
		{"odd rows for two views", pairs, Batch{Rows: 3, X: make([]float32, 3*per), Labels: []int64{0}}, "an even number"},
		{"short input", steal, Batch{Rows: 4, X: x4[:per], Target: make([]float32, 32)}, "input values for 4 rows"},
		{"short target", steal, Batch{Rows: 4, X: x4, Target: make([]float32, 31)}, "31 target values for 4 rows of width 8"},
		{"missing labels", pairs, Batch{Rows: 4, X: x4, Labels: []int64{1}}, "needs 2 labels, got 1"},
		{"label out of range", pairs, Batch{Rows: 4, X: x4, Labels: []int64{1, 8}}, "label 8 of row 1: expected a class in 0..7"},
		{"negative label", pairs, Batch{Rows: 4, X: x4, Labels: []int64{-1, 0}}, "label -1 of row 0"},
	}
	for _, tc := range tests {
		if _, err := tc.tr.Step(tc.b, 1e-3); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Step = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := n.NewTrainer(TrainerConfig{Loss: "l1", Optimizer: "adam"}); err == nil || !strings.Contains(err.Error(), `loss "l1"`) {
		t.Errorf("unknown loss: %v", err)
	}
	if _, err := n.NewTrainer(TrainerConfig{Loss: "mse", Optimizer: "rmsprop"}); err == nil || !strings.Contains(err.Error(), "expected adam, sgd or lars") {
		t.Errorf("unknown optimiser: %v", err)
	}
}

// TestParseDevice checks the device names every command accepts.
func TestParseDevice(t *testing.T) {
	cuda := libtch.AtcCudaIsAvailable()
	tests := []struct {
		name    string
		want    gotch.Device
		wantErr string
	}{
		{name: "", want: gotch.CPU},
		{name: "cpu", want: gotch.CPU},
		{name: "CPU", wantErr: `device "CPU": expected cpu, cuda or cuda:N`},
		{name: "cuda:x", wantErr: `device "cuda:x": expected cpu, cuda or cuda:N with N a GPU index`},
		{name: "cuda:-1", wantErr: `device "cuda:-1": expected cpu, cuda or cuda:N with N a GPU index`},
		{name: "cuda", want: gotch.CudaBuilder(0), wantErr: "device cuda: libtorch reports no usable CUDA device"},
		{name: "cuda:0", want: gotch.CudaBuilder(0), wantErr: "device cuda:0: libtorch reports no usable CUDA device"},
	}
	for _, tc := range tests {
		dev, err := ParseDevice(tc.name)
		wantErr := tc.wantErr
		if strings.HasPrefix(tc.name, "cuda") && tc.want == gotch.CudaBuilder(0) && cuda {
			wantErr = ""
		}
		switch {
		case wantErr != "":
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseDevice(%q) error = %v, want %q", tc.name, err, wantErr)
			}
		case err != nil || dev != tc.want:
			t.Errorf("ParseDevice(%q) = %v, %v; want %v", tc.name, dev, err, tc.want)
		}
	}
}
