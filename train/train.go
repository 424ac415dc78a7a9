// Package train trains encoders with self-supervised (SimCLR) losses on libtorch through gotch.
//
// One loop: a dataset -> per-image two-view augmentation (package augment, in background
// goroutines so the cores never wait for it) -> the encoder (models/torchnet) -> a registered
// loss -> Adam, SGD or LARS with a warm-up + cosine schedule. Every epoch ends with an atomic
// checkpoint, so an interrupted run resumes where the last finished epoch left it.
package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/ssl-onnx/ssl-onnx/augment"
	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/progress"
	"github.com/ssl-onnx/ssl-onnx/train/optim"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

// Config is everything one training run needs. Zero values take the reference defaults
// (see Defaults).
type Config struct {
	Dataset string `json:"dataset"`
	DataDir string `json:"data_dir,omitempty"`
	Split   string `json:"split"`
	Limit   int    `json:"limit,omitempty"` // train on the first Limit images (0 = all)

	Arch   string `json:"arch"`
	Stem   string `json:"stem"`
	OutDim int    `json:"out_dim"`
	Size   int    `json:"size"` // input height = width after resizing

	Loss        string  `json:"loss"`
	Temperature float64 `json:"temperature"`
	Optimizer   string  `json:"optimizer"`
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	Momentum    float64 `json:"momentum"`
	Epochs      int     `json:"epochs"`
	Warmup      int     `json:"warmup"`
	BatchSize   int     `json:"batch_size"`
	CropMin     float64 `json:"crop_min"` // RandomResizedCrop minimum scale (0.08)

	// Watermark trains the owner's secret rotation-task head jointly with the encoder
	// (package watermark): each step adds WatermarkWeight x its cross-entropy on WatermarkBatch
	// rotated images. The secret is written to <dir>/watermark.ot.
	Watermark       bool    `json:"watermark,omitempty"`
	WatermarkWeight float64 `json:"watermark_weight,omitempty"`
	WatermarkBatch  int     `json:"watermark_batch,omitempty"`

	Seed    int64  `json:"seed"`
	Threads int    `json:"threads"`
	Device  string `json:"device"`
	Workers int    `json:"workers"` // augmentation goroutines (0 = one per core)

	// InitFrom names another run directory whose last checkpoint (and watermark head, when
	// both runs have one) initialises this run's weights; the optimiser state and learning-rate
	// schedule start fresh. Arch, stem and output size must match; the input size may differ
	// (progressive resizing: a network trained on small images fine-tuned on larger ones).
	InitFrom string `json:"init_from,omitempty"`

	Dir    string `json:"-"` // run directory: checkpoints and log
	Resume bool   `json:"-"`
}

// Defaults fills zero fields with the reference SimCLR defaults (ResNet-18 here rather than the
// reference's ResNet-34, to fit CPU budgets; pass Arch to change it).
func (c *Config) Defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Dataset, "fmnist")
	def(&c.Split, "train")
	def(&c.Arch, "resnet18")
	def(&c.Stem, "cifar")
	def(&c.Loss, "infonce")
	def(&c.Device, "cpu")
	if c.OutDim == 0 {
		c.OutDim = 128
	}
	if c.Size == 0 {
		c.Size = 32
	}
	if c.Optimizer == "" {
		c.Optimizer = "adam"
		if c.Loss == "supcon" {
			c.Optimizer = "sgd"
		}
	}
	if c.LR == 0 {
		switch {
		case c.Loss == "softnn":
			c.LR = 1e-3
		default:
			c.LR = DefaultLR(c.Optimizer)
		}
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 1e-4
	}
	if c.Momentum == 0 && (c.Optimizer == "sgd" || c.Optimizer == "lars") {
		c.Momentum = 0.9
	}
	if c.Temperature == 0 {
		if l, ok := Losses[c.Loss]; ok {
			c.Temperature = l.Temperature
		}
	}
	if c.Epochs == 0 {
		c.Epochs = 200
	}
	if c.Warmup == 0 && c.Epochs > 10 {
		c.Warmup = 10
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.CropMin == 0 {
		c.CropMin = 0.08
	}
	if c.Threads == 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.Watermark && c.WatermarkWeight == 0 {
		c.WatermarkWeight = 1
	}
	if c.Watermark && c.WatermarkBatch == 0 {
		c.WatermarkBatch = 32
	}
}

// WatermarkName is the owner's secret watermark head inside a run directory.
const WatermarkName = "watermark.ot"

// EpochLog is the JSON line written per epoch (to the log file and the Result).
type EpochLog struct {
	Epoch    int     `json:"epoch"`
	Loss     float64 `json:"loss"`
	LR       float64 `json:"lr"`
	Images   int     `json:"images"`
	Seconds  float64 `json:"seconds"`
	ImagesPS float64 `json:"images_per_s"`
}

