package attack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// victimSpec is the victim of every attack test: a ResNet-18 with the ImageNet stem at 32x32
// (cheap on a CPU) and a SimCLR head; exported as its 512-d representation by default.
var victimSpec = models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}

var victims struct {
	once                       sync.Once
	dir                        string
	representation, projection string
	err                        error
}

// victimFiles returns the ONNX files of the victim (representation, 512-d) and of the same
// victim exported at its projection head (128-d), written once per test binary.
func victimFiles(t *testing.T) (representation, projection string) {
	t.Helper()
	victims.once.Do(func() {
		if victims.dir, victims.err = os.MkdirTemp("", "attack-test-"); victims.err != nil {
			return
		}
		victims.representation = filepath.Join(victims.dir, "victim.onnx")
		if victims.err = export.RandomModel(victims.representation, victimSpec, 3); victims.err != nil {
			return
		}
		victims.projection = filepath.Join(victims.dir, "victim-projection.onnx")
		victims.err = export.RandomModelOutput(victims.projection, victimSpec, 4, models.OutputProjection)
	})
	if victims.err != nil {
		t.Fatalf("writing the victim models: %v", victims.err)
	}
	return victims.representation, victims.projection
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, enc := range encoders.open {
		enc.Close()
	}
	if victims.dir != "" {
		os.RemoveAll(victims.dir)
	}
	os.Exit(code)
}

// countingVictim is a real victim (an ONNX Runtime encoder) behind a meter: it counts the
// images and calls passed to the real encoder, and, like an API whose quota runs out, refuses
// any call that would take it past failAfter images (0 = never).
type countingVictim struct {
	infer.Encoder
	mu        sync.Mutex
	images    int
	calls     int
	maxBatch  int
	failAfter int
}

func (v *countingVictim) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v.mu.Lock()
	if v.failAfter > 0 && v.images+x.N > v.failAfter {
		v.mu.Unlock()
		return infer.Vectors{}, fmt.Errorf("quota of %d images exhausted", v.failAfter)
	}
	v.images += x.N
	v.calls++
	v.maxBatch = max(v.maxBatch, x.N)
	v.mu.Unlock()
	return v.Encoder.Encode(ctx, x)
}

func (v *countingVictim) sent() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.images
}

// encoders holds one ONNX Runtime session per victim file for the whole test binary (opening
// a ResNet-18 costs more than the queries of a test); each test meters it afresh.
var encoders struct {
	sync.Mutex
	open map[string]infer.Encoder
}

// openVictim returns the ONNX Runtime encoder of path behind a fresh meter. One intra-op
// thread: the attack tests share two cores, and a spinning thread pool only burns them.
func openVictim(t *testing.T, path string) *countingVictim {
	t.Helper()
	encoders.Lock()
	defer encoders.Unlock()
	enc, ok := encoders.open[path]
	if !ok {
		var err error
		if enc, err = infer.OpenORT(path, infer.Options{Threads: 1}); err != nil {
			t.Fatalf("OpenORT(%s): %v", path, err)
		}
		if encoders.open == nil {
			encoders.open = map[string]infer.Encoder{}
		}
		encoders.open[path] = enc
	}
	return &countingVictim{Encoder: enc}
}

// tinyAttack is a cheap attack on the real Fashion-MNIST (its test split: 10x cheaper to open
// than the training split; the last 1000 images are held out): the stolen ResNet-18 (ImageNet stem)
// sees 16x16 images (one-view losses need not match the victim's 32x32 input), one epoch, two
// threads, and a batch just over half the query images, so an epoch is one training step
// (drop_last).
func tinyAttack(v *countingVictim, name, dir, loss string, queries int) Config {
	return Config{Victim: v, VictimName: name, QueryDataset: "fmnist", QuerySplit: "test", NumQueries: queries, Loss: loss,
		Arch: "resnet18", Stem: "imagenet", Size: 16, Epochs: 1, BatchSize: queries/2 + 1, Seed: 1, Threads: 2, Dir: dir}
}

