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
	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/serve"
	"github.com/ssl-onnx/ssl-onnx/train"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

// Config sizes the study. Default and Quick give the two presets.
type Config struct {
	Dir     string
	Fresh   bool
	Threads int

	// Victim is the encoder to steal: a built-in one ("builtin:fmnist", see models/zoo; its
	// training images are fmnist train[0, 30000)), or "" to train one here on fmnist
	// train[0, VictimImages) for VictimEpochs.
	Victim       string
	VictimImages int
	VictimEpochs int
	VictimBatch  int

	QueryOffset   int // queries come from fmnist train[QueryOffset, ...), disjoint from the victim's
	Losses        []string
	Budgets       []int
	StealEpochs   int
	StealBatch    int
	Defense       string // spec of the defended server, e.g. "noise:sigma=0.5"
	DefenseLoss   string
	DefenseBudget int

	EvalTrain, EvalTest int // downstream probe: fmnist train[0,EvalTrain) / test[0,EvalTest)
	ProbeEpochs         int
	WatermarkImages     int // rotated test images per watermark check
}

// Default is the full demo (about ten minutes on a 2-core machine): it steals the built-in
// victim (set Victim to "" to train one instead).
func Default() Config {
	return Config{
		Dir: "runs/demo", Victim: "builtin:fmnist", VictimImages: 10000, VictimEpochs: 3, VictimBatch: 128,
		QueryOffset: 30000, Losses: []string{"mse", "infonce", "softnn"}, Budgets: []int{500, 1000, 2000},
		StealEpochs: 5, StealBatch: 64, Defense: "noise:sigma=0.5", DefenseLoss: "infonce", DefenseBudget: 2000,
		EvalTrain: 5000, EvalTest: 2000, ProbeEpochs: 100, WatermarkImages: 1000,
	}
}

// Quick is the two-minute variant used by the end-to-end test.
func Quick() Config {
	return Config{
		Dir: "runs/demo-quick", VictimImages: 1024, VictimEpochs: 1, VictimBatch: 128,
		QueryOffset: 30000, Losses: []string{"mse", "infonce"}, Budgets: []int{128, 256},
		StealEpochs: 2, StealBatch: 64, Defense: "noise:sigma=0.5", DefenseLoss: "mse", DefenseBudget: 256,
		EvalTrain: 1000, EvalTest: 500, ProbeEpochs: 30, WatermarkImages: 300,
	}
}

// Attack is one stolen copy in the results.
type Attack struct {
	Loss     string  `json:"loss"`
	Budget   int     `json:"budget"`
	Spent    int     `json:"queries_spent"`
	Billed   int64   `json:"queries_billed"` // what the server's ledger says this key was charged
	Defended bool    `json:"defended"`
	Key      string  `json:"key"`
	Model    string  `json:"model"`
	Seconds  float64 `json:"seconds"`
	Row      string  `json:"row"`
}

// Ledger is one API key's bill, read from the server's database.
type Ledger struct {
	Server  string `json:"server"`
	Key     string `json:"key"`
	Queries int64  `json:"queries"`
}

// Cost is what a defense costs: to a legitimate user (probe accuracy on defended answers)
// and to the attacker (probe accuracy of the copy stolen through it).
type Cost struct {
	Defense         string  `json:"defense"`
	UserCleanTop1   float64 `json:"user_clean_top1"`
	UserDefTop1     float64 `json:"user_defended_top1"`
	UserDistortCos  float64 `json:"user_distortion_cos"`
	AttackCleanTop1 float64 `json:"attacker_clean_top1"`
	AttackDefTop1   float64 `json:"attacker_defended_top1"`
}

// Verdict is one watermark verification.
type Verdict struct {
	Encoder string           `json:"encoder"`
	Result  watermark.Result `json:"result"`
}

// Results is everything the demo measured (results.json).
type Results struct {
	Config  Config       `json:"config"`
	Victim  string       `json:"victim"`
	Attacks []Attack     `json:"attacks"`
	Ledger  []Ledger     `json:"ledger"`
	Eval    *eval.Report `json:"eval"`
	Cost    *Cost        `json:"defense_cost"`
	// Watermark is the owner's verification of the victim's watermark in each encoder.
	Watermark []Verdict `json:"watermark"`
	Seconds   float64   `json:"seconds"`
}

