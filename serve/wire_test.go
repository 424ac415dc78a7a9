package serve

import (
	"encoding/binary"
	"math"
	"testing"
)

// The conversions (views of the same memory on little-endian hosts) write and read exactly
// the little-endian float32 wire format, also from a misaligned buffer, and allFinite finds
// every NaN and infinity.
func TestWireFloats(t *testing.T) {
	v := []float32{0, -0.5, 1e-40, 3.25, float32(math.Pi), math.MaxFloat32, -7}
	b := floatsAsBytes(v)
	if len(b) != 4*len(v) {
		t.Fatalf("%d bytes for %d values", len(b), len(v))
	}
	for i, f := range v {
		if got := binary.LittleEndian.Uint32(b[4*i:]); got != math.Float32bits(f) {
			t.Fatalf("value %d: bytes %08x, expected %08x", i, got, math.Float32bits(f))
		}
	}
	// The same bytes at offset 0 and at an odd offset (not float-aligned: converted).
	odd := make([]byte, len(b)+1)
	copy(odd[1:], b)
	for name, src := range map[string][]byte{"aligned": append([]byte(nil), b...), "misaligned": odd[1:]} {
		back := bytesAsFloats(src)
		if len(back) != len(v) {
			t.Fatalf("%s: %d values read back, expected %d", name, len(back), len(v))
		}
		for i := range v {
			if math.Float32bits(back[i]) != math.Float32bits(v[i]) {
				t.Fatalf("%s: value %d read back %v, expected %v", name, i, back[i], v[i])
			}
		}
	}
	if !allFinite(v) {
		t.Fatal("allFinite: finite values reported as non-finite")
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := append([]float32(nil), v...)
		w[3] = bad
		if allFinite(w) {
			t.Fatalf("allFinite missed %v", bad)
		}
	}
}
