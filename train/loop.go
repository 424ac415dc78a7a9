package train

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/progress"
)

// Item is one step's batch and the number of images it counts for in progress and logs.
type Item struct {
	Batch  torchnet.Batch
	Images int
}

// Loop is the toolkit's one training loop: victim training and stealing differ in their
// batches and their Trainer (loss, heads), not here. Per epoch: the learning rate, the
// batches, a step each, progress, a NaN check, a checkpoint when due, a log line.
type Loop struct {
	Name          string // progress label, e.g. "epoch" or "steal mse epoch"
	Start, Epochs int    // epochs already done, epochs in all
	Images        int    // images per epoch (progress)
	LR            func(epoch int) float64
	// Batches yields an epoch's batches; an error ends the run.
	Batches func(ctx context.Context, epoch int) iter.Seq2[Item, error]
	Trainer *torchnet.Trainer
	// Before runs before an epoch's batches (the reference's requery-each-epoch).
	Before func(ctx context.Context, epoch int) error
	// Save checkpoints the end of an epoch; SaveEvery > 0 saves at most that often (the last
	// epoch always), 0 after every epoch.
	Save      func(e EpochLog) error
	SaveEvery time.Duration
	Out       io.Writer
}

// Run trains from l.Start to l.Epochs and returns the logs of the epochs it ran.
func (l Loop) Run(ctx context.Context) ([]EpochLog, error) {
	out := l.Out
	if out == nil {
		out = io.Discard
	}
	var logs []EpochLog
	saved, savedEpoch := time.Now(), l.Start
	for epoch := l.Start; epoch < l.Epochs; epoch++ {
		if l.Before != nil {
			if err := l.Before(ctx, epoch); err != nil {
				return logs, err
			}
		}
		el, err := l.epoch(ctx, epoch, out)
		if err != nil {
			if ctx.Err() != nil {
				return logs, fmt.Errorf("interrupted in epoch %d (the checkpoint of epoch %d is kept): %w", epoch+1, savedEpoch, ctx.Err())
			}
			return logs, err
		}
		if epoch+1 == l.Epochs || l.SaveEvery <= 0 || time.Since(saved) >= l.SaveEvery {
			if err := l.Save(el); err != nil {
				return logs, err
			}
			saved, savedEpoch = time.Now(), epoch+1
		}
		logs = append(logs, el)
	}
	return logs, nil
}

// epoch runs one epoch's steps.
func (l Loop) epoch(ctx context.Context, epoch int, out io.Writer) (EpochLog, error) {
	lr := l.LR(epoch)
	bar := progress.New(out, fmt.Sprintf("%s %d/%d", l.Name, epoch+1, l.Epochs), l.Images)
	t0 := time.Now()
	var sum float64
	var seen int
	for it, err := range l.Batches(ctx, epoch) {
		if err != nil {
			return EpochLog{}, err
		}
		loss, err := l.Trainer.Step(it.Batch, lr)
		if err != nil {
			return EpochLog{}, fmt.Errorf("training step: %w", err)
		}
		sum += loss * float64(it.Images)
		seen += it.Images
		bar.Add(it.Images, fmt.Sprintf("loss %.4f", sum/float64(seen)))
		if err := ctx.Err(); err != nil {
			bar.Done("interrupted")
			return EpochLog{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		bar.Done("interrupted")
		return EpochLog{}, err
	}
	secs := time.Since(t0).Seconds()
	el := EpochLog{Epoch: epoch + 1, Loss: sum / float64(max(seen, 1)), LR: lr, Images: seen, Seconds: secs, ImagesPS: float64(seen) / secs}
	bar.Done(fmt.Sprintf("loss %.4f, %.0f img/s", el.Loss, el.ImagesPS))
	if math.IsNaN(el.Loss) {
		return el, fmt.Errorf("epoch %d: loss is NaN (try a lower --lr)", epoch+1)
	}
	return el, nil
}
