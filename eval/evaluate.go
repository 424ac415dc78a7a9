package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ssl-onnx/ssl-onnx/export"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/progress"
)

// Baseline names accepted in Config.Baselines.
const (
	// BaselineRandom is a randomly initialised encoder (see Config.RandomSpec).
	BaselineRandom = "random"
	// BaselinePixels uses the raw pixels, scaled to [0,1] and flattened, as features.
	BaselinePixels = "pixels"
)

// Row kinds.
const (
	// KindReference marks the row of Config.Reference (the victim).
	KindReference = "reference"
	// KindModel marks a row of Config.Models.
	KindModel = "model"
	// KindBaseline marks a baseline row.
	KindBaseline = "baseline"
)

// DefaultRandomSpec returns the random baseline's encoder when neither Config.RandomSpec nor
// the reference's metadata says otherwise.
func DefaultRandomSpec() models.Spec {
	return models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}
}

// Config selects what Evaluate measures. DefaultConfig fills in the reference settings.
type Config struct {
	// Models are the ONNX encoders to evaluate.
	Models []string
	// Reference is the victim's ONNX encoder ("" = none). It is evaluated as a row too,
	// and every row is compared with it: fidelity of test representations (when the
	// dimensions match) and agreement of probe predictions.
	Reference string
	// Baselines lists BaselineRandom and/or BaselinePixels.
	Baselines []string
	// RandomSpec is the random baseline's encoder. The zero Spec means the reference's
	// architecture, stem and input size (from its metadata, without head) when known, else
	// the first model's, else DefaultRandomSpec.
	RandomSpec models.Spec
	// RandomSeed initialises the random baseline.
	RandomSeed int64

	// Dataset and DataDir name the downstream dataset (see data.Open); TrainSplit and
	// TestSplit its splits ("" = "train" and "test").
	Dataset, DataDir      string
	TrainSplit, TestSplit string
	// Train and Test, when both are set, are used instead of Dataset.
	Train, Test data.Dataset
	// TrainLimit and TestLimit keep the first N images of each split (0 = all).
	TrainLimit, TestLimit int

	// Norm is the input normalisation of the encoders: "auto" or "" follows each
	// model's "normalization" metadata, "none" applies none, a dataset name (imagenet,
	// cifar10, ...) applies its statistics.
	Norm string
	// Threads, Device and Library configure ONNX Runtime (see infer.Options).
	Threads int
	Device  string
	Library string
	// Batch is the number of images per inference call (>= 1).
	Batch int

	// Probe configures the linear probe.
	Probe ProbeConfig
	// KNNK and KNNTemperature configure the kNN monitor.
	KNNK           int
	KNNTemperature float64

	// TempDir holds the random baseline's ONNX file while it is evaluated ("" = the
	// system's temporary directory).
	TempDir string
}

// DefaultConfig returns a Config for FMNIST with the reference's probe and kNN settings,
// 10000 train and 10000 test images, and no models yet.
func DefaultConfig() Config {
	return Config{
		Dataset: "fmnist", TrainLimit: 10000, TestLimit: 10000, Norm: "auto", Batch: 256,
		RandomSeed: 1, Probe: DefaultProbeConfig(), KNNK: DefaultKNNK, KNNTemperature: DefaultKNNTemperature,
	}
}

