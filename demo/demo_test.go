package demo

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/eval"
)

// TestQuickDemo runs the whole pipeline end to end (`ssl-onnx demo --quick`) and checks that
// its outputs exist and are sane.
func TestQuickDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	c := Quick()
	c.Dir = t.TempDir()
	c.Threads = 2
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	all, err := Run(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Runs) != 1 {
		t.Fatalf("%d victim runs, want 1", len(all.Runs))
	}
	res := all.Runs[0]
	for _, f := range []string{"report.html", "results.json", "victim/eval.json", "victim/server.db", "victim/victim/model.onnx"} {
		if _, err := os.Stat(filepath.Join(c.Dir, f)); err != nil {
			t.Errorf("output %s: %v", f, err)
		}
	}
	wantAttacks := len(c.Losses) * len(c.Budgets)
	if len(res.Attacks) != wantAttacks {
		t.Fatalf("%d attacks, expected %d", len(res.Attacks), wantAttacks)
	}
	// Billing: every attack spent exactly its budget, and the server billed exactly that.
	for _, a := range res.Attacks {
		if a.Spent != a.Budget || a.Billed != int64(a.Spent) {
			t.Errorf("attack %s: budget %d, spent %d, billed %d: expected all equal", a.Row, a.Budget, a.Spent, a.Billed)
		}
		if _, err := os.Stat(a.Model); err != nil {
			t.Errorf("attack %s: stolen model: %v", a.Row, err)
		}
	}
	rows := map[string]eval.Row{}
	for _, r := range res.Eval.Rows {
		rows[r.Name] = r
		if !(r.ProbeTop1 > 0.1 && r.ProbeTop1 <= 1) {
			t.Errorf("row %s: probe top-1 %.3f, expected above chance (0.1)", r.Name, r.ProbeTop1)
		}
	}
	victim, random := rows["victim"], rows["random"]
	if victim.FidelityCos == nil || *victim.FidelityCos < 0.999 {
		t.Errorf("victim vs itself: fidelity %v, expected 1", victim.FidelityCos)
	}
	if random.FidelityCos == nil {
		t.Fatalf("random baseline has no fidelity to the victim")
	}
	// A copy stolen from the undefended API is closer to the victim than an independent
	// encoder of the same architecture.
	for _, a := range res.Attacks {
		r, ok := rows["stolen "+a.Row]
		if !ok {
			t.Errorf("no evaluation row for %s", a.Row)
			continue
		}
		if r.FidelityCos == nil || *r.FidelityCos <= *random.FidelityCos {
			t.Errorf("stolen %s: fidelity %v, expected above the random encoder's %.3f", a.Row, r.FidelityCos, *random.FidelityCos)
		}
	}
	if all.Study == nil || len(all.Study.Stages) != len(c.Study.Defenses) {
		t.Fatalf("defense study: %+v, want one stage per defense of %v", all.Study, c.Study.Defenses)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "defend", "report.html")); err != nil {
		t.Errorf("the study's report: %v", err)
	}
	html, err := os.ReadFile(filepath.Join(c.Dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(html), "data:image/png;base64,"); n != 1 {
		t.Errorf("report.html embeds %d plots, expected 1 (accuracy vs queries)", n)
	}
	if n := strings.Count(string(html), "<svg"); n != 2 {
		t.Errorf("report.html has %d trade-off charts, expected 2", n)
	}
	// A rerun skips every finished stage and gives the same attacks.
	res2, err := Run(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range res2.Runs[0].Attacks {
		if a.Spent != res.Attacks[i].Spent {
			t.Errorf("rerun: attack %s spent %d, first run %d", a.Row, a.Spent, res.Attacks[i].Spent)
		}
	}
}
