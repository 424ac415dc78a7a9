package serve

import (
	"encoding/binary"
	"math"
	"testing"
)

// The fast (memory copy) conversions write and read exactly the little-endian float32 wire
// format, and allFinite finds every NaN and infinity.
func TestWireFloats(t *testing.T) {
	v := []float32{0, -0.5, 1e-40, 3.25, float32(math.Pi), math.MaxFloat32, -7}
	b := make([]byte, 4*len(v))
	putFloats(b, v)
	for i, f := range v {
		if got := binary.LittleEndian.Uint32(b[4*i:]); got != math.Float32bits(f) {
			t.Fatalf("value %d: bytes %08x, expected %08x", i, got, math.Float32bits(f))
		}
	}
	back := make([]float32, len(v))
	getFloats(back, b)
	for i := range v {
		if math.Float32bits(back[i]) != math.Float32bits(v[i]) {
			t.Fatalf("value %d: read back %v, expected %v", i, back[i], v[i])
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
