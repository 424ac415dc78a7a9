// Package study answers the paper's question - what does each defense cost legitimate users,
// and what does it cost attackers? - by measuring every defense setting the same way, through
// a real API: for each setting it serves the victim behind that defense on loopback (one
// `serve` instance, one API key per user), lets legitimate users embed their labelled images
// and probe them, lets attackers (one key each, and a sybil attacker spread over several keys)
// steal the victim, and reads what the detectors decided about every key. The stolen copies
// are then evaluated against the undefended victim and checked for the owner's watermark.
//
// Each defense setting is a stage with its own directory, server database and answer caches;
// a finished stage is skipped on a rerun. An interrupted stage is redone from scratch: the
// detectors' per-key memory lives in the server process, so replaying cached answers would
// hide traffic from them.
package study

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

// None is the defense list entry of the undefended API: the baseline every drop is measured from.
const None = "none"

// Config sizes the study. Default and Quick give the two presets.
type Config struct {
	Dir   string
	Fresh bool
	// Victim is an ONNX encoder or a built-in one ("builtin:fmnist"); Secret is the owner's
	// watermark secret ("" = the built-in victim's, if any; no watermark check without one).
	Victim, Secret string
	// Defenses are defense specs (see defense.Help), one stage each; None is the undefended
	// API and must be among them (the baseline of every drop).
	Defenses []string
	// DefenseSeed seeds the defenses' randomness.
	DefenseSeed int64

	// Users legitimate keys; each embeds UserImages labelled images of its own (disjoint slices
	// of fmnist train[0, Users*UserImages), which the victim trained on: the provider's
	// customers bring in-distribution data) and the first TestImages of the test split. The
	// last user is a catalogue: its images sorted by class, each sent twice (the second copy
	// brightened by 2%), a hard case for detectors.
	Users, UserImages, TestImages int

	// Losses steal with one key each and Budget queries; the sybil attacker steals with
	// SybilLoss and the same budget spread over Sybils keys (0 = none). Queries come from fmnist
	// train[QueryOffset, ...), disjoint from the users' images.
	Losses      []string
	SybilLoss   string
	Sybils      int
	Budget      int
	QueryOffset int
	// Seeds repeats every attacker with Seeds training seeds (0 or 1: once), so each copy's
	// numbers and the watermark's verdict come with their spread over training runs.
	Seeds       int
	StealEpochs int
	StealBatch  int

	// EvalTrain and EvalTest size the stolen copies' evaluation (fmnist train[0, EvalTrain) and
	// test[0, EvalTest)); ProbeEpochs is the linear probe's epochs (users' probes too).
	EvalTrain, EvalTest int
	ProbeEpochs         int
	WatermarkImages     int
	Threads             int
	Device              string // cpu, cuda or cuda:N for the victim, the attackers and the evaluation
}

// Default is the full study: ten defense settings, four users, two attackers and a sybil
// attacker of four keys at 2000 queries (about 30 minutes on 2 cores). The victim is the
// label-trained one: its edge over a random encoder (7 points of probe accuracy) is what lets
// accuracy, not only fidelity, tell a good copy from a useless one.
func Default() Config {
	return Config{
		Dir: "runs/defend", Victim: "builtin:fmnist-supervised", DefenseSeed: 7,
		Defenses: []string{None, "noise:sigma=0.1", "noise:sigma=0.5", "noise:sigma=1", "noise:sigma=2", "round:decimals=1",
			"topk:k=128", "truncate:dims=256", "detect:threshold=0.8", "prada", "b4b"},
		Users: 4, UserImages: 2500, TestImages: 2500,
		Losses: []string{"mse", "infonce"}, SybilLoss: "mse", Sybils: 4, Budget: 2000, QueryOffset: 30000,
		StealEpochs: 4, StealBatch: 64,
		EvalTrain: 5000, EvalTest: 5000, ProbeEpochs: 100, WatermarkImages: 1000,
	}
}

// Quick is the two-minute variant that `make test` runs: two defenses (one a detector), two
// users, one attacker and a sybil attacker of two keys.
func Quick() Config {
	return Config{
		Dir: "runs/defend-quick", Victim: "builtin:fmnist", DefenseSeed: 7,
		Defenses: []string{None, "noise:sigma=1", "prada:min=20"},
		Users:    2, UserImages: 300, TestImages: 300,
		Losses: []string{"mse"}, SybilLoss: "mse", Sybils: 2, Budget: 256, QueryOffset: 30000,
		StealEpochs: 1, StealBatch: 64,
		EvalTrain: 500, EvalTest: 500, ProbeEpochs: 30, WatermarkImages: 200,
	}
}

