// Package attack steals an encoder from its answers: it queries a victim (any infer.Encoder -
// a local ONNX file or a remote paid API, the attack cannot tell) on a query set, pays for
// every image sent, caches every answer on disk, and trains a stolen encoder (models/torchnet,
// through train's one training loop) so that its outputs match the victim's under a
// registered extraction loss.
package attack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/ssl-onnx/ssl-onnx/augment"
	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/progress"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// Config is one extraction attack.
type Config struct {
	Victim     infer.Encoder `json:"-"`
	VictimName string        `json:"victim"` // file or URL, for the record

	QueryDataset string `json:"query_dataset"`
	QueryDir     string `json:"query_dir,omitempty"`
	QuerySplit   string `json:"query_split"`
	QueryOffset  int    `json:"query_offset"` // first image of the query set within the split
	NumQueries   int    `json:"num_queries"`  // the budget: images sent to the victim, every view counts
	Holdout      int    `json:"holdout"`      // images at the end of a test split never queried (kept for evaluation)
	QueryBatch   int    `json:"query_batch"`  // images per victim call

	Loss        string  `json:"loss"`
	Temperature float64 `json:"temperature"`
	// Augment trains on augmented views of each queried image against that image's single
	// cached (clean) answer: StolenEncoder-style query-once-then-augment.
	Augment          bool `json:"augment"`
	RequeryEachEpoch bool `json:"requery_each_epoch"` // the reference's behaviour, counted honestly
	// Head is "" or HeadRecreate: recreate the victim's projection head from its answers to two
	// views of each query image (each image costs two queries), then steal through it: the
	// stolen encoder's own head is trained to match the recreated head's outputs (see head.go).
	Head       string `json:"head,omitempty"`
	HeadEpochs int    `json:"head_epochs,omitempty"` // epochs of head training (default 2 x Epochs, as the reference)
	HeadLoss   string `json:"head_loss,omitempty"`   // the head's training loss: infonce (default), softnn or mse (the reference's --losshead)
	// StolenHead trains the stolen encoder through an MLP projection head of its own (the
	// reference's --stolenhead: its SimCLR head Linear(d, d)-ReLU-Linear(d, out), out = the
	// answers' dimension): the head's output is compared with the answers, and the stolen copy
	// serves the representation before it.
	StolenHead bool `json:"stolen_head,omitempty"`

	Arch        string  `json:"arch"`
	Stem        string  `json:"stem"`
	Size        int     `json:"size"`
	Epochs      int     `json:"epochs"`
	BatchSize   int     `json:"batch_size"`
	Optimizer   string  `json:"optimizer"`         // adam | sgd | lars (momentum 0.9 for sgd and lars)
	LR          float64 `json:"lr"`                // the learning rate used (BaseLR's, when that is given)
	BaseLR      float64 `json:"base_lr,omitempty"` // per 256 images: LR = BaseLR x BatchSize / 256 (SimSiam's linear scaling rule)
	WeightDecay float64 `json:"weight_decay"`
	Seed        int64   `json:"seed"`
	Threads     int     `json:"threads"`
	Workers     int     `json:"workers"`
	Device      string  `json:"device"`
	// Precision of the stolen encoder's training: fp32 or bf16 (autocast; see
	// torchnet.CheckPrecision). The victim's answers and a recreated head stay fp32.
	Precision string `json:"precision,omitempty"`

	Dir string `json:"-"`
	// CheckpointEvery is the least time between two checkpoints (the last epoch is always
	// saved): 0 means 30 s, negative means every epoch. Small budgets run many short epochs,
	// and a ResNet-18 checkpoint with Adam's state (135 MB, fsynced) can take longer to write
	// than such an epoch takes to train.
	CheckpointEvery time.Duration `json:"-"`
	Resume          bool          `json:"-"`
	// KeepWhenRefused makes a refusal by the victim's API (an HTTP 4xx: a blocked key, an
	// exhausted quota) end the querying instead of the attack: the stolen encoder trains on
	// the images answered before it, as a blocked attacker would.
	KeepWhenRefused bool `json:"keep_when_refused,omitempty"`
}

