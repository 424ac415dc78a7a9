package serve

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// batcher coalesces concurrent requests of the same API key into one Encode call.
//
// Requests are grouped per key because defenses are per caller: the key travels in the
// Encode context (defense.WithKey), so one Encode call must serve one key. Each key with
// pending requests has a collector goroutine: it takes the first pending request, waits
// until maxBatch images are pending or maxDelay has passed since that request arrived,
// then waits for one of the workers (the number of Encode calls allowed at once) and only
// then takes up to maxBatch images of pending requests, so requests that arrive while the
// model is busy join the next batch. A request is never split; one larger than maxBatch
// runs alone. Collectors exit after a second without requests.
//
// After Encode, the worker is free for the next batch, and the batch's images that are
// still wanted (the client has not gone away) are recorded in the ledger (one entry per
// batch, group-committed with other batches' entries, see ledgerWriter); only then are the
// results handed back, so a reply can only be written for a recorded request.
type batcher struct {
	encode   func(ctx context.Context, x infer.Images) (infer.Vectors, error)
	record   func(e Entry) (Recorded, error)
	observe  func(images int, d time.Duration) // after each Encode call
	depth    func(delta int)                   // pending requests gauge
	maxBatch int
	maxDelay time.Duration
	idle     time.Duration
	sem      chan struct{}

	mu       sync.Mutex
	queues   map[string]*queue
	queued   int // jobs waiting in every queue
	maxQueue int // most jobs waiting; more are refused with 503
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{}
}

type queue struct {
	jobs []*job
	wake chan struct{}
}

type job struct {
	ctx     context.Context
	x       infer.Images
	arrived time.Time
	done    chan jobResult
}

type jobResult struct {
	v    infer.Vectors
	used int64 // the key's used count once this job was recorded
	err  error
	// ran says the job reached the encoder (its defenses included): compute was spent, so a
	// failure after that point keeps the rate tokens it took.
	ran bool
	// replayed: the job's Idempotency-Key was billed before; it was answered, not billed.
	replayed bool
}

// errNonFinite answers a job whose input made the model produce NaN or Inf (finite but huge
// values, say): the caller's input, not a server fault.
var errNonFinite = errorf(http.StatusUnprocessableEntity, "non_finite_output",
	"the model produced non-finite (NaN or Inf) values for this input: check its scale (images are expected in about [0, 1] or normalised)")

var errClosing = errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")

// errOverloaded refuses a request when the batch queue is full: the server is behind, the
// caller should come back (the request was not run and is not billed).
var errOverloaded = &apiError{status: http.StatusServiceUnavailable, code: "overloaded",
	msg: "the server's queue is full: retry shortly", header: http.Header{"Retry-After": {"1"}}}

func newBatcher(maxBatch int, maxDelay time.Duration, workers int) *batcher {
	return &batcher{
		maxBatch: max(maxBatch, 1), maxDelay: max(maxDelay, 0), idle: time.Second,
		sem: make(chan struct{}, max(workers, 1)), queues: map[string]*queue{}, stop: make(chan struct{}),
		observe: func(int, time.Duration) {}, depth: func(int) {},
	}
}

