package torchnet

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models"
)

// TestSimSiamStealMatchesSeed runs one step of the symmetrized steal (TrainerConfig.SimSiam)
// and the same step of the seed's SimSiam stealing model and loss in PyTorch
// (testdata/simsiam_ref.py, written from the seed's code) from the same weights, images and
// victim answers: the loss before the step and the weights after it must agree, including the
// projector (trained through the victim's answers too) and its frozen last bias.
func TestSimSiamStealMatchesSeed(t *testing.T) {
	const n, hw, dim = 4, 32, 512
	spec := models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simsiam", OutDim: dim, PredHidden: dim, ZeroInitResidual: true, InputC: 3, InputHW: hw}
	g, err := models.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	net, err := s.NewNet(g, 3)
	if err != nil {
		t.Fatal(err)
	}
	before, err := net.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type weight struct {
		Name  string  `json:"name"`
		File  string  `json:"file"`
		Shape []int64 `json:"shape"`
	}
	var ws []weight
	for i, p := range g.Params() {
		f := fmt.Sprintf("w%03d.f32", i)
		pyref.WriteRaw(t, filepath.Join(dir, f), before[p.Name])
		ws = append(ws, weight{p.Name, f, p.Shape})
	}
	rng := rand.New(rand.NewSource(5))
	x := make([]float32, 2*n*3*hw*hw)
	for i := range x {
		x[i] = rng.Float32()
	}
	y := make([]float32, 2*n*dim) // pooled ReLU features: non-negative
	for i := range y {
		y[i] = float32(math.Abs(rng.NormFloat64()))
	}
	pyref.WriteRaw(t, filepath.Join(dir, "x.f32"), x)
	pyref.WriteRaw(t, filepath.Join(dir, "y.f32"), y)
	const lr, wd = 0.05, 1e-4
	after := []string{"conv1.weight", "layer1.0.bn2.weight", "fc.0.weight", "fc.4.weight", "fc.6.weight", "fc.6.bias", "predictor.0.weight", "predictor.3.bias"}
	js, _ := json.Marshal(map[string]any{"dim": dim, "n": n, "hw": hw, "lr": lr, "wd": wd, "weights": ws, "after": after})
	if err := os.WriteFile(filepath.Join(dir, "case.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Loss  float64              `json:"loss"`
		After map[string][]float64 `json:"after"`
	}
	pyref.Run(t, "simsiam_ref.py", &ref, dir)

	tr, err := net.NewTrainer(TrainerConfig{Loss: "symmetrized", SimSiam: true, Optimizer: "sgd", Momentum: 0.9, WeightDecay: wd})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := tr.Step(Batch{Rows: 2 * n, X: x, Target: y}, lr)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss-ref.Loss) > 1e-4 {
		t.Errorf("loss %.6f, the seed's %.6f", loss, ref.Loss)
	}
	got, err := net.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range after {
		want := ref.After[name]
		if len(want) != len(got[name]) {
			t.Fatalf("%s: %d values, the seed's %d", name, len(got[name]), len(want))
		}
		worst, moved := 0.0, 0.0
		for i, w := range want {
			worst = math.Max(worst, math.Abs(float64(got[name][i])-w))
			moved = math.Max(moved, math.Abs(w-float64(before[name][i])))
		}
		t.Logf("%s: moved up to %.3g, max |diff| to the seed %.3g", name, moved, worst)
		if worst > 1e-4 {
			t.Errorf("%s after the step: max |diff| to the seed %.3g > 1e-4", name, worst)
		}
	}
}
