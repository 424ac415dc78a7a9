// Package demo runs the whole study on Fashion-MNIST, as a newcomer's first command: train a
// victim, export it, serve it as a paid API, steal it over HTTP with several losses and
// budgets (and once from a defended server), evaluate everything, and write a report.
//
// Each stage leaves its outputs on disk; a rerun skips finished stages unless Fresh is set.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssl-onnx/ssl-onnx/attack"
	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/serve"
	"github.com/ssl-onnx/ssl-onnx/study"
	"github.com/ssl-onnx/ssl-onnx/train"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

// Config sizes the study. Default and Quick give the two presets.
type Config struct {
	Dir     string
	Fresh   bool
	Threads int
	Device  string // cpu, cuda or cuda:N for every model the demo trains, serves or evaluates

	// Victims are the encoders to steal, each with the same grid: built-in ones
	// ("builtin:fmnist", "builtin:fmnist-supervised", see models/zoo; their training images are
	// fmnist train[0, 30000)), or "" to train one here on fmnist train[0, VictimImages) for
	// VictimEpochs. The defense study runs on the last (by default the label-trained one).
	Victims      []string
	VictimImages int
	VictimEpochs int
	VictimBatch  int

	QueryOffset int // queries come from fmnist train[QueryOffset, ...), disjoint from the victim's
	Losses      []string
	Budgets     []int
	StealEpochs int
	StealBatch  int
	// Study is the compact defense study run on the same victim (see package study; its
	// Dir, Victim and Threads are the demo's). `ssl-onnx defend` runs the full one.
	Study study.Config

	EvalTrain, EvalTest int // downstream probe: fmnist train[0,EvalTrain) / test[0,EvalTest)
	ProbeEpochs         int
	WatermarkImages     int // rotated test images per watermark check
}

// Default is the full demo (about ten minutes on a 2-core machine): it steals the built-in
// victim (set Victim to "" to train one instead).
func Default() Config {
	return Config{
		Dir: "runs/demo", Victims: []string{"builtin:fmnist", "builtin:fmnist-supervised"}, VictimImages: 10000, VictimEpochs: 3, VictimBatch: 128,
		QueryOffset: 30000, Losses: []string{"mse", "infonce"}, Budgets: []int{500, 2000},
		StealEpochs: 5, StealBatch: 64, Study: compactStudy(),
		EvalTrain: 5000, EvalTest: 10000, ProbeEpochs: 100, WatermarkImages: 1000,
	}
}

// compactStudy is the demo's defense study: the undefended API, output noise and the
// similarity detector, two users, one mse attacker at 1000 queries (no sybil attacker:
// `ssl-onnx defend` has it).
func compactStudy() study.Config {
	c := study.Default()
	c.Defenses = []string{study.None, "noise:sigma=0.5", "detect:threshold=0.8"}
	c.Users, c.UserImages, c.TestImages = 2, 1000, 2000
	c.Losses, c.SybilLoss, c.Sybils, c.Budget, c.StealEpochs = []string{"mse"}, "mse", 0, 1000, 3
	c.EvalTrain, c.EvalTest = 5000, 10000 // the whole test split: embedding it is cheap
	return c
}

// Quick is the two-minute variant used by the end-to-end test.
func Quick() Config {
	return Config{
		Dir: "runs/demo-quick", Victims: []string{""}, VictimImages: 1024, VictimEpochs: 1, VictimBatch: 128,
		QueryOffset: 30000, Losses: []string{"mse", "infonce"}, Budgets: []int{128, 256},
		StealEpochs: 2, StealBatch: 64, Study: quickStudy(),
		EvalTrain: 1000, EvalTest: 500, ProbeEpochs: 30, WatermarkImages: 300,
	}
}

func quickStudy() study.Config {
	c := study.Quick()
	c.Defenses = []string{study.None, "noise:sigma=0.5"}
	c.Sybils = 0
	return c
}

// Attack is one stolen copy in the results.
type Attack struct {
	Loss    string  `json:"loss"`
	Budget  int     `json:"budget"`
	Spent   int     `json:"queries_spent"`
	Billed  int64   `json:"queries_billed"` // what the server's ledger says this key was charged
	Key     string  `json:"key"`
	Model   string  `json:"model"`
	Seconds float64 `json:"seconds"`
	Row     string  `json:"row"`
}

// Ledger is one API key's bill, read from the server's database.
type Ledger struct {
	Server  string `json:"server"`
	Key     string `json:"key"`
	Queries int64  `json:"queries"`
}

