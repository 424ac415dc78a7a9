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