// Device parses "cpu" or "cuda" and fails clearly where CUDA is absent.
func Device(name string) (gotch.Device, error) {
	switch name {
	case "", "cpu":
		return gotch.CPU, nil
	case "cuda":
		if !libtch.AtcCudaIsAvailable() {
			return gotch.CPU, fmt.Errorf("device cuda: libtorch reports no usable CUDA device (no GPU here, or a CPU-only libtorch); on a GPU machine run LIBTORCH=/path/to/libtorch-cuda make setup")
		}
		return gotch.CudaBuilder(0), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: expected cpu or cuda", name)
}

// DefaultLR is the learning rate used when none is given: 0.05 for SGD and LARS (with
// momentum 0.9), 3e-4 for Adam.
func DefaultLR(optimizer string) float64 {
	if optimizer == "sgd" || optimizer == "lars" {
		return 0.05
	}
	return 3e-4
}

// OpenTrainingSet opens the configured dataset as 3-channel Size x Size images.
func OpenTrainingSet(c Config) (data.Dataset, error) {
	ds, err := data.Open(c.Dataset, c.DataDir, c.Split)
	if err != nil {
		return nil, err
	}
	if c.Limit > 0 && c.Limit < ds.Len() {
		if ds, err = data.First(ds, c.Limit); err != nil {
			return nil, err
		}
	}
	return data.Square3(ds, c.Size)
}

// Run trains an encoder as configured, checkpointing into c.Dir every epoch. It returns the
// per-epoch logs of this run. Progress goes to out.
func Run(ctx context.Context, c Config, out io.Writer) (logs []EpochLog, err error) {
	if out == nil {
		out = io.Discard
	}
	warmupGiven := c.Warmup != 0 // its default depends on Epochs, which a resumed run may change
	c.Defaults()
	lossSpec, err := LookupLoss(c.Loss)
	if err != nil {
		return nil, err
	}
	if c.BatchSize < 2 {
		return nil, fmt.Errorf("batch size %d: contrastive losses need at least 2 images per batch", c.BatchSize)
	}
	// Defaults replaced the zero values; what is left out of range is the caller's. (A negative
	// thread count would leave a libtorch error pending that the next tensor call dies on.)
	switch {
	case c.Threads < 1:
		return nil, fmt.Errorf("threads %d: expected at least 1 (0 = one per core)", c.Threads)
	case c.Epochs < 1:
		return nil, fmt.Errorf("epochs %d: expected at least 1", c.Epochs)
	case c.Warmup < 0:
		return nil, fmt.Errorf("warmup %d: expected 0 or more epochs", c.Warmup)
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 0):
		return nil, fmt.Errorf("temperature %g: expected a positive number", c.Temperature)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return nil, fmt.Errorf("lr %g: expected a positive number", c.LR)
	}
	dev, err := Device(c.Device)
	if err != nil {
		return nil, err
	}
	ds, err := OpenTrainingSet(c)
	if err != nil {
		return nil, err
	}
	spec, err := modelSpec(c, lossSpec, ds)
	if err != nil {
		return nil, err
	}
	g, err := models.Build(spec)
	if err != nil {
		return nil, err
	}
	nb := ds.Len() / c.BatchSize // drop_last, as the reference
	if nb == 0 {
		return nil, fmt.Errorf("dataset %s has %d images, fewer than one batch of %d", c.Dataset, ds.Len(), c.BatchSize)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}

	// libtorch state (grad mode, threads) is per OS thread: train on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchnet.FlushDenormals()
	libtch.AtSetNumThreads(c.Threads)
	libtch.AtManualSeed(c.Seed)

	model, err := torchnet.New(g, dev, c.Seed)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	trainable := model.Trainable()
	var wm *watermark.Head
	if c.Watermark {
		wmPath := filepath.Join(c.Dir, WatermarkName)
		initPath := filepath.Join(c.InitFrom, WatermarkName)
		switch {
		case c.Resume && fileExists(wmPath):
			wm, err = watermark.LoadHeadOn(wmPath, dev)
		case c.InitFrom != "" && fileExists(initPath) && !fileExists(LogPath(c.Dir)):
			wm, err = watermark.LoadHeadOn(initPath, dev)
		default:
			wm, err = watermark.NewHead(models.RepresentationDim(c.Arch), dev, c.Seed+1)
		}
		if err != nil {
			return nil, err
		}
		defer wm.Close()
		wm.Protocol.ImageSize, wm.Protocol.Normalization = c.Size, "none"
		trainable = append(trainable, wm.Trainable()...)
	}
	opt, err := NewOptimizer(c.Optimizer, trainable, c.WeightDecay, c.Momentum)
	if err != nil {
		return nil, err
	}
	defer opt.Close()

	start := 0
	if c.Resume {
		ck, err := LoadCheckpoint(c.Dir)
		if err != nil {
			return nil, err
		}
		if ck != nil {
			if !warmupGiven {
				c.Warmup = ck.Config.Warmup
			}
			if err := ck.Compatible(c); err != nil {
				return nil, err
			}
			if err := ck.Restore(c.Dir, model, opt); err != nil {
				return nil, err
			}
			start = ck.Epoch
			fmt.Fprintf(out, "resuming %s after epoch %d\n", c.Dir, start)
		}
	}
	if start == 0 && c.InitFrom != "" {
		if err := initFrom(c, model); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "initialised from %s\n", c.InitFrom)
	}
	if start >= c.Epochs {
		fmt.Fprintf(out, "already trained %d of %d epochs\n", start, c.Epochs)
		return nil, nil
	}

	params := augment.SimCLR(c.Size)
	params.ScaleMin = c.CropMin
	if lossSpec.Supervised {
		params = augment.Light(c.Size, c.CropMin)
	}
	if err := params.Validate(); err != nil {
		return nil, err
	}
	sh := ds.Shape()
	src := func(i int, dst []float32) error { return data.ToFloat(ds, i, data.Normalization{}, dst) }
	logf, err := os.OpenFile(LogPath(c.Dir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("training log: %w", err)
	}
	defer logf.Close()

	for epoch := start; epoch < c.Epochs; epoch++ {
		lr := CosineLR(c.LR, epoch, c.Warmup, c.Epochs)
		perm := data.Permutation(ds.Len(), c.Seed+int64(epoch)*7919)
		batches := make([][]int, nb)
		for b := range batches {
			batches[b] = perm[b*c.BatchSize : (b+1)*c.BatchSize]
		}
		ectx, cancel := context.WithCancel(ctx)
		pipe := augment.NewPipeline(ectx, params, src, sh.H, sh.W, batches, c.Seed, epoch, c.Workers, 2)
		bar := progress.New(out, fmt.Sprintf("epoch %d/%d", epoch+1, c.Epochs), nb*c.BatchSize)
		t0 := time.Now()
		var sum float64
		var seen int
		for pair := range pipe {
			if pair.Err != nil {
				cancel()
				return logs, pair.Err
			}
			loss, err := step(model, opt, lossSpec, c, ds, pair, lr, dev, wm, epoch)
			if err != nil {
				cancel()
				return logs, err
			}
			sum += loss * float64(pair.N)
			seen += pair.N
			bar.Add(pair.N, fmt.Sprintf("loss %.4f", sum/float64(seen)))
		}
		cancel()
		if err := ctx.Err(); err != nil {
			bar.Done("interrupted")
			return logs, fmt.Errorf("interrupted in epoch %d (the checkpoint of epoch %d is kept): %w", epoch+1, epoch, err)
		}
		secs := time.Since(t0).Seconds()
		el := EpochLog{Epoch: epoch + 1, Loss: sum / float64(seen), LR: lr, Images: seen, Seconds: secs, ImagesPS: float64(seen) / secs}
		bar.Done(fmt.Sprintf("loss %.4f, %.0f img/s", el.Loss, el.ImagesPS))
		if math.IsNaN(el.Loss) {
			return logs, fmt.Errorf("epoch %d: loss is NaN (try a lower --lr)", epoch+1)
		}
		if wm != nil {
			// Saved before the checkpoint that needs it, so a checkpoint never lacks its head.
			if err := wm.Save(filepath.Join(c.Dir, WatermarkName)); err != nil {
				return logs, err
			}
		}
		if err := SaveCheckpoint(c.Dir, Checkpoint{Config: c, Spec: spec, Epoch: epoch + 1, Step: opt.Step, Loss: el.Loss}, model, opt); err != nil {
			return logs, err
		}
		line, _ := json.Marshal(el)
		fmt.Fprintf(logf, "%s\n", line)
		fmt.Fprintf(out, "%s\n", line)
		logs = append(logs, el)
	}
	return logs, nil
}

