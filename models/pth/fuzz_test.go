package pth

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad reads arbitrary bytes as a torch.save file: an error or a state dict, never a
// panic or an allocation a hostile header asks for.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte("\x80\x02\x8a\x0alo\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "x.pth")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sd, err := Load(path)
		if err == nil && len(sd) == 0 {
			t.Fatal("no error and no tensors")
		}
	})
}
