package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/models"
)

// smokeConfig is a tiny real run: the first 64 Fashion-MNIST training images, ResNet-18 with
// the ImageNet stem at 32x32, 4 batches of 16 per epoch. One libtorch thread: on the shared
// 2-core test machine, 2 OpenMP threads spin at every barrier while other processes hold a core
// (measured: 15-17 s of CPU for the 2 epochs with 2 threads, 6 s with 1). Resuming is also
// bitwise identical with 2 threads (checked by hand with Threads: 2).
func smokeConfig(dir string, epochs int) Config {
	return Config{Dataset: "fmnist", Limit: 64, BatchSize: 16, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Epochs: epochs, Threads: 1, Seed: 1, Workers: 1, Dir: dir}
}

// scratch is the 2-epoch run from scratch shared by the smoke, resume and PyTorch tests.
var scratch struct {
	once sync.Once
	dir  string
	logs []EpochLog
	out  string
	secs float64
	err  error
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		// Child of TestKill9MidEpochResumes: train until killed.
		if _, err := Run(context.Background(), smokeConfig(dir, 50), io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if scratch.dir != "" {
		os.RemoveAll(scratch.dir)
	}
	os.Exit(code)
}

// trainedFromScratch runs (once) train.Run for 2 epochs from scratch and returns its directory.
func trainedFromScratch(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a trained run: make test runs it")
	}
	scratch.once.Do(func() {
		scratch.dir, scratch.err = os.MkdirTemp("", "train-scratch-")
		if scratch.err != nil {
			return
		}
		var out bytes.Buffer
		t0 := time.Now()
		scratch.logs, scratch.err = Run(context.Background(), smokeConfig(scratch.dir, 2), &out)
		scratch.secs = time.Since(t0).Seconds()
		scratch.out = out.String()
	})
	if scratch.err != nil {
		t.Fatalf("2-epoch run from scratch: %v\noutput:\n%s", scratch.err, scratch.out)
	}
	return scratch.dir
}

