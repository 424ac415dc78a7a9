package export_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// parityCase is one architecture/stem pair, with a batch and input size small enough for CI.
type parityCase struct {
	arch, stem, head string
	n, hw            int
	onnxGo           bool // also run through the pure-Go runtime (slow)
}

var parityCases = []parityCase{
	{"resnet18", "cifar", "simclr", 3, 32, true},
	{"resnet18", "imagenet", "simclr", 3, 32, true},
	{"resnet18", "cifar-pool", "simclr", 2, 32, false},
	{"resnet34", "cifar", "simclr", 2, 32, false},
	{"resnet34", "imagenet", "simclr", 2, 32, false},
	{"resnet50", "cifar", "simsiam", 1, 32, false},
	{"resnet50", "imagenet", "simsiam", 1, 64, false},
}

// randomizeBN gives every batch norm non-trivial statistics and affine parameters, so the
// eval-mode comparison exercises them (fresh models have mean 0, var 1, weight 1, bias 0).
func randomizeBN(t *testing.T, m *torchnet.Net, rng *rand.Rand) {
	t.Helper()
	for _, p := range m.Graph().Params() {
		var lo, hi float64
		switch {
		case strings.HasSuffix(p.Name, ".running_mean"):
			lo, hi = -0.2, 0.2
		case strings.HasSuffix(p.Name, ".running_var"):
			lo, hi = 0.5, 2
		case p.Init == models.InitOnes: // bn weight
			lo, hi = 0.5, 1.5
		case p.Init == models.InitZeros: // bn bias
			lo, hi = -0.2, 0.2
		default:
			continue
		}
		n := 1
		for _, d := range p.Shape {
			n *= int(d)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*rng.Float64())
		}
		if err := m.SetParam(p.Name, v); err != nil {
			t.Fatal(err)
		}
	}
}

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func compare(t *testing.T, what string, want, got []float32) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d values, expected %d", what, len(got), len(want))
	}
	tol := 1e-4 * math.Max(1, maxAbs(want))
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(want[i]-got[i])))
	}
	if worst > tol {
		t.Errorf("%s: max abs diff %.3g > %.3g", what, worst, tol)
	} else {
		t.Logf("%s: max abs diff %.3g (tolerance %.3g)", what, worst, tol)
	}
}

// TestParity checks, for every architecture/stem pair, that the gotch module in eval mode,
// the exported ONNX file in ONNX Runtime, and (for ResNet-18) the same file in onnx-go
// compute the same representation and projection; and that onnx.checker accepts every file.
func TestParity(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	sess, err := torchnet.Open(torchnet.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	dir := t.TempDir()
	var files []string
	for ci, pc := range parityCases {
		name := fmt.Sprintf("%s_%s", pc.arch, pc.stem)
		t.Run(name, func(t *testing.T) {
			spec := models.Spec{Arch: pc.arch, Stem: pc.stem, Head: pc.head, OutDim: 128, InputC: 3, InputHW: pc.hw}
			if pc.head == "simsiam" {
				spec.OutDim = 2048
			}
			g, err := models.Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			m, err := sess.NewNet(g, int64(ci+1))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rng := rand.New(rand.NewSource(int64(ci)))
			randomizeBN(t, m, rng)
			sd, err := m.StateDict()
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, pc.n*3*pc.hw*pc.hw)
			for i := range x {
				x[i] = rng.Float32()
			}
			for _, out := range []string{models.OutputRepresentation, models.OutputProjection} {
				node := g.Representation
				if out == models.OutputProjection {
					node = g.Projection
				}
				want, dim, err := m.Embed(x, pc.n, node)
				if err != nil {
					t.Fatal(err)
				}
				om, err := export.Model(g, sd, export.Options{Output: out, Metadata: map[string]string{"train_dataset": "none"}})
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, name+"_"+out+".onnx")
				if err := onnxpb.WriteFile(path, om); err != nil {
					t.Fatal(err)
				}
				files = append(files, path)
				enc, err := infer.OpenORT(path, infer.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				info := enc.Info()
				if info.OutputDim != dim || info.FixedBatch != 0 || info.Metadata["output"] != out {
					t.Errorf("info %+v: expected output dim %d, dynamic batch, metadata output=%s", info, dim, out)
				}
				got, err := enc.Encode(context.Background(), infer.Images{N: pc.n, C: 3, H: pc.hw, W: pc.hw, Data: x})
				enc.Close()
				if err != nil {
					t.Fatal(err)
				}
				compare(t, out+" gotch vs ONNX Runtime", want, got.Data)
				if pc.onnxGo {
					og, err := infer.OpenOnnxGo(path)
					if err != nil {
						t.Fatal(err)
					}
					got, err := og.Encode(context.Background(), infer.Images{N: pc.n, C: 3, H: pc.hw, W: pc.hw, Data: x})
					og.Close()
					if err != nil {
						t.Fatal(err)
					}
					compare(t, out+" gotch vs onnx-go", want, got.Data)
				}
			}
		})
	}
	// One Python process checks every file.
	script := `import sys, onnx
for p in sys.argv[1:]:
    m = onnx.load(p)
    onnx.checker.check_model(m, full_check=True)
    md = {e.key: e.value for e in m.metadata_props}
    assert m.opset_import[0].version == 17, p
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch", p
    assert md["output"] in ("representation", "projection"), p
print("ok", len(sys.argv) - 1)
`
	out, err := pyref.Command(append([]string{"-c", script}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("ok %d", len(files)); strings.TrimSpace(string(out)) != want {
		t.Fatalf("onnx.checker printed %q, expected %q", out, want)
	}
}

func TestExportErrors(t *testing.T) {
	g, err := models.Build(models.Spec{Arch: "resnet18", Stem: "cifar", Head: "none", InputC: 3, InputHW: 32})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Model(g, map[string][]float32{}, export.Options{}); err == nil || !strings.Contains(err.Error(), "conv1.weight is missing") {
		t.Errorf("missing weights: got %v", err)
	}
	if _, err := export.Model(g, nil, export.Options{Output: models.OutputProjection}); err == nil || !strings.Contains(err.Error(), "no projection head") {
		t.Errorf("projection without head: got %v", err)
	}
	if _, err := export.Model(g, nil, export.Options{Output: "logits"}); err == nil || !strings.Contains(err.Error(), `expected "representation"`) {
		t.Errorf("unknown output: got %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
