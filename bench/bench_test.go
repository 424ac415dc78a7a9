package bench

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// TestRunInProcessAndURL runs the benchmark's patterns briefly: raw ONNX Runtime and the
// in-process server for a local model, then --url against a running server through both
// protocols, and checks every pattern was measured and compared with raw where it should be.
func TestRunInProcessAndURL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := export.RandomModel(path, models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "none", InputC: 3, InputHW: 32}, 1); err != nil {
		t.Fatal(err)
	}
	c := Config{Models: []string{path}, Batches: []int{1, 8}, Concurrency: []int{1, 4}, BatchClients: []int{1, 2}, MinTime: 50 * time.Millisecond,
		Threads: 2, TempDir: dir, HTTP: true}
	r, err := Run(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Raw at 1, 8 and 64 (the reference for concurrent clients); HTTP: batching server at
	// batch 1 and 8, each by 1 and 2 clients, and 4 single-image clients; the server without
	// batching at 4 clients.
	if len(r.Inference) != 3 || len(r.HTTP) != 6 {
		t.Fatalf("%d raw and %d HTTP results: %+v %+v", len(r.Inference), len(r.HTTP), r.Inference, r.HTTP)
	}
	for _, h := range r.HTTP {
		want := h.Batch
		if h.Batch == 1 && h.Concurrency > 1 {
			want = 64
		}
		if h.ImagesPS <= 0 || h.P50ms <= 0 || h.Requests < 3 || h.RawBatch != want || h.VsRaw <= 0 || h.Protocol != "v1 raw float32" {
			t.Errorf("HTTP result %+v", h)
		}
	}

	// A server of 2 workers x 1 thread: raw is measured that way too, and every served
	// batching result compares with both references.
	c2 := Config{Models: []string{path}, Batches: []int{8}, Concurrency: []int{4}, MinTime: 50 * time.Millisecond,
		Threads: 2, TempDir: dir, HTTP: true, ServeWorkers: 2, ServeThreads: 1}
	r2, err := Run(context.Background(), c2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Inference) != 4 || r2.Inference[2].Threads != 1 || r2.Inference[2].Callers != 2 || r2.Inference[0].Callers != 1 {
		t.Fatalf("raw results %+v: want batch 8 and 64 by 1 caller of 2 threads, then by 2 callers of 1 thread", r2.Inference)
	}
	for _, h := range r2.HTTP {
		if h.Workers != 2 || h.ServerThreads != 1 || h.VsRaw <= 0 || h.VsRawSame <= 0 {
			t.Errorf("HTTP result %+v: want 2 workers x 1 thread and both ratios", h)
		}
	}

	// --url: a running server, through /v1/embeddings and through the v2 infer endpoint.
	enc, err := infer.OpenORT(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	store, err := serve.OpenStore(filepath.Join(dir, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, secret, err := store.AddKey(context.Background(), "bench", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.Start(enc, serve.Config{Store: store, ModelName: "victim", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for _, u := range []string{srv.URL, srv.URL + "/v2/models/victim"} {
		c := Config{URL: u, APIKey: secret, Batches: []int{2}, Concurrency: []int{3}, MinTime: 50 * time.Millisecond, TempDir: dir}
		r, err := Run(context.Background(), c, io.Discard)
		if err != nil {
			t.Fatalf("--url %s: %v", u, err)
		}
		if len(r.Inference) != 0 || len(r.HTTP) != 2 {
			t.Fatalf("--url %s: %d raw and %d HTTP results", u, len(r.Inference), len(r.HTTP))
		}
		wantProto := "v1 raw float32"
		if strings.Contains(u, "/v2/") {
			wantProto = "v2 JSON"
		}
		for _, h := range r.HTTP {
			if h.ImagesPS <= 0 || h.Server != u || h.Protocol != wantProto || h.VsRaw != 0 || h.Model != "victim" {
				t.Errorf("--url %s: result %+v", u, h)
			}
		}
	}
	if _, err := Run(context.Background(), Config{URL: srv.URL, APIKey: "sslk_wrong", Batches: []int{1}, MinTime: time.Millisecond, TempDir: dir}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong key: %v", err)
	}
}

// TestTrainStepPerPrecisionAndBatch: the training-step table has one row per stem, batch and
// precision, each with its rounds, and a precision this machine cannot run is an error naming
// it, not a row of zeros.
func TestTrainStepPerPrecisionAndBatch(t *testing.T) {
	c := Config{TrainStem: []string{"imagenet"}, TrainBS: []int{2, 4}, Precisions: []string{"fp32"}, Steps: 1, Rounds: 2, Threads: 1}
	if err := torchnet.CheckPrecisionOn("bf16", "cpu"); err == nil {
		c.Precisions = append(c.Precisions, "bf16")
	}
	var rows []TrainStep
	for _, bs := range c.TrainBS {
		for _, p := range c.Precisions {
			ts, err := trainStep(context.Background(), c, "imagenet", bs, p, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, ts)
		}
	}
	for i, r := range rows {
		bs, p := c.TrainBS[i/len(c.Precisions)], c.Precisions[i%len(c.Precisions)]
		if r.Batch != bs || r.Precision != p || len(r.GotchRounds) != 2 || !(r.GotchIPS > 0) || r.PyTorchIPS != 0 {
			t.Errorf("row %d = %+v: expected batch %d, precision %s, 2 gotch rounds, no PyTorch", i, r, bs, p)
		}
	}
	if _, err := trainStep(context.Background(), c, "imagenet", 2, "fp16", io.Discard); err == nil || !strings.Contains(err.Error(), "fp16") {
		t.Errorf("precision fp16: %v", err)
	}
}
