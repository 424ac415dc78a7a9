package torchnet

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// lossFn computes a scalar loss from two aligned batches a and b (N x D each): the outputs for
// two views of the same images (victim training, a recreated head), or the stolen outputs and
// the victim's answers for the same images (extraction; b carries no gradient). labels (N,
// int64) is only read by the losses that need it and may be nil for the others. The caller
// owns the result.
type lossFn func(a, b, labels *ts.Tensor, temperature float64) *ts.Tensor

// Losses lists the loss names a Trainer accepts.
func Losses() []string {
	return []string{"barlow", "bce", "ce", "cosine", "infonce", "labels", "logits", "mse", "softnn", "supcon", "symmetrized", "wasserstein", "xent"}
}

// lossByName returns the named loss.
func lossByName(name string) (lossFn, error) {
	switch name {
	case "infonce":
		return infoNCE, nil
	case "softnn":
		return softNN, nil
	case "supcon":
		return supCon, nil
	case "ce":
		return crossEntropyPair, nil
	case "xent":
		return crossEntropy, nil
	case "mse":
		return mse, nil
	case "cosine":
		return cosine, nil
	case "wasserstein":
		return wasserstein, nil
	case "barlow":
		return barlow, nil
	case "symmetrized":
		return symmetrized, nil
	case "labels":
		return labelsLoss, nil
	case "logits":
		return logits, nil
	case "bce":
		return bce, nil
	}
	return nil, fmt.Errorf("loss %q: expected one of %v", name, Losses())
}

// needsLabels says whether the named loss reads labels.
func needsLabels(name string) bool {
	return name == "supcon" || name == "ce" || name == "xent"
}

// maskNeg is added to logits to exclude entries (exp underflows to exactly 0 in float32).
const maskNeg = -1e9

// normalize divides each row by its L2 norm (clamped at 1e-12, as F.normalize).
func normalize(x *ts.Tensor) *ts.Tensor {
	sq := x.MustMul(x, false)
	n := sq.MustSumDimIntlist([]int64{1}, true, gotch.Float, true).MustSqrt(true).MustClampMin(ts.FloatScalar(1e-12), true)
	y := x.MustDiv(n, false)
	n.MustDrop()
	return y
}

// floatMatrix makes an n x n tensor on device from a Go function of (i, j).
func floatMatrix(n int, dev gotch.Device, f func(i, j int) float32) *ts.Tensor {
	v := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v[i*n+j] = f(i, j)
		}
	}
	t := ts.MustOfSlice(v).MustView([]int64{int64(n), int64(n)}, true)
	if dev != gotch.CPU {
		t = t.MustTo(dev, true)
	}
	return t
}

// cosineLogits returns the cosine similarities / temperature of the 2N L2-normalised rows of
// [a; b] (2N x 2N) and the mask that excludes self-similarity (to add to them).
func cosineLogits(a, b *ts.Tensor, temperature float64) (sim, diag *ts.Tensor) {
	n := int(a.MustSize()[0])
	z := normalize(ts.MustCat([]*ts.Tensor{a, b}, 0))
	zt := z.MustTranspose(0, 1, false)
	sim = z.MustMm(zt, true).MustDivScalar(ts.FloatScalar(temperature), true)
	zt.MustDrop()
	diag = floatMatrix(2*n, a.MustDevice(), func(i, j int) float32 {
		if i == j {
			return maskNeg
		}
		return 0
	})
	return sim, diag
}

// infoNCE is NT-Xent: the 2N rows of [a; b] are L2-normalised; for row i the positive is its
// partner in the other half and the other 2N-2 rows are negatives; cross-entropy over
// similarities / temperature, self-similarity excluded.
func infoNCE(a, b, _ *ts.Tensor, temperature float64) *ts.Tensor {
	n := int(a.MustSize()[0])
	dev := a.MustDevice()
	sim, diag := cosineLogits(a, b, temperature)
	logits := sim.MustAdd(diag, true)
	diag.MustDrop()
	tg := make([]int64, 2*n)
	for i := range tg {
		tg[i] = int64((i + n) % (2 * n))
	}
	targets := ts.MustOfSlice(tg).MustTo(dev, true)
	loss := logits.CrossEntropyForLogits(targets)
	logits.MustDrop()
	targets.MustDrop()
	return loss
}

