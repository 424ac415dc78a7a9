package export_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// TestSoftmaxOutput checks the entropy victim: the softmax file answers what the seed computes
// from the plain file's scores (F.softmax(backbone(x), dim=1), in PyTorch), in ONNX Runtime and
// onnx-go, and onnx.checker accepts it.
func TestSoftmaxOutput(t *testing.T) {
	dir := t.TempDir()
	spec := models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}
	plain, soft := filepath.Join(dir, "plain.onnx"), filepath.Join(dir, "softmax.onnx")
	om, _, err := export.Random(spec, 5, models.OutputProjection)
	if err != nil {
		t.Fatal(err)
	}
	if err := onnxpb.WriteFile(plain, om); err != nil {
		t.Fatal(err)
	}
	if err := export.AppendSoftmax(om); err != nil {
		t.Fatal(err)
	}
	if err := onnxpb.WriteFile(soft, om); err != nil {
		t.Fatal(err)
	}
	if err := export.AppendSoftmax(om); err == nil || !strings.Contains(err.Error(), "already has the activation") {
		t.Errorf("a second softmax: err %v, want a refusal", err)
	}
	const n = 4
	x := infer.Images{N: n, C: 3, H: 32, W: 32, Data: make([]float32, n*3*32*32)}
	rng := rand.New(rand.NewSource(3))
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	scores := encode(t, plain, x, false)
	raw := make([]byte, 4*len(scores.Data))
	for i, v := range scores.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	scoresPath := filepath.Join(dir, "scores.f32")
	if err := os.WriteFile(scoresPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Softmax    []float32 `json:"softmax"`
		Activation string    `json:"activation"`
		Output     string    `json:"output"`
	}
	pyref.Run(t, "softmax_ref.py", &ref, scoresPath, strconv.Itoa(n), strconv.Itoa(scores.D), soft)
	if ref.Activation != "softmax" || ref.Output != models.OutputProjection {
		t.Errorf("metadata output_activation %q, output %q: want softmax, projection", ref.Activation, ref.Output)
	}
	for _, onnxGo := range []bool{false, true} {
		got := encode(t, soft, x, onnxGo)
		if got.D != scores.D || len(got.Data) != len(ref.Softmax) {
			t.Fatalf("onnx-go %v: %dx%d, want %dx%d", onnxGo, got.N, got.D, n, scores.D)
		}
		for i, v := range got.Data {
			if math.Abs(float64(v-ref.Softmax[i])) > 1e-6 {
				t.Fatalf("onnx-go %v: value %d is %g, PyTorch's softmax %g", onnxGo, i, v, ref.Softmax[i])
			}
		}
	}
}

func encode(t *testing.T, path string, x infer.Images, onnxGo bool) infer.Vectors {
	t.Helper()
	var enc infer.Encoder
	var err error
	if onnxGo {
		enc, err = infer.OpenOnnxGo(path)
	} else {
		enc, err = infer.OpenORT(path, infer.Options{Threads: 1})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	v, err := enc.Encode(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
