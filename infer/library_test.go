package infer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLibraryPath(t *testing.T) {
	found, err := LibraryPath("")
	if err != nil {
		t.Fatalf("default resolution from the repository: %v", err)
	}
	if filepath.Base(found) != "libonnxruntime.so" || filepath.Base(filepath.Dir(found)) != "onnxruntime" {
		t.Errorf("default resolution gave %s, want .../.deps/onnxruntime/libonnxruntime.so", found)
	}
	lib := writeFile(t, "libonnxruntime.so", []byte("x"))
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so")
	tests := []struct {
		name, explicit, env string
		want                string   // path on success
		errParts            []string // error content on failure
	}{
		{"explicit", lib, "", lib, nil},
		{"explicit wins over env", lib, missing, lib, nil},
		{"env", "", lib, lib, nil},
		{"repository .deps", "", "", found, nil},
		{"explicit missing", missing, "", "", []string{missing, "(from Options.Library) does not exist", "make setup"}},
		{"explicit directory", filepath.Dir(lib), "", "", []string{"is a directory"}},
		{"env missing", "", missing, "", []string{missing, "(from $ONNXRUNTIME_LIB) does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(LibraryEnv, tc.env)
			got, err := LibraryPath(tc.explicit)
			if tc.errParts != nil {
				wantErrContains(t, err, tc.errParts...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("LibraryPath(%q) with $%s=%q = %s, want %s", tc.explicit, LibraryEnv, tc.env, got, tc.want)
			}
		})
	}
}

// TestLibraryPathNotFound runs the search from a directory without .deps
// (the test binary itself lives in a build cache directory without one).
func TestLibraryPathNotFound(t *testing.T) {
	t.Setenv(LibraryEnv, "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(exe), libRel)); err == nil {
		t.Fatalf("test binary %s has a .deps beside it; cannot test the failed search", exe)
	}
	wd := t.TempDir()
	t.Chdir(wd)
	_, err = LibraryPath("")
	wantErrContains(t, err, "ONNX Runtime library not found", "$ONNXRUNTIME_LIB is not set", libRel, wd, "make setup", "ONNXRUNTIME_LIB=")
}
