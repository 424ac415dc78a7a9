package augment

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Source fills dst (3 x H x W, CHW, values in [0, 1]) with image i of a data set.
// It is called from several goroutines at once and must be safe for that.
type Source func(i int, dst []float32) error

// Pair is one batch of augmented views: two per image (one when PipelineConfig.Views is 1).
type Pair struct {
	// Index lists the data set indices of the batch, in order.
	Index []int
	// View1 and View2 hold the first and second views as N x 3 x Size x Size (NCHW); View2 is
	// nil in a one-view pipeline.
	View1, View2 []float32
	// N is the number of images in the batch.
	N int
	// Err, when non-nil, reports why the pipeline stopped; no batch follows it.
	Err error
}

// PipelineConfig is what a pipeline augments and how.
type PipelineConfig struct {
	Params  Params
	Source  Source
	H, W    int     // size of every source image
	Batches [][]int // data set indices, batch by batch
	Seed    int64
	Epoch   int
	Workers int // goroutines (<= 0 means GOMAXPROCS)
	// Prefetch is the number of finished batches kept ahead of the consumer.
	Prefetch int
	// Views per image: 2 (the default, also for 0) or 1 (a classifier's single view).
	Views int
}

// NewPipeline augments the configured batches in order, c.Views views per image. View v of
// image i in this epoch draws from RNG(seed, epoch, i, v), so the output does not depend on
// workers. The channel is closed after the last batch, after a Pair with Err set, or when ctx
// is done.
func NewPipeline(ctx context.Context, c PipelineConfig) <-chan Pair {
	out := make(chan Pair, max(c.Prefetch, 0))
	err := c.Params.Validate()
	switch {
	case err != nil:
	case c.Source == nil:
		err = fmt.Errorf("augment: NewPipeline: nil source")
	case c.H < 1 || c.W < 1:
		err = fmt.Errorf("augment: NewPipeline: image size %dx%d, want positive height and width", c.H, c.W)
	case c.Views < 0 || c.Views > 2:
		err = fmt.Errorf("augment: NewPipeline: %d views per image, want 1 or 2", c.Views)
	}
	if err != nil {
		out = make(chan Pair, 1) // the error waits for its reader, whatever the prefetch
		out <- Pair{Err: err}
		close(out)
		return out
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	go runPipeline(ctx, c, out)
	return out
}

// worker holds the buffers one goroutine reuses from batch to batch.
type worker struct {
	img, scratch []float32
}

func runPipeline(ctx context.Context, c PipelineConfig, out chan<- Pair) {
	defer close(out)
	p, h, w, workers := c.Params, c.H, c.W, c.Workers
	view := Channels * p.Size * p.Size
	pool := make([]worker, workers)
	for i := range pool {
		pool[i] = worker{img: make([]float32, Channels*h*w), scratch: make([]float32, p.Size*p.Size)}
	}
	send := func(pr Pair) bool {
		select {
		case out <- pr:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for b, idx := range c.Batches {
		if ctx.Err() != nil {
			return
		}
		n := len(idx)
		if n == 0 {
			send(Pair{Err: fmt.Errorf("augment: batch %d is empty", b)})
			return
		}
		pr := Pair{Index: append([]int(nil), idx...), View1: make([]float32, n*view), N: n}
		if c.Views != 1 {
			pr.View2 = make([]float32, n*view)
		}
		errs := make([]error, n)
		var next atomic.Int64
		var wg sync.WaitGroup
		for k := range min(workers, n) {
			wg.Add(1)
			go func(wk *worker) {
				defer wg.Done()
				for {
					j := int(next.Add(1) - 1)
					if j >= n || ctx.Err() != nil {
						return
					}
					errs[j] = augmentOne(c, pr.Index[j], wk, viewOf(pr.View1, j, view), viewOf(pr.View2, j, view))
				}
			}(&pool[k])
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		for j, e := range errs {
			if e != nil {
				send(Pair{Index: pr.Index, Err: fmt.Errorf("augment: batch %d, image %d (index %d): %w", b, j, pr.Index[j], e)})
				return
			}
		}
		if !send(pr) {
			return
		}
	}
}

// viewOf is image j's view in a batch of views (nil for a missing second view).
func viewOf(views []float32, j, view int) []float32 {
	if views == nil {
		return nil
	}
	return views[j*view : (j+1)*view]
}

// augmentOne loads image i and writes its views (v2 nil: one view); the parameters are already
// validated.
func augmentOne(c PipelineConfig, i int, wk *worker, v1, v2 []float32) error {
	if err := c.Source(i, wk.img); err != nil {
		return err
	}
	for v, dst := range [2][]float32{v1, v2} {
		if dst == nil {
			continue
		}
		pl, err := c.Params.sample(RNG(c.Seed, c.Epoch, i, v), c.H, c.W)
		if err != nil {
			return err
		}
		if err := c.Params.apply(pl, wk.img, c.H, c.W, dst, wk.scratch); err != nil {
			return err
		}
	}
	return nil
}