func run(t *testing.T, c Config) (*Result, string, error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var log bytes.Buffer
	res, err := Run(context.Background(), c, &log)
	return res, log.String(), err
}

func mustRun(t *testing.T, c Config) (*Result, string) {
	t.Helper()
	res, log, err := run(t, c)
	if err != nil {
		t.Fatalf("Run(%s, %d queries): %v\nlog:\n%s", c.Loss, c.NumQueries, err, log)
	}
	if math.IsNaN(res.FinalLoss) || math.IsInf(res.FinalLoss, 0) {
		t.Fatalf("final loss %v", res.FinalLoss)
	}
	return res, log
}

func cacheLen(t *testing.T, dir string) int {
	t.Helper()
	c, err := OpenCache(filepath.Join(dir, CacheName), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Len()
}

// TestRunExactBudgetOneViewAndResume: mse pays one query per image, exactly the budget, in
// calls of at most QueryBatch images; the query set may end exactly at the hold-out; the
// cached answers are the victim's answers to those images; and a resumed run sends nothing
// and continues training from the checkpoint.
func TestRunExactBudgetOneViewAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	dir := t.TempDir()
	c := tinyAttack(v, path, dir, "mse", 100)
	c.QuerySplit, c.QueryOffset = "test", 8900 // images 8900..8999: the last before the 1000 held out
	res, _ := mustRun(t, c)
	if v.sent() != 100 || res.QueriesSpent != 100 || res.Images != 100 || res.Views != 1 {
		t.Fatalf("sent %d, result %+v; want exactly 100 queries for 100 images x 1 view", v.sent(), res)
	}
	if v.calls != 2 || v.maxBatch != 64 {
		t.Fatalf("%d victim calls, largest %d images; want 2 calls of at most QueryBatch 64", v.calls, v.maxBatch)
	}
	if res.OutputDim != 512 || res.Epochs != 1 {
		t.Fatalf("result %+v: want output dim 512 (the victim's representation), 1 epoch", res)
	}
	if n := cacheLen(t, dir); n != 100 {
		t.Fatalf("cache holds %d answers, want 100", n)
	}

	// The cache holds what the victim answers for the query images (last query: test image 8999).
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	vset, err := infer.FitDataset(ds, v.Info())
	if err != nil {
		t.Fatal(err)
	}
	img := make([]float32, 3*32*32)
	if err := data.ToFloat(vset, 8999, data.Normalization{}, img); err != nil {
		t.Fatal(err)
	}
	want, err := v.Encoder.Encode(context.Background(), infer.Images{N: 1, C: 3, H: 32, W: 32, Data: img})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := OpenCache(filepath.Join(dir, CacheName), 512)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := cache.Get(99, 0)
	cache.Close()
	if !ok || len(got) != len(want.Data) {
		t.Fatalf("cached answer of query 99: %d values (found %v), want %d", len(got), ok, len(want.Data))
	}
	worst, scale := 0.0, 1e-6
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want.Data[i])))
		scale = math.Max(scale, math.Abs(float64(want.Data[i])))
	}
	// The cached answer came from a batch of 36, the check from a batch of 1.
	t.Logf("cached answer vs the victim's answer to test image 8999 alone: max |diff| %.2g (scale %.3g)", worst, scale)
	if worst > 1e-5*scale {
		t.Fatalf("cached answer of query 99 differs from the victim's answer to test image 8999 by %g", worst)
	}

	// Resume into the same directory with more epochs: no query is paid again.
	v2 := openVictim(t, path)
	c.Victim, c.Epochs, c.Resume = v2, 2, true
	res2, log := mustRun(t, c)
	if v2.sent() != 0 {
		t.Fatalf("resumed run sent %d queries, want 0 (all answers cached)", v2.sent())
	}
	if res2.QueriesSpent != 100 || res2.Epochs != 2 || !strings.Contains(log, "resuming stolen encoder after epoch 1") || !strings.Contains(log, "no queries sent") {
		t.Fatalf("resumed result %+v\nlog:\n%s\nwant 100 queries spent in all, 2 epochs, resumed after epoch 1", res2, log)
	}
	ck, err := train.LoadCheckpoint(dir)
	if err != nil || ck == nil || ck.Epoch != 2 || ck.Config.Loss != "steal-mse" {
		t.Fatalf("checkpoint after resuming: %+v, %v; want epoch 2 of steal-mse", ck, err)
	}
}