// Result summarises an attack.
type Result struct {
	Config       Config `json:"config"`
	QueriesSpent int    `json:"queries_spent"`
	Images       int    `json:"images"`
	// Refused is the API's refusal that ended querying early (KeepWhenRefused), "" otherwise;
	// Images then counts only the answered images.
	Refused   string  `json:"refused,omitempty"`
	Views     int     `json:"views"`
	OutputDim int     `json:"output_dim"`
	Epochs    int     `json:"epochs"`
	FinalLoss float64 `json:"final_loss"`
	HeadLoss  float64 `json:"head_loss,omitempty"` // the recreated head's last training loss
	Seconds   float64 `json:"seconds"`
}

// ResultName is the JSON summary written in the run directory.
const ResultName = "attack.json"

// CacheName is the answer cache inside the run directory.
const CacheName = "answers.bin"

func (c *Config) defaults(ls LossSpec) {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.QueryDataset, "fmnist")
	def(&c.QuerySplit, "train")
	def(&c.Arch, "resnet18")
	def(&c.Stem, "cifar")
	def(&c.Device, "cpu")
	def(&c.Precision, "fp32")
	def(&c.Optimizer, ls.Optimizer)
	if c.Size == 0 {
		c.Size = 32
	}
	if c.Epochs == 0 {
		c.Epochs = 100
	}
	if c.BatchSize == 0 {
		c.BatchSize = ls.BatchSize
	}
	if c.LR == 0 {
		switch {
		case c.BaseLR > 0:
			c.LR = c.BaseLR * float64(c.BatchSize) / 256
		case c.Optimizer == ls.Optimizer:
			c.LR = ls.LR
		default: // the loss's rate is tuned for its own optimiser (Adam's 3e-4 would barely move SGD)
			c.LR = train.DefaultLR(c.Optimizer)
		}
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 1e-4
	}
	if c.Temperature == 0 {
		c.Temperature = ls.Temperature
	}
	if c.QueryBatch == 0 {
		c.QueryBatch = 64
	}
	if c.Holdout == 0 && c.QuerySplit == "test" {
		c.Holdout = 1000
	}
	if c.Threads == 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.NumQueries == 0 {
		c.NumQueries = 9000
	}
	if c.Head != "" && c.HeadEpochs == 0 {
		c.HeadEpochs = 2 * c.Epochs
	}
	if c.Head != "" && c.HeadLoss == "" {
		c.HeadLoss = "infonce"
	}
}

// CheckLR refuses a learning rate given twice (LR and BaseLR) or negative. Run calls it; the
// command line calls it too, before it opens the victim.
func (c Config) CheckLR() error {
	switch {
	case c.LR != 0 && c.BaseLR != 0:
		return fmt.Errorf("--lr %g and --base-lr %g: give one or the other (--base-lr sets lr = base-lr x batch-size / 256)", c.LR, c.BaseLR)
	case c.LR < 0:
		return fmt.Errorf("--lr %g: must be positive", c.LR)
	case c.BaseLR < 0:
		return fmt.Errorf("--base-lr %g: must be positive", c.BaseLR)
	}
	return nil
}

