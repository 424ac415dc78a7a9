package models

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
)

// TestParamsMatchTorchvision checks that every architecture/stem has exactly torchvision's
// state_dict names and shapes (num_batches_tracked aside), so checkpoints interoperate.
func TestParamsMatchTorchvision(t *testing.T) {
	script := `import json, sys, torch.nn as nn, torchvision
out = {}
for arch in ("resnet18", "resnet34", "resnet50"):
    for stem in ("cifar", "imagenet"):
        m = getattr(torchvision.models, arch)()
        if stem == "cifar":
            m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            m.maxpool = nn.Identity()
        d = m.fc.in_features
        m.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128))
        out[arch + "/" + stem] = {k: list(v.shape) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
json.dump(out, sys.stdout)
`
	raw, err := pyref.Command("-c", script).Output()
	if err != nil {
		t.Fatalf("torchvision reference (/usr/bin/python3 with python3-torchvision): %v", err)
	}
	var want map[string]map[string][]int64
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for _, arch := range Archs {
		for _, stem := range Stems {
			g, err := Build(Spec{Arch: arch, Stem: stem, Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32})
			if err != nil {
				t.Fatal(err)
			}
			ref := stem
			if stem == "cifar-pool" {
				ref = "cifar" // the same parameters: the max-pool has none
			}
			w := want[arch+"/"+ref]
			got := map[string][]int64{}
			for _, p := range g.Params() {
				got[p.Name] = p.Shape
			}
			if len(got) != len(w) {
				t.Errorf("%s/%s: %d tensors, torchvision has %d", arch, stem, len(got), len(w))
			}
			for name, shape := range w {
				if fmt.Sprint(got[name]) != fmt.Sprint(shape) {
					t.Errorf("%s/%s: %s has shape %v, torchvision %v", arch, stem, name, got[name], shape)
				}
			}
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Arch: "resnet101", Stem: "cifar", Head: "none", InputC: 3, InputHW: 32}, `arch "resnet101"`},
		{Spec{Arch: "resnet18", Stem: "tiny", Head: "none", InputC: 3, InputHW: 32}, `stem "tiny"`},
		{Spec{Arch: "resnet18", Stem: "cifar", Head: "mlp", InputC: 3, InputHW: 32}, `head "mlp"`},
		{Spec{Arch: "resnet18", Stem: "cifar", Head: "simclr", InputC: 3, InputHW: 32}, "out_dim 0"},
		{Spec{Arch: "resnet18", Stem: "cifar", Head: "none", InputC: 3, InputHW: 4}, "at least 1 channel and 8x8"},
	} {
		if _, err := Build(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, expected it to mention %q", tc.spec, err, tc.want)
		}
	}
}
