package infer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LibraryEnv is the environment variable that names libonnxruntime.so.
const LibraryEnv = "ONNXRUNTIME_LIB"

// libRel is where scripts/setup.sh puts the library, relative to the repository root.
var libRel = filepath.Join(".deps", "onnxruntime", "libonnxruntime.so")

// LibraryPath resolves the ONNX Runtime shared library. A non-empty explicit
// path is used as is; otherwise $ONNXRUNTIME_LIB; otherwise
// .deps/onnxruntime/libonnxruntime.so is looked for in the executable's
// directory and each of its parents, then in the working directory and each
// of its parents. The result is an absolute path to an existing file. The
// error says where it looked and how to fix it.
func LibraryPath(explicit string) (string, error) {
	if explicit != "" {
		return checkLibrary(explicit, "Options.Library")
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return checkLibrary(env, "$"+LibraryEnv)
	}
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, libRel)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("infer: ONNX Runtime library not found: $%s is not set and there is no %s in %s or any of its parents; "+
		"run `make setup` (scripts/setup.sh) in the ssl-onnx checkout, or set %s=/path/to/libonnxruntime.so",
		LibraryEnv, libRel, strings.Join(starts, " or "), LibraryEnv)
}

// checkLibrary returns the absolute form of path if it names a file.
func checkLibrary(path, from string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("infer: ONNX Runtime library %s (from %s): %w", path, from, err)
	}
	st, err := os.Stat(abs)
	switch {
	case os.IsNotExist(err):
		return "", fmt.Errorf("infer: ONNX Runtime library %s (from %s) does not exist; "+
			"run `make setup` (scripts/setup.sh) or point %s at libonnxruntime.so", abs, from, from)
	case err != nil:
		return "", fmt.Errorf("infer: ONNX Runtime library %s (from %s): %w", abs, from, err)
	case st.IsDir():
		return "", fmt.Errorf("infer: ONNX Runtime library %s (from %s) is a directory, expected the libonnxruntime.so file", abs, from)
	}
	return abs, nil
}
