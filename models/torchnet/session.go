package torchnet

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/libtch"
)

// Options configure a Session: where it computes and how.
type Options struct {
	Device  string // "cpu" (default), "cuda" or "cuda:N"
	Threads int    // libtorch's intra-op threads (0 = one per core)
	Seed    int64  // libtorch's random seed (dropout-free models draw nothing from it)
}

// Session is one libtorch context. Every gotch call of the toolkit runs inside a Session, on
// the one OS thread that the session's goroutine holds for its whole life: libtorch keeps grad
// mode per thread and the SSE denormal flags are per thread too, so no call can land on a
// thread where they differ. The session sets them up once (denormals flushed, the thread
// count, the seed), turns a panic of any call into an error, and owns the tensors of the
// nets, heads and trainers made from it; Close frees what is still open.
//
// A Session is safe for use by several goroutines: their calls run one at a time.
type Session struct {
	dev   gotch.Device
	calls chan call
	life  sync.RWMutex // read-held by every call, write-held by Close to end the session
	done  bool         // guarded by life
	mu    sync.Mutex   // guards open
	open  []closer
}

type call struct {
	fn   func() error
	done chan error
}

type closer interface{ free() }

// errClosed is returned by calls on a closed session.
var errClosed = errors.New("torchnet: session is closed")

// Open starts a session. A device that does not exist here is an error naming what is missing.
func Open(o Options) (*Session, error) {
	dev, err := ParseDevice(o.Device)
	if err != nil {
		return nil, err
	}
	if o.Threads < 0 {
		return nil, fmt.Errorf("threads %d: expected at least 1 (0 = one per core)", o.Threads)
	}
	if o.Threads == 0 {
		o.Threads = runtime.NumCPU()
	}
	s := &Session{dev: dev, calls: make(chan call)}
	ready := make(chan struct{})
	go s.loop(o, ready)
	<-ready
	return s, nil
}

// loop is the session's goroutine: it locks its OS thread for good (the thread ends with it,
// taking its per-thread libtorch state along) and runs the calls in order.
func (s *Session) loop(o Options, ready chan<- struct{}) {
	runtime.LockOSThread()
	FlushDenormals()
	libtch.AtSetNumThreads(o.Threads)
	libtch.AtManualSeed(o.Seed)
	close(ready)
	for c := range s.calls {
		c.done <- protect(c.fn)
	}
}

// protect runs fn and turns a panic (gotch's way of reporting a libtorch error) into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("libtorch: %w", e)
			} else {
				err = fmt.Errorf("libtorch: %v", r)
			}
		}
	}()
	return fn()
}

// do runs fn on the session's thread and returns its error.
func (s *Session) do(fn func() error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.done {
		return errClosed
	}
	c := call{fn: fn, done: make(chan error, 1)}
	s.calls <- c
	return <-c.done
}

// track registers an object to be freed by Close.
func (s *Session) track(c closer) {
	s.mu.Lock()
	s.open = append(s.open, c)
	s.mu.Unlock()
}

// untrack forgets an object its owner freed itself.
func (s *Session) untrack(c closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.open {
		if o == c {
			s.open = append(s.open[:i], s.open[i+1:]...)
			return
		}
	}
}

// release frees an object on the session's thread and forgets it.
func (s *Session) release(c closer) {
	_ = s.do(func() error { c.free(); return nil })
	s.untrack(c)
}

// Close frees every net, head and trainer still open and ends the session's thread.
// Closing twice is harmless.
func (s *Session) Close() {
	s.mu.Lock()
	open := s.open
	s.open = nil
	s.mu.Unlock()
	_ = s.do(func() error {
		for i := len(open) - 1; i >= 0; i-- {
			open[i].free()
		}
		return nil
	})
	s.life.Lock() // waits for calls in progress; later calls see done
	defer s.life.Unlock()
	if !s.done {
		s.done = true
		close(s.calls)
	}
}

// ParseDevice reads "cpu", "cuda" (GPU 0) or "cuda:N", and fails clearly where libtorch sees
// no such GPU.
func ParseDevice(name string) (gotch.Device, error) {
	switch {
	case name == "" || name == "cpu":
		return gotch.CPU, nil
	case name == "cuda" || strings.HasPrefix(name, "cuda:"):
		idx := 0
		if name != "cuda" {
			n, err := strconv.Atoi(strings.TrimPrefix(name, "cuda:"))
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: expected cpu, cuda or cuda:N with N a GPU index", name)
			}
			idx = n
		}
		if !libtch.AtcCudaIsAvailable() {
			return gotch.CPU, fmt.Errorf("device %s: libtorch reports no usable CUDA device (no GPU here, or a CPU-only libtorch); on a GPU machine run LIBTORCH=/path/to/libtorch-cuda make setup", name)
		}
		if n := int(libtch.AtcCudaDeviceCount()); idx >= n {
			return gotch.CPU, fmt.Errorf("device %s: libtorch sees %d CUDA device(s)", name, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: expected cpu, cuda or cuda:N", name)
}

// CheckDevice says whether name is a device this machine has (see ParseDevice).
func CheckDevice(name string) error { _, err := ParseDevice(name); return err }
