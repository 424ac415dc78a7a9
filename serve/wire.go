package serve

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Raw request and reply bodies are little-endian float32. On a little-endian host that is
// the in-memory layout of a []float32, so a body and its values can share memory: the
// conversions below return a view instead of a copy there (a batch of 64 32x32 images is
// 786 KB; a value-by-value loop cost about 1.7 ms of a ~25 ms request, an allocation and
// copy about 0.3 ms, a view nothing). On a big-endian host, or for a misaligned buffer,
// they convert into a new slice.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// floatsAsBytes returns v as little-endian float32 bytes: v's own memory on a
// little-endian host (the caller must not change v while the bytes are in use).
func floatsAsBytes(v []float32) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	if hostLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// bytesAsFloats returns little-endian float32 bytes b (len a multiple of 4) as values:
// b's own memory where the host and b's alignment allow (b then belongs to the result).
func bytesAsFloats(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return []float32{}
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if hostLittleEndian && uintptr(p)%unsafe.Alignof(float32(0)) == 0 {
		return unsafe.Slice((*float32)(p), n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// allFinite reports whether no value is NaN or infinite (exponent bits all ones).
func allFinite(v []float32) bool {
	for _, f := range v {
		if math.Float32bits(f)&0x7f800000 == 0x7f800000 {
			return false
		}
	}
	return true
}
