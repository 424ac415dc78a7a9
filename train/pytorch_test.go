package train

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models"
)

// TestCheckpointLoadsInPyTorch loads the trained checkpoint's .ot file with torch.jit.load into
// torchvision's resnet18 (the ImageNet stem, fc = Linear-ReLU-Linear): the tensor names must
// match torchvision's state_dict exactly except for the num_batches_tracked counters, and the
// eval-mode representation and projection of real images must match torchnet.Model.Embed.
func TestCheckpointLoadsInPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	dir := trainedFromScratch(t)
	ck, model, err := LoadModel(testSession(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	g := model.Graph()

	// Six held-out images, prepared as the training loop prepares its own (3 x 32 x 32, values
	// in [0, 1]); the test split is also 6x quicker to open.
	cfg := ck.Config
	cfg.Split = "test"
	ds, err := OpenTrainingSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	size := ck.Spec.InputHW
	per := 3 * size * size
	images := make([]float32, n*per)
	if err := data.Batch(ds, []int{0, 1, 2, 3, 17, 63}, data.Normalization{}, images); err != nil {
		t.Fatal(err)
	}
	imgPath := filepath.Join(t.TempDir(), "images.f32")
	pyref.WriteRaw(t, imgPath, images)

	var ref struct {
		Keys           []string  `json:"keys"`
		Missing        []string  `json:"missing"`
		Unexpected     []string  `json:"unexpected"`
		Representation []float64 `json:"representation"`
		Projection     []float64 `json:"projection"`
	}
	runRef(t, "checkpoint_ref.py", &ref, filepath.Join(dir, ck.Weights), imgPath, fmt.Sprint(n), fmt.Sprint(size), ck.Spec.Stem, fmt.Sprint(ck.Spec.OutDim))

	// Names: the file holds every parameter and buffer of the graph, torchvision-named.
	var want, wantMissing []string
	for _, p := range g.Params() {
		want = append(want, p.Name)
	}
	for _, nd := range g.Nodes {
		if nd.Op == models.BatchNorm {
			wantMissing = append(wantMissing, nd.Name+".num_batches_tracked")
		}
	}
	sort.Strings(want)
	sort.Strings(wantMissing)
	if got := strings.Join(ref.Keys, " "); got != strings.Join(want, " ") {
		t.Errorf("tensors in %s:\n%s\nwant the graph's:\n%s", ck.Weights, got, strings.Join(want, " "))
	}
	for _, k := range []string{"conv1.weight", "layer1.0.bn1.running_mean", "fc.0.weight", "fc.2.weight", "layer4.0.downsample.1.running_var"} {
		if i := sort.SearchStrings(ref.Keys, k); i == len(ref.Keys) || ref.Keys[i] != k {
			t.Errorf("checkpoint lacks %s", k)
		}
	}
	if len(ref.Unexpected) != 0 {
		t.Errorf("torchvision resnet18 does not expect %v", ref.Unexpected)
	}
	// Only BN's num_batches_tracked counters may be missing (torch 1.13's BatchNorm fills them
	// in itself when the state dict carries no version metadata, so none is reported here);
	// the script then loads with strict=True.
	if len(wantMissing) != 20 {
		t.Errorf("graph has %d batch norms, resnet18 has 20", len(wantMissing))
	}
	for _, k := range ref.Missing {
		if i := sort.SearchStrings(wantMissing, k); i == len(wantMissing) || wantMissing[i] != k {
			t.Errorf("torchvision resnet18 needs %s, which the checkpoint lacks", k)
		}
	}
	t.Logf("non-strict load: %d missing (allowed: the 20 num_batches_tracked), %d unexpected; strict load after filling them: ok", len(ref.Missing), len(ref.Unexpected))

	// Outputs: eval mode (running statistics) in both.
	for _, o := range []struct {
		name string
		node int
		dim  int
		ref  []float64
	}{
		{models.OutputRepresentation, g.Representation, models.RepresentationDim(ck.Spec.Arch), ref.Representation},
		{models.OutputProjection, g.Projection, ck.Spec.OutDim, ref.Projection},
	} {
		got, dim, err := model.Embed(images, n, o.node)
		if err != nil {
			t.Fatal(err)
		}
		if dim != o.dim || len(got) != n*dim || len(o.ref) != n*dim {
			t.Fatalf("%s: Go gives %d values of dim %d, PyTorch %d; want %d x %d", o.name, len(got), dim, len(o.ref), n, o.dim)
		}
		worst, scale := 0.0, 0.0
		bad := 0
		for i := range got {
			d := math.Abs(float64(got[i]) - o.ref[i])
			scale = math.Max(scale, math.Abs(o.ref[i]))
			worst = math.Max(worst, d/math.Max(1, math.Abs(o.ref[i])))
			if d > 1e-4*math.Max(1, math.Abs(o.ref[i])) || math.IsNaN(float64(got[i])) {
				if bad++; bad <= 5 {
					t.Errorf("%s[%d][%d] = %.7g, PyTorch %.7g", o.name, i/dim, i%dim, got[i], o.ref[i])
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ by more than 1e-4 * max(1, |out|)", o.name, bad, len(got))
		}
		t.Logf("%s: max |out| %.3g, max |go - torch| / max(1, |out|) = %.2g", o.name, scale, worst)
	}
}