// Run performs the attack: query (resuming from the answer cache), then train, checkpointing
// the stolen encoder into c.Dir in the same format as package train, so `ssl-onnx export`
// turns it into ONNX like any other encoder.
func Run(ctx context.Context, c Config, log io.Writer) (*Result, error) {
	p, err := plan(&c)
	if err != nil {
		return nil, err
	}
	q, err := openQueries(c, p, log)
	if err != nil {
		return nil, err
	}
	defer q.cache.Close()
	start := time.Now()
	res := &Result{Config: c, Images: p.images, Views: p.views}
	if !c.RequeryEachEpoch {
		if err := q.firstRound(ctx, res); err != nil {
			return nil, err
		}
	}
	sess, err := torchnet.Open(torchnet.Options{Device: c.Device, Threads: c.Threads, Seed: c.Seed})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	st, err := newStolen(sess, c, q, res, log)
	if err != nil {
		return nil, err
	}
	every := c.CheckpointEvery
	if every == 0 {
		every = 30 * time.Second
	}
	spent := 0
	bs := min(c.BatchSize, q.sset.Len())
	_, err = train.Loop{
		Name: fmt.Sprintf("steal %s epoch", c.Loss), Start: res.Epochs, Epochs: c.Epochs, Images: q.sset.Len() / bs * bs,
		LR: func(epoch int) float64 { return train.CosineLR(c.LR, epoch, 0, c.Epochs) },
		Batches: func(ctx context.Context, epoch int) iter.Seq2[train.Item, error] {
			return q.batches(epoch, bs, st.trainer.TargetDim())
		},
		Trainer: st.trainer,
		Before: func(ctx context.Context, epoch int) error {
			if !c.RequeryEachEpoch {
				return nil
			}
			s, err := q.queryAll(ctx, epoch)
			spent += s
			return err
		},
		Save: func(el train.EpochLog) error {
			res.Epochs, res.FinalLoss = el.Epoch, el.Loss
			return st.save(el)
		},
		SaveEvery: every,
		Out:       log,
	}.Run(ctx)
	if err != nil {
		return nil, err
	}
	res.QueriesSpent = res.Images * p.views // the answers this attack used (an earlier larger budget may have paid for more)
	if c.RequeryEachEpoch {
		res.QueriesSpent = spent
	}
	res.Seconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(c.Dir, ResultName), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// budget is what an attack's configuration implies: its loss, the views paid per image and
// the number of query images.
type budget struct {
	ls     LossSpec
	views  int
	images int
}

// plan fills c's defaults and checks everything training needs before a single query is paid
// for.
func plan(c *Config) (budget, error) {
	ls, err := LookupLoss(c.Loss)
	if err != nil {
		return budget{}, err
	}
	if err := c.CheckLR(); err != nil {
		return budget{}, err
	}
	c.defaults(ls)
	if c.Victim == nil {
		return budget{}, fmt.Errorf("attack: no victim encoder")
	}
	views, err := c.views(ls)
	if err != nil {
		return budget{}, err
	}
	if c.BatchSize < 1 || c.QueryBatch < 1 {
		return budget{}, fmt.Errorf("batch size %d, query batch %d: both must be positive", c.BatchSize, c.QueryBatch)
	}
	if err := (models.Spec{Arch: c.Arch, Stem: c.Stem, Head: "none", InputC: 3, InputHW: c.Size}).Validate(); err != nil {
		return budget{}, err
	}
	if c.Optimizer != "adam" && c.Optimizer != "sgd" && c.Optimizer != "lars" {
		return budget{}, fmt.Errorf("optimizer %q: expected adam, sgd or lars", c.Optimizer)
	}
	if err := torchnet.CheckPrecisionOn(c.Precision, c.Device); err != nil {
		return budget{}, err
	}
	if _, err := stolenSpec(*c, ls, c.Victim.Info().OutputDim); err != nil {
		return budget{}, err
	}
	rounds := 1
	if c.RequeryEachEpoch {
		rounds = c.Epochs
	}
	n := c.NumQueries / (views * rounds)
	if n < 2 {
		return budget{}, fmt.Errorf("budget %d queries: %d view(s) per image over %d round(s) leaves %d images; need at least 2", c.NumQueries, views, rounds, n)
	}
	return budget{ls: ls, views: views, images: n}, nil
}

// views is the number of victim answers each query image costs under c's options.
func (c Config) views(ls LossSpec) (int, error) {
	switch {
	case c.Augment && ls.Views != 1:
		return 0, fmt.Errorf("--augment: loss %s already trains on two augmented views; use it with a one-view loss (mse, infonce, softnn, ...)", c.Loss)
	case c.Head != "" && c.Head != HeadRecreate:
		return 0, fmt.Errorf("head %q: expected %q or nothing", c.Head, HeadRecreate)
	case c.Head != "" && !slices.Contains(headLosses(), c.HeadLoss):
		return 0, fmt.Errorf("head loss %q: expected one of %v", c.HeadLoss, headLosses())
	case c.Head != "" && (ls.Views != 1 || c.Augment || c.RequeryEachEpoch):
		return 0, fmt.Errorf("--head %s: needs a one-view loss (mse, infonce, softnn, msewithhead ...) without --augment or --requery-each-epoch (it queries two views of each image itself)", c.Head)
	case c.Head != "" && c.HeadEpochs < 1:
		return 0, fmt.Errorf("head epochs %d: expected at least 1", c.HeadEpochs)
	case c.Head != "":
		return 2, nil
	}
	return ls.Views, nil
}

// openQueries opens the query images as the victim and the stolen encoder see them, and the
// answer cache.
func openQueries(c Config, p budget, log io.Writer) (*querier, error) {
	qset, err := data.Open(c.QueryDataset, c.QueryDir, c.QuerySplit)
	if err != nil {
		return nil, err
	}
	usable := qset.Len() - c.Holdout
	if c.QueryOffset < 0 || c.QueryOffset+p.images > usable {
		return nil, fmt.Errorf("query set %s/%s: images %d..%d requested, but only %d are usable (%d in the split, last %d held out for evaluation)",
			c.QueryDataset, c.QuerySplit, c.QueryOffset, c.QueryOffset+p.images-1, usable, qset.Len(), c.Holdout)
	}
	if qset, err = data.Range(qset, c.QueryOffset, c.QueryOffset+p.images); err != nil {
		return nil, err
	}
	info := c.Victim.Info()
	vset, err := infer.FitDataset(qset, info) // what the victim sees
	if err != nil {
		return nil, fmt.Errorf("victim %s: %w", c.VictimName, err)
	}
	vnorm, err := infer.Normalization("auto", info.Metadata)
	if err != nil {
		return nil, err
	}
	sset, err := data.Square3(qset, c.Size) // what the stolen encoder sees
	if err != nil {
		return nil, err
	}
	if p.views == 2 && vset.Shape() != sset.Shape() {
		return nil, fmt.Errorf("loss %s sends augmented views to the victim: the stolen input (%v) must equal the victim's (%v)", c.Loss, sset.Shape(), vset.Shape())
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := checkCacheID(c, p.views, vset.Shape()); err != nil {
		return nil, err
	}
	cache, err := OpenCache(filepath.Join(c.Dir, CacheName), 0)
	if err != nil {
		return nil, err
	}
	if d := cache.Dropped(); d > 0 {
		fmt.Fprintf(log, "answer cache %s: cut a damaged or torn tail of %d bytes; those answers are asked again\n", cache.path, d)
	}
	return &querier{c: c, ls: p.ls, views: p.views, cache: cache, vset: vset, sset: sset, vnorm: vnorm, aug: augment.SimCLR(c.Size), log: log}, nil
}

// firstRound buys every answer not cached yet. With KeepWhenRefused an API's refusal ends the
// querying, and the attack trains on the images answered before it.
func (q *querier) firstRound(ctx context.Context, res *Result) error {
	_, err := q.queryAll(ctx, 0)
	if err == nil {
		return nil
	}
	if !q.c.KeepWhenRefused || !IsRefusal(err) {
		return err
	}
	n, err := q.answeredPrefix(err)
	if err != nil {
		return err
	}
	res.Images, res.Refused = n, q.refusal
	q.sset, err = data.Range(q.sset, 0, n)
	return err
}

// stolen is the attacker's encoder in training.
type stolen struct {
	c       Config
	spec    models.Spec
	tcfg    train.Config // what its checkpoint records
	net     *torchnet.Net
	trainer *torchnet.Trainer
}

// newStolen builds the stolen encoder, with the victim's output dimension (through a linear
// head when it differs from the representation's), recreates the victim's head when asked,
// and resumes an earlier run's checkpoint.
func newStolen(sess *torchnet.Session, c Config, q *querier, res *Result, log io.Writer) (*stolen, error) {
	dim := q.cache.Dim()
	if dim == 0 {
		dim = c.Victim.Info().OutputDim
	}
	res.OutputDim = dim
	spec, err := stolenSpec(c, q.ls, dim)
	if err != nil {
		return nil, err
	}
	g, err := models.Build(spec)
	if err != nil {
		return nil, err
	}
	st := &stolen{c: c, spec: spec}
	if st.net, err = sess.NewNet(g, c.Seed); err != nil {
		return nil, err
	}
	tc := torchnet.TrainerConfig{Loss: q.ls.Compute, Temperature: c.Temperature, Optimizer: c.Optimizer,
		WeightDecay: c.WeightDecay, Momentum: 0.9 * boolf(c.Optimizer != "adam"), SimSiam: q.ls.SimSiam, Precision: c.Precision}
	if c.Head != "" {
		head, hl, err := recreateHead(sess, c, q.cache, res.Images, dim, log)
		if err != nil {
			return nil, err
		}
		res.HeadLoss = hl
		if q.targets, err = headTargets(head, q.cache, res.Images, q.views, dim); err != nil {
			return nil, err
		}
	}
	if st.trainer, err = st.net.NewTrainer(tc); err != nil {
		return nil, err
	}
	st.tcfg = train.Config{Dataset: c.QueryDataset, Split: c.QuerySplit, Arch: c.Arch, Stem: c.Stem, OutDim: spec.OutDim, Size: c.Size,
		Loss: "steal-" + c.Loss, Temperature: c.Temperature, Optimizer: c.Optimizer, LR: c.LR, WeightDecay: c.WeightDecay,
		Epochs: c.Epochs, BatchSize: c.BatchSize, Seed: c.Seed, Threads: c.Threads, Device: c.Device, Precision: c.Precision}
	res.Epochs, err = st.resume(log)
	return st, err
}

// stolenSpec is the stolen encoder: its output has the victim's dimension (through its own MLP
// head with StolenHead, else a linear head when it differs from the representation's); for the
// SimSiam steal (which has its own heads), the reference's
// stealing SimSiam (a projector and a predictor of the victim's dimension on the encoder,
// zero-initialised residual batch norms) whose representation must have the answers' size.
func stolenSpec(c Config, ls LossSpec, dim int) (models.Spec, error) {
	spec := models.Spec{Arch: c.Arch, Stem: c.Stem, Head: "none", InputC: 3, InputHW: c.Size}
	rep := models.RepresentationDim(c.Arch)
	switch {
	case ls.SimSiam && dim != rep:
		return spec, fmt.Errorf("loss %s passes the victim's answers through the stolen encoder's projector: they must be %s representations of %d values, found %d", c.Loss, c.Arch, rep, dim)
	case ls.SimSiam:
		spec.Head, spec.OutDim, spec.PredHidden, spec.ZeroInitResidual = "simsiam", dim, dim, true
	case c.Head != "":
		spec.Head, spec.OutDim = "simclr", HeadDim // matched against the recreated head's outputs
	case c.StolenHead || ls.StolenHead:
		spec.Head, spec.OutDim = "simclr", dim
	case dim != rep:
		spec.Head, spec.OutDim = "linear", dim
	}
	return spec, nil
}

// resume restores the run directory's checkpoint (with Resume; without, an earlier result is
// removed) and returns the epochs done.
func (st *stolen) resume(log io.Writer) (int, error) {
	c := st.c
	if !c.Resume {
		for _, f := range []string{train.SidecarName, ResultName} {
			os.Remove(filepath.Join(c.Dir, f))
		}
		return 0, nil
	}
	ck, err := train.LoadCheckpoint(c.Dir)
	if err != nil || ck == nil {
		return 0, err
	}
	if ck.Config.Loss != st.tcfg.Loss {
		return 0, fmt.Errorf("resume %s: its checkpoint was trained with %s, this attack uses %s (use another --out, or --resume=false to start over)", c.Dir, ck.Config.Loss, st.tcfg.Loss)
	}
	if ck.Spec != st.spec {
		return 0, fmt.Errorf("resume %s: checkpoint is %+v, this attack builds %+v", c.Dir, ck.Spec, st.spec)
	}
	if err := ck.Restore(c.Dir, st.net, st.trainer); err != nil {
		return 0, err
	}
	fmt.Fprintf(log, "resuming stolen encoder after epoch %d\n", ck.Epoch)
	return ck.Epoch, nil
}

func (st *stolen) save(el train.EpochLog) error {
	ck := train.Checkpoint{Config: st.tcfg, Spec: st.spec, Epoch: el.Epoch, Step: st.trainer.Steps(), Loss: el.Loss}
	return train.SaveCheckpoint(st.c.Dir, ck, st.net, st.trainer)
}

// cacheID says what a cache's answers answer: the victim, the query images and their views.
func cacheID(c Config, views int, shape data.Shape) string {
	id := fmt.Sprintf("victim %s; query set %s/%s (dir %q) from image %d; %d view(s) per image; victim input %dx%dx%d",
		c.VictimName, c.QueryDataset, c.QuerySplit, c.QueryDir, c.QueryOffset, views, shape.C, shape.H, shape.W)
	if views > 1 {
		id += fmt.Sprintf("; augmentation seed %d", c.Seed)
	}
	return id
}

// requestKeys names each request of a chunk by the queries it covers (image and view of its
// first and last item) under the attack's identity: a resumed attack re-sends exactly the
// keys of the requests whose answers it did not persist, and a server that honours
// Idempotency-Key answers them again without billing. Each requery round is a new purchase.
func (q *querier) requestKeys(round int, idx, vw []int) infer.RequestKeys {
	sum := sha256.Sum256([]byte(cacheID(q.c, q.views, q.vset.Shape())))
	run := hex.EncodeToString(sum[:12])
	return func(lo, hi int) string {
		return fmt.Sprintf("steal-%s-r%d-%d.%d-%d.%d", run, round, idx[lo], vw[lo], idx[hi-1], vw[hi-1])
	}
}

// checkCacheID records in the run directory what the cached answers answer (victim, query
// images, views), or refuses to reuse a cache made for other queries: its answers would
// silently become wrong training targets. A larger or smaller budget reuses a prefix.
func checkCacheID(c Config, views int, shape data.Shape) error {
	id := cacheID(c, views, shape)
	path := filepath.Join(c.Dir, CacheName+".id")
	old, err := os.ReadFile(path)
	switch {
	case err == nil && string(old) != id:
		return fmt.Errorf("answer cache in %s holds the answers of other queries (%s); this attack sends %s (use another --out)", c.Dir, old, id)
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return train.WriteFileAtomic(path, []byte(id))
	}
	return err
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// IsRefusal says whether err carries an HTTP 4xx answer of the victim's API (any error with an
// HTTPStatus method, as serve.RemoteError has): the attacker was refused, the API did not fail.
func IsRefusal(err error) bool {
	var sc interface{ HTTPStatus() int }
	return errors.As(err, &sc) && sc.HTTPStatus() >= 400 && sc.HTTPStatus() < 500
}

// answeredPrefix is the number of leading query images whose every view was answered before
// the refusal err; fewer than 2 cannot train anything.
func (q *querier) answeredPrefix(err error) (int, error) {
	n := 0
scan:
	for ; n < q.vset.Len(); n++ {
		for v := 0; v < q.views; v++ {
			if _, ok := q.cache.Get(n, v); !ok {
				break scan
			}
		}
	}
	if n < 2 {
		return 0, fmt.Errorf("the victim's API refused the attack after %d answered images, too few to train on: %w", n, err)
	}
	q.refusal = err.Error()
	fmt.Fprintf(q.log, "the victim's API refused further queries: training on the %d images answered before (%v)\n", n, err)
	return n, nil
}

// querier sends images to the victim and records the answers.
type querier struct {
	refusal string // the refusal that ended querying, if any
	c       Config
	ls      LossSpec
	views   int
	cache   *AnswerCache
	vset    data.Dataset // the query images as the victim sees them
	sset    data.Dataset // the query images as the stolen encoder sees them
	vnorm   data.Normalization
	aug     augment.Params
	log     io.Writer
	// targets, with a recreated head, are the head's outputs for the cached answers (image i,
	// view v at row i*views+v); nil means the answers themselves.
	targets [][]float32
}

// answer is the training target of (image i, view v).
func (q *querier) answer(i, v int) ([]float32, bool) {
	if q.targets != nil {
		r := i*q.views + v
		if r >= len(q.targets) {
			return nil, false
		}
		return q.targets[r], true
	}
	return q.cache.Get(i, v)
}

// image writes the input of (image i, view v), normalised by norm: the clean image for
// one-view losses, else augmented view v (deterministic in seed, image and view, so training
// sees the same view; augmented in [0,1], then normalised, as torchvision's Normalize ends a
// SimCLR pipeline).
func (q *querier) image(ds data.Dataset, norm data.Normalization, i, v int, dst, scratch []float32) error {
	if q.views == 1 {
		return data.ToFloat(ds, i, norm, dst)
	}
	s := ds.Shape()
	if err := data.ToFloat(ds, i, data.Normalization{}, scratch); err != nil {
		return err
	}
	if err := q.aug.View(augment.RNG(q.c.Seed, 0, i, v), scratch, s.H, s.W, dst); err != nil {
		return err
	}
	return norm.Apply(dst, s.C)
}

// queryAll asks the victim for every (image, view) not yet answered (all of them when
// requerying), appending answers to the cache chunk by chunk. It returns the queries sent.
func (q *querier) queryAll(ctx context.Context, round int) (int, error) {
	n := q.vset.Len()
	var todo [][2]int
	for i := 0; i < n; i++ {
		for v := 0; v < q.views; v++ {
			if _, ok := q.cache.Get(i, v); !ok || q.c.RequeryEachEpoch {
				todo = append(todo, [2]int{i, v})
			}
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(q.log, "all %d answers already cached in %s; no queries sent\n", q.cache.Len(), q.c.Dir)
		return 0, nil
	}
	s := q.vset.Shape()
	per := s.C * s.H * s.W
	bar := progress.New(q.log, fmt.Sprintf("querying victim (round %d)", round+1), len(todo))
	buf := make([]float32, q.c.QueryBatch*per)
	scratch := make([]float32, per)
	sent := 0
	for start := 0; start < len(todo); start += q.c.QueryBatch {
		chunk := todo[start:min(start+q.c.QueryBatch, len(todo))]
		idx, vw := make([]int, len(chunk)), make([]int, len(chunk))
		for j, t := range chunk {
			idx[j], vw[j] = t[0], t[1]
			if err := q.image(q.vset, q.vnorm, t[0], t[1], buf[j*per:(j+1)*per], scratch); err != nil {
				return sent, err
			}
		}
		kctx := infer.WithRequestKeys(ctx, q.requestKeys(round, idx, vw))
		out, err := q.c.Victim.Encode(kctx, infer.Images{N: len(chunk), C: s.C, H: s.H, W: s.W, Data: buf[:len(chunk)*per]})
		if err != nil {
			// Answers paid for before the failure are kept: a resumed run does not buy them again.
			var pe *infer.PartialError
			if errors.As(err, &pe) && pe.Answered > 0 && pe.Answered <= len(chunk) && out.N >= pe.Answered && out.D > 0 {
				if cerr := q.cache.Append(idx[:pe.Answered], vw[:pe.Answered], out.D, out.Data[:pe.Answered*out.D]); cerr != nil {
					return sent, cerr
				}
				sent += pe.Answered
			}
			return sent, fmt.Errorf("querying victim %s after %d queries (answers so far are cached; rerun to resume): %w", q.c.VictimName, sent, err)
		}
		if err := q.cache.Append(idx, vw, out.D, out.Data); err != nil {
			return sent, err
		}
		sent += len(chunk)
		bar.Add(len(chunk), "")
	}
	bar.Done(fmt.Sprintf("%d queries sent", sent))
	return sent, nil
}

// batches yields an epoch's batches of query images (drop_last) with their cached answers.
func (q *querier) batches(epoch, bs, dim int) iter.Seq2[train.Item, error] {
	return func(yield func(train.Item, error) bool) {
		n := q.sset.Len()
		perm := data.Permutation(n, q.c.Seed+int64(epoch)*104729)
		for b := 0; b+bs <= n; b += bs {
			idx := perm[b : b+bs]
			batch, err := q.batch(idx, epoch, dim)
			if !yield(train.Item{Batch: batch, Images: len(idx)}, err) || err != nil {
				return
			}
		}
	}
}

// batch is the training batch of query images idx: their inputs (every view) and answers.
func (q *querier) batch(idx []int, epoch, dim int) (torchnet.Batch, error) {
	ds := q.sset
	s := ds.Shape()
	per := s.C * s.H * s.W
	rows := len(idx) * q.views
	b := torchnet.Batch{Rows: rows, X: make([]float32, rows*per), Target: make([]float32, rows*dim)}
	if q.ls.NeedsLabels {
		b.Labels = make([]int64, rows)
	}
	scratch := make([]float32, per)
	for v := 0; v < q.views; v++ {
		for j, i := range idx {
			r := v*len(idx) + j
			dst := b.X[r*per : (r+1)*per]
			var err error
			if q.c.Augment {
				if err = data.ToFloat(ds, i, data.Normalization{}, scratch); err == nil {
					err = q.aug.View(augment.RNG(q.c.Seed, epoch+1, i, 0), scratch, s.H, s.W, dst)
				}
			} else {
				err = q.image(ds, data.Normalization{}, i, v, dst, scratch)
			}
			if err != nil {
				return b, err
			}
			ans, ok := q.answer(i, v)
			if !ok || len(ans) != dim {
				return b, fmt.Errorf("no cached answer of width %d for query image %d view %d", dim, i, v)
			}
			copy(b.Target[r*dim:], ans)
			if b.Labels != nil {
				b.Labels[r] = int64(ds.Label(i))
			}
		}
	}
	return b, nil
}
