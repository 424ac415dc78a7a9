//go:build linux && cgo

package serve

// #include <malloc.h>
import "C"

// mallocTrim gives glibc's free memory (in every arena) back to the system.
func mallocTrim() { C.malloc_trim(0) }
