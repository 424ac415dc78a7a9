package attack

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// TestSupervisedVictimLabels is the seed's label stealing of a supervised victim
// (steallabels.py --victimtype supervised): a cross-entropy classifier trained here, exported
// at its classifier layer (`export --layer projection`), is stolen from its labels alone.
func TestSupervisedVictimLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a classifier and steals it: make test runs it")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "victim")
	c := train.Config{Dataset: "fmnist", Limit: 1000, BatchSize: 64, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Epochs: 2, Loss: "ce", Views: 1, CropMin: 1, Threads: 2, Seed: 1, Workers: 1, Dir: run}
	if _, err := train.Run(context.Background(), c, io.Discard); err != nil {
		t.Fatalf("training the supervised victim: %v", err)
	}
	om, _, _, err := train.Export(run, "projection", 0)
	if err != nil {
		t.Fatal(err)
	}
	clf := filepath.Join(dir, "victim-logits.onnx")
	if err := onnxpb.WriteFile(clf, om); err != nil {
		t.Fatal(err)
	}
	cfg := eval.DefaultConfig()
	cfg.TrainLimit, cfg.TestLimit, cfg.Threads = 1000, 500, 2
	stealLabelsAndCheck(t, clf, dir, cfg)
}
