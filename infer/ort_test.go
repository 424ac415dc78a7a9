package infer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// openORT opens a generated model with default options, closing it at the end of the test.
func openORT(t *testing.T, name string, opt Options) Encoder {
	t.Helper()
	enc, err := OpenORT(filepath.Join(modelDir(t), name), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := enc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return enc
}

// resnetInput returns the 5 test images and PyTorch's resnet18 output for them.
func resnetInput(t *testing.T) (Images, []float32) {
	dir := modelDir(t)
	x := Images{N: 5, C: 3, H: 32, W: 32, Data: pyref.ReadFloat32(t, filepath.Join(dir, "x5.f32"))}
	return x, pyref.ReadFloat32(t, filepath.Join(dir, "y5.f32"))
}

func TestORTMatchesPyTorch(t *testing.T) {
	x, want := resnetInput(t)
	tests := []struct {
		model string
		info  Info
	}{
		{"resnet18_dyn.onnx", Info{InputName: "input", OutputName: "output", InputShape: []int64{-1, 3, 32, 32},
			OutputDim: 512, FixedBatch: 0, Metadata: map[string]string{"ssl-onnx.arch": "resnet18"}}},
		// Fixed batch of 1: the 5 images go through in 5 chunks.
		{"resnet18_b1.onnx", Info{InputName: "input", OutputName: "output", InputShape: []int64{1, 3, 32, 32},
			OutputDim: 512, FixedBatch: 1, Metadata: map[string]string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			enc := openORT(t, tc.model, Options{Threads: 2})
			if got := enc.Info(); !reflect.DeepEqual(got, tc.info) {
				t.Errorf("Info() = %+v, want %+v", got, tc.info)
			}
			v, err := enc.Encode(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			if v.N != 5 || v.D != 512 {
				t.Fatalf("got %dx%d vectors, want 5x512", v.N, v.D)
			}
			assertClose(t, tc.model, v.Data, want, 1e-4)
		})
	}
}

// TestORTChunking drives encodeChunks with ONNX Runtime on the dynamic-batch
// model, pretending the model has other fixed or maximum batch sizes: the
// chunk sizes must be as expected, and the zero-padded rows of the last chunk
// must be dropped.
func TestORTChunking(t *testing.T) {
	x, want := resnetInput(t)
	enc := openORT(t, "resnet18_dyn.onnx", Options{Threads: 2}).(*ortEncoder)
	tests := []struct {
		name       string
		fixed, max int
		batches    []int64
	}{
		{"dynamic max 2", 0, 2, []int64{2, 2, 1}},
		{"fixed 2 padded", 2, MaxChunk, []int64{2, 2, 2}},
		{"fixed 5 exact", 5, MaxChunk, []int64{5}},
		{"dynamic one chunk", 0, MaxChunk, []int64{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := enc.info
			info.FixedBatch = tc.fixed
			var batches []int64
			run := func(data []float32, in []int64) ([]float32, []int64, error) {
				batches = append(batches, in[0])
				return enc.run(data, in)
			}
			v, err := encodeChunks(context.Background(), x, info, tc.max, run)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(batches, tc.batches) {
				t.Errorf("runs got batches %v, want %v", batches, tc.batches)
			}
			if v.N != 5 || v.D != 512 {
				t.Fatalf("got %dx%d vectors, want 5x512", v.N, v.D)
			}
			assertClose(t, tc.name, v.Data, want, 1e-4)
		})
	}
}

func TestORTCancelBetweenChunks(t *testing.T) {
	x, _ := resnetInput(t)
	enc := openORT(t, "resnet18_b1.onnx", Options{Threads: 2}).(*ortEncoder)
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	run := func(data []float32, in []int64) ([]float32, []int64, error) {
		runs++
		cancel() // cancelled during the first chunk
		return enc.run(data, in)
	}
	_, err := encodeChunks(ctx, x, enc.info, MaxChunk, run)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if runs != 1 {
		t.Errorf("ran %d chunks after cancel, want 1", runs)
	}
	wantMsg := "infer: encode stopped after 1 of 5 images: context canceled"
	if err.Error() != wantMsg {
		t.Errorf("err = %q, want %q", err, wantMsg)
	}
	// Cancelled before the call: nothing runs.
	if _, err := enc.Encode(ctx, x); !errors.Is(err, context.Canceled) {
		t.Errorf("Encode with cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func TestORTOutputSelectionAndSqueeze(t *testing.T) {
	dir := modelDir(t)
	x := Images{N: 3, C: 3, H: 16, W: 16, Data: pyref.ReadFloat32(t, filepath.Join(dir, "xt.f32"))}
	feat := pyref.ReadFloat32(t, filepath.Join(dir, "yt_feat.f32"))
	logits := pyref.ReadFloat32(t, filepath.Join(dir, "yt_logits.f32"))
	tests := []struct {
		model, output string
		wantName      string
		wantDim       int
		want          []float32
	}{
		{"tiny.onnx", "", "logits", 10, logits},
		{"tiny.onnx", "feat", "feat", 16, feat},
		{"tiny.onnx", "logits", "logits", 10, logits},
		{"tiny4d.onnx", "", "pooled", 16, feat}, // [N,16,1,1] squeezed
	}
	for _, tc := range tests {
		t.Run(tc.model+"/"+tc.output, func(t *testing.T) {
			enc := openORT(t, tc.model, Options{Threads: 1, Output: tc.output})
			info := enc.Info()
			if info.OutputName != tc.wantName || info.OutputDim != tc.wantDim {
				t.Errorf("output %q dim %d, want %q dim %d", info.OutputName, info.OutputDim, tc.wantName, tc.wantDim)
			}
			v, err := enc.Encode(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			if v.N != 3 || v.D != tc.wantDim {
				t.Fatalf("got %dx%d, want 3x%d", v.N, v.D, tc.wantDim)
			}
			assertClose(t, tc.wantName, v.Data, tc.want, 1e-4)
			for i := range v.N {
				if got := v.Row(i); &got[0] != &v.Data[i*v.D] || len(got) != v.D {
					t.Fatalf("Row(%d) is not Data[%d:%d]", i, i*v.D, (i+1)*v.D)
				}
			}
		})
	}
}

func TestORTEmptyBatchAndNaN(t *testing.T) {
	enc := openORT(t, "tiny.onnx", Options{Threads: 1})
	v, err := enc.Encode(context.Background(), Images{N: 0, C: 3, H: 16, W: 16})
	if err != nil || v.N != 0 || v.D != 10 || len(v.Data) != 0 {
		t.Fatalf("empty batch: got %+v, %v; want 0x10 and no error", v, err)
	}
	x := Images{N: 1, C: 3, H: 16, W: 16, Data: make([]float32, 3*16*16)}
	for i := range x.Data {
		x.Data[i] = float32(nanOrZero(i))
	}
	v, err = enc.Encode(context.Background(), x)
	if err != nil {
		t.Fatalf("NaN input must be accepted, got %v", err)
	}
	if v.N != 1 || v.D != 10 {
		t.Fatalf("got %dx%d, want 1x10", v.N, v.D)
	}
}

// TestORTConcurrent checks that 4 goroutines sharing one encoder get the same
// vectors as serial calls.
func TestORTConcurrent(t *testing.T) {
	x, _ := resnetInput(t)
	enc := openORT(t, "resnet18_dyn.onnx", Options{Threads: 2})
	per := x.C * x.H * x.W
	// Four different requests: images [i, i+2) for i = 0..3.
	reqs := make([]Images, 4)
	serial := make([]Vectors, 4)
	for i := range reqs {
		reqs[i] = Images{N: 2, C: 3, H: 32, W: 32, Data: x.Data[i*per : (i+2)*per]}
		v, err := enc.Encode(context.Background(), reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		serial[i] = v
	}
	const rounds = 3
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (g + r) % 4
				v, err := enc.Encode(context.Background(), reqs[i])
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(v, serial[i]) {
					errs <- fmt.Errorf("goroutine %d round %d request %d: result differs from the serial call", g, r, i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestORTClose(t *testing.T) {
	enc, err := OpenORT(filepath.Join(modelDir(t), "tiny.onnx"), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = enc.Encode(context.Background(), Images{N: 1, C: 3, H: 16, W: 16, Data: make([]float32, 768)})
	wantErrContains(t, err, "is closed")
}
