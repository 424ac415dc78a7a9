package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// MATLAB v5 data types and array classes used by the reader.
const (
	miINT8       = 1
	miUINT8      = 2
	miINT16      = 3
	miUINT16     = 4
	miINT32      = 5
	miUINT32     = 6
	miSINGLE     = 7
	miDOUBLE     = 9
	miINT64      = 12
	miUINT64     = 13
	miMATRIX     = 14
	miCOMPRESSED = 15
	miUTF8       = 16

	mxDOUBLE = 6
	mxUINT64 = 15

	matHeaderLen = 128
	matComplex   = 0x0800
)

// matElemSize is the byte size of one value of a numeric MAT data type.
func matElemSize(t uint32) int {
	switch t {
	case miINT8, miUINT8:
		return 1
	case miINT16, miUINT16:
		return 2
	case miINT32, miUINT32, miSINGLE:
		return 4
	case miDOUBLE, miINT64, miUINT64:
		return 8
	}
	return 0
}

// matArray is a numeric variable of a MAT file. Its values are the size
// bytes at off in r, of data type dtype, in byte order order.
type matArray struct {
	name  string
	class int
	dims  []int
	dtype uint32
	order binary.ByteOrder
	r     *region
	off   int
	size  int
}

// count is the number of values.
func (a *matArray) count() int { return a.size / matElemSize(a.dtype) }

// value returns value k as float64.
func (a *matArray) value(k int) float64 {
	es := matElemSize(a.dtype)
	b := a.r.b[a.off+k*es : a.off+(k+1)*es]
	o := a.order
	var v float64
	switch a.dtype {
	case miINT8:
		v = float64(int8(b[0]))
	case miUINT8:
		v = float64(b[0])
	case miINT16:
		v = float64(int16(o.Uint16(b)))
	case miUINT16:
		v = float64(o.Uint16(b))
	case miINT32:
		v = float64(int32(o.Uint32(b)))
	case miUINT32:
		v = float64(o.Uint32(b))
	case miSINGLE:
		v = float64(math.Float32frombits(o.Uint32(b)))
	case miDOUBLE:
		v = math.Float64frombits(o.Uint64(b))
	case miINT64:
		v = float64(int64(o.Uint64(b)))
	case miUINT64:
		v = float64(o.Uint64(b))
	}
	return v
}

// matTag is a parsed data element tag.
type matTag struct {
	typ  uint32
	n    int // data bytes
	data int // offset of the data
	next int // offset of the element after this one (8-byte aligned)
}

// readTag parses the element tag at pos of b, handling the small data
// element format. what names the element in errors.
func readTag(b []byte, pos int, o binary.ByteOrder, file, what string) (matTag, error) {
	if pos < 0 || len(b)-pos < 8 {
		return matTag{}, fmt.Errorf("%s: truncated %s: tag needs 8 bytes at offset %d, %d left", file, what, pos, max(0, len(b)-pos))
	}
	v := o.Uint32(b[pos:])
	if v>>16 != 0 {
		t := matTag{typ: v & 0xffff, n: int(v >> 16), data: pos + 4, next: pos + 8}
		if t.n > 4 {
			return matTag{}, fmt.Errorf("%s: %s at offset %d: small data element of %d bytes, expected at most 4", file, what, pos, t.n)
		}
		return t, nil
	}
	n := int(o.Uint32(b[pos+4:]))
	t := matTag{typ: v, n: n, data: pos + 8}
	if n > len(b)-t.data {
		return matTag{}, fmt.Errorf("%s: truncated %s at offset %d: declares %d bytes, %d left", file, what, pos, n, len(b)-t.data)
	}
	t.next = t.data + (n+7)&^7
	if t.next > len(b) {
		t.next = len(b) // padding of the last element may be missing
	}
	return t, nil
}

// errMatShort reports that a partial miMATRIX buffer ended early.
var errMatShort = errors.New("matrix header incomplete")

