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

// Pair is one batch of two augmented views per image.
type Pair struct {
	// Index lists the data set indices of the batch, in order.
	Index []int
	// View1 and View2 hold the first and second views as N x 3 x Size x Size (NCHW).
	View1, View2 []float32
	// N is the number of images in the batch.
	N int
	// Err, when non-nil, reports why the pipeline stopped; no batch follows it.
	Err error
}

// NewPipeline augments the given batches of data set indices in order, two
// views per image, using workers goroutines (<= 0 means GOMAXPROCS) and keeping
// up to prefetch finished batches ahead of the consumer. View v of image i in
// this epoch draws from RNG(seed, epoch, i, v), so the output does not depend
// on workers. The channel is closed after the last batch, after a Pair with Err
// set, or when ctx is done. h and w give the size of every source image.
func NewPipeline(ctx context.Context, p Params, src Source, h, w int, batches [][]int, seed int64, epoch int, workers int, prefetch int) <-chan Pair {
	if prefetch < 0 {
		prefetch = 0
	}
	out := make(chan Pair, prefetch)
	err := p.Validate()
	switch {
	case err != nil:
	case src == nil:
		err = fmt.Errorf("augment: NewPipeline: nil source")
	case h < 1 || w < 1:
		err = fmt.Errorf("augment: NewPipeline: image size %dx%d, want positive height and width", h, w)
	}
	if err != nil {
		out <- Pair{Err: err}
		close(out)
		return out
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	go runPipeline(ctx, p, src, h, w, batches, seed, epoch, workers, out)
	return out
}

// worker holds the buffers one goroutine reuses from batch to batch.
type worker struct {
	img, scratch []float32
}

func runPipeline(ctx context.Context, p Params, src Source, h, w int, batches [][]int, seed int64, epoch, workers int, out chan<- Pair) {
	defer close(out)
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
	for b, idx := range batches {
		if ctx.Err() != nil {
			return
		}
		n := len(idx)
		if n == 0 {
			send(Pair{Err: fmt.Errorf("augment: batch %d is empty", b)})
			return
		}
		pr := Pair{Index: append([]int(nil), idx...), View1: make([]float32, n*view), View2: make([]float32, n*view), N: n}
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
					errs[j] = augmentOne(p, src, h, w, pr.Index[j], seed, epoch, wk,
						pr.View1[j*view:(j+1)*view], pr.View2[j*view:(j+1)*view])
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

// augmentOne loads image i and writes its two views; p is already validated.
func augmentOne(p Params, src Source, h, w, i int, seed int64, epoch int, wk *worker, v1, v2 []float32) error {
	if err := src(i, wk.img); err != nil {
		return err
	}
	for v, dst := range [2][]float32{v1, v2} {
		pl, err := p.sample(RNG(seed, epoch, i, v), h, w)
		if err != nil {
			return err
		}
		if err := p.apply(pl, wk.img, h, w, dst, wk.scratch); err != nil {
			return err
		}
	}
	return nil
}
