package study

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
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
	"github.com/ssl-onnx/ssl-onnx/serve"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// Stage is one defense setting's measurements.
type Stage struct {
	Defense   string           `json:"defense"`
	Users     []UserResult     `json:"users"`
	Attackers []AttackerResult `json:"attackers"`
	// Keys is what the defense's detector (if any) decided about every key.
	Keys []KeyVerdict `json:"keys,omitempty"`
	// Detection scores the detector's decisions over the keys (nil without a detector).
	Detection *Detection `json:"detection,omitempty"`
	// UserTop1Mean and UserTop1Spread summarise the users' probe accuracy (mean, max - min);
	// UserDrop is the mean drop against the undefended API, in points.
	UserTop1Mean   float64 `json:"user_top1_mean"`
	UserTop1Spread float64 `json:"user_top1_spread"`
	UserDrop       float64 `json:"user_drop_points"`
	Seconds        float64 `json:"seconds"`
}

// AttackerResult is one stolen copy made through a defended API.
type AttackerResult struct {
	Name  string   `json:"name"` // "mse", "infonce", "sybil-mse"
	Loss  string   `json:"loss"`
	Keys  []string `json:"keys"`
	Model string   `json:"model"` // the stolen encoder's ONNX file
	// Answered is the images answered before any refusal; Billed what the ledger charged.
	Answered int    `json:"queries_answered"`
	Billed   int64  `json:"queries_billed"`
	Refused  string `json:"refused,omitempty"`
	// Filled in by the evaluation: the copy against the undefended victim. ProbeCI is the
	// probe's 95% Wilson interval; ProbeP the McNemar p-value of the difference from the same
	// attacker's copy through the undefended API (same test images).
	Probe     float64       `json:"probe_top1"`
	ProbeCI   eval.Interval `json:"probe_top1_ci95"`
	ProbeP    *float64      `json:"probe_p_vs_undefended,omitempty"`
	right     []bool
	KNN       float64  `json:"knn_top1"`
	Fidelity  *float64 `json:"fidelity_cos"`
	Advantage *float64 `json:"advantage_recovered"`
	// Watermark is the owner's verification of the copy (nil without a secret).
	Watermark *WatermarkCheck `json:"watermark,omitempty"`
	Seconds   float64         `json:"seconds"`
}

// WatermarkCheck is the owner's watermark verification of one encoder.
type WatermarkCheck struct {
	Accuracy float64 `json:"accuracy"`
	PValue   float64 `json:"p_value"`
	Present  bool    `json:"present"`
}

const (
	stageFile = "stage.json"
	rightFile = "users-right.json"
)

// runStage measures one defense setting, or loads it when a previous run finished it.
func runStage(ctx context.Context, c Config, enc infer.Encoder, spec string, u *users, log io.Writer) (*Stage, error) {
	dir := filepath.Join(c.Dir, Slug(spec))
	if b, err := os.ReadFile(filepath.Join(dir, stageFile)); err == nil {
		var st Stage
		if json.Unmarshal(b, &st) == nil && st.Defense == spec && readRight(filepath.Join(dir, rightFile), st.Users) == nil {
			fmt.Fprintf(log, "%s exists: skipping (use --fresh to redo)\n", filepath.Join(dir, stageFile))
			return &st, nil
		}
	}
	// An unfinished stage starts over: its detectors' memory died with the last process.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	store, err := serve.OpenStore(filepath.Join(dir, "server.db"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var specs []string
	if spec != None {
		specs = []string{spec}
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	srv, err := serve.Start(enc, serve.Config{Store: store, ModelName: "victim", Defenses: specs, DefenseSeed: c.DefenseSeed,
		MaxBatch: 256, Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))}, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	det := watchDetectors(srv.Encoder())
	st := &Stage{Defense: spec}
	t0 := time.Now()
	for _, p := range u.plans {
		r, err := runUser(ctx, c, store, srv.URL, u, p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "%s: %d of %d images answered, probe top-1 %.4f%s\n", r.Name, r.Answered, r.Sent, r.Top1, refusedNote(r.Refused))
		st.Users = append(st.Users, r)
	}
	for _, a := range c.attackers() {
		r, err := runAttacker(ctx, c, store, srv.URL, dir, spec, a, log)
		if err != nil {
			return nil, err
		}
		st.Attackers = append(st.Attackers, r)
	}
	if st.Keys, err = det.verdicts(ctx, store, st); err != nil {
		return nil, err
	}
	st.Seconds = time.Since(t0).Seconds()
	if err := writeRight(filepath.Join(dir, rightFile), st.Users); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, stageFile), st); err != nil { // last: marks the stage done
		return nil, err
	}
	return st, nil
}