// Verdict is one watermark verification.
type Verdict struct {
	Encoder string           `json:"encoder"`
	Result  watermark.Result `json:"result"`
}

// VictimRun is what the demo measured on one victim.
type VictimRun struct {
	Name    string       `json:"name"` // "fmnist", "fmnist-supervised", or "trained here"
	Victim  string       `json:"victim"`
	Dir     string       `json:"dir"`
	Attacks []Attack     `json:"attacks"`
	Ledger  []Ledger     `json:"ledger"`
	Eval    *eval.Report `json:"eval"`
	// Watermark is the owner's verification of the victim's watermark in each encoder.
	Watermark []Verdict `json:"watermark"`
}

// Results is everything the demo measured (results.json).
type Results struct {
	Config Config       `json:"config"`
	Runs   []*VictimRun `json:"victims"`
	// Study is the compact defense study on the first victim: what each defense cost users
	// and attackers.
	Study   *study.Results `json:"defense_study"`
	Seconds float64        `json:"seconds"`
}

// Run performs the demo and returns its results; progress goes to log.
func Run(ctx context.Context, c Config, log io.Writer) (*Results, error) {
	start := time.Now()
	if len(c.Victims) == 0 {
		return nil, fmt.Errorf("demo: no victim: give a built-in one, an ONNX file, or \"\" to train one")
	}
	if c.Fresh {
		if err := os.RemoveAll(c.Dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	res := &Results{Config: c}
	var lastSecret string
	for i, v := range c.Victims {
		run, secret, err := runVictim(ctx, c, v, fmt.Sprintf("%d/%d", i+1, len(c.Victims)), log)
		if err != nil {
			return nil, err
		}
		lastSecret = secret
		res.Runs = append(res.Runs, run)
	}
	last := res.Runs[len(res.Runs)-1]
	stage(log, "what defenses cost (a compact `ssl-onnx defend` on "+last.Name+")")
	sc := c.Study
	sc.Dir, sc.Victim, sc.Secret, sc.Threads, sc.Device = filepath.Join(c.Dir, "defend"), last.Victim, lastSecret, c.Threads, c.Device
	var err error
	if res.Study, err = study.Run(ctx, sc, log); err != nil {
		return nil, fmt.Errorf("defense study: %w", err)
	}

	stage(log, "report")
	res.Seconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(c.Dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := WriteReport(res, c.Dir); err != nil {
		return nil, err
	}
	return res, nil
}

func stage(log io.Writer, s string) { fmt.Fprintf(log, "\n== %s ==\n", s) }

// runVictim steals one victim with the whole grid over its own paid API, evaluates the copies
// and checks them for the owner's watermark; it returns the run and the watermark secret.
func runVictim(ctx context.Context, c Config, ref, step string, log io.Writer) (*VictimRun, string, error) {
	name := strings.TrimPrefix(ref, zoo.Prefix)
	if ref == "" {
		name = "victim"
	} else if !strings.HasPrefix(ref, zoo.Prefix) {
		name = strings.TrimSuffix(filepath.Base(ref), filepath.Ext(ref))
	}
	c.Dir = filepath.Join(c.Dir, name)
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, "", err
	}
	run := &VictimRun{Name: name, Dir: c.Dir}
	var secret string
	var err error
	if ref != "" {
		stage(log, "victim "+step+": "+ref)
		if run.Victim, err = zoo.Resolve(ref); err == nil && strings.HasPrefix(ref, zoo.Prefix) {
			secret, err = zoo.ResolveSecret(ref)
		}
		fmt.Fprintf(log, "victim %s, the owner's watermark secret %q\n", run.Victim, secret)
	} else {
		stage(log, "victim "+step+": train one (SimCLR, ResNet-18) and export it to ONNX")
		run.Victim, err = trainVictim(ctx, c, log)
		secret = filepath.Join(c.Dir, "victim", train.WatermarkName)
	}
	if err != nil {
		return nil, "", fmt.Errorf("victim: %w", err)
	}

	stage(log, "victim "+step+": serve it as a paid API on loopback and steal it over HTTP")
	store, err := serve.OpenStore(filepath.Join(c.Dir, "server.db"))
	if err != nil {
		return nil, "", err
	}
	defer store.Close()
	plain, err := startServer(run.Victim, store, infer.Options{Threads: c.Threads, Device: c.Device, NoSpin: true}, log)
	if err != nil {
		return nil, "", err
	}
	defer plain.stop()
	for _, loss := range c.Losses {
		for _, b := range c.Budgets {
			a, err := steal(ctx, c, store, attackRun{loss: loss, budget: b, srv: plain}, log)
			if err != nil {
				return nil, "", err
			}
			run.Attacks = append(run.Attacks, a)
		}
	}
	if err := run.readLedger(ctx, store); err != nil {
		return nil, "", err
	}

	stage(log, "victim "+step+": evaluate (linear probe, kNN, fidelity, baselines) and check the watermark")
	if run.Eval, err = evaluate(ctx, c, run.Victim, run.Attacks, log); err != nil {
		return nil, "", err
	}
	if run.Watermark, err = verifyWatermarks(ctx, c, run.Victim, secret, run.Attacks, log); err != nil {
		return nil, "", err
	}
	return run, secret, nil
}

// readLedger reads every key's bill from the server's database.
func (run *VictimRun) readLedger(ctx context.Context, store *serve.Store) error {
	keys, err := store.Keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		run.Ledger = append(run.Ledger, Ledger{Server: "plain", Key: k.Name, Queries: k.Used})
		for i := range run.Attacks {
			if run.Attacks[i].Key == k.Name {
				run.Attacks[i].Billed = k.Used
			}
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func trainVictim(ctx context.Context, c Config, log io.Writer) (string, error) {
	dir := filepath.Join(c.Dir, "victim")
	path := filepath.Join(dir, "model.onnx")
	if exists(path) {
		fmt.Fprintf(log, "%s exists: skipping (use --fresh to redo)\n", path)
		return path, nil
	}
	cfg := train.Config{Dataset: "fmnist", Split: "train", Limit: c.VictimImages, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Loss: "infonce", Epochs: c.VictimEpochs, BatchSize: c.VictimBatch, Warmup: -1, Seed: 1, Threads: c.Threads, Device: c.Device, Dir: dir, Resume: true,
		Watermark: true}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	}
	if _, err := train.Run(ctx, cfg, log); err != nil {
		return "", err
	}
	return path, exportCheckpoint(dir, path)
}

// exportCheckpoint writes the representation ONNX of the checkpoint in dir.
func exportCheckpoint(dir, path string) error {
	om, _, _, err := train.Export(dir, "", 0)
	if err != nil {
		return err
	}
	return onnxpb.WriteFile(path, om)
}

type server struct {
	*serve.Running
	model string
	name  string
	enc   infer.Encoder
}

func (s *server) stop() {
	s.Stop()
	s.enc.Close()
}

func startServer(model string, store *serve.Store, opt infer.Options, log io.Writer) (*server, error) {
	enc, err := infer.OpenORT(model, opt)
	if err != nil {
		return nil, err
	}
	r, err := serve.Start(enc, serve.Config{Store: store, ModelName: "victim", MaxBatch: 256,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))}, "127.0.0.1:0")
	if err != nil {
		enc.Close()
		return nil, err
	}
	s := &server{Running: r, model: model, name: "plain", enc: enc}
	fmt.Fprintf(log, "victim API at %s\n", s.URL)
	return s, nil
}

type attackRun struct {
	loss   string
	budget int
	srv    *server
}

func steal(ctx context.Context, c Config, store *serve.Store, r attackRun, log io.Writer) (Attack, error) {
	name := fmt.Sprintf("%s-%d", r.loss, r.budget)
	dir := filepath.Join(c.Dir, "steal-"+name)
	model := filepath.Join(dir, "model.onnx")
	a := Attack{Loss: r.loss, Budget: r.budget, Key: name, Model: model, Row: name}
	if exists(model) && exists(filepath.Join(dir, attack.ResultName)) {
		var prev attack.Result
		b, err := os.ReadFile(filepath.Join(dir, attack.ResultName))
		if err == nil && json.Unmarshal(b, &prev) == nil {
			fmt.Fprintf(log, "%s exists: skipping\n", model)
			a.Spent, a.Seconds = prev.QueriesSpent, prev.Seconds
			return a, nil
		}
	}
	// A fresh key per attack, as an attacker would buy one; the ledger bills it.
	secret, err := keyFor(ctx, store, name, int64(r.budget))
	if err != nil {
		return a, err
	}
	victim, err := serve.Dial(r.srv.URL, secret)
	if err != nil {
		return a, err
	}
	defer victim.Close()
	// The victim's name must not include the port (it changes per run): an interrupted attack
	// resumes from its answer cache only if the name matches.
	res, err := attack.Run(ctx, attack.Config{Victim: victim, VictimName: r.srv.name + " API serving " + r.srv.model, QueryDataset: "fmnist", QuerySplit: "train",
		QueryOffset: c.QueryOffset, NumQueries: r.budget, Loss: r.loss, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Epochs: c.StealEpochs, BatchSize: c.StealBatch, Seed: 2, Threads: c.Threads, Device: c.Device, Dir: dir, Resume: true}, log)
	if err != nil {
		return a, fmt.Errorf("attack %s: %w", name, err)
	}
	if err := exportCheckpoint(dir, model); err != nil {
		return a, err
	}
	a.Spent, a.Seconds = res.QueriesSpent, res.Seconds
	return a, nil
}

// keyFor creates the named key with the given quota (a rerun of an interrupted attack reuses
// its cache, so a new key with the remaining quota is fine: the ledger sums by name).
func keyFor(ctx context.Context, store *serve.Store, name string, quota int64) (string, error) {
	keys, err := store.Keys(ctx)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k.Name == name && k.Active() {
			if _, err := store.Revoke(ctx, k.ID); err != nil {
				return "", err
			}
		}
	}
	_, secret, err := store.AddKey(ctx, name, quota, 0)
	return secret, err
}

