package attack

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// answersFor makes n distinct answers of dimension dim for the given (index, view) pairs.
func answersFor(idx, views []int, dim int) []float32 {
	v := make([]float32, len(idx)*dim)
	for i := range idx {
		for j := 0; j < dim; j++ {
			v[i*dim+j] = float32(idx[i]*1000+views[i]*100+j) + 0.25
		}
	}
	return v
}

func openCache(t *testing.T, path string, dim int) *AnswerCache {
	t.Helper()
	c, err := OpenCache(path, dim)
	if err != nil {
		t.Fatalf("OpenCache(%s, %d): %v", path, dim, err)
	}
	return c
}

func appendAnswers(t *testing.T, c *AnswerCache, idx, views []int, dim int) {
	t.Helper()
	if err := c.Append(idx, views, dim, answersFor(idx, views, dim)); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// checkAnswers asserts that c holds the answers of answersFor for the pairs, and holds
// total answers in all.
func checkAnswers(t *testing.T, c *AnswerCache, idx, views []int, dim, total int) {
	t.Helper()
	if c.Len() != total {
		t.Fatalf("Len() = %d, want %d", c.Len(), total)
	}
	if c.Dim() != dim {
		t.Fatalf("Dim() = %d, want %d", c.Dim(), dim)
	}
	want := answersFor(idx, views, dim)
	for i := range idx {
		got, ok := c.Get(idx[i], views[i])
		if !ok {
			t.Fatalf("Get(%d, %d): missing", idx[i], views[i])
		}
		if !slices.Equal(got, want[i*dim:(i+1)*dim]) {
			t.Fatalf("Get(%d, %d) = %v, want %v", idx[i], views[i], got, want[i*dim:(i+1)*dim])
		}
	}
}

func TestCacheRoundTripAndReopen(t *testing.T) {
	const dim = 5
	path := filepath.Join(t.TempDir(), CacheName)
	c := openCache(t, path, 0)
	if c.Len() != 0 || c.Dim() != 0 {
		t.Fatalf("new cache: Len %d Dim %d, want 0 0", c.Len(), c.Dim())
	}
	if _, ok := c.Get(0, 0); ok {
		t.Fatal("Get on an empty cache found an answer")
	}
	idx, views := []int{0, 0, 1, 1, 7}, []int{0, 1, 0, 1, 0}
	appendAnswers(t, c, idx[:3], views[:3], dim)
	appendAnswers(t, c, idx[3:], views[3:], dim)
	checkAnswers(t, c, idx, views, dim, 5)
	if _, ok := c.Get(7, 1); ok {
		t.Fatal("Get(7, 1) found an answer never stored")
	}
	// An answer stored again (a re-query) replaces the old one and is not counted twice.
	if err := c.Append([]int{7}, []int{0}, dim, []float32{9, 9, 9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get(7, 0); c.Len() != 5 || !slices.Equal(got, []float32{9, 9, 9, 9, 9}) {
		t.Fatalf("after re-storing (7,0): Len %d, answer %v", c.Len(), got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	r := openCache(t, path, dim)
	defer r.Close()
	if got, _ := r.Get(7, 0); r.Len() != 5 || !slices.Equal(got, []float32{9, 9, 9, 9, 9}) {
		t.Fatalf("reopened: Len %d, answer (7,0) %v; want 5 and the latest answer", r.Len(), got)
	}
	checkAnswers(t, r, idx[:4], views[:4], dim, 5)
	if st, _ := os.Stat(path); st.Size() != int64(len(cacheMagic)+8+6*(8+4*dim+4)) {
		t.Fatalf("file is %d bytes, want header + 6 records", st.Size())
	}
}

// TestCachePartialRecordCut simulates a crash in the middle of a write: bytes of less than a
// record after the last whole one. Reopening drops them, truncates the file, and appending
// continues cleanly after the last whole record.
func TestCachePartialRecordCut(t *testing.T) {
	const dim = 4
	rec := 8 + 4*dim + 4 // index, view, vector, checksum
	for _, garbage := range []int{1, 7, rec - 1, rec, rec + 3} {
		path := filepath.Join(t.TempDir(), CacheName)
		c := openCache(t, path, 0)
		idx, views := []int{3, 4, 5}, []int{0, 0, 0}
		appendAnswers(t, c, idx, views, dim)
		c.Close()
		whole := int64(len(cacheMagic) + 8 + 3*rec)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(strings.Repeat("\xab", garbage))); err != nil {
			t.Fatal(err)
		}
		f.Close()

		r := openCache(t, path, dim)
		checkAnswers(t, r, idx, views, dim, 3)
		if st, _ := os.Stat(path); st.Size() != whole {
			t.Fatalf("garbage %d bytes: file is %d bytes after reopening, want %d (partial record cut)", garbage, st.Size(), whole)
		}
		appendAnswers(t, r, []int{6}, []int{0}, dim)
		r.Close()
		r = openCache(t, path, 0)
		checkAnswers(t, r, []int{3, 4, 5, 6}, []int{0, 0, 0, 0}, dim, 4)
		r.Close()
	}
}

func TestCacheBadFiles(t *testing.T) {
	dir := t.TempDir()

	bad := filepath.Join(dir, "bad.bin")
	if err := os.WriteFile(bad, []byte("NOTACACHE...and more bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCache(bad, 0); err == nil || !strings.Contains(err.Error(), "not an answer cache (bad header)") {
		t.Fatalf("OpenCache(wrong header) = %v, want a bad header error", err)
	}
	short := filepath.Join(dir, "short.bin")
	if err := os.WriteFile(short, []byte(cacheMagic[:5]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCache(short, 0); err == nil || !strings.Contains(err.Error(), "bad header") {
		t.Fatalf("OpenCache(truncated header) = %v, want a bad header error", err)
	}

	path := filepath.Join(dir, CacheName)
	c := openCache(t, path, 0)
	appendAnswers(t, c, []int{0}, []int{0}, 4)
	// A victim answering with another dimension is refused, and nothing is stored.
	if err := c.Append([]int{1}, []int{0}, 6, make([]float32, 6)); err == nil || !strings.Contains(err.Error(), "victim answered with dimension 6, earlier answers have 4") {
		t.Fatalf("Append(dim 6 after dim 4) = %v, want a dimension error", err)
	}
	if err := c.Append([]int{1, 2}, []int{0, 0}, 4, make([]float32, 4)); err == nil || !strings.Contains(err.Error(), "4 values for 2 answers of dimension 4") {
		t.Fatalf("Append(too few values) = %v, want a size error", err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len() = %d after refused appends, want 1", c.Len())
	}
	c.Close()
	if _, err := OpenCache(path, 8); err == nil || !strings.Contains(err.Error(), "answers have dimension 4, expected 8") {
		t.Fatalf("OpenCache(dim 8) on a dim-4 cache = %v, want a dimension mismatch error", err)
	}
	if _, err := OpenCache(filepath.Join(dir, "no", "such", "dir", CacheName), 0); err == nil || !strings.Contains(err.Error(), "answer cache") {
		t.Fatalf("OpenCache(missing dir) = %v, want an error", err)
	}
}

// A record of full length but wrong content (a torn write the disk completed with other
// bytes) fails its checksum: it and everything after it are cut, and reported.
func TestCacheDamagedRecordDropped(t *testing.T) {
	const dim = 3
	path := filepath.Join(t.TempDir(), CacheName)
	c := openCache(t, path, 0)
	appendAnswers(t, c, []int{0, 1, 2}, []int{0, 0, 0}, dim)
	c.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := 8 + 4*dim + 4
	b[len(cacheMagic)+8+rec+9] ^= 0x40 // one bit of record 1's vector
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := openCache(t, path, 0)
	defer r.Close()
	if r.Len() != 1 || r.Dropped() != int64(2*rec) {
		t.Fatalf("after damaging record 1 of 3: %d answers kept, %d bytes dropped; want 1 and %d", r.Len(), r.Dropped(), 2*rec)
	}
	if _, ok := r.Get(1, 0); ok {
		t.Fatal("the damaged answer was kept")
	}
}

// A header declaring an absurd dimension is refused before records are allocated from it.
func TestCacheHugeDimension(t *testing.T) {
	for _, magic := range []string{cacheMagic, cacheMagicV1} {
		hdr := []byte(magic)
		hdr = binary.LittleEndian.AppendUint32(hdr, 1<<31)
		if magic == cacheMagic {
			hdr = binary.LittleEndian.AppendUint32(hdr, crc32.ChecksumIEEE(hdr))
		}
		path := filepath.Join(t.TempDir(), CacheName)
		if err := os.WriteFile(path, append(hdr, make([]byte, 64)...), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenCache(path, 0); err == nil || !strings.Contains(err.Error(), "dimension 2147483648") {
			t.Fatalf("%s header with dimension 2^31: %v, want a dimension error", magic, err)
		}
	}
}

// Caches written before checksums (SSLQANS1) are still read and appended to.
func TestCacheReadsVersion1(t *testing.T) {
	const dim = 2
	b := []byte(cacheMagicV1)
	b = binary.LittleEndian.AppendUint32(b, dim)
	for i := 0; i < 2; i++ {
		b = binary.LittleEndian.AppendUint32(b, uint32(i))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(i)))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(1))
	}
	path := filepath.Join(t.TempDir(), CacheName)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, path, 0)
	appendAnswers(t, c, []int{5}, []int{0}, dim)
	c.Close()
	r := openCache(t, path, 0)
	defer r.Close()
	if v, ok := r.Get(1, 0); r.Len() != 3 || !ok || v[0] != 1 {
		t.Fatalf("version 1 cache: %d answers, (1,0) = %v", r.Len(), v)
	}
}
