package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
)

// region is a byte range of a dataset file: either a read-only memory mapping
// of the file or bytes decompressed into memory. Accessors keep the region
// alive while they read so a mapping is never unmapped under a reader; a
// mapping is released by a cleanup once the region is unreachable.
type region struct {
	b    []byte
	name string // file path, for error messages
}

// memRegion wraps in-memory bytes.
func memRegion(name string, b []byte) *region { return &region{b: b, name: name} }

// size is the number of bytes in the region.
func (r *region) size() int { return len(r.b) }

// copyAt copies len(dst) bytes starting at off into dst.
func (r *region) copyAt(dst []byte, off int) {
	copy(dst, r.b[off:off+len(dst)])
	runtime.KeepAlive(r)
}

// byteAt returns the byte at off.
func (r *region) byteAt(off int) byte {
	v := r.b[off]
	runtime.KeepAlive(r)
	return v
}

// transposeAt reads c planes of h*w bytes starting at off, each stored
// column-major (w columns of h bytes), into dst as row-major CHW.
func (r *region) transposeAt(dst []byte, off, c, h, w int) {
	src := r.b[off : off+c*h*w]
	for ch := 0; ch < c; ch++ {
		s := src[ch*h*w : (ch+1)*h*w]
		d := dst[ch*h*w : (ch+1)*h*w]
		for x := 0; x < w; x++ {
			col := s[x*h : (x+1)*h]
			for y, v := range col {
				d[y*w+x] = v
			}
		}
	}
	runtime.KeepAlive(r)
}

// openRegion maps the file at path read-only.
func openRegion(path string) (*region, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, expected a file", path)
	}
	if st.Size() == 0 {
		return memRegion(path, nil), nil
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, st.Size())
	}
	b, err := mapFile(f, int(st.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &region{b: b, name: path}
	runtime.AddCleanup(r, unmapFile, b)
	return r, nil
}

// maxGzipRatio bounds the expansion of deflate data (the format cannot exceed
// about 1032:1); it protects against gzip headers claiming huge sizes.
const maxGzipRatio = 1032

// gunzip decompresses a whole gzip file held in comp. name is used in errors.
func gunzip(name string, comp []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid gzip file: %w", name, err)
	}
	limit := int64(len(comp))*maxGzipRatio + 1024
	var buf bytes.Buffer
	if len(comp) >= 4 {
		// The trailer holds the uncompressed size modulo 2^32: a size hint only.
		hint := int64(binary.LittleEndian.Uint32(comp[len(comp)-4:]))
		if hint <= limit {
			buf.Grow(int(hint))
		}
	}
	n, err := io.Copy(&buf, io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: corrupt or truncated gzip data after %d decompressed bytes: %w", name, n, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: gzip data expands beyond %d bytes, more than deflate allows for %d compressed bytes", name, limit, len(comp))
	}
	return buf.Bytes(), nil
}

// loadRegion opens path, decompressing it into memory when it ends in .gz
// and mapping it otherwise.
func loadRegion(path string) (*region, error) {
	r, err := openRegion(path)
	if err != nil {
		return nil, err
	}
	if len(path) < 3 || path[len(path)-3:] != ".gz" {
		return r, nil
	}
	b, err := gunzip(path, r.b)
	runtime.KeepAlive(r)
	if err != nil {
		return nil, err
	}
	return memRegion(path, b), nil
}
