package defense

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Factory wraps an encoder in one configured defense. seed makes the defense's randomness
// (noise, hash planes, secret transforms) reproducible.
type Factory func(next infer.Encoder, seed int64) (infer.Encoder, error)

// paramDoc documents one parameter of a defense spec.
type paramDoc struct{ name, def, doc string }

// kind is one defense of the spec language.
type kind struct {
	name   string
	doc    string
	params []paramDoc
	parse  func(p *params) (Factory, error)
}

var kinds = []kind{
	{"noise", "add Gaussian noise N(mu, sigma^2) to every returned value", []paramDoc{
		{"sigma", "0.5", "standard deviation, >= 0"},
		{"mu", "0", "mean (the reference scripts used mu=5)"},
	}, parseNoise},
	{"round", "round every value to a number of decimals", []paramDoc{
		{"decimals", "2", "decimal places, 0..9"},
	}, parseRound},
	{"topk", "keep the k largest-magnitude values of each vector, zero the rest", []paramDoc{
		{"k", "64", "values kept, >= 1 and <= the representation dimension"},
	}, parseTopK},
	{"truncate", "return only the first dims dimensions", []paramDoc{
		{"dims", "256", "dimensions kept, >= 1 and <= the representation dimension"},
	}, parseTruncate},
	{"detect", "per-caller similarity detector: answers to queries too similar to the caller's earlier ones are replaced by noise", []paramDoc{
		{"threshold", "0.8", "flag when max (cos+1)/2 > threshold, in [0, 1]"},
		{"history", "1000", "earlier representations remembered per caller, >= 1"},
		{"keys", "1000", "callers remembered (least recently used forgotten), >= 1"},
		{"sigma", "1", "standard deviation of the replacement noise, >= 0"},
		{"mu", "0", "mean of the replacement noise (the reference used 1000)"},
		{"scale", "rms", "rms: sigma is relative to the row's RMS value; abs: absolute"},
		{"center", "auto", "auto: subtract the mean of the first calib representations; none: raw cosine"},
		{"calib", "256", "representations averaged for center=auto, >= 1"},
	}, parseDetect},
	{"prada", "PRADA (Juuti et al. 2019): Shapiro-Wilk test on each caller's minimum input distances; blocks callers whose distances are not normal", []paramDoc{
		{"delta", "0.9", "block when W < delta, in [0, 1]"},
		{"min", "50", "distances needed before testing, 3..5000"},
		{"set", "256", "largest growing set of past queries kept per caller (oldest forgotten), >= 1"},
		{"window", "5000", "most recent distances tested, min..5000"},
		{"keys", "100", "callers remembered (blocked callers are never forgotten), >= 1"},
	}, parsePRADA},
	{"b4b", "Bucks for Buckets (Dubiński et al. 2023): noise growing with each caller's coverage of representation space, plus a per-caller secret transform", []paramDoc{
		{"planes", "12", "random hyperplanes of the LSH (2^planes buckets), 1..20"},
		{"alpha", "0.01", "noise scale: sigma = min(cap, alpha*(exp(beta*coverage)-1)) x row RMS, >= 0"},
		{"beta", "20", "noise growth rate, >= 0"},
		{"cap", "4", "largest sigma (relative to the row RMS), >= 0"},
		{"transform", "true", "apply the per-caller secret permutation + affine map (true|false)"},
		{"spread", "2", "per-dimension scales are log-uniform in [1/spread, spread], >= 1"},
		{"shift", "1", "standard deviation of the per-dimension shifts, >= 0"},
		{"keys", "10000", "callers remembered (least recently used forgotten), >= 1"},
		{"center", "auto", "auto: hash representations minus the mean of the first calib ones; none: raw"},
		{"calib", "256", "representations averaged for center=auto, >= 1"},
	}, parseB4B},
}

// Names lists the defenses the spec language knows, in documentation order.
func Names() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

// Help describes every defense and its parameters with their defaults, one block per defense.
func Help() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s: %s\n", k.name, k.doc)
		for _, p := range k.params {
			fmt.Fprintf(&b, "    %-10s (default %s) %s\n", p.name, p.def, p.doc)
		}
	}
	return b.String()
}

