// Package npy writes and reads float32 arrays in NumPy's .npy format
// (version 1.0, little-endian '<f4', C order), the format np.load reads.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// magic opens every .npy file; it is followed by the major and minor version.
const magic = "\x93NUMPY"

// WriteFloat32 writes data, of the given shape, to path as a .npy v1.0 file.
// The write is atomic: the bytes go to a temporary file in the same
// directory, which is synced and renamed over path; on error path is left
// untouched. len(data) must equal the product of shape (1 for a scalar
// shape of length 0), and no dimension may be negative.
func WriteFloat32(path string, shape []int, data []float32) (err error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: %s: shape %v has negative dimension %d at index %d", path, shape, d, i)
		}
		if d > 0 && n > math.MaxInt/d {
			return fmt.Errorf("npy: %s: shape %v overflows", path, shape)
		}
		n *= d
	}
	if len(data) != n {
		return fmt.Errorf("npy: %s: shape %v needs %d values, found %d", path, shape, n, len(data))
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := &errWriter{w: f}
	w.write(header(shape))
	buf := make([]byte, 0, 1<<16)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) {
			w.write(buf)
			buf = buf[:0]
		}
	}
	w.write(buf)
	if w.err != nil {
		return fmt.Errorf("npy: write %s: %w", path, w.err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("npy: sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("npy: close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

// header returns magic, version 1.0, header length and the header dict,
// space-padded and newline-terminated so that the data starts on a multiple
// of 64 bytes.
func header(shape []int) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (" + tuple + "), }"
	pre := len(magic) + 2 + 2
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	var b bytes.Buffer
	b.WriteString(magic)
	b.Write([]byte{1, 0})
	binary.Write(&b, binary.LittleEndian, uint16(total-pre))
	b.WriteString(dict)
	b.WriteString(strings.Repeat(" ", total-pre-len(dict)-1))
	b.WriteByte('\n')
	return b.Bytes()
}

// ReadFloat32 reads a .npy file holding a little-endian float32 array in C
// order (versions 1.0, 2.0 and 3.0 of the format).
func ReadFloat32(path string) (shape []int, data []float32, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	shape, data, err = decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return shape, data, nil
}

func decode(b []byte) ([]int, []float32, error) {
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		return nil, nil, errors.New("not a .npy file (missing \\x93NUMPY magic)")
	}
	major := b[len(magic)]
	var hlen, pre int
	switch major {
	case 1:
		pre = len(magic) + 4
		if len(b) < pre {
			return nil, nil, errors.New("truncated header")
		}
		hlen = int(binary.LittleEndian.Uint16(b[len(magic)+2:]))
	case 2, 3:
		pre = len(magic) + 6
		if len(b) < pre {
			return nil, nil, errors.New("truncated header")
		}
		h := binary.LittleEndian.Uint32(b[len(magic)+2:])
		if uint64(h) > uint64(len(b)) {
			return nil, nil, fmt.Errorf("header length %d exceeds file size %d", h, len(b))
		}
		hlen = int(h)
	default:
		return nil, nil, fmt.Errorf("unsupported .npy version %d.%d, expected 1.0, 2.0 or 3.0", major, b[len(magic)+1])
	}
	if len(b) < pre+hlen {
		return nil, nil, fmt.Errorf("header length %d exceeds file size %d", hlen, len(b))
	}
	dict := strings.TrimSpace(string(b[pre : pre+hlen]))
	descr, err := dictValue(dict, "descr")
	if err != nil {
		return nil, nil, err
	}
	if descr != "'<f4'" {
		return nil, nil, fmt.Errorf("descr is %s, expected '<f4' (little-endian float32)", descr)
	}
	fortran, err := dictValue(dict, "fortran_order")
	if err != nil {
		return nil, nil, err
	}
	if fortran != "False" {
		return nil, nil, fmt.Errorf("fortran_order is %s, expected False (C order)", fortran)
	}
	st, err := dictValue(dict, "shape")
	if err != nil {
		return nil, nil, err
	}
	shape, err := parseShape(st)
	if err != nil {
		return nil, nil, err
	}
	n := 1
	for _, d := range shape {
		if d > 0 && n > math.MaxInt/d {
			return nil, nil, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	body := b[pre+hlen:]
	if len(body) != 4*n {
		return nil, nil, fmt.Errorf("shape %v needs %d bytes of data, found %d", shape, 4*n, len(body))
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return shape, data, nil
}

// dictValue extracts the text of key's value from a header dict such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func dictValue(dict, key string) (string, error) {
	k := "'" + key + "':"
	i := strings.Index(dict, k)
	if i < 0 {
		return "", fmt.Errorf("header %s has no %q key", dict, key)
	}
	rest := strings.TrimSpace(dict[i+len(k):])
	end := -1
	if strings.HasPrefix(rest, "(") {
		if j := strings.Index(rest, ")"); j >= 0 {
			end = j + 1
		}
	} else if j := strings.IndexAny(rest, ",}"); j >= 0 {
		end = j
	}
	if end < 0 {
		return "", fmt.Errorf("header %s: cannot read the value of %q", dict, key)
	}
	return strings.TrimSpace(rest[:end]), nil
}

// parseShape parses a Python tuple of non-negative ints: (), (3,), (2, 3).
func parseShape(s string) ([]int, error) {
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "("), ")"))
	shape := []int{}
	if inner == "" {
		return shape, nil
	}
	for _, part := range strings.Split(strings.TrimSuffix(inner, ","), ",") {
		d, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("shape %s: %q is not a non-negative integer", s, strings.TrimSpace(part))
		}
		shape = append(shape, d)
	}
	return shape, nil
}