// softNN is the soft nearest-neighbour loss on [a; b] with label(i) = i mod N: squared euclidean
// distances, exp(-d/T) with the diagonal excluded, loss_i = -log(eps + sum_same / sum_all),
// averaged. Computed in log space so large distances do not underflow.
func softNN(a, b, _ *ts.Tensor, temperature float64) *ts.Tensor {
	n := int(a.MustSize()[0])
	dev := a.MustDevice()
	x := ts.MustCat([]*ts.Tensor{a, b}, 0)
	sq := x.MustMul(x, false).MustSumDimIntlist([]int64{1}, true, gotch.Float, true) // 2N x 1
	xt := x.MustTranspose(0, 1, false)
	dot := x.MustMm(xt, true)
	xt.MustDrop()
	sqt := sq.MustTranspose(0, 1, false)
	d := sq.MustAdd(sqt, true).MustSub(dot.MustMulScalar(ts.FloatScalar(2), true), true).MustClampMin(ts.FloatScalar(0), true)
	sqt.MustDrop()
	logits := d.MustDivScalar(ts.FloatScalar(-temperature), true)
	notSelf := floatMatrix(2*n, dev, func(i, j int) float32 {
		if i == j {
			return maskNeg
		}
		return 0
	})
	notSame := floatMatrix(2*n, dev, func(i, j int) float32 {
		if i == j || i%n != j%n {
			return maskNeg
		}
		return 0
	})
	all := logits.MustAdd(notSelf, false).MustLogsumexp([]int64{1}, false, true)
	pos := logits.MustAdd(notSame, true).MustLogsumexp([]int64{1}, false, true)
	notSelf.MustDrop()
	notSame.MustDrop()
	ratio := pos.MustSub(all, true).MustExp(true).MustAddScalar(ts.FloatScalar(1e-9), true)
	all.MustDrop()
	return ratio.MustLog(true).MustNeg(true).MustMean(gotch.Float, true)
}

// supCon is the supervised contrastive loss (Khosla et al.) on the normalised rows of [a; b]:
// the positives of an anchor are all other rows with its label; the loss is the mean over
// anchors of -mean over positives of log p(positive).
func supCon(a, b, labels *ts.Tensor, temperature float64) *ts.Tensor {
	n := int(a.MustSize()[0])
	dev := a.MustDevice()
	lab := labels.MustTo(gotch.CPU, false).Int64Values(true)
	logits, diag := cosineLogits(a, b, temperature)
	lse := logits.MustAdd(diag, false).MustLogsumexp([]int64{1}, true, true)
	diag.MustDrop()
	logProb := logits.MustSub(lse, true)
	lse.MustDrop()
	posCount := make([]float32, 2*n)
	pos := floatMatrix(2*n, dev, func(i, j int) float32 {
		if i != j && lab[i%n] == lab[j%n] {
			posCount[i]++
			return 1
		}
		return 0
	})
	for i := range posCount {
		posCount[i] = 1 / posCount[i] // every anchor has at least its other view
	}
	inv := ts.MustOfSlice(posCount).MustView([]int64{int64(2 * n), 1}, true).MustTo(dev, true)
	perAnchor := logProb.MustMul(pos, true).MustSumDimIntlist([]int64{1}, true, gotch.Float, true).MustMul(inv, true)
	pos.MustDrop()
	inv.MustDrop()
	return perAnchor.MustMean(gotch.Float, true).MustNeg(true)
}

// crossEntropyPair is the supervised classifier's loss: a and b are the class scores (N x classes)
// of two augmented views of the same images, each scored against the images' labels, and the
// two cross-entropies are averaged (the temperature is not used).
func crossEntropyPair(a, b, labels *ts.Tensor, _ float64) *ts.Tensor {
	la := a.CrossEntropyForLogits(labels)
	lb := b.CrossEntropyForLogits(labels)
	return la.MustAdd(lb, true).MustDivScalar(ts.FloatScalar(2), true)
}

// mse is the mean squared error between stolen and victim outputs.
func mse(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	return s.MustMseLoss(v, 1, false)
}

// cosine is 1 - mean cosine similarity of matching rows.
func cosine(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	return rowCos(s, v).MustMean(gotch.Float, true).MustNeg(true).MustAddScalar(ts.FloatScalar(1), true)
}

