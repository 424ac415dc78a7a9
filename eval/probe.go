package eval

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/ssl-onnx/ssl-onnx/data"
)

// Probe optimizers (ProbeConfig.Optimizer) and learning-rate schedules (ProbeConfig.Schedule).
const (
	// OptimizerAdam is torch.optim.Adam (betas 0.9/0.999, eps 1e-8): the CIFAR pipeline's probe.
	OptimizerAdam = "adam"
	// OptimizerSGD is torch.optim.SGD with momentum (no dampening, no Nesterov): the
	// ImageNet pipeline's probe (SimSiam's linear evaluation).
	OptimizerSGD = "sgd"
	// ScheduleConstant keeps the learning rate at LR.
	ScheduleConstant = "constant"
	// ScheduleCosine sets the learning rate at the start of every epoch e = 0..Epochs-1 to
	// LR * 0.5 * (1 + cos(pi * e / Epochs)), as SimSiam's adjust_learning_rate does.
	ScheduleCosine = "cosine"
)

// SimSiam's linear-evaluation settings (see SGDProbeConfig).
const (
	// SGDProbeBaseLR is the base learning rate of the SGD probe: the learning rate is
	// SGDProbeBaseLR * Batch / 256.
	SGDProbeBaseLR = 0.1
	// SGDProbeMomentum is the SGD probe's momentum.
	SGDProbeMomentum = 0.9
	// SGDProbeInitStd is the standard deviation of the SGD probe's initial weights.
	SGDProbeInitStd = 0.01
)

// ProbeConfig sets up LinearProbe. DefaultProbeConfig gives the reference's (CIFAR
// pipeline's) Adam settings, SGDProbeConfig the ImageNet pipeline's SGD settings.
type ProbeConfig struct {
	// Optimizer is OptimizerAdam ("adam"; "" means adam) or OptimizerSGD ("sgd").
	Optimizer string `json:"optimizer"`
	// LR is the optimizer's (initial) learning rate (> 0).
	LR float64 `json:"lr"`
	// Momentum is SGD's momentum, in [0, 1) (0 = plain SGD; SimSiam: 0.9). It must be 0
	// with Adam, whose betas are fixed.
	Momentum float64 `json:"momentum"`
	// Schedule is ScheduleConstant ("constant") or ScheduleCosine ("cosine"); "" means
	// cosine with SGD and constant with Adam.
	Schedule string `json:"schedule"`
	// WeightDecay is the L2 penalty added to the gradient of every parameter, weights
	// and bias, as torch.optim.Adam's and torch.optim.SGD's weight_decay do (>= 0).
	WeightDecay float64 `json:"weight_decay"`
	// Epochs is the number of passes over the train features (>= 1).
	Epochs int `json:"epochs"`
	// Batch is the mini-batch size (>= 1); the last batch of an epoch may be smaller.
	Batch int `json:"batch"`
	// Seed fixes the order of the train rows in every epoch, and the initial weights
	// when InitStd > 0.
	Seed int64 `json:"seed"`
	// InitStd is the standard deviation of the normal distribution (mean 0) the weights
	// start from; 0 starts them at zero (>= 0). The bias always starts at zero.
	InitStd float64 `json:"init_std"`
	// Standardize scales every feature to zero mean and unit variance with the train
	// split's statistics (population standard deviation; constant features are only
	// centred), applied to train and test alike.
	Standardize bool `json:"standardize"`
	// Progress, when not nil, is called after each epoch with the epoch number (1..Epochs)
	// and the epoch's mean mini-batch cross-entropy.
	Progress func(epoch int, loss float64) `json:"-"`
}

// DefaultProbeConfig returns the reference's probe settings (its CIFAR pipeline): Adam
// with learning rate 3e-4 and weight decay 8e-4, constant learning rate, 100 epochs of
// batches of 256, zero initial weights, standardised features.
func DefaultProbeConfig() ProbeConfig {
	return ProbeConfig{Optimizer: OptimizerAdam, Schedule: ScheduleConstant, LR: 3e-4, WeightDecay: 8e-4, Epochs: 100, Batch: 256, Standardize: true}
}

