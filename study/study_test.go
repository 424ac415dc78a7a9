package study

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
)

// TestQuickStudy runs `ssl-onnx defend --quick` end to end through real servers and checks
// what every reader of the report relies on; a rerun skips the finished stages.
func TestQuickStudy(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: about a minute")
	}
	abs, err := filepath.Abs(filepath.Join("..", "models", "zoo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(zoo.Env, abs)
	c := Quick()
	c.Dir, c.Threads = t.TempDir(), 2
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	res, err := Run(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stages) != len(c.Defenses) {
		t.Fatalf("%d stages for %d defenses", len(res.Stages), len(c.Defenses))
	}
	detectors := 0
	for _, st := range res.Stages {
		if len(st.Users) != c.Users || len(st.Attackers) != len(c.Losses)+1 {
			t.Fatalf("%s: %d users, %d attackers: want %d and %d", st.Defense, len(st.Users), len(st.Attackers), c.Users, len(c.Losses)+1)
		}
		for _, u := range st.Users {
			if u.Tested != c.TestImages || len(u.Right) != c.TestImages || u.Correct > u.Tested {
				t.Errorf("%s/%s: tested %d, %d marks, %d correct: want %d test images", st.Defense, u.Name, u.Tested, len(u.Right), u.Correct, c.TestImages)
			}
			if st.Defense == None && (u.Top1 < 0.5 || u.Drop != 0 || u.Refused != "") {
				t.Errorf("undefended %s: top-1 %.3f, drop %.2f, refused %q: want a working probe and no drop", u.Name, u.Top1, u.Drop, u.Refused)
			}
		}
		for _, a := range st.Attackers {
			// Billed exactly what was answered, never past the budget.
			if a.Billed != int64(a.Answered) || a.Answered > c.Budget || a.Answered < 2 {
				t.Errorf("%s/%s: answered %d, billed %d, budget %d", st.Defense, a.Name, a.Answered, a.Billed, c.Budget)
			}
			if a.Fidelity == nil || a.Advantage == nil || a.Watermark == nil || !(a.Probe > 0.1) {
				t.Errorf("%s/%s: evaluation missing: %+v", st.Defense, a.Name, a)
			}
		}
		if st.Detection != nil {
			detectors++
			d := st.Detection
			if d.Positives != 1+c.Sybils || d.Negatives != c.Users || len(st.Keys) != c.Users+1+c.Sybils {
				t.Errorf("%s: %d positives, %d negatives over %d keys", st.Defense, d.Positives, d.Negatives, len(st.Keys))
			}
			if d.AUC < 0 || d.AUC > 1 || d.TPR < 0 || d.TPR > 1 || d.FPR < 0 || d.FPR > 1 {
				t.Errorf("%s: detection %+v out of range", st.Defense, d)
			}
		}
	}
	if detectors != 1 {
		t.Errorf("%d stages scored a detector, want 1 (prada)", detectors)
	}
	html, err := os.ReadFile(filepath.Join(c.Dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{"<svg", "Detectors", "accuracy drop"}, c.Defenses...) {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// A rerun pays for nothing again: every stage and the evaluation are skipped.
	var again bytes.Buffer
	res2, err := Run(context.Background(), c, &again)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(again.String(), "exists: skipping"); n != len(c.Defenses) {
		t.Errorf("rerun skipped %d of %d stages:\n%s", n, len(c.Defenses), again.String())
	}
	if res2.Stages[0].Users[0].Top1 != res.Stages[0].Users[0].Top1 {
		t.Errorf("rerun changed a result")
	}
}

func TestValidate(t *testing.T) {
	c := Quick()
	c.Defenses = []string{None, "nosuch:x=1"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "noise") || !strings.Contains(err.Error(), "prada") {
		t.Fatalf("unknown defense: %v, want an error listing the known ones", err)
	}
	c.Defenses = []string{"noise:sigma=1"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"none"`) {
		t.Fatalf("no baseline: %v", err)
	}
	c = Quick()
	c.Defenses = []string{None, "noise:sigma=-1"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sigma") {
		t.Fatalf("bad parameter: %v", err)
	}
	c = Quick()
	c.Users, c.UserImages = 200, 300
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("users overlapping the queries: %v", err)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
}

func TestROCAUCAndScore(t *testing.T) {
	for _, tc := range []struct {
		pos, neg []float64
		want     float64
	}{
		{[]float64{0.9, 0.8}, []float64{0.1, 0.2}, 1},
		{[]float64{0.1}, []float64{0.9}, 0},
		{[]float64{0.5, 0.5}, []float64{0.5}, 0.5},
		{[]float64{0.3, 0.7}, []float64{0.5}, 0.5},
		{[]float64{0.3, 0.7, 0.9}, []float64{0.5, 0.1}, 5.0 / 6},
	} {
		if got := rocAUC(tc.pos, tc.neg); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("rocAUC(%v, %v) = %v, want %v", tc.pos, tc.neg, got, tc.want)
		}
	}
	d := Score("x", []KeyVerdict{
		{Role: "attacker", Flagged: true, Score: 0.9}, {Role: "sybil", Flagged: false, Score: 0.2}, {Role: "sybil", Flagged: true, Score: 0.8},
		{Role: "user", Flagged: false, Score: 0.1}, {Role: "catalogue", Flagged: true, Score: 0.85},
	})
	// 2 of 3 positives flagged, 1 of 2 negatives: precision 2/3, recall 2/3.
	if d.TPR != 2.0/3 || d.SybilTPR != 0.5 || d.FPR != 0.5 || math.Abs(d.F1-2.0/3) > 1e-12 || math.Abs(d.AUC-4.0/6) > 1e-12 {
		t.Errorf("score: %+v", d)
	}
}

// fakeAPI answers each image with its first value, refuses (403) after blocked images, and
// records how many it answered.
type fakeAPI struct {
	answered, blockAfter int
}

type refusal struct{}

func (refusal) Error() string   { return "server answered 403 Forbidden: blocked" }
func (refusal) HTTPStatus() int { return 403 }

func (f *fakeAPI) Info() infer.Info {
	return infer.Info{InputShape: []int64{-1, 1, 1, 1}, OutputDim: 1}
}
func (f *fakeAPI) Close() error { return nil }
func (f *fakeAPI) Encode(_ context.Context, x infer.Images) (infer.Vectors, error) {
	if f.blockAfter > 0 && f.answered+x.N > f.blockAfter {
		return infer.Vectors{}, fmt.Errorf("images 0-%d: %w", x.N-1, refusal{})
	}
	f.answered += x.N
	return infer.Vectors{N: x.N, D: 1, Data: append([]float32(nil), x.Data...)}, nil
}

func TestSybilSpreadsQuotaAndSurvivesBlocks(t *testing.T) {
	a, b, c := &fakeAPI{}, &fakeAPI{blockAfter: 3}, &fakeAPI{}
	s := &sybil{clients: []quotaClient{{enc: a, left: 5}, {enc: b, left: 5}, {enc: c, left: 5}}}
	x := infer.Images{N: 10, C: 1, H: 1, W: 1, Data: []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
	v, err := s.Encode(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v.Data) != fmt.Sprint(x.Data) {
		t.Fatalf("answers %v, want the images in order", v.Data)
	}
	// Key b refused its share (blocked): a and c answered everything within their quotas.
	if a.answered != 5 || b.answered != 0 || c.answered != 5 {
		t.Fatalf("answered %d/%d/%d: want 5/0/5", a.answered, b.answered, c.answered)
	}
	// A batch that runs out of keys halfway returns the answered part as a PartialError.
	a.answered, c.answered = 0, 0
	s2 := &sybil{clients: []quotaClient{{enc: a, left: 3}, {enc: &fakeAPI{blockAfter: 1}, left: 5}}}
	v, err = s2.Encode(context.Background(), infer.Images{N: 6, C: 1, H: 1, W: 1, Data: []float32{0, 1, 2, 3, 4, 5}})
	var pe *infer.PartialError
	if !errors.As(err, &pe) || pe.Answered != 3 || v.N != 3 || fmt.Sprint(v.Data) != "[0 1 2]" {
		t.Fatalf("half-answered batch: %d rows %v, %v; want the 3 paid answers and a PartialError", v.N, v.Data, err)
	}
	// Every key is now spent or blocked: the next batch fails with the last refusal.
	_, err = s.Encode(context.Background(), infer.Images{N: 5, C: 1, H: 1, W: 1, Data: make([]float32, 5)})
	var sc interface{ HTTPStatus() int }
	if err == nil || !errors.As(err, &sc) {
		t.Fatalf("spent sybil: %v, want the last refusal", err)
	}
}

func TestSlug(t *testing.T) {
	if s := Slug("noise:sigma=0.5,mu=1"); s != "noise-sigma-0.5_mu-1" {
		t.Fatal(s)
	}
}
