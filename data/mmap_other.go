//go:build !unix

package data

import (
	"io"
	"os"
)

// mapFile reads size bytes of f into memory on systems without mmap.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	_, err := io.ReadFull(f, b)
	return b, err
}

// unmapFile is a no-op where mapFile reads into memory.
func unmapFile([]byte) {}