// TestRunExactBudgetTwoViews: a two-view loss pays two queries per image; an odd budget is
// rounded down, never up (101 -> 50 images x 2 views = 100), also with QueryBatch 64.
func TestRunExactBudgetTwoViews(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	for _, loss := range []string{"barlow", "symmetrized"} {
		t.Run(loss, func(t *testing.T) {
			v := openVictim(t, path)
			dir := t.TempDir()
			c := tinyAttack(v, path, dir, loss, 101)
			c.QueryBatch, c.BatchSize = 64, 26
			c.Size = 32 // the victim sees the stolen encoder's augmented views
			res, _ := mustRun(t, c)
			if v.sent() != 100 || res.QueriesSpent != 100 || res.Images != 50 || res.Views != 2 {
				t.Fatalf("sent %d, result %+v; want exactly 100 queries (50 images x 2 views)", v.sent(), res)
			}
			if v.calls != 2 || v.maxBatch != 64 {
				t.Fatalf("%d calls, largest %d; want 2 calls (64 + 36)", v.calls, v.maxBatch)
			}
			ck, err := train.LoadCheckpoint(dir)
			if err != nil || ck == nil {
				t.Fatalf("checkpoint: %v", err)
			}
			if wantHead := map[string]string{"barlow": "none", "symmetrized": "simsiam"}[loss]; ck.Spec.Head != wantHead || ck.DefaultOutput() != models.OutputRepresentation {
				t.Fatalf("stolen encoder %+v (exports %s); want head %s exporting the representation", ck.Spec, ck.DefaultOutput(), wantHead)
			}
		})
	}
}

// TestRunRequeryEachEpoch: re-querying every epoch splits the budget over the epochs.
func TestRunRequeryEachEpoch(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	c := tinyAttack(v, path, t.TempDir(), "mse", 100)
	c.RequeryEachEpoch, c.Epochs, c.BatchSize = true, 2, 26
	res, _ := mustRun(t, c)
	if v.sent() != 100 || res.QueriesSpent != 100 || res.Images != 50 || res.Epochs != 2 {
		t.Fatalf("sent %d, result %+v; want 100 queries: 50 images in each of 2 epochs", v.sent(), res)
	}
}

// TestRunInterruptedQueryingResumes: the victim stops answering part way; the answers already
// paid for are kept, and the next run pays only for the rest.
func TestRunInterruptedQueryingResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	dir := t.TempDir()
	v := openVictim(t, path)
	v.failAfter = 40
	c := tinyAttack(v, path, dir, "mse", 100)
	c.QueryBatch = 16
	_, log, err := run(t, c)
	if err == nil || !strings.Contains(err.Error(), "answers so far are cached; rerun to resume") || !strings.Contains(err.Error(), "quota of 40 images exhausted") {
		t.Fatalf("Run with a failing victim: %v, want an error saying the answers are cached\nlog:\n%s", err, log)
	}
	if v.sent() != 32 || cacheLen(t, dir) != 32 {
		t.Fatalf("first run: %d sent, %d cached; want 32 (two calls of 16 before the third is refused)", v.sent(), cacheLen(t, dir))
	}
	if ck, err := train.LoadCheckpoint(dir); err != nil || ck != nil {
		t.Fatalf("a checkpoint after failed querying: %+v, %v", ck, err)
	}

	// The rerun trains on augmented views of each image against its one clean answer
	// (StolenEncoder-style): that changes training, not what is queried, so the cache applies.
	healthy := openVictim(t, path)
	c.Victim, c.Augment = healthy, true
	res, _ := mustRun(t, c)
	if healthy.sent() != 68 || v.sent()+healthy.sent() != 100 || res.QueriesSpent != 100 || res.Views != 1 {
		t.Fatalf("second run sent %d (first %d), result %+v; want the remaining 68, 100 in all", healthy.sent(), v.sent(), res)
	}

	// The stolen checkpoint exports to ONNX with the victim's output dimension.
	ck, enc := exportStolen(t, dir)
	if ck.Spec.Head != "none" || ck.Spec.InputHW != 16 {
		t.Fatalf("stolen spec %+v: want no head (512 = resnet18's representation), 16x16 input", ck.Spec)
	}
	if got, want := enc.Info().OutputDim, v.Info().OutputDim; got != want || want != 512 {
		t.Fatalf("stolen ONNX output dim %d, victim's %d; want both 512", got, want)
	}
	encodeTwo(t, enc, 512)
}

