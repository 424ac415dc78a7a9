package study

import (
	"math"
	"strings"
	"testing"
)

func TestSymlog(t *testing.T) {
	for _, x := range []float64{-30, -1, -0.2, 0, 0.17, 1, 3.16, 80} {
		if y := symexp(symlog(x)); math.Abs(y-x) > 1e-9 {
			t.Errorf("symexp(symlog(%v)) = %v", x, y)
		}
	}
	// Linearly 0 -> 0.2 would span 1/175 of 45 -> 80; on the symlog scale about a third.
	if a, b := symlog(0.2)-symlog(0), symlog(80)-symlog(45); a < b/4 {
		t.Errorf("0 -> 0.2 spans %.3f, 45 -> 80 spans %.3f: near-zero costs are squashed", a, b)
	}
}

// Labels never overlap: a crowded cluster keeps the first ones and drops the rest.
func TestLabelsDoNotOverlap(t *testing.T) {
	var b strings.Builder
	l := &labelSet{}
	for i := 0; i < 12; i++ {
		l.place(&b, "noise:sigma=0.5", 100, 100, 500)
	}
	if n := strings.Count(b.String(), "<text"); n < 2 || n > 7 {
		t.Fatalf("%d labels placed around one point, want a few", n)
	}
	for i, a := range l.boxes {
		for _, o := range l.boxes[i+1:] {
			if a[0] < o[2] && o[0] < a[2] && a[1] < o[3] && o[1] < a[3] {
				t.Fatalf("labels %v and %v overlap", a, o)
			}
		}
	}
}

// Over seeds: attackers grouped by name without "-seedN", per defense, with mean, sample sd
// and watermark counts; nothing when every attacker ran once.
func TestOverSeeds(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	st := &Stage{Defense: "none", Attackers: []AttackerResult{
		{Name: "mse", Probe: 0.80, Fidelity: f(0.9), Watermark: &WatermarkCheck{Present: true}},
		{Name: "infonce", Probe: 0.70, Fidelity: f(0.5)},
		{Name: "mse-seed2", Probe: 0.84, Fidelity: f(0.8), Watermark: &WatermarkCheck{Present: false}},
		{Name: "mse-seed3", Probe: 0.82, Fidelity: f(0.7), Watermark: &WatermarkCheck{Present: true}},
	}}
	got := overSeeds([]*Stage{st})
	if len(got) != 2 || got[0].Attacker != "mse" || got[0].Seeds != 3 || got[1].Attacker != "infonce" || got[1].Seeds != 1 {
		t.Fatalf("groups %+v", got)
	}
	m := got[0]
	if math.Abs(m.ProbeMean-0.82) > 1e-9 || math.Abs(m.ProbeSD-0.02) > 1e-9 || math.Abs(m.FidelityMean-0.8) > 1e-9 ||
		math.Abs(m.FidelitySD-0.1) > 1e-9 || m.WatermarkFound != 2 || m.WatermarkChecked != 3 {
		t.Fatalf("mse over seeds %+v: want probe 0.82 +- 0.02, fidelity 0.8 +- 0.1, watermark 2 of 3", m)
	}
	if got := overSeeds([]*Stage{{Attackers: []AttackerResult{{Name: "mse"}}}}); got != nil {
		t.Fatalf("one seed: %+v, want nil", got)
	}
	var b strings.Builder
	if err := printOverSeeds(&b, overSeeds([]*Stage{st})); err != nil || !strings.Contains(b.String(), "2 of 3") || !strings.Contains(b.String(), "82.00% ± 2.00") {
		t.Fatalf("printed %q %v", b.String(), err)
	}
}
