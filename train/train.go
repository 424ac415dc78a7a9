// Package train trains encoders with self-supervised (SimCLR) or supervised losses.
//
// A dataset -> per-image two-view augmentation (package augment, in background goroutines so
// the cores never wait for it) -> a torchnet.Trainer (the encoder, a loss by name, Adam, SGD or
// LARS) -> Loop, the one training loop that stealing uses too, with a warm-up + cosine
// schedule. This package holds no libtorch code: models/torchnet does. Every epoch ends with an atomic
// checkpoint, so an interrupted run resumes where the last finished epoch left it.
package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"

	"github.com/ssl-onnx/ssl-onnx/augment"
	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
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
	// Views per image and step: 2 (both views in every loss; the default) or 1 (a classifier
	// trained on one view per image, the reference's supervised recipe: half the compute).
	Views int `json:"views,omitempty"`

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
	// Precision is fp32 or bf16 (autocast; torchnet.CheckPrecision says where it runs). Like
	// the device, it may change when resuming.
	Precision string `json:"precision,omitempty"`

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
	def(&c.Precision, "fp32")
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
		if l, ok := lossSpecs()[c.Loss]; ok {
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
	if c.Views == 0 {
		c.Views = 2
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
func Run(ctx context.Context, c Config, out io.Writer) ([]EpochLog, error) {
	if out == nil {
		out = io.Discard
	}
	warmupGiven := c.Warmup != 0 // its default depends on Epochs, which a resumed run may change
	c.Defaults()
	ls, err := c.validate()
	if err != nil {
		return nil, err
	}
	ds, err := OpenTrainingSet(c)
	if err != nil {
		return nil, err
	}
	spec, err := modelSpec(c, ls, ds)
	if err != nil {
		return nil, err
	}
	if ds.Len() < c.BatchSize { // drop_last, as the reference
		return nil, fmt.Errorf("dataset %s has %d images, fewer than one batch of %d", c.Dataset, ds.Len(), c.BatchSize)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	sess, err := torchnet.Open(torchnet.Options{Device: c.Device, Threads: c.Threads, Seed: c.Seed})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	r, err := newRun(sess, c, ls, spec, ds)
	if err != nil {
		return nil, err
	}
	start, err := r.resume(warmupGiven, out)
	if err != nil || start < 0 {
		return nil, err
	}
	logf, err := os.OpenFile(LogPath(c.Dir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("training log: %w", err)
	}
	defer logf.Close()
	nb := ds.Len() / r.c.BatchSize
	return Loop{
		Name: "epoch", Start: start, Epochs: r.c.Epochs, Images: nb * r.c.BatchSize,
		LR:      func(epoch int) float64 { return CosineLR(r.c.LR, epoch, r.c.Warmup, r.c.Epochs) },
		Batches: r.batches,
		Trainer: r.trainer,
		Save:    func(el EpochLog) error { return r.save(el, logf, out) },
		Out:     out,
	}.Run(ctx)
}

// validate checks a configuration after Defaults and returns its loss.
func (c Config) validate() (lossSpec, error) {
	ls, err := lookupLoss(c.Loss)
	if err != nil {
		return ls, err
	}
	// Defaults replaced the zero values; what is left out of range is the caller's. (A negative
	// thread count would leave a libtorch error pending that the next tensor call dies on.)
	switch {
	case c.BatchSize < 2:
		return ls, fmt.Errorf("batch size %d: contrastive losses need at least 2 images per batch", c.BatchSize)
	case c.Threads < 1:
		return ls, fmt.Errorf("threads %d: expected at least 1 (0 = one per core)", c.Threads)
	case c.Epochs < 1:
		return ls, fmt.Errorf("epochs %d: expected at least 1", c.Epochs)
	case c.Warmup < 0:
		return ls, fmt.Errorf("warmup %d: expected 0 or more epochs", c.Warmup)
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 0):
		return ls, fmt.Errorf("temperature %g: expected a positive number", c.Temperature)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return ls, fmt.Errorf("lr %g: expected a positive number", c.LR)
	case c.Views != 1 && c.Views != 2:
		return ls, fmt.Errorf("views %d: expected 1 or 2 views per image", c.Views)
	case c.Views == 1 && !ls.Supervised:
		return ls, fmt.Errorf("views 1: loss %s compares two views of each image; one view trains a classifier only (--loss ce)", c.Loss)
	}
	if err := torchnet.CheckPrecisionOn(c.Precision, c.Device); err != nil {
		return ls, err
	}
	params := c.augmentation(ls)
	return ls, params.Validate()
}

// augmentation is the views' recipe: SimCLR's for the contrastive losses, crops and flips
// only for a classifier.
func (c Config) augmentation(ls lossSpec) augment.Params {
	if ls.Supervised {
		return augment.Light(c.Size, c.CropMin)
	}
	p := augment.SimCLR(c.Size)
	p.ScaleMin = c.CropMin
	return p
}

// run is one training run's state: its net, watermark head and trainer in a session.
type run struct {
	c       Config
	ls      lossSpec
	spec    models.Spec
	ds      data.Dataset
	net     *torchnet.Net
	wm      *watermark.Head
	trainer *torchnet.Trainer
}

// newRun builds the net (and the watermark head: resumed, taken from --init-from, or new) and
// the trainer.
func newRun(sess *torchnet.Session, c Config, ls lossSpec, spec models.Spec, ds data.Dataset) (*run, error) {
	g, err := models.Build(spec)
	if err != nil {
		return nil, err
	}
	r := &run{c: c, ls: ls, spec: spec, ds: ds}
	if r.net, err = sess.NewNet(g, c.Seed); err != nil {
		return nil, err
	}
	tc := torchnet.TrainerConfig{Loss: c.Loss, Temperature: c.Temperature, Pairs: true, Output: g.Projection,
		Optimizer: c.Optimizer, WeightDecay: c.WeightDecay, Momentum: c.Momentum, Precision: c.Precision}
	if c.Views == 1 { // one view against its labels
		tc.Loss, tc.Pairs = "xent", false
	}
	if c.Watermark {
		if r.wm, err = r.watermarkHead(sess); err != nil {
			return nil, err
		}
		r.wm.Protocol.ImageSize, r.wm.Protocol.Normalization = c.Size, "none"
		tc.Watermark, tc.WatermarkWeight = r.wm.MLP(), c.WatermarkWeight
	}
	if r.trainer, err = r.net.NewTrainer(tc); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *run) watermarkHead(sess *torchnet.Session) (*watermark.Head, error) {
	c := r.c
	wmPath := filepath.Join(c.Dir, WatermarkName)
	initPath := filepath.Join(c.InitFrom, WatermarkName)
	switch {
	case c.Resume && fileExists(wmPath):
		return watermark.LoadHeadIn(sess, wmPath)
	case c.InitFrom != "" && fileExists(initPath) && !fileExists(LogPath(c.Dir)):
		return watermark.LoadHeadIn(sess, initPath)
	}
	return watermark.NewHeadIn(sess, models.RepresentationDim(c.Arch), c.Seed+1)
}

// resume restores the run's checkpoint (with --resume) or the --init-from weights and returns
// the epochs already done; -1 when all of them are.
func (r *run) resume(warmupGiven bool, out io.Writer) (int, error) {
	c := &r.c
	start := 0
	if c.Resume {
		ck, err := LoadCheckpoint(c.Dir)
		if err != nil {
			return 0, err
		}
		if ck != nil {
			if !warmupGiven {
				c.Warmup = ck.Config.Warmup
			}
			if err := ck.Compatible(*c); err != nil {
				return 0, err
			}
			if err := ck.Restore(c.Dir, r.net, r.trainer); err != nil {
				return 0, err
			}
			start = ck.Epoch
			fmt.Fprintf(out, "resuming %s after epoch %d\n", c.Dir, start)
		}
	}
	if start == 0 && c.InitFrom != "" {
		if err := initFrom(*c, r.net); err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "initialised from %s\n", c.InitFrom)
	}
	if start >= c.Epochs {
		fmt.Fprintf(out, "already trained %d of %d epochs\n", start, c.Epochs)
		return -1, nil
	}
	return start, nil
}

// batches yields an epoch's batches of c.Views augmented views per image (prepared in background
// goroutines), with labels for the losses that read them and the watermark's rotated images.
func (r *run) batches(ctx context.Context, epoch int) iter.Seq2[Item, error] {
	c := r.c
	return func(yield func(Item, error) bool) {
		nb := r.ds.Len() / c.BatchSize
		perm := data.Permutation(r.ds.Len(), c.Seed+int64(epoch)*7919)
		batches := make([][]int, nb)
		for b := range batches {
			batches[b] = perm[b*c.BatchSize : (b+1)*c.BatchSize]
		}
		ectx, cancel := context.WithCancel(ctx)
		defer cancel()
		sh := r.ds.Shape()
		src := func(i int, dst []float32) error { return data.ToFloat(r.ds, i, data.Normalization{}, dst) }
		pipe := augment.NewPipeline(ectx, augment.PipelineConfig{Params: c.augmentation(r.ls), Source: src, H: sh.H, W: sh.W,
			Batches: batches, Seed: c.Seed, Epoch: epoch, Workers: c.Workers, Prefetch: 2, Views: c.Views})
		for pair := range pipe {
			if pair.Err != nil {
				yield(Item{}, pair.Err)
				return
			}
			b, err := r.batch(pair, epoch)
			if !yield(Item{Batch: b, Images: pair.N}, err) || err != nil {
				return
			}
		}
	}
}

// batch turns a batch of views into a training batch.
func (r *run) batch(pair augment.Pair, epoch int) (torchnet.Batch, error) {
	x := make([]float32, 0, len(pair.View1)+len(pair.View2))
	b := torchnet.Batch{Rows: r.c.Views * pair.N, X: append(append(x, pair.View1...), pair.View2...)}
	if r.ls.NeedsLabels {
		b.Labels = make([]int64, pair.N)
		for i, idx := range pair.Index {
			b.Labels[i] = int64(r.ds.Label(idx))
		}
	}
	if r.wm == nil {
		return b, nil
	}
	// The rotation task on the first WatermarkBatch images of the first view, each rotated by a
	// random angle (seeded by epoch and batch).
	n := min(r.c.WatermarkBatch, pair.N)
	per := 3 * r.c.Size * r.c.Size
	rng := rand.New(rand.NewSource(r.c.Seed ^ int64(epoch)<<32 ^ int64(pair.Index[0])<<1))
	rot, labels, err := watermark.RotationBatch(rng, pair.View1[:n*per], n, 3, r.c.Size, r.c.Size)
	if err != nil {
		return b, err
	}
	b.WatermarkRows, b.WatermarkX, b.WatermarkLabels = n, rot, labels
	return b, nil
}

// save writes the epoch's checkpoint (the watermark head first, so a checkpoint never lacks
// its head) and its log line.
func (r *run) save(el EpochLog, logf io.Writer, out io.Writer) error {
	if r.wm != nil {
		if err := r.wm.Save(filepath.Join(r.c.Dir, WatermarkName)); err != nil {
			return err
		}
	}
	ck := Checkpoint{Config: r.c, Spec: r.spec, Epoch: el.Epoch, Step: r.trainer.Steps(), Loss: el.Loss}
	if err := SaveCheckpoint(r.c.Dir, ck, r.net, r.trainer); err != nil {
		return err
	}
	line, _ := json.Marshal(el)
	fmt.Fprintf(logf, "%s\n", line)
	fmt.Fprintf(out, "%s\n", line)
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// modelSpec is the encoder a run trains: a SimCLR projection head for the contrastive losses,
// a linear classifier with one output per class of ds for a supervised loss (its served
// representation is still the pooled feature before the head).
func modelSpec(c Config, ls lossSpec, ds data.Dataset) (models.Spec, error) {
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
func initFrom(c Config, net *torchnet.Net) error {
	ck, err := LoadCheckpoint(c.InitFrom)
	if err != nil {
		return fmt.Errorf("init-from: %w", err)
	}
	if ck == nil {
		return fmt.Errorf("init-from %s: no %s (train that run first)", c.InitFrom, SidecarName)
	}
	p := ck.Spec
	want := net.Graph().Spec
	if p.Arch != want.Arch || p.Stem != want.Stem || p.OutDim != want.OutDim || p.Head != want.Head {
		return fmt.Errorf("init-from %s: checkpoint is %s/%s head %s out %d, run asks for %s/%s head %s out %d",
			c.InitFrom, p.Arch, p.Stem, p.Head, p.OutDim, want.Arch, want.Stem, want.Head, want.OutDim)
	}
	return ck.Restore(c.InitFrom, net, nil)
}