// parseMatrix parses miMATRIX content b (without its tag). With headerOnly it
// stops after the name and returns errMatShort when b ends before that.
// Non-numeric arrays are returned with class set and no data.
func parseMatrix(r *region, base int, b []byte, o binary.ByteOrder, headerOnly bool) (*matArray, error) {
	file := r.name
	short := func(err error) error {
		if headerOnly {
			return errMatShort
		}
		return err
	}
	t, err := readTag(b, 0, o, file, "array flags")
	if err != nil {
		return nil, short(err)
	}
	if t.typ != miUINT32 || t.n != 8 {
		return nil, fmt.Errorf("%s: array flags element has type %d and %d bytes, expected type %d (miUINT32) and 8 bytes", file, t.typ, t.n, miUINT32)
	}
	flags := o.Uint32(b[t.data:])
	a := &matArray{class: int(flags & 0xff), order: o, r: r}
	t, err = readTag(b, t.next, o, file, "dimensions")
	if err != nil {
		return nil, short(err)
	}
	if t.typ != miINT32 || t.n%4 != 0 || t.n < 8 {
		return nil, fmt.Errorf("%s: dimensions element has type %d and %d bytes, expected type %d (miINT32) with at least 2 dimensions", file, t.typ, t.n, miINT32)
	}
	total := 1
	for k := 0; k < t.n/4; k++ {
		d := int(int32(o.Uint32(b[t.data+4*k:])))
		if d < 0 {
			return nil, fmt.Errorf("%s: negative dimension %d", file, d)
		}
		a.dims = append(a.dims, d)
		if d != 0 && total > (1<<40)/d {
			return nil, fmt.Errorf("%s: array dimensions %v are implausibly large", file, a.dims)
		}
		total *= d
	}
	t, err = readTag(b, t.next, o, file, "array name")
	if err != nil {
		return nil, short(err)
	}
	if t.typ != miINT8 && t.typ != miUTF8 {
		return nil, fmt.Errorf("%s: array name element has type %d, expected %d (miINT8)", file, t.typ, miINT8)
	}
	a.name = string(b[t.data : t.data+t.n])
	if headerOnly || a.class < mxDOUBLE || a.class > mxUINT64 {
		return a, nil
	}
	if flags&matComplex != 0 {
		return nil, fmt.Errorf("%s: variable %q is complex, expected real values", file, a.name)
	}
	t, err = readTag(b, t.next, o, file, "data of variable "+a.name)
	if err != nil {
		return nil, err
	}
	es := matElemSize(t.typ)
	if es == 0 {
		return nil, fmt.Errorf("%s: variable %q has data type %d, expected a numeric type", file, a.name, t.typ)
	}
	if t.n != total*es {
		return nil, fmt.Errorf("%s: variable %q has %d data bytes, expected %d (%v values of %d bytes)", file, a.name, t.n, total*es, a.dims, es)
	}
	a.dtype, a.off, a.size = t.typ, base+t.data, t.n
	return a, nil
}