// Row is one evaluated encoder (or baseline).
type Row struct {
	// Name is the model file's base name without extension, or the baseline's name
	// (made unique with a "#N" suffix).
	Name string `json:"name"`
	// Kind is KindReference, KindModel or KindBaseline.
	Kind string `json:"kind"`
	// Model is the ONNX file ("" for the pixels baseline and the deleted random model).
	Model string `json:"model"`
	// Dim is the feature dimension.
	Dim int `json:"dim"`
	// ProbeTop1, ProbeTop5 and ProbeTrainTop1 are the linear probe's test top-1, test
	// top-5 and train top-1 accuracies.
	ProbeTop1      float64 `json:"probe_top1"`
	ProbeTop5      float64 `json:"probe_top5"`
	ProbeTrainTop1 float64 `json:"probe_train_top1"`
	// KNNTop1 is the kNN monitor's test top-1 accuracy.
	KNNTop1 float64 `json:"knn_top1"`
	// FidelityCos and FidelityL2 compare test representations with the reference's
	// (nil when there is no reference or the dimensions differ).
	FidelityCos *float64 `json:"fidelity_cos"`
	FidelityL2  *float64 `json:"fidelity_l2"`
	// Agreement is the fraction of test images on which this row's probe predicts the
	// reference's probe's class (nil without a reference).
	Agreement *float64 `json:"agreement"`
	// ProbeCI and KNNCI are 95% Wilson intervals of the top-1 accuracies over the test images;
	// FidelityCI the normal 95% interval of the mean cosine over them.
	ProbeCI    Interval  `json:"probe_top1_ci95"`
	KNNCI      Interval  `json:"knn_top1_ci95"`
	FidelityCI *Interval `json:"fidelity_cos_ci95,omitempty"`
	// ProbeP is the exact McNemar p-value of this row's probe against the reference's, on the
	// same test images (nil without a reference, and for the reference itself): below 0.05 the
	// two accuracies differ significantly.
	ProbeP *float64 `json:"probe_p_vs_reference,omitempty"`
	// Advantage is (probe - random init's) / (reference's - random init's): how much of the
	// victim's edge over a random encoder of its shape this row recovers (nil unless both the
	// reference and the random baseline were evaluated, and the reference beats it).
	Advantage *float64 `json:"advantage_recovered,omitempty"`
	// ProbeRight marks the test images this row's probe got right ('1') or wrong ('0'), in
	// test order: paired comparisons of any two rows (McNemar) need it.
	ProbeRight string `json:"probe_right,omitempty"`
	right      []bool
	// DirectTop1 is the test accuracy of a classifier's own scores (the argmax of its output):
	// set for a victim made by `ssl-onnx classifier` and for copies stolen from its labels or
	// logits. DirectAgreement is how often that argmax equals the reference classifier's.
	DirectTop1      *float64 `json:"direct_top1,omitempty"`
	DirectAgreement *float64 `json:"direct_agreement,omitempty"`
	direct          []int    // argmax predictions on the test split
	// Timings in seconds: feature extraction, probe, kNN, and the whole row.
	ExtractSeconds float64 `json:"extract_seconds"`
	ProbeSeconds   float64 `json:"probe_seconds"`
	KNNSeconds     float64 `json:"knn_seconds"`
	Seconds        float64 `json:"seconds"`
}

// Report is what Evaluate measured.
type Report struct {
	// Dataset is the downstream dataset's name ("caller-given" for Config.Train/Test).
	Dataset string `json:"dataset"`
	// TrainN, TestN and Classes describe the splits used.
	TrainN  int `json:"train_n"`
	TestN   int `json:"test_n"`
	Classes int `json:"classes"`
	// Reference is the victim's ONNX file, if any.
	Reference string `json:"reference,omitempty"`
	// Probe, KNNK and KNNTemperature are the settings used.
	Probe          ProbeConfig `json:"probe"`
	KNNK           int         `json:"knn_k"`
	KNNTemperature float64     `json:"knn_temperature"`
	// Rows holds one result per model, reference first, baselines last.
	Rows []Row `json:"rows"`
	// Machine and When say where and when (UTC) the evaluation ran.
	Machine string    `json:"machine"`
	When    time.Time `json:"when"`
}

// validate checks the config before any work is done.
func (c *Config) validate() error {
	if len(c.Models) == 0 && c.Reference == "" && len(c.Baselines) == 0 {
		return fmt.Errorf("eval: nothing to evaluate: expected at least one model, a reference or a baseline")
	}
	for _, b := range c.Baselines {
		if b != BaselineRandom && b != BaselinePixels {
			return fmt.Errorf("eval: baseline %q: expected %s or %s", b, BaselineRandom, BaselinePixels)
		}
	}
	for _, p := range append([]string{c.Reference}, c.Models...) {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("eval: model %w", err)
		}
	}
	needsORT := len(c.Models) > 0 || c.Reference != ""
	for _, b := range c.Baselines {
		needsORT = needsORT || b == BaselineRandom
	}
	if needsORT {
		if _, err := infer.LibraryPath(c.Library); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	if (c.Train == nil) != (c.Test == nil) {
		return fmt.Errorf("eval: caller-given splits: expected both Train and Test, or neither")
	}
	if c.Train == nil && c.Dataset == "" {
		return fmt.Errorf("eval: no dataset: expected a dataset name (%s) or caller-given splits", strings.Join(data.Names(), ", "))
	}
	if c.TrainLimit < 0 || c.TestLimit < 0 {
		return fmt.Errorf("eval: limits %d/%d: expected >= 0 (0 = whole split)", c.TrainLimit, c.TestLimit)
	}
	if c.Batch < 1 {
		return fmt.Errorf("eval: inference batch %d: expected >= 1", c.Batch)
	}
	if _, err := infer.Normalization(c.Norm, nil); err != nil {
		return err
	}
	if err := c.Probe.Validate(); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if c.KNNK < 1 {
		return fmt.Errorf("eval: kNN k %d: expected >= 1 (reference: %d)", c.KNNK, DefaultKNNK)
	}
	if !(c.KNNTemperature > 0) {
		return fmt.Errorf("eval: kNN temperature %v: expected > 0 (reference: %v)", c.KNNTemperature, DefaultKNNTemperature)
	}
	if c.RandomSpec.Arch != "" {
		if err := c.RandomSpec.Validate(); err != nil {
			return fmt.Errorf("eval: random baseline: %w", err)
		}
	}
	return nil
}

