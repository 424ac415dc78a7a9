package pth_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/pth"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// writer is testdata/write_checkpoint.py: PyTorch and torchvision write the checkpoint and
// the expected representations of a fixed input.
const writer = "testdata/write_checkpoint.py"

func writeCheckpoint(t *testing.T, kind string, hw int) (path string, x, h []float32) {
	t.Helper()
	path = filepath.Join(t.TempDir(), kind+".pth.tar")
	if out, err := pyref.Command(writer, path, kind, strconv.Itoa(hw)).CombinedOutput(); err != nil {
		t.Fatalf("PyTorch checkpoint writer: %v\n%s", err, out)
	}
	return path, pyref.ReadFloat32(t, path+".x"), pyref.ReadFloat32(t, path+".h")
}

// importAndRun imports the checkpoint, writes the ONNX file, and runs x through ONNX Runtime.
// x is in [0,1]; the model expects ImageNet-normalised input (its metadata says so), and the
// PyTorch reference was given x unnormalised, so the test feeds x as is.
func importAndRun(t *testing.T, path string, o pth.Options, x []float32, hw int) ([]float32, map[string]string) {
	t.Helper()
	m, _, _, err := pth.Import(path, o)
	if err != nil {
		t.Fatal(err)
	}
	file := path + ".onnx"
	if err := onnxpb.WriteFile(file, m); err != nil {
		t.Fatal(err)
	}
	enc, err := infer.OpenORT(file, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	out, err := enc.Encode(context.Background(), infer.Images{N: 2, C: 3, H: hw, W: hw, Data: x})
	if err != nil {
		t.Fatal(err)
	}
	return out.Data, m.Metadata()
}

// importChecked has PyTorch write a checkpoint of kind, imports it with the default options,
// checks ONNX Runtime's representation against PyTorch's and the metadata against want, and
// returns the checkpoint's path.
func importChecked(t *testing.T, kind string, hw int, what string, want map[string]string) string {
	t.Helper()
	path, x, h := writeCheckpoint(t, kind, hw)
	got, md := importAndRun(t, path, pth.Options{Size: hw}, x, hw)
	compare(t, what+", PyTorch vs ONNX Runtime", h, got)
	for k, v := range want {
		if md[k] != v {
			t.Errorf("metadata %s = %q, expected %q", k, md[k], v)
		}
	}
	return path
}

func compare(t *testing.T, what string, want, got []float32) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d values, expected %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(want[i]-got[i])) / (1 + math.Abs(float64(want[i])))
		worst = math.Max(worst, d)
	}
	if worst > 1e-4 {
		t.Fatalf("%s: largest relative difference %.2e > 1e-4", what, worst)
	}
	t.Logf("%s: largest relative difference %.2e over %d values", what, worst, len(want))
}

// TestImportSimSiam reads a SimSiam checkpoint written by PyTorch (state_dict under
// "state_dict", keys module.encoder.* and module.predictor.*, BatchNorm statistics not at
// their defaults) and checks that the ONNX file computes PyTorch's 2048-d representation.
func TestImportSimSiam(t *testing.T) {
	const hw = 64
	path := importChecked(t, "simsiam", hw, "ResNet-50 SimSiam representation", map[string]string{"architecture": "resnet50",
		"stem": "imagenet", "head": "simsiam", "output_dim": "2048", "normalization": "imagenet", "input_shape": "3x64x64"})
	// The wrong architecture is an error naming what does not fit, not a silent partial load.
	if _, _, _, err := pth.Import(path, pth.Options{Arch: "resnet34", Size: hw}); err == nil || !strings.Contains(err.Error(), "does not fit resnet34") {
		t.Errorf("resnet34 from a ResNet-50 checkpoint: got %v", err)
	}
}

// TestImportMoCoV2 reads a MoCo v2 checkpoint (query encoder with the MLP head under
// module.encoder_q., the momentum encoder and the queue beside it): the query encoder is
// imported with its head, the training-only state is dropped, and an unknown extra tensor is
// still an error.
func TestImportMoCoV2(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy cross-check: make test runs it")
	}
	const hw = 32
	path := importChecked(t, "mocov2", hw, "ResNet-18 MoCo v2 representation",
		map[string]string{"architecture": "resnet18", "head": "simclr", "output_dim": "512"})
	m, _, prefix, err := pth.Import(path, pth.Options{Size: hw, Output: "projection"})
	if err != nil || prefix != "module.encoder_q." || m.Metadata()["output_dim"] != "128" {
		t.Errorf("projection: prefix %q, metadata %v, err %v; expected module.encoder_q. and 128-d", prefix, m.Metadata(), err)
	}
	sd, err := pth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sd["module.extra.weight"] = pth.Tensor{Shape: []int64{2}, Data: []float32{1, 2}}
	stripped, _ := pth.StripPrefix(sd, "auto")
	for k := range stripped {
		if strings.HasPrefix(k, "encoder_k.") || k == "queue" || k == "queue_ptr" {
			t.Fatalf("MoCo's training state %s kept", k)
		}
	}
	g, err := models.Build(models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: hw})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pth.Match(g, stripped); err == nil || !strings.Contains(err.Error(), "does not use: extra.weight") {
		t.Errorf("an unknown tensor beside the query encoder: got %v, expected an error naming extra.weight", err)
	}
}

// TestImportLegacyDataParallel reads a legacy-format torch.save of a DataParallel ResNet-18
// classifier state dict; the architecture and stem are guessed from the tensors.
func TestImportLegacyDataParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy cross-check: make test runs it")
	}
	const hw = 32
	path := importChecked(t, "resnet18", hw, "ResNet-18 representation",
		map[string]string{"architecture": "resnet18", "head": "linear", "output_dim": "512"})
	// Keeping the prefix leaves no ResNet names to recognise.
	if _, _, _, err := pth.Import(path, pth.Options{Prefix: "none", Size: hw}); err == nil || !strings.Contains(err.Error(), "no torchvision ResNet layer names") {
		t.Errorf("prefix none: got %v", err)
	}
}

func TestImportBadFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pth")
	if err := os.WriteFile(junk, []byte("not a checkpoint at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{junk, filepath.Join(dir, "missing.pth")} {
		_, err := pth.Load(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s): got %v, expected an error naming the file", p, err)
		}
	}
}
