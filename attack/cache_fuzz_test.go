package attack

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzAnswerCache opens arbitrary bytes as an answer cache: it must refuse or read them
// without panicking or allocating from a hostile header, and never keep more answers than
// the file can hold.
func FuzzAnswerCache(f *testing.F) {
	good := filepath.Join(f.TempDir(), "seed.bin")
	c, err := OpenCache(good, 0)
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Append([]int{0, 1}, []int{0, 1}, 2, []float32{1, 2, 3, 4}); err != nil {
		f.Fatal(err)
	}
	c.Close()
	seed, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(cacheMagicV1 + "\x02\x00\x00\x00"))
	f.Add([]byte("SSLQANS2\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "c.bin")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := OpenCache(path, 0)
		if err != nil {
			return
		}
		defer c.Close()
		if c.Dim() > 0 && c.Len()*(8+4*c.Dim()) > len(b) {
			t.Fatalf("%d answers of dimension %d from %d bytes", c.Len(), c.Dim(), len(b))
		}
	})
}