// splits opens, limits and labels the train and test images.
func (c *Config) splits() (train, test data.Dataset, ytr, yte []int, classes int, err error) {
	train, test = c.Train, c.Test
	if train == nil {
		ts, es := c.TrainSplit, c.TestSplit
		if ts == "" {
			ts = "train"
		}
		if es == "" {
			es = "test"
		}
		if train, err = data.Open(c.Dataset, c.DataDir, ts); err != nil {
			return
		}
		if test, err = data.Open(c.Dataset, c.DataDir, es); err != nil {
			return
		}
	}
	if train, err = limit(train, c.TrainLimit); err != nil {
		return
	}
	if test, err = limit(test, c.TestLimit); err != nil {
		return
	}
	if train.Shape() != test.Shape() {
		err = fmt.Errorf("eval: test images are %v: expected the train images' shape %v", test.Shape(), train.Shape())
		return
	}
	classes = len(train.Classes())
	if ytr, err = labels(train, "train"); err != nil {
		return
	}
	if yte, err = labels(test, "test"); err != nil {
		return
	}
	for _, ys := range [][]int{ytr, yte} {
		for _, y := range ys {
			classes = max(classes, y+1)
		}
	}
	if classes < 2 {
		err = fmt.Errorf("eval: the splits have %d class: expected at least 2", classes)
	}
	return
}

func limit(ds data.Dataset, n int) (data.Dataset, error) {
	if ds.Len() == 0 {
		return nil, fmt.Errorf("eval: a split has no images: expected at least one")
	}
	if n > 0 && n < ds.Len() {
		return data.First(ds, n)
	}
	return ds, nil
}

func labels(ds data.Dataset, split string) ([]int, error) {
	y := make([]int, ds.Len())
	for i := range y {
		if y[i] = ds.Label(i); y[i] < 0 {
			return nil, fmt.Errorf("eval: image %d of the %s split is unlabeled: expected labelled images", i, split)
		}
	}
	return y, nil
}

// item is one row to compute.
type item struct {
	name, kind, path string
	pixels           bool
	random           bool
}