func evaluate(ctx context.Context, c Config, victim string, attacks []Attack, log io.Writer) (*eval.Report, error) {
	path := filepath.Join(c.Dir, "eval.json")
	cfg := eval.DefaultConfig()
	cfg.Reference = victim
	for _, a := range attacks {
		cfg.Models = append(cfg.Models, a.Model)
	}
	cfg.Baselines = []string{eval.BaselineRandom, eval.BaselinePixels}
	cfg.TrainLimit, cfg.TestLimit = c.EvalTrain, c.EvalTest
	cfg.Probe.Epochs = c.ProbeEpochs
	cfg.Threads, cfg.Device = c.Threads, c.Device
	cfg.TempDir = c.Dir
	if rep := eval.LoadReport(path, append([]string{victim}, cfg.Models...)); rep != nil {
		fmt.Fprintf(log, "%s exists and covers every model: skipping\n", path)
		return rep, nil
	}
	rep, err := eval.Evaluate(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// Name the rows in the study's words.
	names := map[string]string{victim: "victim"}
	for _, a := range attacks {
		names[a.Model] = "stolen " + a.Row
	}
	for i, row := range rep.Rows {
		if n, ok := names[row.Model]; ok {
			rep.Rows[i].Name = n
		}
	}
	if err := rep.WriteJSON(path); err != nil {
		return nil, err
	}
	return rep, nil
}

// verifyWatermarks runs the owner's watermark check on the victim, on the stolen copies with
// the largest budget, and on an independent (randomly initialised) encoder of the victim's
// architecture.
func verifyWatermarks(ctx context.Context, c Config, victim, secret string, attacks []Attack, log io.Writer) ([]Verdict, error) {
	if secret == "" {
		fmt.Fprintln(log, "no watermark secret for this victim: skipping the watermark check")
		return nil, nil
	}
	independent := filepath.Join(c.Dir, "independent-random.onnx")
	if err := export.RandomModel(independent, models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "none", InputC: 3, InputHW: 32}, 99); err != nil {
		return nil, err
	}
	type cand struct{ name, path string }
	cands := []cand{{"victim", victim}}
	maxB := 0
	for _, a := range attacks {
		maxB = max(maxB, a.Budget)
	}
	for _, a := range attacks {
		if a.Budget == maxB {
			cands = append(cands, cand{"stolen " + a.Row, a.Model})
		}
	}
	cands = append(cands, cand{"independent (random init)", independent})
	test, err := data.Open("fmnist", "", "test")
	if err != nil {
		return nil, err
	}
	var out []Verdict
	for _, cd := range cands {
		enc, err := infer.OpenORT(cd.path, infer.Options{Threads: c.Threads, Device: c.Device})
		if err != nil {
			return nil, err
		}
		r, err := watermark.Verify(ctx, enc, secret, test, c.WatermarkImages, 1)
		enc.Close()
		if err != nil {
			return nil, fmt.Errorf("watermark check of %s: %w", cd.name, err)
		}
		fmt.Fprintf(log, "watermark in %s: rotation accuracy %.3f, p %.2g: %s\n", cd.name, r.Accuracy, r.PValue, r.Verdict)
		out = append(out, Verdict{Encoder: cd.name, Result: r})
	}
	return out, nil
}