func readLog(t *testing.T, dir string) []EpochLog {
	t.Helper()
	f, err := os.Open(LogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs []EpochLog
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var el EpochLog
		if err := json.Unmarshal(sc.Bytes(), &el); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		logs = append(logs, el)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return logs
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestRunSmoke checks what a 2-epoch run leaves in its directory: the sidecar (epoch 2, 8
// steps), a 2-line JSON log with finite losses and the cosine learning rates, the epoch-2
// weight and optimiser files only (epoch 1's removed, no temporaries), and optimiser state with
// Adam's two moments per trainable parameter.
func TestRunSmoke(t *testing.T) {
	dir := trainedFromScratch(t)
	t.Logf("2 epochs of 64 images: %.1f s\n%s", scratch.secs, scratch.out)

	if got, want := strings.Join(dirNames(t, dir), " "), "checkpoint.json model-e0002.ot optim-e0002.ot train.log.jsonl"; got != want {
		t.Errorf("run directory holds %q, want %q", got, want)
	}
	ck, err := LoadCheckpoint(dir)
	if err != nil || ck == nil {
		t.Fatalf("LoadCheckpoint = %v, %v", ck, err)
	}
	if ck.Epoch != 2 || ck.Step != 8 || ck.Weights != "model-e0002.ot" || ck.OptimST != "optim-e0002.ot" {
		t.Errorf("checkpoint: epoch %d step %d weights %q optimizer %q; want 2, 8, model-e0002.ot, optim-e0002.ot", ck.Epoch, ck.Step, ck.Weights, ck.OptimST)
	}
	if ck.Spec.Arch != "resnet18" || ck.Spec.Stem != "imagenet" || ck.Spec.Head != "simclr" || ck.Spec.OutDim != 128 || ck.Spec.InputHW != 32 {
		t.Errorf("checkpoint spec = %+v", ck.Spec)
	}
	if c := ck.Config; c.Loss != "infonce" || c.Optimizer != "adam" || c.LR != 3e-4 || c.Temperature != 0.07 || c.Epochs != 2 || c.Limit != 64 {
		t.Errorf("checkpoint config lost the run's settings (defaults filled in): %+v", c)
	}

	logs := readLog(t, dir)
	if len(logs) != 2 {
		t.Fatalf("log has %d lines, want 2", len(logs))
	}
	wantLR := []float64{3e-4, 1.5e-4} // cosine over 2 epochs, no warm-up
	for i, el := range logs {
		if el.Epoch != i+1 || el.Images != 64 || math.IsNaN(el.Loss) || math.IsInf(el.Loss, 0) || el.Loss <= 0 ||
			math.Abs(el.LR-wantLR[i]) > 1e-15 || el.Seconds <= 0 || el.ImagesPS <= 0 {
			t.Errorf("log line %d = %+v; want epoch %d, 64 images, a finite positive loss, lr %g", i, el, i+1, wantLR[i])
		}
		if i < len(scratch.logs) && scratch.logs[i] != el {
			t.Errorf("Run returned %+v for epoch %d, the log says %+v", scratch.logs[i], i+1, el)
		}
	}
	if len(scratch.logs) != 2 {
		t.Errorf("Run returned %d epoch logs, want 2", len(scratch.logs))
	}
	if ck.Loss != logs[1].Loss {
		t.Errorf("checkpoint loss %g, last log line %g", ck.Loss, logs[1].Loss)
	}

	// The optimiser file has m.i and v.i for every trainable parameter.
	g, err := models.Build(ck.Spec)
	if err != nil {
		t.Fatal(err)
	}
	nTrain := 0
	for _, p := range g.Params() {
		if p.Trainable {
			nTrain++
		}
	}
	named, err := ts.LoadMulti(filepath.Join(dir, ck.OptimST))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, nt := range named {
		names[nt.Name] = true
		nt.Tensor.MustDrop()
	}
	for i := 0; i < nTrain; i++ {
		for _, k := range []string{"m", "v"} {
			if !names[fmt.Sprintf("%s.%d", k, i)] {
				t.Errorf("optimizer state lacks %s.%d", k, i)
			}
		}
	}
	if len(names) != 2*nTrain {
		t.Errorf("optimizer state has %d tensors, want %d (2 x %d trainable)", len(names), 2*nTrain, nTrain)
	}
}

// TestResumeMatchesUninterrupted trains 1 epoch, resumes to 2, and compares every parameter
// and buffer with the uninterrupted 2-epoch run: augmentation and batch order are functions of
// (seed, epoch), the optimiser state and step count are checkpointed, and libtorch on the CPU
// with the same thread count is deterministic, so they must be bitwise identical.
func TestResumeMatchesUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	full := trainedFromScratch(t)
	dir := t.TempDir()
	logs1, err := Run(context.Background(), smokeConfig(dir, 1), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs1) != 1 || logs1[0] != withTiming(scratch.logs[0], logs1[0]) {
		t.Errorf("first epoch: %+v, the uninterrupted run's: %+v", logs1, scratch.logs[:1])
	}
	if got := strings.Join(dirNames(t, dir), " "); got != "checkpoint.json model-e0001.ot optim-e0001.ot train.log.jsonl" {
		t.Errorf("after 1 epoch the directory holds %q", got)
	}

	resume := smokeConfig(dir, 2)
	resume.Resume = true
	var out bytes.Buffer
	logs2, err := Run(context.Background(), resume, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "resuming "+dir+" after epoch 1") {
		t.Errorf("resume output does not say where it resumes:\n%s", out.String())
	}
	if len(logs2) != 1 || logs2[0].Epoch != 2 {
		t.Fatalf("resumed run returned %+v, want only epoch 2", logs2)
	}
	if logs2[0].Loss != scratch.logs[1].Loss {
		t.Errorf("epoch 2 loss: resumed %.9g, uninterrupted %.9g", logs2[0].Loss, scratch.logs[1].Loss)
	}
	if got := strings.Join(dirNames(t, dir), " "); got != "checkpoint.json model-e0002.ot optim-e0002.ot train.log.jsonl" {
		t.Errorf("after resuming the directory holds %q", got)
	}
	if logs := readLog(t, dir); len(logs) != 2 || logs[0].Epoch != 1 || logs[1].Epoch != 2 {
		t.Errorf("resumed log = %+v, want epochs 1 and 2", logs)
	}

	resumed, full2 := stateDict(t, dir), stateDict(t, full)
	if len(resumed) != len(full2) {
		t.Fatalf("%d tensors resumed, %d uninterrupted", len(resumed), len(full2))
	}
	differ, worst := 0, 0.0
	for name, want := range full2 {
		got, ok := resumed[name]
		if !ok || len(got) != len(want) {
			t.Errorf("tensor %s: missing or of another size after resuming", name)
			continue
		}
		same := true
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				same = false
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
			}
		}
		if !same {
			differ++
			if differ <= 5 {
				t.Errorf("tensor %s differs between the resumed and the uninterrupted run", name)
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d tensors differ, max |diff| %.3g", differ, len(full2), worst)
	}

	// A further resume with nothing left to do is a no-op, not an error (also without a writer).
	out.Reset()
	logs3, err := Run(context.Background(), resume, &out)
	if err != nil || len(logs3) != 0 || !strings.Contains(out.String(), "already trained 2 of 2 epochs") {
		t.Errorf("resuming a finished run: logs %+v, err %v, output %q", logs3, err, out.String())
	}
	if logs3, err := Run(context.Background(), resume, nil); err != nil || len(logs3) != 0 {
		t.Errorf("resuming a finished run with a nil writer: logs %+v, err %v", logs3, err)
	}
}

// withTiming returns want with the timing fields of got (which differ between runs).
func withTiming(want, got EpochLog) EpochLog {
	want.Seconds, want.ImagesPS = got.Seconds, got.ImagesPS
	return want
}

func stateDict(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	_, m, err := LoadModel(testSession(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sd, err := m.StateDict()
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// TestInitFrom starts a run at a larger input size from another run's weights (progressive
// resizing): with a learning rate too small to move them, the new run's weights are the old
// run's; a mismatched architecture or a directory without a checkpoint is an error.
func TestInitFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	src := trainedFromScratch(t)
	_, a, err := LoadModel(testSession(t), src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.StateDict()
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := smokeConfig(dir, 1)
	c.Size, c.LR, c.InitFrom = 48, 1e-12, src
	var out bytes.Buffer
	if _, err := Run(context.Background(), c, &out); err != nil {
		t.Fatalf("init-from run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "initialised from "+src) {
		t.Errorf("output does not say where the weights came from:\n%s", out.String())
	}
	ck, b, err := LoadModel(testSession(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.StateDict()
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ck.Spec.InputHW != 48 || ck.Config.InitFrom != src {
		t.Errorf("checkpoint spec %+v, init_from %q: expected input 48 from %s", ck.Spec, ck.Config.InitFrom, src)
	}
	for _, name := range []string{"conv1.weight", "layer4.1.conv2.weight", "fc.2.weight"} {
		w, g := want[name], got[name]
		worst := 0.0
		for i := range w {
			worst = math.Max(worst, math.Abs(float64(w[i]-g[i])))
		}
		if len(w) == 0 || len(w) != len(g) || worst > 1e-6 {
			t.Errorf("%s: %d vs %d values, largest difference %g: expected the source run's weights", name, len(w), len(g), worst)
		}
	}
	// A fresh run's weights differ, so the comparison above can fail.
	fresh := smokeConfig(t.TempDir(), 1)
	fresh.Size, fresh.LR, fresh.Seed = 48, 1e-12, 7
	if _, err := Run(context.Background(), fresh, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, f, err := LoadModel(testSession(t), fresh.Dir)
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := f.StateDict()
	f.Close()
	if fw["conv1.weight"][0] == want["conv1.weight"][0] {
		t.Errorf("a fresh run starts with the source run's conv1 weights")
	}

	bad := smokeConfig(t.TempDir(), 1)
	bad.Stem, bad.InitFrom = "cifar", src
	if _, err := Run(context.Background(), bad, io.Discard); err == nil || !strings.Contains(err.Error(), "init-from") || !strings.Contains(err.Error(), "resnet18/imagenet") {
		t.Errorf("init-from a different stem: got %v", err)
	}
	bad.Stem, bad.InitFrom = "imagenet", t.TempDir()
	if _, err := Run(context.Background(), bad, io.Discard); err == nil || !strings.Contains(err.Error(), "no checkpoint.json") {
		t.Errorf("init-from a directory without checkpoint: got %v", err)
	}
}

// TestExportSize exports a checkpoint at a larger input size than it was trained at.
func TestExportSize(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	dir := trainedFromScratch(t)
	om, g, _, err := Export(dir, "", 48)
	if err != nil {
		t.Fatal(err)
	}
	md := om.Metadata()
	if md["input_shape"] != "3x48x48" || md["train_size"] != "32" || g.Spec.InputHW != 48 {
		t.Errorf("metadata input %s train_size %s, graph input %d: expected 48 from a 32-pixel run", md["input_shape"], md["train_size"], g.Spec.InputHW)
	}
	if _, _, _, err := Export(dir, "", 4); err == nil || !strings.Contains(err.Error(), "export size 4") {
		t.Errorf("export at 4 pixels: got %v", err)
	}
}

// TestOneViewClassifier trains a classifier on one view per image (--views 1): the run
// records its views, its log counts each image once, a resume with two views is refused
// naming --views, and its projection layer exports the classifier's 10 logits.
func TestOneViewClassifier(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a ResNet-18: make test runs it")
	}
	dir := t.TempDir()
	c := smokeConfig(dir, 1)
	c.Loss, c.Views, c.CropMin, c.Watermark = "ce", 1, 1, true
	logs, err := Run(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatalf("one-view classifier: %v", err)
	}
	if len(logs) != 1 || logs[0].Images != 64 || !(logs[0].Loss > 0) {
		t.Fatalf("logs %+v: want one epoch of 64 images with a positive loss", logs)
	}
	ck, err := LoadCheckpoint(dir)
	if err != nil || ck == nil {
		t.Fatalf("LoadCheckpoint = %v, %v", ck, err)
	}
	if ck.Config.Views != 1 || ck.Spec.Head != "linear" || ck.Spec.OutDim != 10 {
		t.Errorf("checkpoint: views %d, head %s out %d; want 1 view, linear head, 10 classes", ck.Config.Views, ck.Spec.Head, ck.Spec.OutDim)
	}
	two := c
	two.Views, two.Epochs, two.Resume = 2, 2, true
	if _, err := Run(context.Background(), two, io.Discard); err == nil || !strings.Contains(err.Error(), "--views 2 (checkpoint: 1)") {
		t.Errorf("resume with two views: got %v, want a refusal naming --views", err)
	}
	om, _, _, err := Export(dir, "projection", 0)
	if err != nil {
		t.Fatalf("export projection: %v", err)
	}
	if md := om.Metadata(); md["output"] != "projection" || md["output_dim"] != "10" || md["train_loss"] != "ce" {
		t.Errorf("projection export metadata %v: want the classifier's 10 outputs", md)
	}
}