// Evaluate extracts train and test features of every model, the reference and the
// baselines (in that order: reference first), runs the linear probe and the kNN
// monitor on them and compares each with the reference. Progress goes to log.
func Evaluate(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	if log == nil {
		log = io.Discard
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	train, test, ytr, yte, classes, err := cfg.splits()
	if err != nil {
		return nil, err
	}
	name := cfg.Dataset
	if cfg.Train != nil {
		name = "caller-given"
	}
	rep := &Report{
		Dataset: name, TrainN: train.Len(), TestN: test.Len(), Classes: classes, Reference: cfg.Reference,
		Probe: cfg.Probe.Resolved(), KNNK: cfg.KNNK, KNNTemperature: cfg.KNNTemperature,
		Machine: fmt.Sprintf("%s/%s, %d cores", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), When: time.Now().UTC(),
	}
	fmt.Fprintf(log, "eval: %s, %d train / %d test images %v, %d classes\n", name, train.Len(), test.Len(), train.Shape(), classes)

	var items []item
	used := map[string]int{}
	uniq := func(n string) string {
		used[n]++
		if used[n] > 1 {
			return fmt.Sprintf("%s#%d", n, used[n])
		}
		return n
	}
	base := func(p string) string {
		n := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if n == "model" { // runs/<name>/model.onnx, as train, steal and export write them
			if d := filepath.Base(filepath.Dir(p)); d != "." && d != string(filepath.Separator) {
				return d
			}
		}
		return n
	}
	if cfg.Reference != "" {
		items = append(items, item{name: uniq(base(cfg.Reference)), kind: KindReference, path: cfg.Reference})
	}
	for _, p := range cfg.Models {
		if p == cfg.Reference {
			continue
		}
		items = append(items, item{name: uniq(base(p)), kind: KindModel, path: p})
	}
	seen := map[string]bool{}
	for _, b := range cfg.Baselines {
		if seen[b] {
			continue
		}
		seen[b] = true
		items = append(items, item{name: uniq(b), kind: KindBaseline, pixels: b == BaselinePixels, random: b == BaselineRandom})
	}

	var refTest infer.Vectors
	var refPred, refDirect []int
	var refRight []bool
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		row, te, pred, err := cfg.evaluateOne(ctx, it, train, test, ytr, yte, classes, log)
		if err != nil {
			return nil, fmt.Errorf("eval %s: %w", it.name, err)
		}
		if it.kind == KindReference {
			refTest, refPred, refDirect, refRight = te, pred, row.direct, row.right
		} else if refRight != nil {
			p, err := McNemar(row.right, refRight)
			if err != nil {
				return nil, fmt.Errorf("eval %s: %w", it.name, err)
			}
			row.ProbeP = &p
		}
		if refDirect != nil && row.direct != nil {
			a, err := Agreement(row.direct, refDirect)
			if err != nil {
				return nil, fmt.Errorf("eval %s: %w", it.name, err)
			}
			row.DirectAgreement = &a
		}
		if refPred != nil {
			a, err := Agreement(pred, refPred)
			if err != nil {
				return nil, fmt.Errorf("eval %s: %w", it.name, err)
			}
			row.Agreement = &a
			if te.D == refTest.D {
				f, err := Fidelity(te, refTest)
				if err != nil {
					return nil, fmt.Errorf("eval %s: %w", it.name, err)
				}
				row.FidelityCos, row.FidelityL2, row.FidelityCI = &f.MeanCosine, &f.MeanL2, &f.CosineCI
			}
		}
		fmt.Fprintf(log, "eval: %s: probe top-1 %.4f top-5 %.4f, kNN top-1 %.4f (%.1f s)\n", row.Name, row.ProbeTop1, row.ProbeTop5, row.KNNTop1, row.Seconds)
		rep.Rows = append(rep.Rows, row)
	}
	rep.advantages()
	return rep, nil
}

// advantages fills every row's Advantage from the reference and the random baseline.
func (r *Report) advantages() {
	var ref, rnd *Row
	for i := range r.Rows {
		switch {
		case r.Rows[i].Kind == KindReference:
			ref = &r.Rows[i]
		case r.Rows[i].Kind == KindBaseline && strings.HasPrefix(r.Rows[i].Name, BaselineRandom) && rnd == nil:
			rnd = &r.Rows[i]
		}
	}
	if ref == nil || rnd == nil || ref.ProbeTop1 <= rnd.ProbeTop1 {
		return
	}
	for i := range r.Rows {
		a := (r.Rows[i].ProbeTop1 - rnd.ProbeTop1) / (ref.ProbeTop1 - rnd.ProbeTop1)
		r.Rows[i].Advantage = &a
	}
}

// evaluateOne computes one row and returns it with its test features and probe
// predictions.
func (c *Config) evaluateOne(ctx context.Context, it item, train, test data.Dataset, ytr, yte []int, classes int, log io.Writer) (Row, infer.Vectors, []int, error) {
	start := time.Now()
	row := Row{Name: it.name, Kind: it.kind, Model: it.path}
	var ftr, fte infer.Vectors
	var err error
	switch {
	case it.pixels:
		if ftr, err = pixels(train); err == nil {
			fte, err = pixels(test)
		}
	case it.random:
		ftr, fte, err = c.randomFeatures(ctx, it.name, train, test, log)
	default:
		var md map[string]string
		ftr, fte, md, err = c.encoderFeatures(ctx, it.path, it.name, train, test, log)
		if err == nil && IsClassifier(md) && fte.D == classes {
			acc := 0.0
			row.direct = argmax(fte)
			for i, p := range row.direct {
				if p == yte[i] {
					acc++
				}
			}
			acc /= float64(len(yte))
			row.DirectTop1 = &acc
		}
	}
	if err != nil {
		return row, fte, nil, err
	}
	row.Dim = ftr.D
	row.ExtractSeconds = time.Since(start).Seconds()

	trf := Features{X: ftr, Y: ytr, Classes: classes}
	tef := Features{X: fte, Y: yte, Classes: classes}
	pc := c.Probe
	bar := progress.New(log, it.name+" probe", pc.Epochs)
	user := pc.Progress
	pc.Progress = func(epoch int, loss float64) {
		bar.Add(1, fmt.Sprintf("loss %.4f", loss))
		if user != nil {
			user(epoch, loss)
		}
	}
	pr, err := LinearProbe(trf, tef, pc)
	if err != nil {
		return row, fte, nil, err
	}
	bar.Done(fmt.Sprintf("top-1 %.4f", pr.Top1))
	row.ProbeTop1, row.ProbeTop5, row.ProbeTrainTop1, row.ProbeSeconds = pr.Top1, pr.Top5, pr.TrainTop1, pr.Seconds
	row.right = correct(pr.Pred, yte)
	k := 0
	for _, ok := range row.right {
		if ok {
			k++
		}
	}
	row.ProbeCI = Wilson(k, len(yte))
	row.ProbeRight = RightString(row.right)
	if err := ctx.Err(); err != nil {
		return row, fte, nil, err
	}
	t := time.Now()
	if row.KNNTop1, err = KNN(trf, tef, c.KNNK, c.KNNTemperature); err != nil {
		return row, fte, nil, err
	}
	row.KNNCI = Wilson(int(math.Round(row.KNNTop1*float64(len(yte)))), len(yte))
	row.KNNSeconds = time.Since(t).Seconds()
	row.Seconds = time.Since(start).Seconds()
	return row, fte, pr.Pred, nil
}

