//go:build linux

package torchnet

// #include <limits.h>
// #include <malloc.h>
// #include <stdlib.h>
// #include <string.h>
// extern char **environ;
// #include <fcntl.h>
// #include <unistd.h>
// static int ssl_malloc_tuned;
// /* The ssl-onnx commands that never train: they keep glibc's defaults (a long-running
//    server must give memory back after a load burst). */
// static int ssl_never_trains(void) {
//   static const char *cmds[] = {"serve", "keys", "embed", "eval", "export", "import", "data", "classifier", 0};
//   char buf[4096];
//   int fd = open("/proc/self/cmdline", O_RDONLY);
//   if (fd < 0) return 0;
//   ssize_t n = read(fd, buf, sizeof buf - 1);
//   close(fd);
//   if (n <= 0) return 0;
//   buf[n] = 0;
//   size_t first = strlen(buf);
//   if ((ssize_t)first + 1 >= n) return 0;
//   const char *arg = buf + first + 1;
//   for (int i = 0; cmds[i]; i++)
//     if (strcmp(arg, cmds[i]) == 0) return 1;
//   return 0;
// }
// __attribute__((constructor)) static void ssl_tune_malloc(void) {
// #if defined(M_ARENA_MAX) && defined(M_MMAP_MAX) && defined(M_TRIM_THRESHOLD)
//   for (char **e = environ; e && *e; e++)
//     if (strncmp(*e, "MALLOC_", 7) == 0 || strncmp(*e, "GLIBC_TUNABLES=", 15) == 0) return;
//   if (ssl_never_trains()) return;
//   ssl_malloc_tuned = mallopt(M_ARENA_MAX, 1) == 1 && mallopt(M_MMAP_MAX, 0) == 1 &&
//                      mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
// #endif
// }
// static int ssl_malloc_was_tuned(void) { return ssl_malloc_tuned; }
import "C"

// The C allocator is tuned when the program starts, before any thread exists (a constructor:
// glibc fixes its number of heaps when a second thread first allocates), for libtorch on CPU:
// one heap, no separate mapping per large block, freed memory kept for reuse. By default each
// activation or gradient tensor over the mmap threshold (at most 32 MiB) is a fresh mapping
// unmapped when freed, and a thread other than the process's first (the Go training thread)
// allocates from per-thread heaps of at most 64 MiB, mapped and unmapped as they fill and
// empty; either way every training step page-faults its whole working set in again. A SimCLR
// step of 256 pairs at 32x32 made about 10 million page faults and ran 3x slower (README,
// "Measured numbers"). Setting any MALLOC_* variable or GLIBC_TUNABLES leaves glibc's own
// configuration alone, and so do the commands that never train (`ssl-onnx serve`, keys, embed,
// eval, export, import, data, classifier: the first argument names them). The cost is that a
// training process keeps its peak memory until it exits.

// AllocatorTuned reports whether the settings above were applied (glibc, no MALLOC_*
// variables).
func AllocatorTuned() bool { return C.ssl_malloc_was_tuned() == 1 }
