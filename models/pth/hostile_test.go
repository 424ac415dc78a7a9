package pth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// Checkpoints whose declared sizes would need gigabytes must be refused with an error naming
// the problem, before anything of that size is allocated (a fatal out-of-memory cannot be
// recovered). Both run under the test's default memory; before the bounds, the strided file
// asked for 8 GB and the legacy one for 4 TB.
func TestHostileCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PyTorch")
	}
	dir := t.TempDir()
	var names []string
	pyref.Run(t, "write_hostile.py", &names, dir)
	for _, n := range names {
		_, err := Load(filepath.Join(dir, n))
		if err == nil {
			t.Fatalf("%s: loaded, want an error", n)
		}
		if !strings.Contains(err.Error(), "storage") {
			t.Errorf("%s: %v: want an error about the storage size", n, err)
		}
		t.Logf("%s: %v", n, err)
	}
}

// An empty file (or a tar archive with no entry) spun forever in gotch's legacy loader (a
// `break` out of a switch instead of the loop): it must be an error, at once.
func TestEmptyCheckpointIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.pth")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(path); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a") {
			t.Fatalf("empty checkpoint: %v, want an error saying it is not a torch.save file", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("loading an empty checkpoint did not return within 20 s")
	}
}