// TestRunRefusesAnotherAttacksCache: answers cached for other query images or views are not
// reused as training targets.
func TestRunRefusesAnotherAttacksCache(t *testing.T) {
	path, _ := victimFiles(t)
	dir := t.TempDir()
	v := openVictim(t, path)
	c := tinyAttack(v, path, dir, "mse", 4)
	c.QueryBatch = 2
	v.failAfter = 2 // stop after the first call: two answers cached, no training
	if _, _, err := run(t, c); err == nil {
		t.Fatal("Run with a failing victim succeeded")
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"other offset", func(c *Config) { c.QueryOffset = 500 }},
		{"other split", func(c *Config) { c.QuerySplit = "train" }},
		{"other views", func(c *Config) { c.Loss, c.Size = "barlow", 32 }},
		{"other victim", func(c *Config) { c.VictimName = "http://elsewhere:8080" }},
	} {
		v2 := openVictim(t, path)
		c2 := c
		c2.Victim = v2
		tc.change(&c2)
		_, _, err := run(t, c2)
		if err == nil || !strings.Contains(err.Error(), "holds the answers of other queries") || v2.sent() != 0 {
			t.Errorf("%s: Run = %v after sending %d; want a refusal to reuse the cache, nothing sent", tc.name, err, v2.sent())
		}
	}
}

// TestRunHoldout: the last images of a test split are never queried.
func TestRunHoldout(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	for _, tc := range []struct {
		offset, holdout int
		want            string
	}{
		{8950, 0, "images 8950..9049 requested, but only 9000 are usable (10000 in the split, last 1000 held out for evaluation)"},
		{4950, 5000, "only 5000 are usable (10000 in the split, last 5000 held out"},
		{-1, 0, "images -1..98 requested"},
		{59950, 0, "only 60000 are usable"}, // train split: nothing held out, but the split ends
	} {
		c := tinyAttack(v, path, t.TempDir(), "mse", 100)
		c.QuerySplit, c.QueryOffset, c.Holdout = "test", tc.offset, tc.holdout
		if tc.offset == 59950 {
			c.QuerySplit = "train"
		}
		_, _, err := run(t, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("offset %d holdout %d: Run = %v, want an error containing %q", tc.offset, tc.holdout, err, tc.want)
		}
	}
	if v.sent() != 0 {
		t.Fatalf("%d queries sent by refused attacks", v.sent())
	}
}

// exportStolen exports the stolen checkpoint in dir to ONNX (the output the stolen encoder
// was trained on) and opens it with ONNX Runtime.
func exportStolen(t *testing.T, dir string) (*train.Checkpoint, infer.Encoder) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	om, _, _, err := train.Export(dir, "", 0)
	if err != nil {
		t.Fatalf("export %s: %v", dir, err)
	}
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "stolen.onnx")
	if err := onnxpb.WriteFile(p, om); err != nil {
		t.Fatal(err)
	}
	enc, err := infer.OpenORT(p, infer.Options{Threads: 1})
	if err != nil {
		t.Fatalf("OpenORT(stolen): %v", err)
	}
	t.Cleanup(func() { enc.Close() })
	return ck, enc
}