// submit queues x for key and waits for its result; every submitted job is answered.
func (b *batcher) submit(ctx context.Context, keyID string, x infer.Images) jobResult {
	j := &job{ctx: ctx, x: x, arrived: time.Now(), done: make(chan jobResult, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return jobResult{err: errClosing}
	}
	if b.maxQueue > 0 && b.queued >= b.maxQueue {
		b.mu.Unlock()
		return jobResult{err: errOverloaded}
	}
	b.queued++
	q := b.queues[keyID]
	if q == nil {
		q = &queue{wake: make(chan struct{}, 1)}
		b.queues[keyID] = q
		b.wg.Add(1)
		go b.collect(keyID, q)
	}
	q.jobs = append(q.jobs, j)
	b.mu.Unlock()
	b.depth(1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return <-j.done
}

// pending returns the number of jobs and images waiting in q.
func (b *batcher) pending(q *queue) (jobs, images int, first time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range q.jobs {
		images += j.x.N
	}
	if len(q.jobs) > 0 {
		first = q.jobs[0].arrived
	}
	return len(q.jobs), images, first
}

func (b *batcher) collect(keyID string, q *queue) {
	defer b.wg.Done()
	timer := time.NewTimer(b.idle)
	defer timer.Stop()
	for {
		n, images, first := b.pending(q)
		if n == 0 {
			timer.Reset(b.idle)
			select {
			case <-q.wake:
				continue
			case <-timer.C:
			case <-b.stop:
			}
			b.mu.Lock()
			if len(q.jobs) == 0 {
				delete(b.queues, keyID)
				b.mu.Unlock()
				return
			}
			b.mu.Unlock()
			continue
		}
		// Gather: wait for a full batch or the deadline of the oldest request.
		deadline := first.Add(b.maxDelay)
		for b.maxBatch > 1 && images < b.maxBatch {
			d := time.Until(deadline)
			if d <= 0 {
				break
			}
			timer.Reset(d)
			select {
			case <-q.wake:
			case <-timer.C:
			}
			_, images, _ = b.pending(q)
		}
		b.sem <- struct{}{}
		batch := b.take(q)
		if len(batch) == 0 {
			<-b.sem
			continue
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.execute(keyID, batch, func() { <-b.sem })
		}()
	}
}

// take removes up to maxBatch images of jobs from q (at least one job), answering jobs
// whose client has gone away.
func (b *batcher) take(q *queue) []*job {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*job
	images := 0
	i := 0
	for ; i < len(q.jobs); i++ {
		j := q.jobs[i]
		if err := j.ctx.Err(); err != nil {
			b.depth(-1)
			b.queued--
			j.done <- jobResult{err: err}
			continue
		}
		// A job with an Idempotency-Key is billed (or not) on its own: it is never coalesced.
		if len(batch) > 0 && (images+j.x.N > b.maxBatch || idemOf(j.ctx) != nil || idemOf(batch[0].ctx) != nil) {
			break
		}
		batch = append(batch, j)
		images += j.x.N
		b.depth(-1)
		b.queued--
	}
	q.jobs = append(q.jobs[:0], q.jobs[i:]...)
	return batch
}

// execute runs one batch of one key and answers its jobs. It calls release once the model
// is done, before the ledger commit, so the next batch's Encode overlaps this commit.
func (b *batcher) execute(keyID string, batch []*job, release func()) {
	answerAll := func(err error) {
		for _, j := range batch {
			j.done <- jobResult{err: err, ran: true}
		}
	}
	x := batch[0].x
	if len(batch) > 1 {
		n := 0
		for _, j := range batch {
			n += j.x.N
		}
		x = infer.Images{N: n, C: x.C, H: x.H, W: x.W, Data: make([]float32, 0, n*x.C*x.H*x.W)}
		for _, j := range batch {
			x.Data = append(x.Data, j.x.Data...)
		}
	}
	start := time.Now()
	v, err := b.safeEncode(defense.WithKey(context.Background(), keyID), x)
	release()
	b.observe(x.N, time.Since(start))
	if err == nil && (v.N != x.N || v.D <= 0 || len(v.Data) != v.N*v.D) {
		err = fmt.Errorf("the model returned %d x %d vectors (%d values) for %d images", v.N, v.D, len(v.Data), x.N)
	}
	if err != nil {
		answerAll(err)
		return
	}
	// Split, and decide which jobs are answered: still wanted and with finite output.
	results := make([]jobResult, len(batch))
	images, requests := 0, 0
	off := 0
	for i, j := range batch {
		rows := infer.Vectors{N: j.x.N, D: v.D, Data: v.Data[off*v.D : (off+j.x.N)*v.D]}
		off += j.x.N
		switch {
		case j.ctx.Err() != nil:
			results[i].err = j.ctx.Err()
		case !allFinite(rows.Data):
			results[i].err = errNonFinite
		default:
			results[i].v = rows
			images += j.x.N
			requests++
		}
	}
	if requests > 0 {
		e := Entry{KeyID: keyID, Images: images, Requests: requests}
		id := idemOf(batch[0].ctx) // set only on a batch of one job
		if id != nil && id.repeat {
			results[0].replayed = true // billed before: answered again, not billed
			answerJobs(batch, results)
			return
		}
		if id != nil {
			e.Idem, e.BodyHash = id.key, id.hash
		}
		rec, err := b.record(e)
		switch {
		case err != nil && asAPIError(err).status < 500:
			answerAll(err) // refused by the database (quota): the caller's, not a fault
			return
		case err != nil:
			answerAll(fmt.Errorf("ledger: %w", err))
			return
		case rec.Conflict:
			answerAll(id.conflict())
			return
		case rec.Repeat: // a concurrent duplicate was billed first
			results[0].replayed, results[0].used = true, rec.Used
			answerJobs(batch, results)
			return
		}
		used := rec.Used
		// Per-job totals: the batch's jobs are counted in order.
		before := used - int64(images)
		for i, j := range batch {
			if results[i].err == nil {
				before += int64(j.x.N)
				results[i].used = before
			}
		}
	}
	answerJobs(batch, results)
}

// answerJobs hands every job its result; each ran the model.
func answerJobs(batch []*job, results []jobResult) {
	for i, j := range batch {
		results[i].ran = true
		j.done <- results[i]
	}
}

// safeEncode turns a panic of the encoder (a defense, say) into an error.
func (b *batcher) safeEncode(ctx context.Context, x infer.Images) (v infer.Vectors, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("encoder panic: %v", p)
		}
	}()
	return b.encode(ctx, x)
}

// close refuses new jobs, lets the queued ones finish and waits for them.
func (b *batcher) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.stop)
	b.mu.Unlock()
	b.wg.Wait()
}