// Parse reads one defense spec, "name" or "name:param=value,param=value", for example
// "noise:sigma=0.5,mu=0" or "detect:threshold=0.8,history=1000". Parameters left out take
// their defaults (see Help). An unknown name, an unknown or repeated parameter, or a value
// out of range is an error that names it and what is valid.
func Parse(spec string) (Factory, error) {
	name, rest, hasParams := strings.Cut(strings.TrimSpace(spec), ":")
	name = strings.TrimSpace(name)
	var k *kind
	for i := range kinds {
		if kinds[i].name == name {
			k = &kinds[i]
		}
	}
	if k == nil {
		return nil, fmt.Errorf("defense: unknown defense %q in spec %q; valid: %s", name, spec, strings.Join(Names(), ", "))
	}
	p := &params{kind: k, spec: spec, values: map[string]string{}}
	if hasParams && strings.TrimSpace(rest) != "" {
		for _, kv := range strings.Split(rest, ",") {
			key, val, ok := strings.Cut(kv, "=")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			if !ok || key == "" || val == "" {
				return nil, fmt.Errorf("defense: %s: parameter %q in spec %q is not of the form name=value", k.name, strings.TrimSpace(kv), spec)
			}
			if !slices.ContainsFunc(k.params, func(d paramDoc) bool { return d.name == key }) {
				return nil, fmt.Errorf("defense: %s: unknown parameter %q; valid: %s", k.name, key, p.valid())
			}
			if _, dup := p.values[key]; dup {
				return nil, fmt.Errorf("defense: %s: parameter %q given twice in spec %q", k.name, key, spec)
			}
			p.values[key] = val
		}
	}
	return k.parse(p)
}

// Compose wraps enc in the defenses of specs, in order: specs[0] wraps enc itself and the
// last spec is the outermost layer, which the caller serves. Layer i draws its randomness
// from a seed derived from (seed, i). With no specs it returns enc. On error enc is not
// closed and remains the caller's; on success closing the result closes enc.
func Compose(enc infer.Encoder, specs []string, seed int64) (infer.Encoder, error) {
	if enc == nil {
		return nil, fmt.Errorf("defense: Compose: encoder is nil")
	}
	for i, s := range specs {
		f, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("defense: spec %d of %d: %w", i+1, len(specs), err)
		}
		next, err := f(enc, layerSeed(seed, i))
		if err != nil {
			return nil, fmt.Errorf("defense: spec %d of %d (%q): %w", i+1, len(specs), s, err)
		}
		enc = next
	}
	return enc, nil
}

// params holds the parameters of one spec while its defense reads them.
type params struct {
	kind   *kind
	spec   string
	values map[string]string
}

func (p *params) valid() string {
	names := make([]string, len(p.kind.params))
	for i, d := range p.kind.params {
		names[i] = d.name
	}
	return strings.Join(names, ", ")
}

// raw returns the given value of name, or its documented default.
func (p *params) raw(name string) string {
	if v, ok := p.values[name]; ok {
		return v
	}
	for _, d := range p.kind.params {
		if d.name == name {
			return d.def
		}
	}
	panic("defense: undocumented parameter " + name) // a programming error in this package
}

// float reads a float parameter that must lie in [lo, hi].
func (p *params) float(name string, lo, hi float64) (float64, error) {
	s := p.raw(name)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("defense: %s: parameter %s must be a finite number, found %q", p.kind.name, name, s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("defense: %s: parameter %s must be in %s, found %s", p.kind.name, name, rangeString(lo, hi), s)
	}
	return v, nil
}

// int reads an integer parameter that must lie in [lo, hi].
func (p *params) int(name string, lo, hi int) (int, error) {
	s := p.raw(name)
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("defense: %s: parameter %s must be an integer, found %q", p.kind.name, name, s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("defense: %s: parameter %s must be in %s, found %d", p.kind.name, name, rangeString(float64(lo), float64(hi)), v)
	}
	return v, nil
}

// choice reads a parameter that must be one of the given words.
func (p *params) choice(name string, valid ...string) (string, error) {
	s := p.raw(name)
	if !slices.Contains(valid, s) {
		return "", fmt.Errorf("defense: %s: parameter %s must be one of %s, found %q", p.kind.name, name, strings.Join(valid, ", "), s)
	}
	return s, nil
}

// bool reads a true|false parameter.
func (p *params) bool(name string) (bool, error) {
	s, err := p.choice(name, "true", "false")
	return s == "true", err
}

func rangeString(lo, hi float64) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch {
	case math.IsInf(hi, 1) || hi == math.MaxInt:
		return "[" + f(lo) + ", inf)"
	case math.IsInf(lo, -1):
		return "(-inf, " + f(hi) + "]"
	}
	return "[" + f(lo) + ", " + f(hi) + "]"
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
