package attack

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/progress"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// The head-recreation attack (the reference's stealhead.py): the victim's API returns the
// representation h, but its contrastive training shaped z = head(h). The attacker first
// recreates a projection head g: d -> d -> HeadDim on the victim's own answers to two augmented
// views of each query image (so each image costs two queries), with the reference's head loss
// (--losshead: infonce by default, softnn or mse between the two views' outputs), then steals
// through it as the reference does: the stolen encoder has a SimCLR head of its own (d -> d ->
// HeadDim), and the loss compares its output with g(V(x)), g frozen.
const (
	// HeadRecreate selects the head-recreation attack in Config.Head.
	HeadRecreate = "recreate"
	// HeadName is the recreated head's weights in the run directory.
	HeadName = "head.ot"
	// HeadDim is the recreated head's output size (SimCLR's 128).
	HeadDim = 128
	// headLR trains the head (the reference: Adam 1e-3).
	headLR = 1e-3
)

// headLosses are the head's training losses, with the temperature each uses (the reference's
// SimCLR 0.07 and soft nearest neighbours 100).
func headLosses() []string { return []string{"infonce", "softnn", "mse"} }

func headTemperature(loss string) float64 {
	switch loss {
	case "infonce":
		return 0.07
	case "softnn":
		return 100
	}
	return 0
}

// recreateHead trains the head on the cached answers of views 0 and 1 of every query image
// for c.HeadEpochs epochs, or loads it from the run directory when an earlier run trained it.
// It returns the head and its last epoch's mean loss (0 when loaded).
func recreateHead(sess *torchnet.Session, c Config, cache *AnswerCache, n, dim int, log io.Writer) (*torchnet.MLP, float64, error) {
	h, err := sess.NewMLP([]int{dim, dim, HeadDim}, c.Seed+2)
	if err != nil {
		return nil, 0, fmt.Errorf("recreating the head: %w", err)
	}
	path := filepath.Join(c.Dir, HeadName)
	if _, err := os.Stat(path); err == nil && c.Resume {
		if err := h.Load(path); err != nil {
			h.Close()
			return nil, 0, fmt.Errorf("recreated head %s: %w", path, err)
		}
		fmt.Fprintf(log, "recreated head loaded from %s\n", path)
		return h, 0, nil
	}
	loss, err := trainHead(c, h, cache, n, dim, log)
	if err == nil {
		err = h.Save(path)
	}
	if err != nil {
		h.Close()
		return nil, 0, fmt.Errorf("recreating the head: %w", err)
	}
	return h, loss, nil
}

// trainHead fits the head with c.HeadLoss between its outputs for the answers to the two views
// of each image (Adam, cosine schedule) and returns the last epoch's mean loss.
func trainHead(c Config, h *torchnet.MLP, cache *AnswerCache, n, dim int, log io.Writer) (float64, error) {
	ans, err := cachedAnswers(cache, n, 2, dim) // row 2i: view 0 of image i, 2i+1: view 1
	if err != nil {
		return 0, err
	}
	tr, err := h.NewTrainer(torchnet.TrainerConfig{Loss: c.HeadLoss, Temperature: headTemperature(c.HeadLoss), Pairs: true, Optimizer: "adam"})
	if err != nil {
		return 0, err
	}
	bs := min(c.BatchSize, n)
	epochs := c.HeadEpochs
	bar := progress.New(log, "recreating the victim's head", epochs)
	var loss float64
	for epoch := 0; epoch < epochs; epoch++ {
		perm := data.Permutation(n, c.Seed+int64(epoch)*7919)
		var sum float64
		var seen int
		for s := 0; s+bs <= n; s += bs {
			idx := perm[s : s+bs]
			x := make([]float32, 0, 2*bs*dim)
			for v := 0; v < 2; v++ {
				for _, i := range idx {
					r := 2*i + v
					x = append(x, ans[r*dim:(r+1)*dim]...)
				}
			}
			l, err := tr.Step(torchnet.Batch{Rows: 2 * bs, X: x}, train.CosineLR(headLR, epoch, 0, epochs))
			if err != nil {
				return 0, err
			}
			sum += l * float64(bs)
			seen += bs
		}
		loss = sum / float64(max(seen, 1))
		bar.Add(1, fmt.Sprintf("loss %.4f", loss))
	}
	bar.Done(fmt.Sprintf("loss %.4f", loss))
	if math.IsNaN(loss) {
		return 0, fmt.Errorf("loss is NaN")
	}
	return loss, nil
}

// headTargets maps every cached answer of the n query images (views each) through the frozen
// head: the stolen encoder's training targets, row i*views+v for image i, view v.
func headTargets(h *torchnet.MLP, cache *AnswerCache, n, views, dim int) ([][]float32, error) {
	x, err := cachedAnswers(cache, n, views, dim)
	if err != nil {
		return nil, err
	}
	out, err := h.Forward(x, n*views)
	if err != nil {
		return nil, fmt.Errorf("the recreated head on the answers: %w", err)
	}
	rows := make([][]float32, n*views)
	for r := range rows {
		rows[r] = out[r*HeadDim : (r+1)*HeadDim]
	}
	return rows, nil
}

// cachedAnswers returns the cached answers of the n query images, views each, row-major with
// row i*views+v for image i, view v.
func cachedAnswers(cache *AnswerCache, n, views, dim int) ([]float32, error) {
	x := make([]float32, 0, n*views*dim)
	for i := 0; i < n; i++ {
		for v := 0; v < views; v++ {
			ans, ok := cache.Get(i, v)
			if !ok || len(ans) != dim {
				return nil, fmt.Errorf("no cached answer of width %d for query image %d view %d", dim, i, v)
			}
			x = append(x, ans...)
		}
	}
	return x, nil
}
