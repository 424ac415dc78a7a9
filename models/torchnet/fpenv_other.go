//go:build !amd64

package torchnet

// FlushDenormals is a no-op on architectures other than amd64.
func FlushDenormals() {}
