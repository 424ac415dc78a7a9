package infer

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// wantErrContains fails unless err is non-nil and its message contains every part.
func wantErrContains(tb testing.TB, err error, parts ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want one containing %q", parts)
	}
	tb.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			tb.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func nanOrZero(i int) float64 {
	if i%7 == 0 {
		return math.NaN()
	}
	return 0
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEncodeInputErrors checks input validation of both runtimes against the
// tiny model, whose input is [batch, 3, 16, 16].
func TestEncodeInputErrors(t *testing.T) {
	tiny := filepath.Join(modelDir(t), "tiny.onnx")
	ortEnc := openORT(t, "tiny.onnx", Options{Threads: 1})
	goEnc, err := OpenOnnxGo(tiny)
	if err != nil {
		t.Fatal(err)
	}
	defer goEnc.Close()
	img := func(n, c, h, w, size int) Images {
		return Images{N: n, C: c, H: h, W: w, Data: make([]float32, size)}
	}
	tests := []struct {
		name string
		x    Images
		want []string
	}{
		{"wrong C", img(2, 1, 16, 16, 2*16*16), []string{`input "input" expects C=3 (model shape [?, 3, 16, 16]), found C=1`}},
		{"wrong H", img(1, 3, 32, 16, 3*32*16), []string{"expects H=16", "found H=32"}},
		{"wrong W", img(1, 3, 16, 8, 3*16*8), []string{"expects W=16", "found W=8"}},
		{"short data", img(2, 3, 16, 16, 10), []string{"len(Data) = 10, expected N*C*H*W = 2*3*16*16 = 1536"}},
		{"long data", img(1, 3, 16, 16, 769), []string{"len(Data) = 769, expected N*C*H*W = 1*3*16*16 = 768"}},
		{"negative N", img(-1, 3, 16, 16, 0), []string{"N must be >= 0, found N=-1"}},
		{"zero C", img(1, 0, 16, 16, 0), []string{"C, H and W must be positive, found C=0 H=16 W=16"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for rt, enc := range map[string]Encoder{"ort": ortEnc, "onnx-go": goEnc} {
				_, err := enc.Encode(context.Background(), tc.x)
				if err == nil {
					t.Fatalf("%s: no error", rt)
				}
				wantErrContains(t, err, tc.want...)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := modelDir(t)
	good := filepath.Join(dir, "tiny.onnx")
	missing := filepath.Join(t.TempDir(), "missing.onnx")
	corrupt := writeFile(t, "corrupt.onnx", []byte("this is not a protobuf \xff\xff\xff\xff"))
	realLib, err := LibraryPath("")
	if err != nil {
		t.Fatal(err)
	}
	// A directory holding only a link to the CPU library: no CUDA providers beside it.
	cudaDir := t.TempDir()
	linkedLib := filepath.Join(cudaDir, "libonnxruntime.so")
	if err := os.Symlink(realLib, linkedLib); err != nil {
		t.Fatal(err)
	}
	otherLib := writeFile(t, "libother.so", []byte("not loaded"))
	noLib := filepath.Join(t.TempDir(), "nope", "libonnxruntime.so")

	tests := []struct {
		name  string
		model string
		opt   Options
		want  []string
	}{
		{"missing model", missing, Options{}, []string{"infer: model file", missing, "no such file or directory"}},
		{"model is a directory", dir, Options{}, []string{dir, "is a directory"}},
		{"corrupt model", corrupt, Options{}, []string{"ONNX Runtime cannot load model " + corrupt}},
		{"missing library", good, Options{Library: noLib}, []string{noLib, "(from Options.Library) does not exist", "make setup"}},
		{"second library", good, Options{Library: otherLib}, []string{"already loaded from " + realLib, "cannot also load " + otherLib}},
		{"cuda without providers", good, Options{Device: "cuda", Library: linkedLib}, []string{
			"CUDA provider library libonnxruntime_providers_shared.so not found in " + cudaDir,
			filepath.Join(cudaDir, "libonnxruntime_providers_shared.so")}},
		{"unknown device", good, Options{Device: "tpu"}, []string{`unknown device "tpu"`, `"cuda:N"`}},
		{"bad cuda index", good, Options{Device: "cuda:x"}, []string{`unknown device "cuda:x"`}},
		{"negative threads", good, Options{Threads: -1}, []string{"Threads must be >= 0", "found -1"}},
		{"unknown output", good, Options{Output: "emb"}, []string{`no output "emb"; its outputs are ["logits" "feat"]`}},
		{"spatial output", filepath.Join(dir, "conv.onnx"), Options{}, []string{
			`output "map" has shape [?, 16, 16, 16]; expected [N, D] or [N, D, 1, 1]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := OpenORT(tc.model, tc.opt)
			if err == nil {
				enc.Close()
			}
			wantErrContains(t, err, tc.want...)
		})
	}
}

// TestORTLibraryLoadFailure loads a file that is not a shared library in a
// child process (ONNX Runtime can be loaded only once per process) and
// checks that the error comes back as a value.
func TestORTLibraryLoadFailure(t *testing.T) {
	fake := writeFile(t, "libonnxruntime.so", []byte("not an ELF file"))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+fake, "INFER_TEST_CHILD_MODEL="+filepath.Join(modelDir(t), "tiny.onnx"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"error: infer: cannot load ONNX Runtime from " + fake, "Error loading ONNX shared library"} {
		if !strings.Contains(got, want) {
			t.Errorf("child output %q does not contain %q", got, want)
		}
	}
}

func TestOnnxGoOpenErrors(t *testing.T) {
	dir := modelDir(t)
	missing := filepath.Join(t.TempDir(), "missing.onnx")
	corrupt := writeFile(t, "corrupt.onnx", []byte("\xff\xff\xff\xff garbage"))
	// Erf is valid ONNX (ONNX Runtime runs it) but onnx-go v0.5.0 lacks it.
	erf := filepath.Join(t.TempDir(), "erf.onnx")
	m := &onnxpb.Model{IRVersion: 7, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: &onnxpb.Graph{
		Name: "erf",
		Nodes: []*onnxpb.Node{
			{OpType: "Erf", Inputs: []string{"x"}, Outputs: []string{"e"}},
			{OpType: "GlobalAveragePool", Inputs: []string{"e"}, Outputs: []string{"p"}},
			{OpType: "Flatten", Inputs: []string{"p"}, Outputs: []string{"y"}},
		},
		Inputs:  []*onnxpb.ValueInfo{onnxpb.TensorValueInfo("x", onnxpb.DataTypeFloat, []onnxpb.Dim{{Value: 1}, {Value: 3}, {Value: 4}, {Value: 4}})},
		Outputs: []*onnxpb.ValueInfo{onnxpb.TensorValueInfo("y", onnxpb.DataTypeFloat, []onnxpb.Dim{{Value: 1}, {Value: 3}})},
	}}
	if err := onnxpb.WriteFile(erf, m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model string
		want        []string
	}{
		{"missing model", missing, []string{"infer: model file", "no such file or directory"}},
		{"corrupt model", corrupt, []string{"model " + corrupt + " is not a valid ONNX file"}},
		{"spatial output", filepath.Join(dir, "conv.onnx"), []string{`output "map" has shape [?, 16, 16, 16]`}},
		{"unsupported operator", erf, []string{"onnx-go cannot build " + erf, "Erf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := OpenOnnxGo(tc.model)
			if err == nil {
				enc.Close()
			}
			wantErrContains(t, err, tc.want...)
		})
	}
}
