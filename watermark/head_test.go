package watermark

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
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
	h, err := NewHead(d, gotch.CPU, 42)
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
	same, err := NewHead(d, gotch.CPU, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer same.Close()
	other, err := NewHead(d, gotch.CPU, 43)
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

// TestLossAndGradients checks Loss against the cross-entropy computed in Go from Logits, and
// that its gradient reaches both the head's parameters and the representations (the encoder).
func TestLossAndGradients(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const d, n = 16, 8
	h, err := NewHead(d, gotch.CPU, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	reps := randomReps(n, d, 2)
	labels := []int64{0, 1, 1, 0, 1, 0, 0, 1}
	lg, err := h.Logits(reps, n)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	for i := 0; i < n; i++ {
		a, b := float64(lg[2*i]), float64(lg[2*i+1])
		m := math.Max(a, b)
		lse := m + math.Log(math.Exp(a-m)+math.Exp(b-m))
		want += (lse - float64(lg[2*i+int(labels[i])])) / n
	}
	x := ts.MustOfSlice(reps).MustView([]int64{n, d}, true).MustSetRequiresGrad(true, true)
	defer x.MustDrop()
	l := Loss(h, x, labels)
	got := l.Float64Values(false)[0]
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("Loss = %.7f, cross-entropy of the logits = %.7f", got, want)
	}
	for _, p := range h.Trainable() {
		p.ZeroGrad()
	}
	l.MustBackward()
	l.MustDrop()
	gradNorm := func(p *ts.Tensor) float64 {
		g := p.MustGrad(false)
		defer g.MustDrop()
		if !g.MustDefined() {
			return 0
		}
		s := 0.0
		for _, v := range g.Float64Values(false) {
			s += v * v
		}
		return math.Sqrt(s)
	}
	if gn := gradNorm(x); !(gn > 0) {
		t.Errorf("gradient of the representations: norm %v, want > 0 (the encoder must get the watermark gradient)", gn)
	}
	for i, p := range h.Trainable() {
		if gn := gradNorm(p); !(gn > 0) {
			t.Errorf("head parameter %d: gradient norm %v, want > 0", i, gn)
		}
	}
}

// mustPanicErr runs f and returns the error it panicked with (failing if it did not).
func mustPanicErr(t *testing.T, what string, f func()) (err error) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", what)
			return
		}
		e, ok := r.(error)
		if !ok {
			t.Errorf("%s: panicked with %T %v, want an error value", what, r, r)
			return
		}
		err = e
	}()
	f()
	return nil
}

// TestHeadBadInput checks that bad shapes are reported as errors (a recoverable panic with
// an error value for the tensor API, as train's step expects) before libtorch sees them.
func TestHeadBadInput(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, d := range []int{0, -3, maxDim + 1} {
		if _, err := NewHead(d, gotch.CPU, 1); err == nil {
			t.Errorf("NewHead(%d): no error", d)
		}
	}
	h, err := NewHead(8, gotch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wide := ts.MustOfSlice(make([]float32, 4*9)).MustView([]int64{4, 9}, true)
	defer wide.MustDrop()
	flat := ts.MustOfSlice(make([]float32, 8))
	defer flat.MustDrop()
	ints := ts.MustOfSlice(make([]int64, 16)).MustView([]int64{2, 8}, true)
	defer ints.MustDrop()
	ok := ts.MustOfSlice(make([]float32, 2*8)).MustView([]int64{2, 8}, true)
	defer ok.MustDrop()
	for _, c := range []struct {
		name string
		f    func()
		want string
	}{
		{"Forward, 9 columns", func() { h.Forward(wide) }, "expected N x 8"},
		{"Forward, rank 1", func() { h.Forward(flat) }, "expected N x 8"},
		{"Forward, int64", func() { h.Forward(ints) }, "dtype"},
		{"Forward, nil", func() { h.Forward(nil) }, "nil"},
		{"Loss, 9 columns", func() { Loss(h, wide, []int64{0, 1, 0, 1}) }, "expected N x 8"},
		{"Loss, 3 labels for 2", func() { Loss(h, ok, []int64{0, 1, 0}) }, "3 labels"},
		{"Loss, label 2", func() { Loss(h, ok, []int64{0, 2}) }, "label 2"},
		{"Loss, label -1", func() { Loss(h, ok, []int64{-1, 0}) }, "label -1"},
	} {
		err := mustPanicErr(t, c.name, c.f)
		if err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := h.Logits(make([]float32, 10), 2); err == nil || !strings.Contains(err.Error(), "dimension 8") {
		t.Errorf("Logits with 10 values for 2 x 8: error %v", err)
	}
	if _, err := h.Predict(make([]float32, 8), -1); err == nil {
		t.Error("Predict of -1 vectors: no error")
	}
	closed, err := NewHead(8, gotch.CPU, 1)
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
	h, err := NewHead(8, gotch.CPU, 1)
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
		{"dim differs from the weights", write("dim16.ot", weights, func(m map[string]any) { m["dim"] = 16 }), "wrong shape"},
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
