// Package pth reads PyTorch checkpoints (files written by torch.save: the zip format and the
// legacy pickle format) into torchvision-named state dicts, and matches them, strictly, against
// an encoder description of package models. It is how a victim trained elsewhere (the research
// code's SimSiam ResNet-50 on ImageNet) becomes an ONNX file of ours: `ssl-onnx import`.
package pth

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// Tensor is one checkpoint entry as a contiguous row-major float32 array.
type Tensor = torchnet.StoredTensor

// StateDict maps parameter names to tensors.
type StateDict map[string]Tensor

// Names returns the entry names, sorted.
func (sd StateDict) Names() []string {
	n := make([]string, 0, len(sd))
	for k := range sd {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Load reads a torch.save file. The state dict is the top-level dictionary of tensors, or the
// one stored under "state_dict" (how the SimSiam/MoCo training scripts save, next to "epoch",
// "arch" and "optimizer") or "model".
func Load(path string) (StateDict, error) {
	sd, err := torchnet.ReadTorchSave(path)
	return StateDict(sd), err
}

// Prefixes returns the key prefixes StripPrefix removes when asked to guess: MoCo's query
// encoder and SimSiam's encoder under DistributedDataParallel, then a plain DataParallel
// wrapper, then the same without the wrapper.
func Prefixes() []string {
	return []string{"module.encoder_q.", "module.encoder.", "module.", "encoder_q.", "encoder."}
}

// StripPrefix returns sd with prefix removed from every key that has it; other keys keep
// their names (SimSiam's "module.predictor.*" becomes "predictor.*" with prefix
// "module.encoder.") except MoCo's training state beside its query encoder (the momentum
// encoder encoder_k.* and the queue of negatives, queue and queue_ptr), which is dropped by
// name: anything else unknown still fails Match. prefix "auto" picks the first of Prefixes
// that some key starts with ("" keeps names).
func StripPrefix(sd StateDict, prefix string) (StateDict, string) {
	if prefix == "auto" {
		prefix = ""
		for _, p := range Prefixes() {
			if slices.ContainsFunc(sd.Names(), func(k string) bool { return strings.HasPrefix(k, p) }) {
				prefix = p
				break
			}
		}
	}
	moco := strings.HasSuffix(prefix, "encoder_q.")
	out := StateDict{}
	for k, v := range sd {
		name := strings.TrimPrefix(k, prefix)
		if !strings.HasPrefix(k, prefix) {
			if strings.HasPrefix(prefix, "module.") {
				name = strings.TrimPrefix(k, "module.")
			}
			if moco && (strings.HasPrefix(name, "encoder_k.") || name == "queue" || name == "queue_ptr") {
				continue
			}
		}
		out[name] = v
	}
	return out, prefix
}

// Head guesses the projection head of a torchvision-named state dict: "simsiam" (SimSiam's
// fc.0 ... fc.7 projector) with its output size, "simclr" (Linear(d, d), ReLU, Linear(d, out)
// as fc.0 and fc.2: SimCLR's and MoCo v2's MLP head) with its output size, "linear"
// (torchvision's classifier fc, MoCo v1's projection) with its number of classes, or "none".
func Head(sd StateDict) (string, int) {
	if t, ok := sd["fc.6.weight"]; ok && len(t.Shape) == 2 {
		if _, ok := sd["fc.7.running_mean"]; ok {
			return "simsiam", int(t.Shape[0])
		}
	}
	if t0, ok := sd["fc.0.weight"]; ok && len(t0.Shape) == 2 && t0.Shape[0] == t0.Shape[1] {
		if t2, ok := sd["fc.2.weight"]; ok && len(t2.Shape) == 2 {
			if _, more := sd["fc.3.weight"]; !more {
				return "simclr", int(t2.Shape[0])
			}
		}
	}
	if t, ok := sd["fc.weight"]; ok && len(t.Shape) == 2 {
		return "linear", int(t.Shape[0])
	}
	return "none", 0
}

// Match returns the weights of every parameter of g from sd, strictly: a missing parameter,
// a shape that differs, or a tensor of sd that g does not use (other than BatchNorm's
// num_batches_tracked) is an error that names them. The reference loaded with strict=False,
// which silently skips keys.
func Match(g *models.Graph, sd StateDict) (map[string][]float32, error) {
	out := map[string][]float32{}
	used := map[string]bool{}
	var missing, wrong []string
	for _, p := range g.Params() {
		t, ok := sd[p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		used[p.Name] = true
		if !slices.Equal(t.Shape, p.Shape) {
			wrong = append(wrong, fmt.Sprintf("%s is %v, expected %v", p.Name, t.Shape, p.Shape))
			continue
		}
		out[p.Name] = t.Data
	}
	var unused []string
	for _, k := range sd.Names() {
		if !used[k] && !strings.HasSuffix(k, ".num_batches_tracked") {
			unused = append(unused, k)
		}
	}
	s := g.Spec
	what := fmt.Sprintf("%s/%s head %s", s.Arch, s.Stem, s.Head)
	switch {
	case len(wrong) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: %s", what, list(wrong))
	case len(missing) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: missing %s", what, list(missing))
	case len(unused) > 0:
		return nil, fmt.Errorf("checkpoint does not fit %s: it has tensors the model does not use: %s", what, list(unused))
	}
	return out, nil
}

// list prints at most 6 names and a count.
func list(xs []string) string {
	if len(xs) <= 6 {
		return strings.Join(xs, "; ")
	}
	return fmt.Sprintf("%s; ... (%d in all)", strings.Join(xs[:6], "; "), len(xs))
}
