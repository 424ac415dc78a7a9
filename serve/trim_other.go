//go:build !linux || !cgo

package serve

func mallocTrim() {}
