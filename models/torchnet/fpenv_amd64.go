package torchnet

// #include <xmmintrin.h>
// static void ssl_flush_denormals(void) { _mm_setcsr(_mm_getcsr() | 0x8040); }
import "C"

// FlushDenormals sets the calling OS thread's SSE control register to flush denormal results
// to zero and treat denormal inputs as zero (FTZ + DAZ), as torch.set_flush_denormal(True)
// does. Threads created afterwards by this thread (libtorch's OpenMP workers) inherit it.
// Denormal arithmetic is ~100x slower on x86; training losses that drive values towards
// zero (softnn's exp(-d/T), Adam's second moments) otherwise slow a step down by orders of
// magnitude. Call it on the locked OS thread that trains, before the first libtorch call.
func FlushDenormals() { C.ssl_flush_denormals() }
