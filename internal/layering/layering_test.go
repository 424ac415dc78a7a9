// Package layering checks the project's one line around libtorch: the packages a user needs
// to serve, evaluate or steal from an API link no libtorch (gotch, cgo).
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// onnxSide are the packages that must build without libtorch.
var onnxSide = []string{"infer", "serve", "defense", "eval", "onnxpb", "data", "augment", "export", "models", "progress"}

func TestONNXSideLinksNoLibtorch(t *testing.T) {
	for _, p := range onnxSide {
		out, err := exec.Command("go", "list", "-deps", "github.com/ssl-onnx/ssl-onnx/"+p).CombinedOutput()
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