// SGDProbeConfig returns the probe settings of the reference's ImageNet pipeline
// (linsimsiam), which follows SimSiam's linear evaluation (main_lincls.py): SGD with
// momentum 0.9 and no weight decay, learning rate SGDProbeBaseLR * Batch / 256 = 0.1
// annealed by the cosine rule over 90 epochs, batches of 256, weights drawn from
// N(0, 0.01^2) and a zero bias. SimSiam trains the linear layer on the raw pooled
// features, so Standardize is false. Differences from SimSiam: it uses batches of
// 4096 with LARS (learning rate 1.6 by the same scaling rule) where this is plain SGD
// at 256, and it augments the images (random resized crop, flip) every epoch where
// LinearProbe trains on features extracted once, without augmentation. Scale LR with
// Batch (LR = SGDProbeBaseLR * Batch / 256) when changing Batch.
func SGDProbeConfig() ProbeConfig {
	return ProbeConfig{Optimizer: OptimizerSGD, Schedule: ScheduleCosine, LR: SGDProbeBaseLR, Momentum: SGDProbeMomentum,
		Epochs: 90, Batch: 256, InitStd: SGDProbeInitStd}
}

// Resolved returns c with the empty Optimizer and Schedule replaced by their defaults
// (adam; cosine with sgd, constant with adam). Unknown names are kept for Validate.
func (c ProbeConfig) Resolved() ProbeConfig {
	if c.Optimizer == "" {
		c.Optimizer = OptimizerAdam
	}
	if c.Schedule == "" {
		if c.Optimizer == OptimizerSGD {
			c.Schedule = ScheduleCosine
		} else {
			c.Schedule = ScheduleConstant
		}
	}
	return c
}

// Validate checks the settings.
func (c ProbeConfig) Validate() error {
	r := c.Resolved()
	switch {
	case r.Optimizer != OptimizerAdam && r.Optimizer != OptimizerSGD:
		return fmt.Errorf("probe optimizer %q: expected %s or %s (empty = %s)", c.Optimizer, OptimizerAdam, OptimizerSGD, OptimizerAdam)
	case r.Schedule != ScheduleConstant && r.Schedule != ScheduleCosine:
		return fmt.Errorf("probe schedule %q: expected %s or %s (empty = %s with %s, %s with %s)", c.Schedule,
			ScheduleConstant, ScheduleCosine, ScheduleCosine, OptimizerSGD, ScheduleConstant, OptimizerAdam)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("probe learning rate %v: expected a finite value > 0 (reference: 3e-4 with adam, 0.1 x batch/256 with sgd)", c.LR)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return fmt.Errorf("probe momentum %v: expected a value in [0, 1) (SimSiam: %v)", c.Momentum, SGDProbeMomentum)
	case c.Momentum != 0 && r.Optimizer != OptimizerSGD:
		return fmt.Errorf("probe momentum %v with optimizer %s: momentum is an %s setting, expected 0", c.Momentum, r.Optimizer, OptimizerSGD)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("probe weight decay %v: expected a finite value >= 0 (reference: 8e-4 with adam, 0 with sgd)", c.WeightDecay)
	case !(c.InitStd >= 0) || math.IsInf(c.InitStd, 0):
		return fmt.Errorf("probe initial weight std %v: expected a finite value >= 0 (0 = zeros; SimSiam: %v)", c.InitStd, SGDProbeInitStd)
	case c.Epochs < 1:
		return fmt.Errorf("probe epochs %d: expected >= 1 (reference: 100 with adam, 90 with sgd)", c.Epochs)
	case c.Batch < 1:
		return fmt.Errorf("probe batch %d: expected >= 1 (reference: 256)", c.Batch)
	}
	return nil
}

// summary describes the settings in one line, e.g. "sgd momentum 0.9 cosine lr 0.1,
// 90 epochs wd 0 batch 256 init std 0.01 standardize false".
func (c ProbeConfig) summary() string {
	c = c.Resolved()
	s := c.Optimizer
	if c.Optimizer == OptimizerSGD {
		s += fmt.Sprintf(" momentum %g", c.Momentum)
	}
	s += fmt.Sprintf(" %s lr %g, %d epochs wd %g batch %d", c.Schedule, c.LR, c.Epochs, c.WeightDecay, c.Batch)
	if c.InitStd > 0 {
		s += fmt.Sprintf(" init std %g", c.InitStd)
	}
	return s + fmt.Sprintf(" standardize %v", c.Standardize)
}

