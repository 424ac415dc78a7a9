package export_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// TestAppendClassifier: a probe trained on an encoder's standardised features, folded into a
// linear layer and appended to the ONNX graph, predicts in ONNX Runtime what the probe
// predicted in Go, and the file says it outputs logits.
func TestAppendClassifier(t *testing.T) {
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.onnx")
	if err := export.RandomModel(enc, models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "none", InputC: 3, InputHW: 32}, 3); err != nil {
		t.Fatal(err)
	}
	cfg := eval.DefaultConfig()
	cfg.TrainLimit, cfg.TestLimit, cfg.Probe.Epochs, cfg.Threads = 600, 300, 30, 2
	clf := filepath.Join(dir, "clf.onnx")
	probe, classes, err := eval.WriteClassifier(context.Background(), cfg, enc, clf, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := infer.OpenORT(clf, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if md := e.Info().Metadata; md["output"] != "logits" || md["classes"] != "10" || md["features"] != "representation" ||
		md["classifier_dataset"] != "fmnist" || md["classifier_test_top1"] == "" || e.Info().OutputDim != 10 {
		t.Fatalf("metadata %v, output dim %d", md, e.Info().OutputDim)
	}
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := data.Range(ds, 0, 300)
	if err != nil {
		t.Fatal(err)
	}
	fit, err := infer.FitDataset(sub, e.Info())
	if err != nil {
		t.Fatal(err)
	}
	v, err := infer.EmbedDataset(context.Background(), e, fit, data.Normalization{}, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := 0; i < v.N; i++ {
		best := 0
		for c := 1; c < v.D; c++ {
			if v.Data[i*v.D+c] > v.Data[i*v.D+best] {
				best = c
			}
		}
		if best == probe.Pred[i] {
			same++
		}
	}
	// Float32 rounding may flip a near tie, nothing more.
	if same < v.N-3 {
		t.Fatalf("ONNX classifier agrees with the Go probe on %d of %d test images", same, v.N)
	}
	m, err := onnxpb.ReadFile(clf)
	if err != nil {
		t.Fatal(err)
	}
	w, b := probe.RawWeights()
	if err := export.AppendClassifier(m, w, b, classes, nil); err == nil {
		t.Fatalf("appending a classifier to a classifier's [batch, 10] output with %d-feature weights succeeded", len(w)/classes)
	}
}
