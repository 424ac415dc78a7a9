package torchnet

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// The allocator settings are applied at start-up on glibc unless the environment configures
// malloc itself (then they must not be).
func TestAllocatorTuned(t *testing.T) {
	own := false
	for _, v := range os.Environ() {
		own = own || strings.HasPrefix(v, "MALLOC_") || strings.HasPrefix(v, "GLIBC_TUNABLES=")
	}
	want := runtime.GOOS == "linux" && !own
	if got := AllocatorTuned(); got != want {
		t.Fatalf("AllocatorTuned() = %v, expected %v (linux %v, MALLOC_*/GLIBC_TUNABLES set %v)", got, want, runtime.GOOS == "linux", own)
	}
}
