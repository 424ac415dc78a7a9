package zoo_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

func TestResolve(t *testing.T) {
	if p, err := zoo.Resolve("victim.onnx"); err != nil || p != "victim.onnx" {
		t.Fatalf("a plain path changed: %q %v", p, err)
	}
	if _, err := zoo.Resolve("builtin:nope"); err == nil || !strings.Contains(err.Error(), "builtin:fmnist") {
		t.Fatalf("unknown name: %v", err)
	}
	t.Setenv(zoo.Env, t.TempDir())
	os.WriteFile(filepath.Join(os.Getenv(zoo.Env), "fmnist-resnet18-simclr.onnx"), []byte("x"), 0o644)
	if p, err := zoo.Resolve("builtin:fmnist"); err != nil || filepath.Dir(p) != os.Getenv(zoo.Env) {
		t.Fatalf("$%s not searched first: %q %v", zoo.Env, p, err)
	}
	if _, err := zoo.ResolveSecret("builtin:fmnist"); err == nil {
		t.Fatalf("found a secret that is not in any zoo folder")
	}
}

// TestShippedVictims: each built-in file says what it is, its representation is much better
// than a randomly initialised encoder's on Fashion-MNIST (kNN on 1000 test images), and its
// watermark secret recognises it.
func TestShippedVictims(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy cross-check: make test runs it")
	}
	t.Setenv(zoo.Env, ".") // the package directory: models/zoo of this checkout
	for _, tc := range []struct {
		ref, loss, epochs string
		margin            float64 // the kNN edge over random init it must keep
	}{
		// A random or corrupted file scores within about 2 points (one standard error of the
		// difference on 1000 images) of the baseline; the SimCLR victim's edge is about 6, the
		// label-trained one's about 15.
		{"builtin:fmnist", "infonce", "31", 0.04},
		{"builtin:fmnist-supervised", "ce", "10", 0.10},
	} {
		t.Run(tc.ref, func(t *testing.T) { checkShipped(t, tc.ref, tc.loss, tc.epochs, tc.margin) })
	}
}

func checkShipped(t *testing.T, ref, loss, epochs string, margin float64) {
	path, err := zoo.Resolve(ref)
	if err != nil {
		t.Fatalf("the built-in victim is committed in models/zoo: %v", err)
	}
	enc, err := infer.OpenORT(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	md := enc.Info().Metadata
	enc.Close()
	for k, v := range map[string]string{"architecture": "resnet18", "stem": "imagenet", "output": "representation",
		"representation_dim": "512", "train_dataset": "fmnist", "input_shape": "3x32x32", "train_size": "32", "epochs": epochs, "train_loss": loss} {
		if md[k] != v {
			t.Errorf("metadata %s = %q, expected %q (all: %v)", k, md[k], v, md)
		}
	}
	cfg := eval.DefaultConfig()
	cfg.Models = []string{path}
	cfg.Baselines = []string{eval.BaselineRandom}
	cfg.TrainLimit, cfg.TestLimit = 5000, 1000
	cfg.Probe.Epochs = 1 // the kNN monitor is the check here
	cfg.Threads = 2
	cfg.TempDir = t.TempDir()
	rep, err := eval.Evaluate(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	knn := map[string]float64{}
	for _, r := range rep.Rows {
		knn[r.Kind] = r.KNNTop1
	}
	t.Logf("kNN top-1 on 1000 test images: shipped victim %.3f, random-init %.3f", knn[eval.KindModel], knn[eval.KindBaseline])
	if knn[eval.KindModel] < knn[eval.KindBaseline]+margin {
		t.Fatalf("shipped victim kNN %.3f is not %.2f above random-init %.3f", knn[eval.KindModel], margin, knn[eval.KindBaseline])
	}

	secret, err := zoo.ResolveSecret(ref)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	enc, err = infer.OpenORT(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	res, err := watermark.VerifyWith(context.Background(), enc, secret, ds, 300, 1, watermark.VerifyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Present {
		t.Fatalf("the owner's secret does not recognise the shipped victim: %+v", res)
	}
}
