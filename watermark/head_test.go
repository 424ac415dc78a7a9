package watermark

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

func randomReps(n, d int, seed int64) []float32 {
	rng := rand.New(rand.NewSource(seed))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestHeadSaveLoadRoundTrip saves a head, loads it back and checks the logits are identical,
// the sidecar records the protocol, and a head of another seed differs.
func TestHeadSaveLoadRoundTrip(t *testing.T) {
	const d, n = 48, 20
	h, err := NewHead(d, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Protocol.ImageSize = 32
	path := filepath.Join(t.TempDir(), "wm.ot")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	reps := randomReps(n, d, 1)
	want, err := h.Logits(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	g, err := LoadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, err := g.Logits(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n*Classes {
		t.Fatalf("%d logits, want %d", len(got), n*Classes)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: %v after the round trip, %v before", i, got[i], want[i])
		}
	}
	if g.Dim() != d || g.Protocol.ImageSize != 32 || g.Protocol.Seed != 42 || g.Protocol.Weights != "wm.ot" ||
		len(g.Protocol.AngleRanges) != 2 || g.Protocol.AngleRanges[1] != [2]float64{180, 360} {
		t.Errorf("loaded protocol %+v does not match the saved head's", g.Protocol)
	}
	// The same seed gives the same head; another seed another.
	same, err := NewHead(d, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer same.Close()
	other, err := NewHead(d, 43)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ls, _ := same.Logits(reps, n)
	lo, _ := other.Logits(reps, n)
	diff := 0.0
	for i := range want {
		if ls[i] != want[i] {
			t.Fatalf("seed 42 twice: logit %d differs (%v vs %v)", i, ls[i], want[i])
		}
		diff = math.Max(diff, math.Abs(float64(lo[i]-want[i])))
	}
	if diff == 0 {
		t.Error("heads of seeds 42 and 43 give identical logits")
	}
	// Predict is the argmax of the logits.
	pred, err := g.Predict(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pred {
		want := int64(0)
		if got[2*i+1] > got[2*i] {
			want = 1
		}
		if p != want {
			t.Errorf("image %d: logits %v, predicted %d", i, got[2*i:2*i+2], p)
		}
	}
}

// TestWatermarkStepTrainsHeadAndEncoder: one step of the watermark task changes the head's
// logits and the encoder's weights (the encoder must get the watermark gradient), and the
// loss it reports is the cross-entropy of the head's logits before the step.
func TestWatermarkStepTrainsHeadAndEncoder(t *testing.T) {
	sess, err := torchnet.Open(torchnet.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	g, err := models.Build(models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "none", InputC: 3, InputHW: 16})
	if err != nil {
		t.Fatal(err)
	}
	net, err := sess.NewNet(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHeadIn(sess, 512, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	x := randomReps(n, 3*16*16, 2)
	labels := []int64{0, 1, 1, 0, 1, 0, 0, 1}
	// The head's loss before the step, from Logits on the representations (training-mode batch
	// norm in the step: compare with the training-mode representation, which Embed does not
	// give, so only the gradient's effects are asserted exactly).
	before, err := net.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	reps, _, err := net.Embed(x, n, g.Representation)
	if err != nil {
		t.Fatal(err)
	}
	lg0, err := h.Logits(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := net.NewTrainer(torchnet.TrainerConfig{Optimizer: "sgd", Watermark: h.MLP(), WatermarkWeight: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tr.Step(torchnet.Batch{WatermarkRows: n, WatermarkX: x, WatermarkLabels: labels}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !(l > 0) || math.IsInf(l, 0) {
		t.Fatalf("watermark loss %v, want a positive cross-entropy", l)
	}
	after, err := net.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	if w := "layer1.0.conv1.weight"; maxDiff(before[w], after[w]) == 0 {
		t.Errorf("%s did not move: the encoder got no watermark gradient", w)
	}
	lg1, err := h.Logits(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	if maxDiff(lg0, lg1) == 0 {
		t.Error("the head's logits did not change after a step")
	}
	if _, err := tr.Step(torchnet.Batch{WatermarkRows: n, WatermarkX: x, WatermarkLabels: []int64{0, 1, 2, 0, 1, 0, 0, 1}}, 0.5); err == nil || !strings.Contains(err.Error(), "label 2") {
		t.Errorf("label 2 of a two-class head: %v", err)
	}
}

func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestHeadBadInput checks that bad sizes are errors that name them.
func TestHeadBadInput(t *testing.T) {
	for _, d := range []int{0, -3, maxDim + 1} {
		if _, err := NewHead(d, 1); err == nil {
			t.Errorf("NewHead(%d): no error", d)
		}
	}
	h, err := NewHead(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Logits(make([]float32, 10), 2); err == nil || !strings.Contains(err.Error(), "dimension 8") {
		t.Errorf("Logits with 10 values for 2 x 8: error %v", err)
	}
	if _, err := h.Predict(make([]float32, 8), -1); err == nil {
		t.Error("Predict of -1 vectors: no error")
	}
	closed, err := NewHead(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	closed.Close()
	if _, err := closed.Logits(make([]float32, 8), 1); err == nil {
		t.Error("Logits after Close: no error")
	}
	if err := closed.Save(filepath.Join(t.TempDir(), "x.ot")); err == nil {
		t.Error("Save after Close: no error")
	}
}

// TestLoadHeadBadSecrets checks the errors for missing, corrupt or inconsistent secret files.
func TestLoadHeadBadSecrets(t *testing.T) {
	dir := t.TempDir()
	h, err := NewHead(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.ot")
	if err := h.Save(good); err != nil {
		t.Fatal(err)
	}
	h.Close()
	side, err := os.ReadFile(SidecarPath(good))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// write makes a secret at name from weights bytes and a sidecar edited by edit (nil: none).
	write := func(name string, w []byte, edit func(p map[string]any)) string {
		p := filepath.Join(dir, name)
		if w != nil {
			if err := os.WriteFile(p, w, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if edit != nil {
			var m map[string]any
			if err := json.Unmarshal(side, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ := json.Marshal(m)
			if err := os.WriteFile(SidecarPath(p), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	keep := func(map[string]any) {}
	cases := []struct {
		name, path, want string
	}{
		{"no files", filepath.Join(dir, "absent.ot"), "no such file"},
		{"no sidecar", write("noside.ot", weights, nil), "sidecar"},
		{"no weights", write("noweights.ot", nil, keep), "no such file"},
		{"garbage weights", write("garbage.ot", []byte("not a torch archive"), keep), "garbage.ot"},
		{"sidecar not JSON", func() string {
			p := write("badjson.ot", weights, nil)
			os.WriteFile(SidecarPath(p), []byte("{"), 0o644)
			return p
		}(), "badjson.ot.json"},
		{"other format", write("format.ot", weights, func(m map[string]any) { m["format"] = "something else" }), "format"},
		{"dim 0", write("dim0.ot", weights, func(m map[string]any) { m["dim"] = 0 }), "dim 0"},
		{"other layers", write("layers.ot", weights, func(m map[string]any) { m["hidden"] = []int{64} }), "layers"},
		{"dim differs from the weights", write("dim16.ot", weights, func(m map[string]any) { m["dim"] = 16 }), "of another shape"},
	}
	for _, c := range cases {
		g, err := LoadHead(c.path)
		if err == nil {
			g.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one mentioning %q", c.name, err, c.want)
		}
	}
	if err := (&Head{}).Save(good); err == nil {
		t.Error("Save of a zero Head: no error")
	}
}
