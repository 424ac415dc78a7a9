package train

import (
	"fmt"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Loss computes a scalar loss from two aligned batches a and b (N x D each): the projections of
// two views of the same images (victim training), or the stolen and the victim outputs for the
// same images (extraction). labels (N, int64) is only read by supervised losses and may be nil
// for the others. temperature is the loss's temperature. The caller owns the result.
type Loss func(a, b, labels *ts.Tensor, temperature float64) *ts.Tensor

// LossSpec is a registered loss with its reference defaults.
type LossSpec struct {
	Fn          Loss
	Temperature float64
	NeedsLabels bool
	// Supervised losses read class scores: the model gets a linear classifier head with one
	// output per class instead of the SimCLR projection head, and lighter augmentations.
	Supervised bool
}

// Losses is the registry of training losses, by name. Adding a loss is one function and one line.
var Losses = map[string]LossSpec{
	"infonce": {Fn: InfoNCE, Temperature: 0.07},
	"softnn":  {Fn: SoftNN, Temperature: 100},
	"supcon":  {Fn: SupCon, Temperature: 0.07, NeedsLabels: true},
	"ce":      {Fn: CrossEntropy, Temperature: 1, NeedsLabels: true, Supervised: true},
}

// LossNames lists the registered losses, sorted.
func LossNames() []string {
	var names []string
	for k := range Losses {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// LookupLoss returns the named loss or an error listing the valid names.
func LookupLoss(name string) (LossSpec, error) {
	l, ok := Losses[name]
	if !ok {
		return LossSpec{}, fmt.Errorf("loss %q: expected one of %v", name, LossNames())
	}
	return l, nil
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

// InfoNCE is NT-Xent: the 2N rows of [a; b] are L2-normalised; for row i the positive is its
// partner in the other half and the other 2N-2 rows are negatives; cross-entropy over
// similarities / temperature, self-similarity excluded.
func InfoNCE(a, b, _ *ts.Tensor, temperature float64) *ts.Tensor {
	n := int(a.MustSize()[0])
	dev := a.MustDevice()
	z := normalize(ts.MustCat([]*ts.Tensor{a, b}, 0))
	zt := z.MustTranspose(0, 1, false)
	sim := z.MustMm(zt, true).MustDivScalar(ts.FloatScalar(temperature), true)
	zt.MustDrop()
	diag := floatMatrix(2*n, dev, func(i, j int) float32 {
		if i == j {
			return maskNeg
		}
		return 0
	})
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

// SoftNN is the soft nearest-neighbour loss on [a; b] with label(i) = i mod N: squared euclidean
// distances, exp(-d/T) with the diagonal excluded, loss_i = -log(eps + sum_same / sum_all),
// averaged. Computed in log space so large distances do not underflow.
func SoftNN(a, b, _ *ts.Tensor, temperature float64) *ts.Tensor {
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

// SupCon is the supervised contrastive loss (Khosla et al.) on the normalised rows of [a; b]:
// the positives of an anchor are all other rows with its label; the loss is the mean over
// anchors of -mean over positives of log p(positive).
func SupCon(a, b, labels *ts.Tensor, temperature float64) *ts.Tensor {
	n := int(a.MustSize()[0])
	dev := a.MustDevice()
	lab := labels.MustTo(gotch.CPU, false).Int64Values(true)
	z := normalize(ts.MustCat([]*ts.Tensor{a, b}, 0))
	zt := z.MustTranspose(0, 1, false)
	logits := z.MustMm(zt, true).MustDivScalar(ts.FloatScalar(temperature), true)
	zt.MustDrop()
	diag := floatMatrix(2*n, dev, func(i, j int) float32 {
		if i == j {
			return maskNeg
		}
		return 0
	})
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

// CrossEntropy is the supervised classifier's loss: a and b are the class scores (N x classes)
// of two augmented views of the same images, each scored against the images' labels, and the
// two cross-entropies are averaged (the temperature is not used).
func CrossEntropy(a, b, labels *ts.Tensor, _ float64) *ts.Tensor {
	la := a.CrossEntropyForLogits(labels)
	lb := b.CrossEntropyForLogits(labels)
	return la.MustAdd(lb, true).MustDivScalar(ts.FloatScalar(2), true)
}
