//go:build !linux

package torchnet

// AllocatorTuned reports false: the allocator settings are glibc's (see malloc_linux.go).
func AllocatorTuned() bool { return false }
