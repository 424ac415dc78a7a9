package attack

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
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

// TestEntropyVictim steals the seed's entropy victim (softmax over the projection, export
// --softmax): the stolen copy learns 128 probabilities per image and spends exactly its budget.
func TestEntropyVictim(t *testing.T) {
	_, projection := victimFiles(t)
	m, err := onnxpb.ReadFile(projection)
	if err != nil {
		t.Fatal(err)
	}
	if err := export.AppendSoftmax(m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "entropy.onnx")
	if err := onnxpb.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	enc, err := infer.OpenORT(path, infer.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	probs, err := enc.Encode(context.Background(), infer.Images{N: 2, C: 3, H: 32, W: 32, Data: make([]float32, 2*3*32*32)})
	enc.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range probs.N {
		sum := 0.0
		for _, p := range probs.Row(i) {
			sum += float64(p)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Fatalf("row %d of the entropy victim sums to %v, want 1", i, sum)
		}
	}
	v := openVictim(t, path)
	c := tinyAttack(v, path, t.TempDir(), "mse", 100)
	res, _ := mustRun(t, c)
	if v.sent() != 100 || res.OutputDim != 128 {
		t.Fatalf("%d queries sent, output dim %d: want 100 queries of 128 probabilities", v.sent(), res.OutputDim)
	}
}

// minInput records the smallest input value a victim was sent.
type minInput struct {
	*countingVictim
	mu  sync.Mutex
	min float32
}

func (m *minInput) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	m.mu.Lock()
	for _, v := range x.Data {
		m.min = min(m.min, v)
	}
	m.mu.Unlock()
	return m.countingVictim.Encode(ctx, x)
}

// TestTwoViewsNormalisedVictim: a victim that takes ImageNet-normalised input (an imported
// SimSiam or MoCo) gets two-view losses' augmented views normalised, as it gets clean images.
func TestTwoViewsNormalisedVictim(t *testing.T) {
	path, _ := victimFiles(t)
	m, err := onnxpb.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range m.MetadataProps {
		if e.Key == "normalization" {
			m.MetadataProps[i].Value = "imagenet"
		}
	}
	norm := filepath.Join(t.TempDir(), "normalised.onnx")
	if err := onnxpb.WriteFile(norm, m); err != nil {
		t.Fatal(err)
	}
	v := &minInput{countingVictim: openVictim(t, norm)}
	c := tinyAttack(v.countingVictim, norm, t.TempDir(), "barlow", 64)
	c.Victim, c.Size, c.BatchSize = v, 32, 16
	res, _ := mustRun(t, c)
	if res.Views != 2 || v.sent() != 64 {
		t.Fatalf("result %+v after %d queries; want 64 queries of 2 views", res, v.sent())
	}
	// ImageNet's smallest normalised value is (0 - 0.485) / 0.229 = -2.12; [0,1] views never go below 0.
	if v.min > -1 {
		t.Fatalf("smallest value sent to the normalised victim %v: the views were not normalised", v.min)
	}
}
