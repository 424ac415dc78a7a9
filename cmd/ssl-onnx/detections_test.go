package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// constant is an encoder answering the same vector for every image: every repeat query is a
// near-duplicate for the similarity detector.
type constant struct{}

func (constant) Encode(_ context.Context, x infer.Images) (infer.Vectors, error) {
	v := infer.Vectors{N: x.N, D: 4, Data: make([]float32, x.N*4)}
	for i := range v.Data {
		v.Data[i] = float32(i%4) - 1.5
	}
	return v, nil
}
func (constant) Info() infer.Info { return infer.Info{InputShape: []int64{-1, 1, 2, 2}, OutputDim: 4} }
func (constant) Close() error     { return nil }

// TestDecisionLogThroughServe connects a served detector to a decision log and scores it with
// `keys detections`: the attacker (flagged on 9 of 10 rows) ranks above the user (flagged once).
func TestDecisionLogThroughServe(t *testing.T) {
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "keys.db"), filepath.Join(dir, "decisions.jsonl")
	st, err := serve.OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	alice, _, err := st.AddKey(context.Background(), "alice", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _, err := st.AddKey(context.Background(), "mallory", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if _, err := connectDecisionLog(constant{}, logPath, quiet); err == nil || !strings.Contains(err.Error(), "no detecting defense") {
		t.Fatalf("an encoder without a detector: err %v, want a refusal naming the missing defense", err)
	}
	enc, err := defense.Compose(constant{}, []string{"detect:threshold=0.8,center=none"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	closeLog, err := connectDecisionLog(enc, logPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	one := infer.Images{N: 1, C: 1, H: 2, W: 2, Data: make([]float32, 4)}
	for range 10 { // mallory repeats one query 10 times: 9 flagged
		if _, err := enc.Encode(defense.WithKey(context.Background(), mallory.ID), one); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // alice asks twice: her second is flagged
		if _, err := enc.Encode(defense.WithKey(context.Background(), alice.ID), one); err != nil {
			t.Fatal(err)
		}
	}
	closeLog()

	var out bytes.Buffer
	app := &cli.App{Writer: &out, Commands: []*cli.Command{keysCommand()}}
	if err := app.Run([]string{"ssl-onnx", "keys", "detections", "--db", db, "--log", logPath, "--attackers", "mallory"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mallory  attacker  10         9", "alice    user      2          1", "detect: TPR 1.00, FPR 1.00, F1 0.67, ROC-AUC 1.00 over 1 attacker / 1 other keys"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	err = app.Run([]string{"ssl-onnx", "keys", "detections", "--db", db, "--log", logPath, "--attackers", "eve"})
	if err == nil || !strings.Contains(err.Error(), "--attackers eve: no such key") {
		t.Errorf("unknown attacker: err %v, want one naming --attackers eve", err)
	}
	if err := os.WriteFile(logPath, []byte("{\"detector\":\"detect\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = app.Run([]string{"ssl-onnx", "keys", "detections", "--db", db, "--log", logPath, "--attackers", "mallory"})
	if err == nil || !strings.Contains(err.Error(), "decisions.jsonl: decision log line 2") {
		t.Errorf("corrupt log: err %v, want one naming the file and line 2", err)
	}
}