// epochLR is the learning rate of epoch (1..Epochs) under the schedule.
func (c ProbeConfig) epochLR(epoch int) float64 {
	if c.Resolved().Schedule == ScheduleCosine {
		return c.LR * 0.5 * (1 + math.Cos(math.Pi*float64(epoch-1)/float64(c.Epochs)))
	}
	return c.LR
}

// ProbeResult is what LinearProbe measured.
type ProbeResult struct {
	// Top1 and Top5 are the test accuracies (Top5 counts a row correct when its class is
	// among the 5 highest scores, or among all when there are fewer than 5 classes).
	Top1, Top5 float64
	// TrainTop1 is the accuracy on the train features.
	TrainTop1 float64
	// TrainLoss is the mean cross-entropy on the train features after training.
	TrainLoss float64
	// Pred holds the predicted class of every test row (ties go to the lowest class).
	Pred []int
	// W (Classes x D, row-major) and B (Classes) are the trained weights and bias, in the
	// standardised feature space when the config standardises.
	W, B []float64
	// Mean and Inv are the standardisation (x - Mean) * Inv applied before W (nil when the
	// config does not standardise).
	Mean, Inv []float64
	// Seconds is the wall time of the whole probe.
	Seconds float64
}

// Adam's fixed constants (torch.optim.Adam's defaults).
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// LinearProbe trains a multinomial logistic regression (a linear layer, softmax and
// mean cross-entropy) on the train features with Adam or SGD and reports its accuracy
// on the test features. The bias starts at zero, the weights at zero or, with
// cfg.InitStd > 0, drawn from N(0, InitStd^2) by a generator seeded with cfg.Seed, and
// each epoch visits the train rows in an order fixed by cfg.Seed, so results are
// deterministic. The learning rate is set at the start of every epoch by cfg.Schedule.
// The updates are torch.optim.Adam's (L2 weight decay added to the gradient,
// bias-corrected moments, eps 1e-8) and torch.optim.SGD's (L2 weight decay added to the
// gradient, momentum buffer buf = m*buf + g starting at the first gradient, p -= lr*buf);
// parameters and optimizer state are float64, matrix products float32.
func LinearProbe(train, test Features, cfg ProbeConfig) (ProbeResult, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return ProbeResult{}, err
	}
	cfg = cfg.Resolved()
	if err := checkPair(train, test); err != nil {
		return ProbeResult{}, fmt.Errorf("linear probe: %w", err)
	}
	n, d, c := train.X.N, train.X.D, train.Classes
	xtr, xte := train.X.Data, test.X.Data
	var mean, inv []float64
	if cfg.Standardize {
		mean, inv = standardizer(xtr, n, d)
		xtr = applyStandardizer(xtr, mean, inv)
		xte = applyStandardizer(xte, mean, inv)
	}

	w := probeInit(c*d, cfg)
	b := make([]float64, c)
	w32 := make([]float32, c*d)
	for k, v := range w {
		w32[k] = float32(v)
	}
	var opt probeOptimizer
	if cfg.Optimizer == OptimizerSGD {
		opt = newSGD(c*d+c, cfg)
	} else {
		opt = newAdam(c*d+c, cfg)
	}
	grad := make([]float64, c*d+c)

	bs := min(cfg.Batch, n)
	xb := make([]float32, bs*d)
	logits := make([]float32, bs*c)
	g := make([]float32, bs*c)
	dw := make([]float32, c*d)
	p := make([]float64, c)
	wm := blas32.General{Rows: c, Cols: d, Stride: d, Data: w32}
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		opt.setLR(cfg.epochLR(epoch))
		order := data.Permutation(n, epochSeed(cfg.Seed, epoch))
		lossSum := 0.0
		for s := 0; s < n; s += bs {
			idx := order[s:min(s+bs, n)]
			m := len(idx)
			for i, r := range idx {
				copy(xb[i*d:(i+1)*d], xtr[r*d:(r+1)*d])
			}
			xm := blas32.General{Rows: m, Cols: d, Stride: d, Data: xb[:m*d]}
			lm := blas32.General{Rows: m, Cols: c, Stride: c, Data: logits[:m*c]}
			blas32.Gemm(blas.NoTrans, blas.Trans, 1, xm, wm, 0, lm)
			clear(grad[c*d:])
			for i, r := range idx {
				y := train.Y[r]
				lossSum += softmax(logits[i*c:(i+1)*c], b, p, y)
				for j := range c {
					t := p[j]
					if j == y {
						t--
					}
					t /= float64(m)
					g[i*c+j] = float32(t)
					grad[c*d+j] += t
				}
			}
			gm := blas32.General{Rows: m, Cols: c, Stride: c, Data: g[:m*c]}
			blas32.Gemm(blas.Trans, blas.NoTrans, 1, gm, xm, 0, blas32.General{Rows: c, Cols: d, Stride: d, Data: dw})
			for k, v := range dw {
				grad[k] = float64(v)
			}
			opt.step(grad, w, b)
			for k, v := range w {
				w32[k] = float32(v)
			}
		}
		if cfg.Progress != nil {
			cfg.Progress(epoch, lossSum/float64(n))
		}
	}

	res := ProbeResult{W: w, B: b, Mean: mean, Inv: inv}
	res.TrainTop1, _, res.TrainLoss, _ = score(xtr, train.Y, n, d, c, w32, b)
	res.Top1, res.Top5, _, res.Pred = score(xte, test.Y, test.X.N, d, c, w32, b)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// RawWeights returns the probe as a linear layer on the raw features: the standardisation
