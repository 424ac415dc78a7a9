package infer

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// TestOnnxGoMatchesPyTorch runs the tiny model (Conv, BN folded, MaxPool,
// residual Add, GlobalAveragePool, Flatten, Gemm) through onnx-go. Each image
// goes twice through batch-1 runs: the second pass would drift if a decoded
// graph were reused (onnx-go's Gemm writes into its bias at batch 1).
func TestOnnxGoMatchesPyTorch(t *testing.T) {
	dir := modelDir(t)
	xt := Images{N: 3, C: 3, H: 16, W: 16, Data: pyref.ReadFloat32(t, filepath.Join(dir, "xt.f32"))}
	logits := pyref.ReadFloat32(t, filepath.Join(dir, "yt_logits.f32"))
	feat := pyref.ReadFloat32(t, filepath.Join(dir, "yt_feat.f32"))
	tests := []struct {
		model string
		info  Info
		want  []float32
	}{
		{"tiny.onnx", Info{InputName: "input", OutputName: "logits", InputShape: []int64{-1, 3, 16, 16},
			OutputDim: 10, Metadata: map[string]string{}}, logits},
		{"tiny4d.onnx", Info{InputName: "input", OutputName: "pooled", InputShape: []int64{-1, 3, 16, 16},
			OutputDim: 16, Metadata: map[string]string{}}, feat},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			enc, err := OpenOnnxGo(filepath.Join(dir, tc.model))
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			if got := enc.Info(); !reflect.DeepEqual(got, tc.info) {
				t.Errorf("Info() = %+v, want %+v", got, tc.info)
			}
			v, err := enc.Encode(context.Background(), xt)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, tc.model+" batch 3", v.Data, tc.want, 1e-4)
			per, d := 3*16*16, tc.info.OutputDim
			for pass := range 2 {
				for i := range 3 {
					one := Images{N: 1, C: 3, H: 16, W: 16, Data: xt.Data[i*per : (i+1)*per]}
					v, err := enc.Encode(context.Background(), one)
					if err != nil {
						t.Fatal(err)
					}
					if pass == 1 {
						assertClose(t, tc.model+" batch 1, second pass", v.Data, tc.want[i*d:(i+1)*d], 1e-4)
					}
				}
			}
		})
	}
}

// TestOnnxGoResNet18 checks onnx-go against PyTorch on the torchvision
// resnet18 with one 32x32 image.
func TestOnnxGoResNet18(t *testing.T) {
	x, want := resnetInput(t)
	enc, err := OpenOnnxGo(filepath.Join(modelDir(t), "resnet18_dyn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if md := enc.Info().Metadata; md["ssl-onnx.arch"] != "resnet18" {
		t.Errorf("metadata = %v, want ssl-onnx.arch=resnet18", md)
	}
	one := Images{N: 1, C: 3, H: 32, W: 32, Data: x.Data[:3*32*32]}
	v, err := enc.Encode(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	if v.N != 1 || v.D != 512 {
		t.Fatalf("got %dx%d, want 1x512", v.N, v.D)
	}
	assertClose(t, "onnx-go resnet18", v.Data, want[:512], 1e-4)
}