// encodeTwo runs enc on two Fashion-MNIST images and checks the answer's shape and values.
func encodeTwo(t *testing.T, enc infer.Encoder, dim int) {
	t.Helper()
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	fit, err := infer.FitDataset(ds, enc.Info())
	if err != nil {
		t.Fatal(err)
	}
	sh := fit.Shape()
	per := sh.C * sh.H * sh.W
	x := make([]float32, 2*per)
	for i := 0; i < 2; i++ {
		if err := data.ToFloat(fit, i, data.Normalization{}, x[i*per:(i+1)*per]); err != nil {
			t.Fatal(err)
		}
	}
	out, err := enc.Encode(context.Background(), infer.Images{N: 2, C: sh.C, H: sh.H, W: sh.W, Data: x})
	if err != nil {
		t.Fatal(err)
	}
	if out.N != 2 || out.D != dim {
		t.Fatalf("stolen ONNX answers %dx%d, want 2x%d", out.N, out.D, dim)
	}
	for _, f := range out.Data {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("stolen ONNX answers a non-finite value")
		}
	}
}

// TestRunProjectionVictim: a victim answering 128-d projections gives a stolen encoder with
// a linear head to 128, and its ONNX export answers 128-d too.
func TestRunProjectionVictim(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	_, path := victimFiles(t)
	v := openVictim(t, path)
	if v.Info().OutputDim != 128 {
		t.Fatalf("projection victim output dim %d, want 128", v.Info().OutputDim)
	}
	dir := t.TempDir()
	res, _ := mustRun(t, tinyAttack(v, path, dir, "cosine", 64))
	if res.OutputDim != 128 || v.sent() != 64 {
		t.Fatalf("result %+v after %d queries; want output dim 128 from 64 queries", res, v.sent())
	}
	ck, enc := exportStolen(t, dir)
	if ck.Spec.Head != "linear" || ck.Spec.OutDim != 128 {
		t.Fatalf("stolen spec %+v: want a linear head of dimension 128", ck.Spec)
	}
	if enc.Info().OutputDim != 128 {
		t.Fatalf("stolen ONNX output dim %d, want 128", enc.Info().OutputDim)
	}
	encodeTwo(t, enc, 128)

	// With a head of its own, the stolen encoder's MLP head maps to the answers' 128 values
	// and the copy serves its 512-d representation.
	hv := openVictim(t, path)
	hdir := t.TempDir()
	hc := tinyAttack(hv, path, hdir, "mse", 64)
	hc.StolenHead = true
	mustRun(t, hc)
	hck, henc := exportStolen(t, hdir)
	if hck.Spec.Head != "simclr" || hck.Spec.OutDim != 128 || henc.Info().OutputDim != 512 {
		t.Fatalf("stolen head: spec %+v, export of dimension %d; want a simclr head to 128 and a 512-d representation", hck.Spec, henc.Info().OutputDim)
	}

	// The SimSiam steal passes the answers through the stolen encoder's projector: 128-d
	// answers cannot be 512-d representations, and nothing is bought to find out.
	v2 := openVictim(t, path)
	c := tinyAttack(v2, path, t.TempDir(), "symmetrized", 64)
	c.Size = 32
	if _, _, err := run(t, c); err == nil || !strings.Contains(err.Error(), "must be resnet18 representations of 512 values, found 128") || v2.sent() != 0 {
		t.Fatalf("symmetrized against a 128-d victim: %v after %d queries; want an error before any query", err, v2.sent())
	}
}