// rowCos is the cosine similarity of matching rows (N).
func rowCos(a, b *ts.Tensor) *ts.Tensor {
	an, bn := normalize(a), normalize(b)
	c := an.MustMul(bn, true).MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	bn.MustDrop()
	return c
}

// wasserstein treats each row (made non-negative and normalised to sum 1) as a distribution
// over dimensions and returns the mean 1-D Wasserstein distance: the sum of absolute
// differences of the cumulative sums.
func wasserstein(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	cdf := func(x *ts.Tensor) *ts.Tensor {
		p := x.MustAbs(false).MustAddScalar(ts.FloatScalar(1e-8), true)
		sum := p.MustSumDimIntlist([]int64{1}, true, gotch.Float, false)
		p = p.MustDiv(sum, true)
		sum.MustDrop()
		return p.MustCumsum(1, gotch.Float, true)
	}
	a, b := cdf(s), cdf(v)
	d := a.MustSub(b, true).MustAbs(true).MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	b.MustDrop()
	return d.MustMean(gotch.Float, true)
}

// barlow is the reference's Barlow Twins extraction loss (its simclr.py steal loop): s and v
// hold view 1 of the batch's images in their first half and view 2 in their second;
// P1 = [s1; v1] and P2 = [s2; v2] stack the stolen and victim outputs of each view, and the
// loss is Barlow Twins' between the views: the cross-correlation matrix of the batch-normalised
// P1 and P2 should be the identity, sum (c_ii - 1)^2 + 0.0051 * sum_{i != j} c_ij^2.
func barlow(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	h := s.MustSize()[0] / 2
	s1, s2 := s.MustNarrow(0, 0, h, false), s.MustNarrow(0, h, h, false)
	v1, v2 := v.MustNarrow(0, 0, h, false), v.MustNarrow(0, h, h, false)
	p1, p2 := ts.MustCat([]*ts.Tensor{s1, v1}, 0), ts.MustCat([]*ts.Tensor{s2, v2}, 0)
	for _, t := range []*ts.Tensor{s1, s2, v1, v2} {
		t.MustDrop()
	}
	l := crossCorrelation(p1, p2)
	p1.MustDrop()
	p2.MustDrop()
	return l
}

// crossCorrelation is Barlow Twins' loss between a and b (N x D each): the cross-correlation
// of their batch-normalised columns against the identity, off-diagonal terms weighted 0.0051.
func crossCorrelation(s, v *ts.Tensor) *ts.Tensor {
	const lambda = 0.0051
	n := float64(s.MustSize()[0])
	d := s.MustSize()[1]
	bn := func(x *ts.Tensor) *ts.Tensor {
		mean := x.MustMeanDim([]int64{0}, true, gotch.Float, false)
		xc := x.MustSub(mean, false)
		mean.MustDrop()
		std := xc.MustMul(xc, false).MustMeanDim([]int64{0}, true, gotch.Float, true).MustAddScalar(ts.FloatScalar(1e-5), true).MustSqrt(true)
		y := xc.MustDiv(std, true)
		std.MustDrop()
		return y
	}
	a, b := bn(s), bn(v)
	at := a.MustTranspose(0, 1, true)
	c := at.MustMm(b, true).MustDivScalar(ts.FloatScalar(n), true)
	b.MustDrop()
	eye := ts.MustEye(d, gotch.Float, c.MustDevice())
	diff := c.MustSub(eye, false)
	on := diff.MustMul(diff, true).MustMul(eye, false).MustSum(gotch.Float, true)
	off := c.MustMul(c, false).MustMul(eye.MustNeg(false).MustAddScalar(ts.FloatScalar(1), true), true).MustSum(gotch.Float, true)
	c.MustDrop()
	eye.MustDrop()
	return on.MustAdd(off.MustMulScalar(ts.FloatScalar(lambda), true), true)
}

// symmetrized is the SimSiam-style cross-view loss -1/2 [cos(s1, v2) + cos(s2, v1)]: the
// stolen encoder's view of one augmentation must predict the victim's answer for the other.
// (The victim's answers are fixed targets, so they play the role of SimSiam's stop-gradient
// branch; no extra projector is trained.)
func symmetrized(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	h := s.MustSize()[0] / 2
	s1, s2 := s.MustNarrow(0, 0, h, false), s.MustNarrow(0, h, h, false)
	v1, v2 := v.MustNarrow(0, 0, h, false), v.MustNarrow(0, h, h, false)
	a := rowCos(s1, v2).MustMean(gotch.Float, true)
	b := rowCos(s2, v1).MustMean(gotch.Float, true)
	for _, t := range []*ts.Tensor{s1, s2, v1, v2} {
		t.MustDrop()
	}
	return a.MustAdd(b, true).MustMulScalar(ts.FloatScalar(-0.5), true)
}

