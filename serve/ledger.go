package serve

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ledgerWriter commits the ledger entries of concurrent batches together (group commit):
// one goroutine takes every entry waiting, commits them in one transaction (one fsync),
// and answers each with its result. While a commit runs, new entries queue up for the
// next one, so under load the cost of a durable commit (milliseconds on a real disk) is
// shared by many requests, and with no load an entry is committed at once.
type ledgerWriter struct {
	store *Store
	reqs  chan ledgerReq
	wg    sync.WaitGroup
	max   int
	// observe is told each transaction's size and duration.
	observe func(entries int, d time.Duration)
}

type ledgerReq struct {
	e    Entry
	done chan ledgerRes
}

type ledgerRes struct {
	rec Recorded
	err error
}

func newLedgerWriter(store *Store, observe func(entries int, d time.Duration)) *ledgerWriter {
	l := &ledgerWriter{store: store, reqs: make(chan ledgerReq, 1024), max: 512, observe: observe}
	l.wg.Add(1)
	go l.run()
	return l
}

// record adds e to the ledger and returns once it is durable (or failed).
func (l *ledgerWriter) record(e Entry) (Recorded, error) {
	done := make(chan ledgerRes, 1)
	l.reqs <- ledgerReq{e: e, done: done}
	r := <-done
	return r.rec, r.err
}

func (l *ledgerWriter) run() {
	defer l.wg.Done()
	for first := range l.reqs {
		group := []ledgerReq{first}
	drain:
		for len(group) < l.max {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		entries := make([]Entry, len(group))
		for i, r := range group {
			entries[i] = r.e
		}
		start := time.Now()
		rec, err := l.store.RecordAll(context.Background(), entries, start)
		l.observe(len(entries), time.Since(start))
		for i, r := range group {
			switch {
			case err != nil:
				r.done <- ledgerRes{err: err}
			case rec[i].OverQuota:
				r.done <- ledgerRes{rec: rec[i], err: errOverQuota(r.e, rec[i].Used)}
			default:
				r.done <- ledgerRes{rec: rec[i]}
			}
		}
	}
}

// close stops the writer once every queued entry is committed. No record call may follow.
func (l *ledgerWriter) close() {
	close(l.reqs)
	l.wg.Wait()
}

// errOverQuota answers a batch the database refused to bill: its key's quota was used up,
// possibly by another server on the same database, while the batch ran.
func errOverQuota(e Entry, used int64) error {
	return &apiError{status: http.StatusPaymentRequired, code: "quota_exhausted",
		msg:   fmt.Sprintf("quota exhausted: %d images already billed to this key, this request's %d would exceed its quota", used, e.Images),
		extra: map[string]any{"used": used, "requested": e.Images}}
}