// TestRunLARSBaseLR: the ImageNet/SimSiam recipe on a tiny attack: LARS (momentum SGD with
// layer-wise rates) at lr = base-lr x batch-size / 256; the run trains, and attack.json and the
// checkpoint record the optimiser, the base rate and the rate it gave.
func TestRunLARSBaseLR(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	dir := t.TempDir()
	c := tinyAttack(v, path, dir, "mse", 16)
	c.Optimizer, c.BaseLR, c.BatchSize = "lars", 0.1, 8 // two steps of 8 images
	res, _ := mustRun(t, c)
	want := 0.1 * 8 / 256.0 // 0.003125
	if res.Config.LR != want || res.Config.BaseLR != 0.1 || res.Config.Optimizer != "lars" || res.Epochs != 1 || v.sent() != 16 {
		t.Fatalf("result %+v after %d queries; want optimizer lars, base lr 0.1, lr %g, 1 epoch, 16 queries", res, v.sent(), want)
	}
	b, err := os.ReadFile(filepath.Join(dir, ResultName))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Config    map[string]any `json:"config"`
		FinalLoss float64        `json:"final_loss"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", ResultName, err)
	}
	if rec.Config["optimizer"] != "lars" || rec.Config["base_lr"] != 0.1 || rec.Config["lr"] != want || rec.FinalLoss != res.FinalLoss {
		t.Fatalf("%s records %s; want optimizer lars, base_lr 0.1, lr %g, final loss %g", ResultName, b, want, res.FinalLoss)
	}
	ck, err := train.LoadCheckpoint(dir)
	if err != nil || ck == nil || ck.Config.Optimizer != "lars" || ck.Config.LR != want || ck.Step != 2 {
		t.Fatalf("checkpoint %+v, %v; want optimizer lars at lr %g after 2 steps", ck, err, want)
	}
}

// TestRunLRAndBaseLR: an explicit rate and a rate per 256 images contradict each other; the
// refusal names both flags and comes before anything else is checked.
func TestRunLRAndBaseLR(t *testing.T) {
	c := Config{Loss: "mse", LR: 0.05, BaseLR: 0.1, Dir: t.TempDir()} // no victim: refused before that check
	_, _, err := run(t, c)
	if err == nil || !strings.Contains(err.Error(), "--lr 0.05 and --base-lr 0.1") {
		t.Fatalf("Run with LR and BaseLR = %v, want an error naming --lr 0.05 and --base-lr 0.1", err)
	}
}

// TestRunBadInput: refused attacks say why, and pay for nothing.
func TestRunBadInput(t *testing.T) {
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"unknown loss", func(c *Config) { c.Loss = "l1" }, `loss "l1": expected one of [barlow bce cosine infonce labels logits mse msewithhead softnn supcon symmetrized wasserstein]`},
		{"augment with a two-view loss", func(c *Config) { c.Loss, c.Augment = "barlow", true }, "--augment: loss barlow already trains on two augmented views"},
		{"budget too small", func(c *Config) { c.NumQueries = 1 }, "budget 1 queries: 1 view(s) per image over 1 round(s) leaves 1 images; need at least 2"},
		{"budget too small for two views", func(c *Config) { c.Loss, c.NumQueries = "supcon", 3 }, "budget 3 queries: 2 view(s) per image over 1 round(s) leaves 1 images; need at least 2"},
		{"budget too small to requery", func(c *Config) { c.RequeryEachEpoch, c.Epochs = true, 60 }, "over 60 round(s) leaves 1 images; need at least 2"},
		{"no victim", func(c *Config) { c.Victim = nil }, "attack: no victim encoder"},
		{"unknown dataset", func(c *Config) { c.QueryDataset = "nosuchset" }, "nosuchset"},
		// Training settings are checked before any query is paid for.
		{"unknown arch", func(c *Config) { c.Arch = "vgg" }, `arch "vgg": expected one of resnet18, resnet34, resnet50`},
		{"unknown stem", func(c *Config) { c.Stem = "tiny" }, `stem "tiny"`},
		{"image too small", func(c *Config) { c.Size = 4 }, "input 3x4x4: expected at least 1 channel and 8x8 pixels"},
		{"unknown optimizer", func(c *Config) { c.Optimizer = "lamb" }, `optimizer "lamb": expected adam, sgd or lars`},
		{"negative lr", func(c *Config) { c.LR = -0.1 }, "--lr -0.1: must be positive"},
		{"negative base lr", func(c *Config) { c.BaseLR = -0.1 }, "--base-lr -0.1: must be positive"},
		{"unknown device", func(c *Config) { c.Device = "tpu" }, `device "tpu": expected cpu, cuda or cuda:N`},
		{"unknown precision", func(c *Config) { c.Precision = "int8" }, `precision "int8": expected one of [fp32 bf16]`},
		{"negative batch", func(c *Config) { c.BatchSize = -4 }, "batch size -4, query batch 64: both must be positive"},
		{"negative query batch", func(c *Config) { c.QueryBatch = -1 }, "batch size 51, query batch -1: both must be positive"},
		{"augment needs the same input", func(c *Config) { c.Loss = "symmetrized" }, "loss symmetrized sends augmented views to the victim: the stolen input (3x16x16) must equal the victim's (3x32x32)"},
	} {
		c := tinyAttack(v, path, t.TempDir(), "mse", 100)
		tc.change(&c)
		_, _, err := run(t, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if v.sent() != 0 {
		t.Fatalf("%d queries sent by refused attacks", v.sent())
	}
}

// TestLabelStealingBaseline: the Knockoff-style baseline end to end. The victim is an encoder
// with a linear classifier (what `ssl-onnx classifier` writes); the attack trains a copy on
// its predicted labels only; the evaluation scores both classifiers' own predictions and how
// often the copy agrees with the victim.
func TestLabelStealingBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	enc, _ := victimFiles(t)
	dir := t.TempDir()
	cfg := eval.DefaultConfig()
	cfg.TrainLimit, cfg.TestLimit, cfg.Probe.Epochs, cfg.Threads = 1000, 500, 30, 2
	clf := filepath.Join(dir, "victim-classifier.onnx")
	if _, _, err := eval.WriteClassifier(context.Background(), cfg, enc, clf, nil, nil); err != nil {
		t.Fatal(err)
	}
	stealLabelsAndCheck(t, clf, dir, cfg)
}

// TestRunHeadRecreation: the head-recreation attack pays two queries per image (exactly the
// budget), trains the head on those answers (its InfoNCE loss falls below chance, log(2N-1)),
// steals through it, and a resumed run neither queries again nor retrains the head.
func TestRunHeadRecreation(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	path, _ := victimFiles(t)
	v := openVictim(t, path)
	dir := t.TempDir()
	c := tinyAttack(v, path, dir, "msewithhead", 81)
	c.Head, c.HeadEpochs, c.Size, c.BatchSize = HeadRecreate, 30, 32, 20 // two views: the stolen sees the victim's views
	res, log := mustRun(t, c)
	if v.sent() != 80 || res.QueriesSpent != 80 || res.Images != 40 || res.Views != 2 {
		t.Fatalf("sent %d, result %+v; want exactly 80 queries (40 images x 2 views)", v.sent(), res)
	}
	if chance := math.Log(2*20 - 1); !(res.HeadLoss > 0 && res.HeadLoss < 0.8*chance) {
		t.Errorf("head loss %.4f after 30 epochs: expected below 0.8 x chance (%.4f)", res.HeadLoss, chance)
	}
	if _, err := os.Stat(filepath.Join(dir, HeadName)); err != nil {
		t.Errorf("recreated head not saved: %v\nlog:\n%s", err, log)
	}
	// As the reference: the stolen encoder has a SimCLR head of its own, matched against the
	// recreated head's outputs, and serves the representation before it.
	ck, enc := exportStolen(t, dir)
	if ck.Spec.Head != "simclr" || ck.Spec.OutDim != HeadDim || enc.Info().OutputDim != 512 {
		t.Fatalf("stolen spec %+v, export of dimension %d; want a simclr head to %d and a 512-d representation", ck.Spec, enc.Info().OutputDim, HeadDim)
	}
	// The reference's other head losses train the head too.
	for _, hl := range []string{"softnn", "mse"} {
		hv := openVictim(t, path)
		hc := tinyAttack(hv, path, t.TempDir(), "mse", 81)
		hc.Head, hc.HeadLoss, hc.HeadEpochs, hc.Size, hc.BatchSize = HeadRecreate, hl, 2, 32, 20
		if hres, _ := mustRun(t, hc); hv.sent() != 80 || math.IsNaN(hres.HeadLoss) || hres.Config.HeadLoss != hl {
			t.Errorf("head loss %s: sent %d, result %+v", hl, hv.sent(), hres)
		}
	}
	c.Resume, c.Epochs = true, 2
	v2 := openVictim(t, path)
	c.Victim = v2
	_, log = mustRun(t, c)
	if v2.sent() != 0 || !strings.Contains(log, "recreated head loaded") {
		t.Errorf("resumed: sent %d queries; log:\n%s\nexpected no queries and the saved head", v2.sent(), log)
	}

	for _, bad := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.HeadLoss = "barlow" }, `head loss "barlow": expected one of [infonce softnn mse]`},
		{func(c *Config) { c.Loss = "barlow" }, "needs a one-view loss"},
		{func(c *Config) { c.Augment = true; c.Loss = "mse" }, "without --augment"},
		{func(c *Config) { c.Head = "copy" }, `head "copy"`},
	} {
		b := tinyAttack(v, path, t.TempDir(), "msewithhead", 81)
		b.Head = HeadRecreate
		bad.mut(&b)
		if _, _, err := run(t, b); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("got %v, want an error containing %q", err, bad.want)
		}
	}
}

// TestDefaultLR: without --lr a loss keeps its own rate with its own optimiser; choosing
// another optimiser takes that optimiser's default instead (Adam's 1e-3 would barely move
// momentum SGD); --base-lr scales by the batch.
func TestDefaultLR(t *testing.T) {
	for _, tc := range []struct {
		loss, opt string
		base      float64
		want      float64
	}{
		{"mse", "", 0, 1e-3},
		{"mse", "sgd", 0, 0.05},
		{"infonce", "lars", 0, 0.05},
		{"supcon", "", 0, 0.05},
		{"supcon", "adam", 0, 3e-4},
		{"mse", "lars", 0.1, 0.1 * 64 / 256},
	} {
		ls, err := LookupLoss(tc.loss)
		if err != nil {
			t.Fatal(err)
		}
		c := Config{Loss: tc.loss, Optimizer: tc.opt, BaseLR: tc.base, BatchSize: 64}
		c.defaults(ls)
		if c.LR != tc.want {
			t.Errorf("loss %s, optimizer %q, base %g: lr %g, want %g", tc.loss, tc.opt, tc.base, c.LR, tc.want)
		}
	}
}

// stealLabelsAndCheck steals the classifier clf from 1000 of its labels, evaluates both and
// checks that each scores its own predictions and that the copy learnt the victim's labels.
func stealLabelsAndCheck(t *testing.T, clf, dir string, cfg eval.Config) {
	t.Helper()
	v := openVictim(t, clf)
	sd := filepath.Join(dir, "stolen")
	c := tinyAttack(v, clf, sd, "labels", 1000)
	c.Epochs, c.BatchSize = 5, 64
	res, _ := mustRun(t, c)
	if res.OutputDim != 10 || v.sent() != 1000 {
		t.Fatalf("result %+v after %d queries; want 10 class scores from 1000 queries", res, v.sent())
	}
	om, _, _, err := train.Export(sd, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	stolen := filepath.Join(dir, "stolen.onnx")
	if err := onnxpb.WriteFile(stolen, om); err != nil {
		t.Fatal(err)
	}
	cfg.Reference, cfg.Models = clf, []string{stolen}
	cfg.Probe.Epochs = 5
	rep, err := eval.Evaluate(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	vic, cp := rep.Rows[0], rep.Rows[1]
	if vic.DirectTop1 == nil || cp.DirectTop1 == nil || cp.DirectAgreement == nil {
		t.Fatalf("classifier rows without direct accuracy: %+v %+v", vic, cp)
	}
	t.Logf("victim classifier top-1 %.3f; stolen from 1000 labels: top-1 %.3f, agrees with the victim on %.3f", *vic.DirectTop1, *cp.DirectTop1, *cp.DirectAgreement)
	// Ten classes: a copy that learnt nothing from the labels agrees about one time in ten.
	if *cp.DirectAgreement < 0.3 {
		t.Fatalf("the copy agrees with the victim on %.3f of the test images: it did not learn the labels", *cp.DirectAgreement)
	}
}