// folded into the weights, W'[c][k] = W[c][k] Inv[k] and b'[c] = b[c] - sum_k W'[c][k] Mean[k].
func (r ProbeResult) RawWeights() (w, b []float32) {
	c := len(r.B)
	if c == 0 {
		return nil, nil
	}
	d := len(r.W) / c
	w = make([]float32, len(r.W))
	b = make([]float32, c)
	for j := range c {
		bias := r.B[j]
		for k := range d {
			v := r.W[j*d+k]
			if r.Inv != nil {
				v *= r.Inv[k]
				bias -= v * r.Mean[k]
			}
			w[j*d+k] = float32(v)
		}
		b[j] = float32(bias)
	}
	return w, b
}

// epochSeed is the shuffling seed of one epoch.
func epochSeed(seed int64, epoch int) int64 { return seed*1_000_003 + int64(epoch) }

// softmax writes the probabilities of logits+b into p and returns -log p[y].
func softmax(logits []float32, b, p []float64, y int) float64 {
	mx := math.Inf(-1)
	for j, v := range logits {
		z := float64(v) + b[j]
		p[j] = z
		mx = max(mx, z)
	}
	sum := 0.0
	for j := range p {
		p[j] = math.Exp(p[j] - mx)
		sum += p[j]
	}
	lse := math.Log(sum) + mx
	for j := range p {
		p[j] /= sum
	}
	return lse - (float64(logits[y]) + b[y])
}

// score classifies the n rows of x (n x d) with weights w (c x d) and bias b, and
// returns the top-1 and top-5 accuracy, the mean cross-entropy and the predictions.
func score(x []float32, y []int, n, d, c int, w []float32, b []float64) (top1, top5, loss float64, pred []int) {
	const chunk = 1024
	pred = make([]int, n)
	logits := make([]float32, min(chunk, n)*c)
	p := make([]float64, c)
	wm := blas32.General{Rows: c, Cols: d, Stride: d, Data: w}
	k := min(5, c)
	var hit1, hit5 int
	for s := 0; s < n; s += chunk {
		m := min(chunk, n-s)
		lm := blas32.General{Rows: m, Cols: c, Stride: c, Data: logits[:m*c]}
		blas32.Gemm(blas.NoTrans, blas.Trans, 1, blas32.General{Rows: m, Cols: d, Stride: d, Data: x[s*d : (s+m)*d]}, wm, 0, lm)
		for i := range m {
			row := logits[i*c : (i+1)*c]
			yi := y[s+i]
			loss += softmax(row, b, p, yi)
			best := 0
			above := 0
			for j := range c {
				if p[j] > p[best] {
					best = j
				}
				if p[j] > p[yi] {
					above++
				}
			}
			pred[s+i] = best
			if best == yi {
				hit1++
			}
			if above < k {
				hit5++
			}
		}
	}
	return float64(hit1) / float64(n), float64(hit5) / float64(n), loss / float64(n), pred
}

