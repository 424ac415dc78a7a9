package serve

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
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

// flattenNumbers walks valid JSON (as encoding/json has already checked it) and takes
// numbers only, in order, in arrays nested at most 8 deep, never more than the limit.
func TestFlattenNumbers(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  []float32
		err   string
	}{
		{`[[1, 2], [3.5e0, -4]]`, 4, []float32{1, 2, 3.5, -4}, ""},
		{` 7 `, 1, []float32{7}, ""},
		{`[[], [1]]`, 1, []float32{1}, ""},
		{`[1, 2, 3]`, 2, nil, "more than the 2 values"},
		{`[1, "2"]`, 2, nil, "expected a number"},
		{`[true]`, 1, nil, "expected a number"},
		{`[null]`, 1, nil, "expected a number"},
		{`[{"a": 1}]`, 1, nil, `found "{"`},
		{`[1e39]`, 1, nil, "not a finite float32"},
		{`[[[[[[[[[1]]]]]]]]]`, 1, nil, "deeper than 8"},
		{`[[[[[[[[1]]]]]]]]`, 1, []float32{1}, ""},
		{``, 1, nil, `missing "data"`},
		{`[1`, 1, nil, "expected ',' or ']'"},
	} {
		got, err := flattenNumbers(json.RawMessage(tc.in), tc.limit)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v %v, want an error mentioning %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}
