package onnxpb

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadFile reads and decodes the ONNX model at path.
func ReadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnxpb: read model: %w", err)
	}
	m, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteFile encodes m and writes it to path atomically: the bytes go to a
// temporary file in the same directory, which is synced and then renamed
// over path. On error path is left untouched. The file gets mode 0644.
func WriteFile(path string, m *Model) (err error) {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("onnxpb: write model: %w", err)
	}
	return nil
}