// readMAT parses a MATLAB v5 file held in r and returns the numeric
// variables whose names are in want. Compressed variables with other names
// are skipped without being fully decompressed.
func readMAT(r *region, want ...string) (map[string]*matArray, error) {
	b := r.b
	if len(b) < matHeaderLen {
		return nil, fmt.Errorf("%s: truncated MAT header: %d bytes, expected %d", r.name, len(b), matHeaderLen)
	}
	var o binary.ByteOrder
	switch string(b[126:128]) {
	case "IM":
		o = binary.LittleEndian
	case "MI":
		o = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: MAT endian indicator %q, expected \"IM\" or \"MI\" (not a MATLAB v5 file)", r.name, b[126:128])
	}
	if v := o.Uint16(b[124:]); v != 0x0100 {
		hint := ""
		if v == 0x0200 {
			hint = " (a v7.3 HDF5 file; save it with -v7 instead)"
		}
		return nil, fmt.Errorf("%s: MAT version 0x%04x, expected 0x0100%s", r.name, v, hint)
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	out := map[string]*matArray{}
	for pos := matHeaderLen; pos < len(b); {
		if len(b)-pos < 8 && allZero(b[pos:]) {
			break // alignment padding at the end
		}
		t, err := readTag(b, pos, o, r.name, "variable")
		if err != nil {
			return nil, err
		}
		next := t.data + t.n // top-level elements are not padded
		if t.data == pos+4 {
			next = t.next // small data element
		}
		var a *matArray
		switch t.typ {
		case miMATRIX:
			if t.n == 0 {
				break // empty array
			}
			a, err = parseMatrix(r, t.data, b[t.data:t.data+t.n], o, false)
		case miCOMPRESSED:
			a, err = inflateMatrix(r.name, b[t.data:t.data+t.n], o, wanted)
		default:
			err = fmt.Errorf("%s: element at offset %d has type %d, expected %d (miMATRIX) or %d (miCOMPRESSED)", r.name, pos, t.typ, miMATRIX, miCOMPRESSED)
		}
		if err != nil {
			return nil, err
		}
		if a != nil && wanted[a.name] {
			if _, dup := out[a.name]; dup {
				return nil, fmt.Errorf("%s: variable %q appears twice", r.name, a.name)
			}
			if a.class < mxDOUBLE || a.class > mxUINT64 {
				return nil, fmt.Errorf("%s: variable %q has array class %d, expected a numeric class (%d..%d)", r.name, a.name, a.class, mxDOUBLE, mxUINT64)
			}
			out[a.name] = a
		}
		pos = next
	}
	return out, nil
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// inflateMatrix decompresses a miCOMPRESSED element holding one miMATRIX.
// When the variable's name is not wanted only its header is decompressed.
func inflateMatrix(file string, comp []byte, o binary.ByteOrder, wanted map[string]bool) (*matArray, error) {
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, fmt.Errorf("%s: bad miCOMPRESSED element: %w", file, err)
	}
	var tag [8]byte
	if _, err := io.ReadFull(zr, tag[:]); err != nil {
		return nil, fmt.Errorf("%s: miCOMPRESSED element: cannot read inner tag: %w", file, err)
	}
	typ, n := o.Uint32(tag[:]), int(o.Uint32(tag[4:]))
	if typ>>16 != 0 || typ != miMATRIX {
		return nil, fmt.Errorf("%s: miCOMPRESSED element holds type %d, expected %d (miMATRIX)", file, typ&0xffff, miMATRIX)
	}
	if limit := len(comp)*maxGzipRatio + 1024; n > limit {
		return nil, fmt.Errorf("%s: miCOMPRESSED element declares %d bytes, more than %d compressed bytes can hold", file, n, len(comp))
	}
	// Decompress a header-sized prefix first to learn the name.
	head := make([]byte, min(n, 512))
	if _, err := io.ReadFull(zr, head); err != nil {
		return nil, fmt.Errorf("%s: miCOMPRESSED element truncated or corrupt: %w", file, err)
	}
	r := memRegion(file, head)
	a, err := parseMatrix(r, 0, head, o, true)
	if err != nil && !errors.Is(err, errMatShort) {
		return nil, err
	}
	if err == nil && !wanted[a.name] {
		return a, nil
	}
	full := make([]byte, n)
	copy(full, head)
	if _, err := io.ReadFull(zr, full[len(head):]); err != nil {
		return nil, fmt.Errorf("%s: miCOMPRESSED element truncated or corrupt: %d bytes declared: %w", file, n, err)
	}
	var one [1]byte
	switch _, err := io.ReadFull(zr, one[:]); err {
	case io.EOF: // the stream ends where the tag says, checksum verified
	case nil:
		return nil, fmt.Errorf("%s: miCOMPRESSED element holds more than the %d bytes its tag declares", file, n)
	default:
		return nil, fmt.Errorf("%s: miCOMPRESSED element corrupt: %w", file, err)
	}
	r = memRegion(file, full)
	return parseMatrix(r, 0, full, o, false)
}