// Run performs the demo and returns its results; progress goes to log.
func Run(ctx context.Context, c Config, log io.Writer) (*Results, error) {
	start := time.Now()
	if c.Fresh {
		if err := os.RemoveAll(c.Dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	res := &Results{Config: c}
	stage := func(s string) { fmt.Fprintf(log, "\n== %s ==\n", s) }

	// 1. Victim.
	var victim, secret string
	var err error
	if c.Victim != "" {
		stage("1/5 the victim: " + c.Victim + " (SimCLR, ResNet-18, shipped in models/zoo)")
		if victim, err = zoo.Resolve(c.Victim); err == nil && strings.HasPrefix(c.Victim, zoo.Prefix) {
			secret, err = zoo.ResolveSecret(c.Victim)
		}
		fmt.Fprintf(log, "victim %s, the owner's watermark secret %q\n", victim, secret)
	} else {
		stage("1/5 train the victim (SimCLR, ResNet-18) and export it to ONNX")
		victim, err = trainVictim(ctx, c, log)
		secret = filepath.Join(c.Dir, "victim", train.WatermarkName)
	}
	if err != nil {
		return nil, fmt.Errorf("victim: %w", err)
	}
	res.Victim = victim

	// 2. Servers: the victim as a paid API, plain and defended.
	stage("2/5 serve the victim: a plain and a defended API on loopback")
	store, err := serve.OpenStore(filepath.Join(c.Dir, "server.db"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	plain, err := startServer(victim, store, nil, c.Threads, log)
	if err != nil {
		return nil, err
	}
	defer plain.stop()
	defended, err := startServer(victim, store, []string{c.Defense}, c.Threads, log)
	if err != nil {
		return nil, err
	}
	defer defended.stop()

	// 3. Attacks over HTTP.
	stage("3/5 steal the victim over HTTP")
	var runs []attackRun
	for _, loss := range c.Losses {
		for _, b := range c.Budgets {
			runs = append(runs, attackRun{loss: loss, budget: b, srv: plain})
		}
	}
	runs = append(runs, attackRun{loss: c.DefenseLoss, budget: c.DefenseBudget, srv: defended, defended: true})
	for _, r := range runs {
		a, err := steal(ctx, c, store, r, log)
		if err != nil {
			return nil, err
		}
		res.Attacks = append(res.Attacks, a)
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		srv := "plain"
		if len(k.Name) > 4 && k.Name[:4] == "def-" {
			srv = "defended"
		}
		res.Ledger = append(res.Ledger, Ledger{Server: srv, Key: k.Name, Queries: k.Used})
		for i := range res.Attacks {
			if res.Attacks[i].Key == k.Name {
				res.Attacks[i].Billed = k.Used
			}
		}
	}

	// 4. Evaluation.
	stage("4/5 evaluate: linear probe, kNN, fidelity, baselines")
	rep, err := evaluate(ctx, c, victim, res.Attacks, log)
	if err != nil {
		return nil, err
	}
	res.Eval = rep
	cost, err := defenseCost(ctx, c, victim, rep, res.Attacks, log)
	if err != nil {
		return nil, err
	}
	res.Cost = cost
	if res.Watermark, err = verifyWatermarks(ctx, c, victim, secret, res.Attacks, log); err != nil {
		return nil, err
	}

	// 5. Report.
	stage("5/5 report")
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

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func trainVictim(ctx context.Context, c Config, log io.Writer) (string, error) {
	dir := filepath.Join(c.Dir, "victim")
	path := filepath.Join(dir, "model.onnx")
	if exists(path) {
		fmt.Fprintf(log, "%s exists: skipping (use --fresh to redo)\n", path)
		return path, nil
	}
	cfg := train.Config{Dataset: "fmnist", Split: "train", Limit: c.VictimImages, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Loss: "infonce", Epochs: c.VictimEpochs, BatchSize: c.VictimBatch, Warmup: -1, Seed: 1, Threads: c.Threads, Dir: dir, Resume: true,
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

func startServer(model string, store *serve.Store, defenses []string, threads int, log io.Writer) (*server, error) {
	enc, err := infer.OpenORT(model, infer.Options{Threads: threads, NoSpin: true})
	if err != nil {
		return nil, err
	}
	name := "plain"
	if len(defenses) > 0 {
		name = "defended"
	}
	r, err := serve.Start(enc, serve.Config{Store: store, ModelName: "victim", Defenses: defenses, DefenseSeed: 7, MaxBatch: 256,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))}, "127.0.0.1:0")
	if err != nil {
		enc.Close()
		return nil, err
	}
	s := &server{Running: r, model: model, name: name, enc: enc}
	fmt.Fprintf(log, "%s victim API at %s (defenses: %v)\n", name, s.URL, defenses)
	return s, nil
}

type attackRun struct {
	loss     string
	budget   int
	srv      *server
	defended bool
}

func steal(ctx context.Context, c Config, store *serve.Store, r attackRun, log io.Writer) (Attack, error) {
	name := fmt.Sprintf("%s-%d", r.loss, r.budget)
	if r.defended {
		name = "def-" + name
	}
	dir := filepath.Join(c.Dir, "steal-"+name)
	model := filepath.Join(dir, "model.onnx")
	a := Attack{Loss: r.loss, Budget: r.budget, Defended: r.defended, Key: name, Model: model, Row: name}
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
		Epochs: c.StealEpochs, BatchSize: c.StealBatch, Seed: 2, Threads: c.Threads, Dir: dir, Resume: true}, log)
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
	cfg.Threads = c.Threads
	cfg.TempDir = c.Dir
	if rep := loadReport(path, append([]string{victim}, cfg.Models...)); rep != nil {
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

// defenseCost measures the defense's price for a legitimate user - a linear probe trained on
// the defended answers - next to its price for the attacker (the defended copy's probe).
func defenseCost(ctx context.Context, c Config, victim string, rep *eval.Report, attacks []Attack, log io.Writer) (*Cost, error) {
	enc, err := infer.OpenORT(victim, infer.Options{Threads: c.Threads})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	def, err := defense.Compose(enc, []string{c.Defense}, 7)
	if err != nil {
		return nil, err
	}
	trainDS, testDS, err := evalSplits(c, enc.Info())
	if err != nil {
		return nil, err
	}
	feats := func(e infer.Encoder, ds data.Dataset) (eval.Features, error) {
		v, err := infer.EmbedDataset(defense.WithKey(ctx, "legit-user"), e, ds, data.Normalization{}, 256, nil)
		if err != nil {
			return eval.Features{}, err
		}
		y := make([]int, ds.Len())
		for i := range y {
			y[i] = ds.Label(i)
		}
		return eval.Features{X: v, Y: y, Classes: len(ds.Classes())}, nil
	}
	cleanTr, err := feats(enc, trainDS)
	if err != nil {
		return nil, err
	}
	cleanTe, err := feats(enc, testDS)
	if err != nil {
		return nil, err
	}
	defTr, err := feats(def, trainDS)
	if err != nil {
		return nil, err
	}
	defTe, err := feats(def, testDS)
	if err != nil {
		return nil, err
	}
	pc := eval.DefaultProbeConfig()
	pc.Epochs = c.ProbeEpochs
	clean, err := eval.LinearProbe(cleanTr, cleanTe, pc)
	if err != nil {
		return nil, err
	}
	defended, err := eval.LinearProbe(defTr, defTe, pc)
	if err != nil {
		return nil, err
	}
	cos, _, err := defense.Distortion(cleanTe.X, defTe.X)
	if err != nil {
		return nil, err
	}
	cost := &Cost{Defense: c.Defense, UserCleanTop1: clean.Top1, UserDefTop1: defended.Top1, UserDistortCos: cos}
	// The attacker's side: the same loss and budget stolen from the plain and the defended API.
	for _, a := range attacks {
		if a.Loss != c.DefenseLoss || a.Budget != c.DefenseBudget {
			continue
		}
		for _, r := range rep.Rows {
			if r.Model == a.Model {
				if a.Defended {
					cost.AttackDefTop1 = r.ProbeTop1
				} else {
					cost.AttackCleanTop1 = r.ProbeTop1
				}
			}
		}
	}
	fmt.Fprintf(log, "defense %s: legitimate user's probe %.3f -> %.3f (answers' cosine to clean %.3f); attacker's copy %.3f -> %.3f\n",
		c.Defense, cost.UserCleanTop1, cost.UserDefTop1, cos, cost.AttackCleanTop1, cost.AttackDefTop1)
	return cost, nil
}

func evalSplits(c Config, info infer.Info) (data.Dataset, data.Dataset, error) {
	open := func(split string, n int) (data.Dataset, error) {
		ds, err := data.Open("fmnist", "", split)
		if err != nil {
			return nil, err
		}
		if ds, err = data.First(ds, n); err != nil {
			return nil, err
		}
		return infer.FitDataset(ds, info)
	}
	tr, err := open("train", c.EvalTrain)
	if err != nil {
		return nil, nil, err
	}
	te, err := open("test", c.EvalTest)
	return tr, te, err
}

// loadReport returns the evaluation saved at path if it has a row for every model, else nil.
func loadReport(path string, models []string) *eval.Report {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var rep eval.Report
	if json.Unmarshal(b, &rep) != nil {
		return nil
	}
	have := map[string]bool{}
	for _, r := range rep.Rows {
		have[r.Model] = true
	}
	for _, m := range models {
		if !have[m] {
			return nil
		}
	}
	return &rep
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
		if a.Budget == maxB && !a.Defended {
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
		enc, err := infer.OpenORT(cd.path, infer.Options{Threads: c.Threads})
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