// pixels returns the images of ds scaled to [0,1] and flattened.
func pixels(ds data.Dataset) (infer.Vectors, error) {
	n, d := ds.Len(), ds.Shape().Size()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	v := infer.Vectors{N: n, D: d, Data: make([]float32, n*d)}
	if err := data.Batch(ds, idx, data.Normalization{}, v.Data); err != nil {
		return infer.Vectors{}, err
	}
	return v, nil
}

// randomFeatures exports the random baseline to a temporary file and embeds with it.
func (c *Config) randomFeatures(ctx context.Context, name string, train, test data.Dataset, log io.Writer) (infer.Vectors, infer.Vectors, error) {
	spec := c.RandomSpec
	if spec.Arch == "" {
		spec = DefaultRandomSpec()
		// The reference's architecture, else the first model's: the baseline is "the same
		// encoder, untrained".
		for _, ref := range append([]string{c.Reference}, c.Models...) {
			if ref == "" {
				continue
			}
			if s, ok := specFromReference(ref, c.infer()); ok {
				spec = s
			}
			break
		}
	}
	dir, err := os.MkdirTemp(c.TempDir, "ssl-onnx-eval")
	if err != nil {
		return infer.Vectors{}, infer.Vectors{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "random.onnx")
	fmt.Fprintf(log, "eval: random baseline %s/%s head %s, input %dx%dx%d, seed %d\n", spec.Arch, spec.Stem, spec.Head, spec.InputC, spec.InputHW, spec.InputHW, c.RandomSeed)
	if err := export.RandomModel(path, spec, c.RandomSeed); err != nil {
		return infer.Vectors{}, infer.Vectors{}, fmt.Errorf("random baseline: %w", err)
	}
	tr, te, _, err := c.encoderFeatures(ctx, path, name, train, test, log)
	return tr, te, err
}

func (c *Config) infer() infer.Options {
	return infer.Options{Threads: c.Threads, Device: c.Device, Library: c.Library}
}

// specFromReference reads the architecture, stem and input size from the reference's
// metadata (as written by the export package).
func specFromReference(path string, opt infer.Options) (models.Spec, bool) {
	enc, err := infer.OpenORT(path, opt)
	if err != nil {
		return models.Spec{}, false
	}
	meta := enc.Info().Metadata
	enc.Close()
	s := models.Spec{Arch: meta["architecture"], Stem: meta["stem"], Head: "none"}
	parts := strings.Split(meta["input_shape"], "x")
	if len(parts) != 3 || parts[1] != parts[2] {
		return s, false
	}
	var e1, e2 error
	s.InputC, e1 = strconv.Atoi(parts[0])
	s.InputHW, e2 = strconv.Atoi(parts[1])
	if e1 != nil || e2 != nil || s.Validate() != nil {
		return s, false
	}
	return s, true
}

// encoderFeatures embeds the train and test images with the ONNX encoder at path.
func (c *Config) encoderFeatures(ctx context.Context, path, name string, train, test data.Dataset, log io.Writer) (infer.Vectors, infer.Vectors, map[string]string, error) {
	enc, err := infer.OpenORT(path, c.infer())
	if err != nil {
		return infer.Vectors{}, infer.Vectors{}, nil, err
	}
	defer enc.Close()
	info := enc.Info()
	norm, err := infer.Normalization(c.Norm, info.Metadata)
	if err != nil {
		return infer.Vectors{}, infer.Vectors{}, nil, err
	}
	var out [2]infer.Vectors
	for i, s := range []struct {
		split string
		ds    data.Dataset
	}{{"train", train}, {"test", test}} {
		ds, err := infer.FitDataset(s.ds, info)
		if err != nil {
			return infer.Vectors{}, infer.Vectors{}, nil, err
		}
		bar := progress.New(log, name+" "+s.split, ds.Len())
		last := 0
		v, err := infer.EmbedDataset(ctx, enc, ds, norm, c.Batch, func(done int) {
			bar.Add(done-last, "")
			last = done
		})
		if err != nil {
			return infer.Vectors{}, infer.Vectors{}, nil, err
		}
		bar.Done(fmt.Sprintf("%d x %d", v.N, v.D))
		out[i] = v
	}
	return out[0], out[1], info.Metadata, nil
}

// IsClassifier says whether a model's metadata marks its output as class scores: a
// classifier written by `ssl-onnx classifier`, a copy stolen with the labels or logits loss,
// or the classifier layer of a cross-entropy victim (`export --layer projection`).
func IsClassifier(md map[string]string) bool {
	switch md["train_loss"] {
	case "steal-labels", "steal-logits": // as `ssl-onnx steal` records its loss
		return true
	case "ce":
		return md["output"] == "projection"
	}
	return md["output"] == "logits"
}

// argmax returns the index of each row's largest value (the first on ties).
func argmax(v infer.Vectors) []int {
	out := make([]int, v.N)
	for i := range out {
		row := v.Data[i*v.D : (i+1)*v.D]
		for j, x := range row {
			if x > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

// Print writes the report as an aligned table.
func (r *Report) Print(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d train / %d test images, %d classes; probe %s; kNN k=%d T=%g\n",
		r.Dataset, r.TrainN, r.TestN, r.Classes, r.Probe.summary(), r.KNNK, r.KNNTemperature)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	classifiers := false
	for _, row := range r.Rows {
		classifiers = classifiers || row.DirectTop1 != nil
	}
	head := "name\tkind\tdim\tprobe top-1 [95% CI]\tvs ref. p\tadvantage\tprobe top-5\tkNN top-1 [95% CI]\tfid. cos [95% CI]\tfid. L2\tagreement\t"
	if classifiers {
		head += "direct top-1\tdirect agree\t"
	}
	fmt.Fprintln(tw, head+"seconds\t")
	opt := func(p *float64) string {
		if p == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", *p)
	}
	for _, row := range r.Rows {
		fid := opt(row.FidelityCos)
		if row.FidelityCI != nil {
			fid += " " + row.FidelityCI.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f %s\t%s\t%s\t%.4f\t%.4f %s\t%s\t%s\t%s\t", row.Name, row.Kind, row.Dim,
			row.ProbeTop1, row.ProbeCI, pValue(row.ProbeP), optf(row.Advantage, "%.2f"), row.ProbeTop5, row.KNNTop1, row.KNNCI,
			fid, opt(row.FidelityL2), opt(row.Agreement))
		if classifiers {
			fmt.Fprintf(tw, "%s\t%s\t", opt(row.DirectTop1), opt(row.DirectAgreement))
		}
		fmt.Fprintf(tw, "%.1f\t\n", row.Seconds)
	}
	return tw.Flush()
}

// pValue writes a p-value, marked "n.s." when it is not significant at 5%.
func pValue(p *float64) string {
	switch {
	case p == nil:
		return "-"
	case *p >= 0.05:
		return fmt.Sprintf("%.2g n.s.", *p)
	}
	return fmt.Sprintf("%.2g", *p)
}

func optf(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

// WriteJSON writes the report, indented, to path (creating its directory).
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// LoadReport returns the report saved at path if it evaluated every one of models (a rerun
// may then skip the evaluation), else nil: a missing, unreadable or partial report.
func LoadReport(path string, models []string) *Report {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var rep Report
	if json.Unmarshal(b, &rep) != nil {
		return nil
	}
	have := map[string]bool{}
	for _, r := range rep.Rows {
		have[r.Model] = true
	}
	for _, m := range models {
		if !have[m] {
			return nil
		}
	}
	return &rep
}