// step runs one optimisation step on a batch of view pairs and returns the loss value.
func step(model *torchnet.Model, opt *Optimizer, ls LossSpec, c Config, ds data.Dataset, pair augment.Pair, lr float64, dev gotch.Device, wm *watermark.Head, epoch int) (loss float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("training step: libtorch: %v", r)
		}
	}()
	n := int64(pair.N)
	dims := []int64{n, 3, int64(c.Size), int64(c.Size)}
	v1 := ts.MustOfSlice(pair.View1).MustView(dims, true)
	v2 := ts.MustOfSlice(pair.View2).MustView(dims, true)
	x := ts.MustCat([]*ts.Tensor{v1, v2}, 0)
	v1.MustDrop()
	v2.MustDrop()
	if dev != gotch.CPU {
		x = x.MustTo(dev, true)
	}
	var labels *ts.Tensor
	if ls.NeedsLabels {
		lab := make([]int64, n)
		for i, idx := range pair.Index {
			lab[i] = int64(ds.Label(idx))
		}
		labels = ts.MustOfSlice(lab)
		defer labels.MustDrop()
	}
	z := model.Forward(x, true, model.Graph.Projection)[0]
	x.MustDrop()
	za := z.MustNarrow(0, 0, n, false)
	zb := z.MustNarrow(0, n, n, false)
	l := ls.Fn(za, zb, labels, c.Temperature)
	za.MustDrop()
	zb.MustDrop()
	z.MustDrop()
	if wm != nil {
		wl, err := watermarkLoss(model, wm, c, pair, dev, epoch)
		if err != nil {
			l.MustDrop()
			return 0, err
		}
		l = l.MustAdd(wl.MustMulScalar(ts.FloatScalar(c.WatermarkWeight), true), true)
	}
	opt.ZeroGrad()
	l.MustBackward()
	torchnet.NoGrad(func() { opt.Update(lr) })
	loss = l.Float64Values(true)[0]
	return loss, nil
}