// labelsLoss is the cross-entropy of the stolen scores s against the victim's predicted class
// (the argmax of its answer v): stealing from an API that only returns labels.
func labelsLoss(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	y := v.MustArgmax([]int64{1}, false, false)
	l := s.CrossEntropyForLogits(y)
	y.MustDrop()
	return l
}

// logits is knowledge distillation from the victim's class scores: the cross-entropy of
// softmax(s/T) against softmax(v/T), times T^2, averaged over rows (the KL divergence up to
// the victim's constant entropy).
func logits(s, v, _ *ts.Tensor, t float64) *ts.Tensor {
	if t <= 0 {
		t = 1
	}
	p := v.MustDivScalar(ts.FloatScalar(t), false).MustSoftmax(1, gotch.Float, true)
	ls := s.MustDivScalar(ts.FloatScalar(t), false).MustLogSoftmax(1, gotch.Float, true)
	n := float64(s.MustSize()[0])
	l := p.MustMul(ls, true).MustSum(gotch.Float, true).MustMulScalar(ts.FloatScalar(-t*t/n), true)
	ls.MustDrop()
	return l
}

// bce is binary cross-entropy with logits against the victim's rounded sigmoid outputs.
func bce(s, v, _ *ts.Tensor, _ float64) *ts.Tensor {
	target := v.MustSigmoid(false).MustRound(true)
	w := ts.NewTensor()
	l := s.MustBinaryCrossEntropyWithLogits(target, w, w, 1, false)
	target.MustDrop()
	w.MustDrop()
	return l
}

// crossEntropy is the cross-entropy of the scores a (N x classes) against labels; b is not
// read (a classifier trained on one view: the watermark head).
func crossEntropy(a, _, labels *ts.Tensor, _ float64) *ts.Tensor {
	return a.CrossEntropyForLogits(labels)
}

// LossGrad evaluates the named loss on a and b (rows x d each, row-major) with labels (rows
// values, for the losses that read them) and returns its value and its gradients with respect
// to a and b, in a session of its own: what the cross-checks against the reference's PyTorch
// code compare.
func LossGrad(name string, a, b []float32, rows, d int, labels []int64, temperature float64) (loss float64, ga, gb []float64, err error) {
	fn, err := lossByName(name)
	if err != nil {
		return 0, nil, nil, err
	}
	if rows < 1 || d < 1 || len(a) != rows*d || len(b) != rows*d {
		return 0, nil, nil, fmt.Errorf("loss %s: %d and %d values for %d x %d", name, len(a), len(b), rows, d)
	}
	if err := checkLabels(name, labels, rows, d); err != nil {
		return 0, nil, nil, err
	}
	s, err := Open(Options{Threads: 1})
	if err != nil {
		return 0, nil, nil, err
	}
	defer s.Close()
	err = s.do(func() error {
		at := s.input(a, int64(rows), int64(d)).MustSetRequiresGrad(true, true)
		bt := s.input(b, int64(rows), int64(d)).MustSetRequiresGrad(true, true)
		defer at.MustDrop()
		defer bt.MustDrop()
		var lt *ts.Tensor
		if labels != nil {
			lt = ts.MustOfSlice(labels)
			defer lt.MustDrop()
		}
		l := fn(at, bt, lt, temperature)
		if dims := l.MustSize(); len(dims) != 0 {
			return fmt.Errorf("loss %s has shape %v, expected a scalar", name, dims)
		}
		l.MustBackward()
		loss = l.Float64Values(true)[0]
		ga, gb = gradValues(at, rows*d), gradValues(bt, rows*d)
		return nil
	})
	return loss, ga, gb, err
}

// gradValues is x's gradient, or zeros when the loss does not depend on x (no gradient).
func gradValues(x *ts.Tensor, n int) []float64 {
	g := x.MustGrad(false)
	defer g.MustDrop()
	if !g.MustDefined() {
		return make([]float64, n)
	}
	return g.Float64Values(false)
}
