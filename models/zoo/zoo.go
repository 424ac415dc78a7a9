// Package zoo finds the encoders shipped with ssl-onnx: "builtin:<name>" on any command that
// takes an ONNX file (and "builtin:<name>" as a watermark secret) names a file in this folder.
package zoo

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Prefix marks a reference to a shipped encoder.
const Prefix = "builtin:"

// Entry is one shipped encoder.
type Entry struct {
	Name   string // what follows "builtin:"
	Model  string // ONNX file in the zoo folder
	Secret string // the owner's watermark secret beside it ("" if trained without one)
	About  string
}

// Entries returns the shipped encoders (see README.md in this folder for how each was made).
func Entries() []Entry {
	return []Entry{{
		Name: "fmnist", Model: "fmnist-resnet18-simclr.onnx", Secret: "fmnist-resnet18-simclr.watermark.ot",
		About: "SimCLR ResNet-18 (ImageNet stem, 32x32) trained 31 epochs on Fashion-MNIST train[0:30000), with the owner's watermark (built by scripts/zoo-fmnist.sh)",
	}, {
		Name: "fmnist-supervised", Model: "fmnist-resnet18-supervised.onnx", Secret: "fmnist-resnet18-supervised.watermark.ot",
		About: "label-trained ResNet-18 (ImageNet stem, 32x32; cross-entropy on the labels of Fashion-MNIST train[0:30000), 10 epochs of one flipped view per image), serving its pooled 512-d representation, with the owner's watermark (built by scripts/zoo-fmnist-supervised.sh)",
	}}
}

// Env names a folder holding the zoo files (for a binary installed away from the source tree).
const Env = "SSL_ONNX_ZOO"

func find(name string) (Entry, error) {
	var names []string
	for _, e := range Entries() {
		if e.Name == name {
			return e, nil
		}
		names = append(names, Prefix+e.Name)
	}
	sort.Strings(names)
	return Entry{}, fmt.Errorf("%s%s: no such built-in encoder (have: %s)", Prefix, name, strings.Join(names, ", "))
}

// dirs are the folders searched for zoo files, in order: $SSL_ONNX_ZOO, models/zoo under the
// working directory, and models/zoo beside the executable's folder (bin/ssl-onnx in a checkout).
func dirs() []string {
	var ds []string
	if d := os.Getenv(Env); d != "" {
		ds = append(ds, d)
	}
	ds = append(ds, filepath.Join("models", "zoo"))
	if exe, err := os.Executable(); err == nil {
		ds = append(ds, filepath.Join(filepath.Dir(filepath.Dir(exe)), "models", "zoo"))
	}
	return ds
}

func locate(ref, file string) (string, error) {
	for _, d := range dirs() {
		p := filepath.Join(d, file)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %s not found in %s (scripts/zoo-fmnist.sh builds the Fashion-MNIST one; %s names another folder)", ref, file, strings.Join(dirs(), ", "), Env)
}

// Resolve returns the file a model reference names: "builtin:<name>" becomes the shipped ONNX
// file's path; anything else is returned unchanged.
func Resolve(ref string) (string, error) {
	return resolve(ref, func(e Entry) (string, error) { return e.Model, nil })
}

// ResolveSecret is Resolve for a watermark secret: "builtin:<name>" becomes the shipped
// encoder's secret.
func ResolveSecret(ref string) (string, error) {
	return resolve(ref, func(e Entry) (string, error) {
		if e.Secret == "" {
			return "", fmt.Errorf("%s was trained without a watermark: it has no secret", ref)
		}
		return e.Secret, nil
	})
}

func resolve(ref string, file func(Entry) (string, error)) (string, error) {
	name, ok := strings.CutPrefix(ref, Prefix)
	if !ok {
		return ref, nil
	}
	e, err := find(name)
	if err != nil {
		return "", err
	}
	f, err := file(e)
	if err != nil {
		return "", err
	}
	return locate(ref, f)
}
