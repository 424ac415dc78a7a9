package attack

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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
}

type key struct{ index, view int }

// cacheMagic starts every answer cache file; the dimension follows as a uint32.
const cacheMagic = "SSLQANS1"

// OpenCache opens (or creates) the cache at path for answers of dimension dim (0 = take it
// from the file, or from the first answer). A trailing partial record, left by a crash in the
// middle of a write, is cut off: that query's answer was never acknowledged to the attack.
func OpenCache(path string, dim int) (*AnswerCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("answer cache: %w", err)
	}
	c := &AnswerCache{path: path, f: f, dim: dim, answers: map[key][]float32{}}
	if err := c.load(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
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
	hdr := make([]byte, len(cacheMagic)+4)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:len(cacheMagic)]) != cacheMagic {
		return fmt.Errorf("answer cache %s: not an answer cache (bad header)", c.path)
	}
	dim := int(binary.LittleEndian.Uint32(hdr[len(cacheMagic):]))
	if c.dim != 0 && dim != c.dim {
		return fmt.Errorf("answer cache %s: answers have dimension %d, expected %d", c.path, dim, c.dim)
	}
	c.dim = dim
	rec := make([]byte, 8+4*dim)
	good := int64(len(hdr))
	for {
		_, err := io.ReadFull(r, rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("answer cache %s: %w", c.path, err)
		}
		k := key{int(binary.LittleEndian.Uint32(rec[0:])), int(binary.LittleEndian.Uint32(rec[4:]))}
		v := make([]float32, dim)
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
		if err := c.f.Truncate(good); err != nil {
			return fmt.Errorf("answer cache %s: cutting a partial record: %w", c.path, err)
		}
	}
	_, err = c.f.Seek(good, io.SeekStart)
	return err
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
		c.dim = dim
		hdr := make([]byte, len(cacheMagic)+4)
		copy(hdr, cacheMagic)
		binary.LittleEndian.PutUint32(hdr[len(cacheMagic):], uint32(dim))
		if _, err := c.f.Write(hdr); err != nil {
			return fmt.Errorf("answer cache %s: %w", c.path, err)
		}
	}
	if dim != c.dim {
		return fmt.Errorf("answer cache %s: victim answered with dimension %d, earlier answers have %d", c.path, dim, c.dim)
	}
	if len(vals) != len(indices)*dim || len(views) != len(indices) {
		return fmt.Errorf("answer cache: %d values for %d answers of dimension %d", len(vals), len(indices), dim)
	}
	buf := make([]byte, 0, len(indices)*(8+4*dim))
	for i := range indices {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(indices[i]))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(views[i]))
		for _, x := range vals[i*dim : (i+1)*dim] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
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