// watermarkLoss is the rotation task's cross-entropy on the first WatermarkBatch images of
// the batch's first view, each rotated by a random angle (seeded by epoch and batch).
func watermarkLoss(model *torchnet.Model, wm *watermark.Head, c Config, pair augment.Pair, dev gotch.Device, epoch int) (*ts.Tensor, error) {
	n := min(c.WatermarkBatch, pair.N)
	per := 3 * c.Size * c.Size
	rng := rand.New(rand.NewSource(c.Seed ^ int64(epoch)<<32 ^ int64(pair.Index[0])<<1))
	rot, labels, err := watermark.RotationBatch(rng, pair.View1[:n*per], n, 3, c.Size, c.Size)
	if err != nil {
		return nil, err
	}
	x := ts.MustOfSlice(rot).MustView([]int64{int64(n), 3, int64(c.Size), int64(c.Size)}, true)
	if dev != gotch.CPU {
		x = x.MustTo(dev, true)
	}
	h := model.Forward(x, true, model.Graph.Representation)[0]
	x.MustDrop()
	l := watermark.Loss(wm, h, labels)
	h.MustDrop()
	return l, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Optimizer, NewOptimizer and CosineLR are package optim's, named here for the callers of
// train.
type Optimizer = optim.Optimizer

// NewOptimizer builds an Adam, SGD or LARS optimiser (see optim.New).
var NewOptimizer = optim.New

// CosineLR is the warm-up + cosine learning-rate schedule (see optim.CosineLR).
var CosineLR = optim.CosineLR

// modelSpec is the encoder a run trains: a SimCLR projection head for the contrastive losses,
// a linear classifier with one output per class of ds for a supervised loss (its served
// representation is still the pooled feature before the head).
func modelSpec(c Config, ls LossSpec, ds data.Dataset) (models.Spec, error) {
	spec := models.Spec{Arch: c.Arch, Stem: c.Stem, Head: "simclr", OutDim: c.OutDim, InputC: 3, InputHW: c.Size}
	if !ls.Supervised {
		return spec, nil
	}
	classes := len(ds.Classes())
	if classes < 2 {
		return spec, fmt.Errorf("loss %s: dataset %s has %d named classes, a classifier needs at least 2", c.Loss, c.Dataset, classes)
	}
	spec.Head, spec.OutDim = "linear", classes
	return spec, nil
}

// initFrom loads the weights of run directory c.InitFrom's last checkpoint into model.
func initFrom(c Config, model *torchnet.Model) error {
	ck, err := LoadCheckpoint(c.InitFrom)
	if err != nil {
		return fmt.Errorf("init-from: %w", err)
	}
	if ck == nil {
		return fmt.Errorf("init-from %s: no %s (train that run first)", c.InitFrom, SidecarName)
	}
	p := ck.Spec
	want := model.Graph.Spec
	if p.Arch != want.Arch || p.Stem != want.Stem || p.OutDim != want.OutDim || p.Head != want.Head {
		return fmt.Errorf("init-from %s: checkpoint is %s/%s head %s out %d, run asks for %s/%s head %s out %d",
			c.InitFrom, p.Arch, p.Stem, p.Head, p.OutDim, want.Arch, want.Stem, want.Head, want.OutDim)
	}
	return ck.Restore(c.InitFrom, model, nil)
}