func refusedNote(r string) string {
	if r == "" {
		return ""
	}
	return " (refused: " + r + ")"
}

// runUser embeds one user's images through its own key and probes them.
func runUser(ctx context.Context, c Config, store *serve.Store, url string, u *users, p userPlan) (UserResult, error) {
	_, secret, err := store.AddKey(ctx, p.name, 0, 0)
	if err != nil {
		return UserResult{}, err
	}
	client, err := serve.Dial(url, secret)
	if err != nil {
		return UserResult{}, err
	}
	defer client.Close()
	return u.run(ctx, c, p, client)
}

// attackerPlan is one attacker: a loss and the keys it buys.
type attackerPlan struct {
	name, loss string
	keys       int
	seed       int64 // the stolen encoder's training seed
}

// attackers lists every attacker, each once per seed: seed s > 1 adds "-seed<s>" to the name.
func (c Config) attackers() []attackerPlan {
	var base []attackerPlan
	for _, l := range c.Losses {
		base = append(base, attackerPlan{name: l, loss: l, keys: 1})
	}
	if c.Sybils > 0 {
		base = append(base, attackerPlan{name: "sybil-" + c.SybilLoss, loss: c.SybilLoss, keys: c.Sybils})
	}
	var out []attackerPlan
	for s := 1; s <= max(c.Seeds, 1); s++ {
		for _, a := range base {
			a.seed = int64(s) + 1 // seed 1 trains with 2, as before seeds existed
			if s > 1 {
				a.name = fmt.Sprintf("%s-seed%d", a.name, s)
			}
			out = append(out, a)
		}
	}
	return out
}

// runAttacker buys the attacker's keys (the budget split evenly), steals through them and
// exports the stolen encoder.
func runAttacker(ctx context.Context, c Config, store *serve.Store, url, dir, spec string, a attackerPlan, log io.Writer) (AttackerResult, error) {
	r := AttackerResult{Name: a.name, Loss: a.loss}
	var clients []quotaClient
	for k := 0; k < a.keys; k++ {
		quota := c.Budget / a.keys
		if k < c.Budget%a.keys {
			quota++
		}
		name := "attacker-" + a.name
		if a.keys > 1 {
			name = fmt.Sprintf("sybil%d-%s", k+1, strings.TrimPrefix(a.name, "sybil-"))
		}
		_, secret, err := store.AddKey(ctx, name, int64(quota), 0)
		if err != nil {
			return r, err
		}
		cl, err := serve.Dial(url, secret)
		if err != nil {
			return r, err
		}
		defer cl.Close()
		r.Keys = append(r.Keys, name)
		clients = append(clients, quotaClient{enc: cl, left: quota})
	}
	var victim infer.Encoder = clients[0].enc
	if len(clients) > 1 {
		victim = &sybil{clients: clients}
	}
	sdir := filepath.Join(dir, "steal-"+a.name)
	res, err := attack.Run(ctx, attack.Config{Victim: victim, VictimName: "study API behind " + spec, QueryDataset: "fmnist", QuerySplit: "train",
		QueryOffset: c.QueryOffset, NumQueries: c.Budget, Loss: a.loss, Arch: "resnet18", Stem: "imagenet", Size: 32,
		Epochs: c.StealEpochs, BatchSize: c.StealBatch, Seed: a.seed, Threads: c.Threads, Device: c.Device, Dir: sdir, Resume: true, KeepWhenRefused: true}, log)
	if err != nil {
		return r, fmt.Errorf("attacker %s: %w", a.name, err)
	}
	r.Model = filepath.Join(sdir, "model.onnx")
	om, _, _, err := train.Export(sdir, "", 0)
	if err != nil {
		return r, err
	}
	if err := onnxpb.WriteFile(r.Model, om); err != nil {
		return r, err
	}
	r.Answered, r.Refused, r.Seconds = res.Images*res.Views, res.Refused, res.Seconds
	keys, err := store.Keys(ctx)
	if err != nil {
		return r, err
	}
	for _, k := range keys {
		for _, n := range r.Keys {
			if k.Name == n {
				r.Billed += k.Used
			}
		}
	}
	return r, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeRight keeps the users' per-image correctness beside the stage (paired comparisons).
func writeRight(path string, us []UserResult) error {
	m := map[string][]bool{}
	for _, u := range us {
		m[u.Name] = u.Right
	}
	return writeJSON(path, m)
}

// readRight restores the users' per-image correctness saved by writeRight.
func readRight(path string, us []UserResult) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m := map[string][]bool{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i := range us {
		r, ok := m[us[i].Name]
		if !ok || len(r) != us[i].Tested {
			return fmt.Errorf("%s: no %d results for %s", path, us[i].Tested, us[i].Name)
		}
		us[i].Right = r
	}
	return nil
}