// Validate checks the configuration before any work starts: every defense spec parses (an
// unknown one is an error listing the known ones), the baseline is there, sizes are positive.
func (c Config) Validate() error {
	hasNone := false
	seen := map[string]bool{}
	for _, d := range c.Defenses {
		if seen[d] {
			return fmt.Errorf("defense %q listed twice", d)
		}
		seen[d] = true
		if d == None {
			hasNone = true
			continue
		}
		if _, err := defense.Parse(d); err != nil {
			return fmt.Errorf("%w (or %q for the undefended API)", err, None)
		}
	}
	if !hasNone {
		return fmt.Errorf("defenses %v: %q (the undefended API) must be one of them: every drop is measured from it", c.Defenses, None)
	}
	switch {
	case c.Users < 1 || c.UserImages < 20 || c.TestImages < 20:
		return fmt.Errorf("users %d with %d train and %d test images each: expected at least 1 user, 20 images of each", c.Users, c.UserImages, c.TestImages)
	case c.Seeds < 0 || c.Seeds > 10:
		return fmt.Errorf("seeds %d: expected 1 to 10 (0 = 1)", c.Seeds)
	case c.Budget < 4:
		return fmt.Errorf("budget %d queries: expected at least 4", c.Budget)
	case c.Sybils < 0 || c.Sybils > c.Budget/2:
		return fmt.Errorf("sybils %d: expected 0 (none) to budget/2 = %d keys", c.Sybils, c.Budget/2)
	case len(c.Losses) == 0 && c.Sybils == 0:
		return fmt.Errorf("no attacker: give at least one loss or a sybil attacker")
	case c.Users*c.UserImages > c.QueryOffset:
		return fmt.Errorf("users' images train[0, %d) overlap the attackers' queries from train[%d, ...)", c.Users*c.UserImages, c.QueryOffset)
	case c.StealEpochs < 1 || c.StealBatch < 2 || c.ProbeEpochs < 1:
		return fmt.Errorf("steal epochs %d, steal batch %d, probe epochs %d: expected >= 1, >= 2, >= 1", c.StealEpochs, c.StealBatch, c.ProbeEpochs)
	case c.EvalTrain < 20 || c.EvalTest < 20:
		return fmt.Errorf("evaluation on %d train / %d test images: expected at least 20 of each", c.EvalTrain, c.EvalTest)
	}
	return nil
}

// Results is everything the study measured (results.json).
type Results struct {
	Config Config     `json:"config"`
	Victim string     `json:"victim"`
	Stages []*Stage   `json:"defenses"`
	Eval   EvalResult `json:"evaluation"`
	// OverSeeds summarises each defense's attackers over their seeds (with Seeds > 1).
	OverSeeds []SeedSummary `json:"over_seeds,omitempty"`
	Seconds   float64       `json:"seconds"`
}

// Run performs the study, writes results.json, report.html and the two trade-off charts
// (tradeoff-accuracy.svg, tradeoff-fidelity.svg) into c.Dir, and returns the results.
// Progress goes to log.
func Run(ctx context.Context, c Config, log io.Writer) (*Results, error) {
	start := time.Now()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Fresh {
		if err := os.RemoveAll(c.Dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	victim, secret, err := c.resolveVictim()
	if err != nil {
		return nil, err
	}
	enc, err := infer.OpenORT(victim, infer.Options{Threads: c.Threads, Device: c.Device, NoSpin: true})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	users, err := openUsers(c, enc.Info())
	if err != nil {
		return nil, err
	}
	res := &Results{Config: c, Victim: victim}
	for i, spec := range c.Defenses {
		fmt.Fprintf(log, "\n== defense %d/%d: %s ==\n", i+1, len(c.Defenses), spec)
		st, err := runStage(ctx, c, enc, spec, users, log)
		if err != nil {
			return nil, fmt.Errorf("defense %s: %w", spec, err)
		}
		res.Stages = append(res.Stages, st)
	}
	fmt.Fprintf(log, "\n== evaluate the stolen copies against the undefended victim ==\n")
	if res.Eval, err = evaluate(ctx, c, victim, secret, res.Stages, log); err != nil {
		return nil, err
	}
	summarise(res)
	res.OverSeeds = overSeeds(res.Stages)
	res.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := WriteReport(res, filepath.Join(c.Dir, "report.html")); err != nil {
		return nil, err
	}
	for i, svg := range TradeoffSVG(res) {
		name := []string{"tradeoff-accuracy.svg", "tradeoff-fidelity.svg"}[i]
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(svg), 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// resolveVictim returns the victim's ONNX file and the owner's watermark secret ("" if none).
func (c Config) resolveVictim() (victim, secret string, err error) {
	if victim, err = zoo.Resolve(c.Victim); err != nil {
		return "", "", err
	}
	secret = c.Secret
	if secret == "" && strings.HasPrefix(c.Victim, zoo.Prefix) {
		if secret, err = zoo.ResolveSecret(c.Victim); err != nil {
			return "", "", err
		}
	}
	return victim, secret, nil
}

// Slug is a defense spec as a directory and key-name fragment: "noise:sigma=0.5" ->
// "noise-sigma-0.5".
func Slug(spec string) string {
	r := strings.NewReplacer(":", "-", "=", "-", ",", "_", " ", "", "/", "_")
	return r.Replace(spec)
}
