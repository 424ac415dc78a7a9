package serve

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// idleTrim gives the memory of a finished burst back to the system. The server's allocators
// keep what they freed (Go's heap returns it only after minutes, glibc's arenas keep it until
// trimmed), so a server's resident memory would stay at the peak of its busiest burst. Every
// interval, once requests have come and gone and the last interval saw none, it frees once:
// Go's heap (debug.FreeOSMemory) and glibc's free memory (malloc_trim).
type idleTrim struct {
	requests atomic.Int64 // requests started
	inflight atomic.Int64 // requests not finished
	seen     int64        // requests at the last check
	pending  bool         // requests came since the last trim
}

// begin and end bracket a request.
func (t *idleTrim) begin() { t.requests.Add(1); t.inflight.Add(1) }
func (t *idleTrim) end()   { t.inflight.Add(-1) }

// due says, at one check, whether to trim now: there was work since the last trim, and none
// arrived since the previous check nor is in flight.
func (t *idleTrim) due() bool {
	n := t.requests.Load()
	quiet := n == t.seen && t.inflight.Load() == 0
	if n != t.seen {
		t.pending = true
	}
	t.seen = n
	if quiet && t.pending {
		t.pending = false
		return true
	}
	return false
}

// run checks every interval until ctx is done and calls trim when due.
func (t *idleTrim) run(ctx context.Context, interval time.Duration, trim func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if t.due() {
				trim()
			}
		}
	}
}

// releaseMemory returns freed memory of the Go heap and of the C allocator to the system.
func releaseMemory() {
	debug.FreeOSMemory()
	mallocTrim()
}
