package attack

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/ssl-onnx/ssl-onnx/train"
)

// AnswerCache is the on-disk record of every answer the victim gave: one record per query
// (image index, view, vector), appended and fsynced per chunk as answers arrive. Its length is
// the number of queries paid for. A resumed attack reads it back and never pays twice.
type AnswerCache struct {
	path    string
	f       *os.File
	dim     int
	answers map[key][]float32
	order   []key
	crc     bool  // records carry checksums (every file but an old SSLQANS1 one)
	dropped int64 // bytes of a bad tail cut off at open
}

type key struct{ index, view int }

// cacheMagic starts every answer cache file written now; the dimension follows as a uint32,
// then the CRC-32 of magic and dimension. Each record is the image index and view (uint32
// each), the vector (float32s) and the CRC-32 of those bytes, so that a torn or damaged
// record is recognised instead of being trained on. cacheMagicV1 files (no checksums) are
// still read and appended to.
const (
	cacheMagic   = "SSLQANS2"
	cacheMagicV1 = "SSLQANS1"
	// MaxAnswerDim bounds the dimension a cache header may declare (records are allocated
	// from it): far above any encoder's output.
	MaxAnswerDim = 1 << 16
)

// OpenCache opens (or creates) the cache at path for answers of dimension dim (0 = take it
// from the file, or from the first answer). A trailing partial record, left by a crash in the
// middle of a write, is cut off: that query's answer was never acknowledged to the attack.
func OpenCache(path string, dim int) (*AnswerCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("answer cache: %w", err)
	}
	c := &AnswerCache{path: path, f: f, dim: dim, answers: map[key][]float32{}, crc: true}
	if err := c.load(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// Dropped is the number of bytes of a damaged or torn tail cut off when the cache was opened
// (those answers are asked again).
func (c *AnswerCache) Dropped() int64 { return c.dropped }

func (c *AnswerCache) recordLen() int {
	n := 8 + 4*c.dim
	if c.crc {
		n += 4
	}
	return n
}

func (c *AnswerCache) load() error {
	st, err := c.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil // header written with the first answers, once the dimension is known
	}
	r := bufio.NewReader(c.f)
	good, err := c.readHeader(r)
	if err != nil {
		return err
	}
	rec := make([]byte, c.recordLen())
	for {
		_, err := io.ReadFull(r, rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("answer cache %s: %w", c.path, err)
		}
		body := rec[:8+4*c.dim]
		if c.crc && crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(rec[len(body):]) {
			break // a damaged record: it and everything after it are asked again
		}
		k := key{int(binary.LittleEndian.Uint32(rec[0:])), int(binary.LittleEndian.Uint32(rec[4:]))}
		v := make([]float32, c.dim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(rec[8+4*i:]))
		}
		if _, dup := c.answers[k]; !dup {
			c.order = append(c.order, k)
		}
		c.answers[k] = v
		good += int64(len(rec))
	}
	if good != st.Size() {
		c.dropped = st.Size() - good
		if err := c.f.Truncate(good); err != nil {
			return fmt.Errorf("answer cache %s: cutting a partial record: %w", c.path, err)
		}
	}
	_, err = c.f.Seek(good, io.SeekStart)
	return err
}

// readHeader reads and checks the header, sets the dimension and format, and returns its size.
func (c *AnswerCache) readHeader(r io.Reader) (int64, error) {
	hdr := make([]byte, len(cacheMagic)+4)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("answer cache %s: not an answer cache (bad header: cut short)", c.path)
	}
	n := int64(len(hdr))
	switch string(hdr[:len(cacheMagic)]) {
	case cacheMagic:
		sum := make([]byte, 4)
		if _, err := io.ReadFull(r, sum); err != nil || crc32.ChecksumIEEE(hdr) != binary.LittleEndian.Uint32(sum) {
			return 0, fmt.Errorf("answer cache %s: damaged header (checksum mismatch): move the file away to query again", c.path)
		}
		n += 4
	case cacheMagicV1:
		c.crc = false
	default:
		return 0, fmt.Errorf("answer cache %s: not an answer cache (bad header)", c.path)
	}
	dim := int(binary.LittleEndian.Uint32(hdr[len(cacheMagic):]))
	if dim < 1 || dim > MaxAnswerDim {
		return 0, fmt.Errorf("answer cache %s: header declares dimension %d, expected 1..%d", c.path, dim, MaxAnswerDim)
	}
	if c.dim != 0 && dim != c.dim {
		return 0, fmt.Errorf("answer cache %s: answers have dimension %d, expected %d", c.path, dim, c.dim)
	}
	c.dim = dim
	return n, nil
}

// Len is the number of answers stored: the queries paid for so far.
func (c *AnswerCache) Len() int { return len(c.order) }

// Dim is the answers' dimension (0 before the first answer).
func (c *AnswerCache) Dim() int { return c.dim }

// Get returns the answer for image index, view.
func (c *AnswerCache) Get(index, view int) ([]float32, bool) {
	v, ok := c.answers[key{index, view}]
	return v, ok
}

// Append stores answers (row i for image indices[i], views[i]) and fsyncs them.
func (c *AnswerCache) Append(indices, views []int, dim int, vals []float32) error {
	if c.dim == 0 {
		if dim < 1 || dim > MaxAnswerDim {
			return fmt.Errorf("answer cache %s: answers of dimension %d, expected 1..%d", c.path, dim, MaxAnswerDim)
		}
		c.dim = dim
		hdr := make([]byte, len(cacheMagic)+4)
		copy(hdr, cacheMagic)
		binary.LittleEndian.PutUint32(hdr[len(cacheMagic):], uint32(dim))
		hdr = binary.LittleEndian.AppendUint32(hdr, crc32.ChecksumIEEE(hdr))
		if _, err := c.f.Write(hdr); err != nil {
			return fmt.Errorf("answer cache %s: %w", c.path, err)
		}
		// The new file's name must survive a crash too.
		if err := train.SyncDir(filepath.Dir(c.path)); err != nil {
			return fmt.Errorf("answer cache %s: %w", c.path, err)
		}
	}
	if dim != c.dim {
		return fmt.Errorf("answer cache %s: victim answered with dimension %d, earlier answers have %d", c.path, dim, c.dim)
	}
	if len(vals) != len(indices)*dim || len(views) != len(indices) {
		return fmt.Errorf("answer cache: %d values for %d answers of dimension %d", len(vals), len(indices), dim)
	}
	buf := make([]byte, 0, len(indices)*c.recordLen())
	for i := range indices {
		start := len(buf)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(indices[i]))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(views[i]))
		for _, x := range vals[i*dim : (i+1)*dim] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if c.crc {
			buf = binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf[start:]))
		}
	}
	if _, err := c.f.Write(buf); err != nil {
		return fmt.Errorf("answer cache %s: %w", c.path, err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("answer cache %s: %w", c.path, err)
	}
	for i := range indices {
		k := key{indices[i], views[i]}
		if _, dup := c.answers[k]; !dup {
			c.order = append(c.order, k)
		}
		c.answers[k] = append([]float32(nil), vals[i*dim:(i+1)*dim]...)
	}
	return nil
}

// Close closes the file.
func (c *AnswerCache) Close() error { return c.f.Close() }
