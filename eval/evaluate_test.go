package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/ssl-onnx/ssl-onnx/export"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
)

// TestEvaluateFMNIST runs the whole evaluation on 300 train / 200 test Fashion-MNIST
// images: a random ResNet-18 as reference (also listed as a model, which must not add
// a row), the random baseline (another seed; its architecture comes from the
// reference's metadata) and raw pixels.
func TestEvaluateFMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	t.Parallel()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.onnx")
	if err := export.RandomModel(victim, DefaultRandomSpec(), 1); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Models = []string{victim}
	cfg.Reference = victim
	cfg.Baselines = []string{BaselineRandom, BaselinePixels, BaselineRandom}
	cfg.RandomSeed = 2
	cfg.TrainLimit, cfg.TestLimit = 300, 200
	cfg.Threads = 2
	cfg.Probe.Epochs = 30
	cfg.TempDir = dir
	var log bytes.Buffer
	r, err := Evaluate(context.Background(), cfg, &log)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if r.TrainN != 300 || r.TestN != 200 || r.Classes != 10 {
		t.Errorf("report says %d train / %d test / %d classes: expected 300 / 200 / 10", r.TrainN, r.TestN, r.Classes)
	}
	names := []string{"victim", "random", "pixels"}
	if len(r.Rows) != len(names) {
		t.Fatalf("%d rows: expected %d (%v)", len(r.Rows), len(names), names)
	}
	for i, row := range r.Rows {
		if row.Name != names[i] {
			t.Errorf("row %d is %q: expected %q", i, row.Name, names[i])
		}
		for what, v := range map[string]float64{"probe top-1": row.ProbeTop1, "probe top-5": row.ProbeTop5, "kNN top-1": row.KNNTop1} {
			if !(v > 0 && v <= 1) {
				t.Errorf("%s %s %v: expected in (0, 1]", row.Name, what, v)
			}
		}
		if row.ProbeTop5 < row.ProbeTop1 {
			t.Errorf("%s top-5 %.3f < top-1 %.3f", row.Name, row.ProbeTop5, row.ProbeTop1)
		}
		if row.Agreement == nil {
			t.Errorf("%s has no agreement: expected one (there is a reference)", row.Name)
		}
	}
	victimRow, randomRow, pixelRow := r.Rows[0], r.Rows[1], r.Rows[2]
	if victimRow.Kind != KindReference || randomRow.Kind != KindBaseline || pixelRow.Kind != KindBaseline {
		t.Errorf("kinds %q %q %q: expected reference, baseline, baseline", victimRow.Kind, randomRow.Kind, pixelRow.Kind)
	}
	if victimRow.Dim != 512 || randomRow.Dim != 512 || pixelRow.Dim != 784 {
		t.Errorf("dims %d, %d, %d: expected 512, 512 (ResNet-18) and 784 (28x28 pixels)", victimRow.Dim, randomRow.Dim, pixelRow.Dim)
	}
	if *victimRow.FidelityCos < 0.9999 || *victimRow.FidelityL2 != 0 || *victimRow.Agreement != 1 {
		t.Errorf("reference vs itself: cosine %v L2 %v agreement %v: expected 1, 0, 1", *victimRow.FidelityCos, *victimRow.FidelityL2, *victimRow.Agreement)
	}
	if randomRow.FidelityCos == nil || *randomRow.FidelityCos > 0.99 || *randomRow.FidelityL2 <= 0 || *randomRow.Agreement >= 1 {
		t.Errorf("another random network: fidelity %v / %v, agreement %v: expected measured, cosine < 0.99, L2 > 0, agreement < 1",
			randomRow.FidelityCos, randomRow.FidelityL2, *randomRow.Agreement)
	}
	if pixelRow.FidelityCos != nil || pixelRow.FidelityL2 != nil {
		t.Errorf("pixels (784-d) vs a 512-d reference: expected no fidelity, got %v", *pixelRow.FidelityCos)
	}
	if !strings.Contains(log.String(), "random baseline resnet18/imagenet head none, input 3x32x32, seed 2") {
		t.Errorf("log does not show the random baseline's spec taken from the reference:\n%s", log.String())
	}
	if pixelRow.ProbeTop1 < 0.5 {
		t.Errorf("pixels probe top-1 %.3f: expected well above chance (0.1), > 0.5", pixelRow.ProbeTop1)
	}

	var table bytes.Buffer
	if err := r.Print(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"probe top-1", "victim", "random", "pixels", "n/a", "reference", "300 train / 200 test"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
	for _, row := range r.Rows {
		t.Logf("%s: extract %.2f probe %.2f knn %.2f", row.Name, row.ExtractSeconds, row.ProbeSeconds, row.KNNSeconds)
	}

	jp := filepath.Join(dir, "out", "eval.json")
	if err := r.WriteJSON(jp); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(jp)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 3 || back.Rows[2].ProbeTop1 != pixelRow.ProbeTop1 || back.Rows[2].FidelityCos != nil || back.Probe.Epochs != 30 {
		t.Errorf("JSON round trip lost data:\n%s", b)
	}
	if !strings.Contains(string(b), `"fidelity_cos": null`) {
		t.Errorf("JSON: expected n/a fidelity as null:\n%s", b)
	}
	pp := filepath.Join(dir, "eval.png")
	if err := PlotProbe(r, pp); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, pp)
}

func TestEvaluateErrors(t *testing.T) {
	good := DefaultConfig()
	good.Baselines = []string{BaselinePixels}
	with := func(f func(*Config)) Config { c := good; f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"nothing", DefaultConfig(), []string{"nothing to evaluate"}},
		{"baseline", with(func(c *Config) { c.Baselines = []string{"noise"} }), []string{`baseline "noise"`, "expected random or pixels"}},
		{"missing model", with(func(c *Config) { c.Models = []string{"/nonexistent/m.onnx"} }), []string{"/nonexistent/m.onnx"}},
		{"one split", with(func(c *Config) { c.Test = fmnistTest(t) }), []string{"expected both Train and Test"}},
		{"no dataset", with(func(c *Config) { c.Dataset = "" }), []string{"no dataset"}},
		{"unknown dataset", with(func(c *Config) { c.Dataset = "imagenet-x" }), []string{"imagenet-x"}},
		{"batch", with(func(c *Config) { c.Batch = 0 }), []string{"inference batch 0"}},
		{"norm", with(func(c *Config) { c.Norm = "sepia" }), []string{`normalization "sepia"`}},
		{"probe", with(func(c *Config) { c.Probe = ProbeConfig{} }), []string{"learning rate 0"}},
		{"knn k", with(func(c *Config) { c.KNNK = 0 }), []string{"kNN k 0"}},
		{"knn T", with(func(c *Config) { c.KNNTemperature = -1 }), []string{"temperature -1"}},
		{"limits", with(func(c *Config) { c.TrainLimit = -5 }), []string{"limits -5"}},
		{"random spec", with(func(c *Config) { c.RandomSpec.Arch = "vgg" }), []string{"random baseline", `arch "vgg"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(context.Background(), tc.cfg, nil)
			wantErr(t, err, tc.want...)
		})
	}
}

func fmnistTest(t *testing.T) data.Dataset {
	t.Helper()
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
