package serve

import "testing"

// TestIdleTrimDecision: a trim comes once after a burst ends, never during one, never when
// nothing happened.
func TestIdleTrimDecision(t *testing.T) {
	var tr idleTrim
	step := func(want bool, what string) {
		t.Helper()
		if got := tr.due(); got != want {
			t.Fatalf("%s: due() = %v, want %v", what, got, want)
		}
	}
	step(false, "no request yet")
	tr.begin()
	step(false, "a request in flight")
	tr.end()
	step(true, "a quiet interval after the burst")
	step(false, "already trimmed")
	tr.begin()
	tr.end()
	tr.begin()
	step(false, "new burst, one still in flight")
	step(false, "still in flight, no new request")
	tr.end()
	step(true, "the burst's last request finished in a quiet interval")
	step(false, "quiet again")
}
