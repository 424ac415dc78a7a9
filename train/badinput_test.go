package train

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch/libtch"

	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// TestRunRejectsBadInput checks that every bad configuration, and every checkpoint a run cannot
// resume from, gives an error that names the problem instead of a crash or a silent no-op.
func TestRunRejectsBadInput(t *testing.T) {
	full := trainedFromScratch(t)
	sidecar, err := os.ReadFile(filepath.Join(full, SidecarName))
	if err != nil {
		t.Fatal(err)
	}
	var ck Checkpoint
	if err := json.Unmarshal(sidecar, &ck); err != nil {
		t.Fatal(err)
	}

	// resumeDir holds the scratch run's sidecar (edited by edit) and links to its files.
	resumeDir := func(t *testing.T, dir string, edit func(*Checkpoint), weights []byte) {
		c := ck
		c.Config.Split = "test" // as the runs below ask (resuming needs the same data)
		if edit != nil {
			edit(&c)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, SidecarName), js, 0o644); err != nil {
			t.Fatal(err)
		}
		if weights != nil {
			if err := os.WriteFile(filepath.Join(dir, ck.Weights), weights, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Symlink(filepath.Join(full, ck.Weights), filepath.Join(dir, ck.Weights)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(full, ck.OptimST), filepath.Join(dir, ck.OptimST)); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		edit    func(*Config)
		setup   func(t *testing.T, dir string) // a previous run's files, for the resume cases
		wantErr string
		cuda    bool // the case assumes libtorch has no CUDA device
	}{
		{name: "unknown loss", edit: func(c *Config) { c.Loss = "ntxent" }, wantErr: `loss "ntxent": expected one of [ce infonce softnn supcon]`},
		{name: "one view for a contrastive loss", edit: func(c *Config) { c.Views = 1 }, wantErr: "views 1: loss infonce compares two views of each image"},
		{name: "three views", edit: func(c *Config) { c.Loss, c.Views = "ce", 3 }, wantErr: "views 3: expected 1 or 2 views per image"},
		{name: "batch of 1", edit: func(c *Config) { c.BatchSize = 1 }, wantErr: "batch size 1: contrastive losses need at least 2 images per batch"},
		{name: "batch larger than dataset", edit: func(c *Config) { c.BatchSize = 100 }, wantErr: "dataset fmnist has 64 images, fewer than one batch of 100"},
		{name: "cuda on a CPU-only machine", edit: func(c *Config) { c.Device = "cuda" }, cuda: true,
			wantErr: "device cuda: libtorch reports no usable CUDA device"},
		{name: "unknown device", edit: func(c *Config) { c.Device = "tpu" }, wantErr: `device "tpu": expected cpu, cuda or cuda:N`},
		{name: "unknown precision", edit: func(c *Config) { c.Precision = "fp16" }, wantErr: `precision "fp16": expected one of [fp32 bf16]`},
		{name: "negative threads", edit: func(c *Config) { c.Threads = -1 }, wantErr: "threads -1: expected at least 1"},
		{name: "negative epochs", edit: func(c *Config) { c.Epochs = -3 }, wantErr: "epochs -3: expected at least 1"},
		{name: "negative warmup", edit: func(c *Config) { c.Warmup = -1 }, wantErr: "warmup -1: expected 0 or more"},
		{name: "negative temperature", edit: func(c *Config) { c.Temperature = -0.5 }, wantErr: "temperature -0.5: expected a positive number"},
		{name: "negative lr", edit: func(c *Config) { c.LR = -1 }, wantErr: "lr -1: expected a positive number"},
		{name: "unknown optimizer", edit: func(c *Config) { c.Optimizer = "rmsprop" }, wantErr: `optimizer "rmsprop": expected adam, sgd or lars`},
		{name: "unknown arch", edit: func(c *Config) { c.Arch = "vgg16" }, wantErr: `arch "vgg16": expected one of resnet18, resnet34, resnet50`},
		{name: "input too small", edit: func(c *Config) { c.Size = 4 }, wantErr: "input 3x4x4: expected at least 1 channel and 8x8 pixels"},
		{name: "unknown dataset", edit: func(c *Config) { c.Dataset = "imagenet21k" }, wantErr: `unknown dataset "imagenet21k"`},
		{name: "crop scale above 1", edit: func(c *Config) { c.CropMin = 2 }, wantErr: "augment: scale range (2, 1)"},
		{name: "no run directory", edit: func(c *Config) { c.Dir = "" }, wantErr: "run directory:"},

		{name: "resume other arch", edit: func(c *Config) { c.Arch = "resnet34" }, setup: func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "resume: the run asks for --arch resnet34 (checkpoint: resnet18); only --epochs may change"},
		{name: "resume other stem", edit: func(c *Config) { c.Stem = "cifar" }, setup: func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "--stem cifar (checkpoint: imagenet)"},
		{name: "resume other out dim", edit: func(c *Config) { c.OutDim = 64 }, setup: func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "--out-dim 64 (checkpoint: 128)"},
		{name: "resume other optimizer", edit: func(c *Config) { c.Optimizer = "sgd" }, setup: func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "--optimizer sgd (checkpoint: adam)"},
		{name: "resume other recipe", edit: func(c *Config) { c.LR, c.Temperature, c.CropMin = 1e-3, 0.2, 0.3 },
			setup:   func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "--temperature 0.2 (checkpoint: 0.07), --lr 0.001 (checkpoint: 0.0003)"},
		{name: "resume other data", edit: func(c *Config) { c.Limit = 32 }, setup: func(t *testing.T, d string) { resumeDir(t, d, nil, nil) },
			wantErr: "--limit 32 (checkpoint: 64)"},
		{name: "resume sidecar lies about arch", edit: func(c *Config) { c.Arch = "resnet34" },
			setup: func(t *testing.T, d string) {
				resumeDir(t, d, func(k *Checkpoint) { k.Config.Arch, k.Spec.Arch = "resnet34", "resnet34" }, nil)
			},
			wantErr: "tensors missing or of another shape"},
		{name: "resume corrupt weights", setup: func(t *testing.T, d string) { resumeDir(t, d, nil, []byte("not a torchscript archive")) },
			wantErr: "model-e0002.ot"},
		{name: "resume corrupt sidecar", setup: func(t *testing.T, d string) {
			if err := os.WriteFile(filepath.Join(d, SidecarName), []byte(`{"epoch": 2,`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "checkpoint.json: unexpected end of JSON input"},
		{name: "resume sidecar without weights", setup: func(t *testing.T, d string) {
			if err := os.WriteFile(filepath.Join(d, SidecarName), []byte(`{"spec": {"arch": "resnet18", "stem": "imagenet", "head": "simclr", "out_dim": 128, "input_c": 3, "input_hw": 32}}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "field weights is empty"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if tc.cuda && libtch.AtcCudaIsAvailable() {
				// The error cannot happen here; check the other half of the device check instead.
				if err := torchnet.CheckDevice("cuda"); err != nil {
					t.Errorf("CheckDevice(cuda) with CUDA present = %v", err)
				}
				return
			}
			dir := t.TempDir()
			c := smokeConfig(dir, 2)
			c.Split = "test" // 10,000 images to decompress instead of 60,000: these runs never train
			if tc.setup != nil {
				tc.setup(t, dir)
				c.Resume = true
			}
			if tc.edit != nil {
				tc.edit(&c)
			}
			before, _ := os.ReadFile(filepath.Join(dir, SidecarName))
			var out bytes.Buffer
			logs, err := Run(context.Background(), c, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run error = %v\nwant one containing %q (output %q)", err, tc.wantErr, out.String())
			}
			t.Logf("error: %v", firstLine(err.Error()))
			if len(logs) != 0 {
				t.Errorf("a failed run returned epoch logs %+v", logs)
			}
			// A rejected run leaves the directory's checkpoint as it was.
			after, _ := os.ReadFile(filepath.Join(dir, SidecarName))
			if !bytes.Equal(before, after) {
				t.Errorf("the rejected run changed %s", SidecarName)
			}
		})
	}
}

// firstLine cuts gotch's multi-line libtorch messages (with stack traces) for the log.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
