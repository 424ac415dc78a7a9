package torchnet

import (
	"runtime"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// tracked reports whether an op on a leaf that requires grad records a graph on this thread.
// The scalar is kept alive past the call: gotch frees a Scalar's C object in a finalizer, which
// may otherwise run while libtorch still reads it (a temporary is unreachable once its pointer
// is loaded); CI once caught that as a corrupted scalar with 16 threads allocating at once.
func tracked(x *ts.Tensor) bool {
	two := ts.FloatScalar(2)
	y := x.MustMulScalar(two, false)
	runtime.KeepAlive(two)
	defer y.MustDrop()
	return y.MustRequiresGrad()
}

// TestNoGradRestoresModeOnItsThread: NoGrad turns autograd off for its closure only, nests, and
// leaves every OS thread as it found it, even with many goroutines switching at once.
func TestNoGradRestoresModeOnItsThread(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			x := ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
			defer x.MustDrop()
			for i := 0; i < 50; i++ {
				if !tracked(x) {
					errs <- "grad mode off before NoGrad"
					return
				}
				NoGrad(func() {
					NoGrad(func() {})
					if tracked(x) {
						errs <- "grad mode on inside NoGrad after a nested NoGrad"
					}
				})
				if !tracked(x) {
					errs <- "grad mode left off after NoGrad"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
