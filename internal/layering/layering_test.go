// Package layering checks the project's one line around libtorch: gotch is imported by
// models/torchnet alone, and the packages a user needs to serve, evaluate or steal from an API
// link no libtorch (gotch, cgo).
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ssl-onnx/ssl-onnx/"

// onnxSide are the packages that must build without libtorch.
var onnxSide = []string{"infer", "serve", "defense", "eval", "onnxpb", "data", "augment", "export", "models", "progress", "infer/npy"}

func TestONNXSideLinksNoLibtorch(t *testing.T) {
	for _, p := range onnxSide {
		out, err := exec.Command("go", "list", "-deps", module+p).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", p, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/sugarme/gotch") || strings.HasSuffix(dep, "/models/torchnet") {
				t.Errorf("%s depends on %s: the ONNX side must not link libtorch", p, dep)
			}
		}
	}
}

// TestOnlyTorchnetImportsGotch: no non-test file of another package imports gotch.
func TestOnlyTorchnetImportsGotch(t *testing.T) {
	checked := 0
	for _, f := range imports(t) {
		if f[0] == module+"models/torchnet" {
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "github.com/sugarme/gotch") {
				t.Errorf("%s imports %s: only models/torchnet may import gotch", f[0], imp)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("go list named %d packages besides torchnet, expected the whole module", checked)
	}
}

// layers are the module's packages from the bottom up: a package imports only packages of
// lower layers (data flows one way: data -> augment -> torchnet -> checkpoint -> ONNX ->
// infer -> serve -> attack -> eval). A package missing here fails the test.
var layers = [][]string{
	{"data", "augment", "onnxpb", "progress", "infer/npy", "internal/layering", "internal/pyref"},
	{"models", "models/zoo"},
	{"infer", "models/torchnet"},
	{"export", "watermark", "defense"},
	{"train", "eval", "serve", "models/pth"},
	{"attack"},
	{"study", "bench"},
	{"demo"},
	{"cmd/ssl-onnx"},
}

// TestImportsPointDown checks every import between the module's packages against layers.
func TestImportsPointDown(t *testing.T) {
	layer := map[string]int{}
	for i, ps := range layers {
		for _, p := range ps {
			layer[p] = i
		}
	}
	edges := 0
	for _, f := range imports(t) {
		from := strings.TrimPrefix(f[0], module)
		lf, ok := layer[from]
		if !ok {
			t.Errorf("package %s is in no layer: add it to layers", from)
			continue
		}
		for _, imp := range f[1:] {
			to, internal := strings.CutPrefix(imp, module)
			if !internal {
				continue
			}
			edges++
			if lt, ok := layer[to]; ok && lt >= lf {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", from, lf, to, lt)
			}
		}
	}
	if edges < 40 {
		t.Fatalf("found %d imports between the module's packages, expected the whole graph", edges)
	}
}

// imports lists every package of the module with its non-test imports: the package first.
func imports(t *testing.T) [][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var pkgs [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			pkgs = append(pkgs, f)
		}
	}
	return pkgs
}