// standardizer returns the per-feature mean and 1/std of x (n x d); a constant feature
// gets 1/std = 1.
func standardizer(x []float32, n, d int) (mean, inv []float64) {
	mean = make([]float64, d)
	inv = make([]float64, d)
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			t := float64(v) - mean[j]
			inv[j] += t * t
		}
	}
	for j, v := range inv {
		sd := math.Sqrt(v / float64(n))
		if sd > 0 {
			inv[j] = 1 / sd
		} else {
			inv[j] = 1
		}
	}
	return mean, inv
}

// applyStandardizer returns a standardised copy of x.
func applyStandardizer(x []float32, mean, inv []float64) []float32 {
	d := len(mean)
	out := make([]float32, len(x))
	for i := 0; i < len(x); i += d {
		for j := range d {
			out[i+j] = float32((float64(x[i+j]) - mean[j]) * inv[j])
		}
	}
	return out
}

// probeInit returns the n initial weights: zeros, or with cfg.InitStd > 0 normal
// draws (mean 0, standard deviation InitStd; splitmix64 and Box-Muller, seeded by
// cfg.Seed) so that they are the same on every platform and Go release.
func probeInit(n int, cfg ProbeConfig) []float64 {
	w := make([]float64, n)
	if cfg.InitStd == 0 {
		return w
	}
	next := data.SplitMix64(uint64(cfg.Seed)*0x2545f4914f6cdd1d + 0x1f0a3c5e)
	for i := 0; i < n; i += 2 {
		u1 := float64(next()>>11+1) / (1 << 53) // (0, 1]
		u2 := float64(next()>>11) / (1 << 53)   // [0, 1)
		r := math.Sqrt(-2*math.Log(u1)) * cfg.InitStd
		w[i] = r * math.Cos(2*math.Pi*u2)
		if i+1 < n {
			w[i+1] = r * math.Sin(2*math.Pi*u2)
		}
	}
	return w
}

// probeOptimizer updates the probe's parameters from one mini-batch gradient.
type probeOptimizer interface {
	// setLR sets the learning rate of the following steps.
	setLR(lr float64)
	// step updates w (first len(w) parameters) and b (the rest) from grad, which it
	// may modify (weight decay is added in place).
	step(grad, w, b []float64)
}

// sgd is torch.optim.SGD's update (dampening 0, no Nesterov) for one flat parameter
// vector. The momentum buffer starts at zero, so the first step sets it to the gradient
// as torch does.
type sgd struct {
	lr, wd, momentum float64
	buf              []float64
}

func newSGD(n int, cfg ProbeConfig) *sgd {
	return &sgd{lr: cfg.LR, wd: cfg.WeightDecay, momentum: cfg.Momentum, buf: make([]float64, n)}
}

func (s *sgd) setLR(lr float64) { s.lr = lr }

func (s *sgd) step(grad, w, b []float64) {
	update := func(off int, p []float64) {
		for i := range p {
			k := off + i
			g := grad[k] + s.wd*p[i]
			if s.momentum != 0 {
				g += s.momentum * s.buf[k]
				s.buf[k] = g
			}
			p[i] -= s.lr * g
		}
	}
	update(0, w)
	update(len(w), b)
}

// adam is torch.optim.Adam's update for one flat parameter vector.
type adam struct {
	lr, wd float64
	t      int
	m, v   []float64
}

func newAdam(n int, cfg ProbeConfig) *adam {
	return &adam{lr: cfg.LR, wd: cfg.WeightDecay, m: make([]float64, n), v: make([]float64, n)}
}

func (a *adam) setLR(lr float64) { a.lr = lr }

func (a *adam) step(grad, w, b []float64) {
	a.t++
	bc1 := 1 - math.Pow(adamBeta1, float64(a.t))
	bc2 := math.Sqrt(1 - math.Pow(adamBeta2, float64(a.t)))
	stepSize := a.lr / bc1
	update := func(off int, p []float64) {
		for i := range p {
			k := off + i
			g := grad[k] + a.wd*p[i]
			a.m[k] = adamBeta1*a.m[k] + (1-adamBeta1)*g
			a.v[k] = adamBeta2*a.v[k] + (1-adamBeta2)*g*g
			p[i] -= stepSize * a.m[k] / (math.Sqrt(a.v[k])/bc2 + adamEps)
		}
	}
	update(0, w)
	update(len(w), b)
}
