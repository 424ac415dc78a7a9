package defense

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestDecisionLogRoundTrip writes decisions from concurrent loggers and reads them back per key.
func TestDecisionLogRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	log := NewDecisionLog(&buf)
	det, prada := log.Logger("detect"), log.Logger("prada")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("k", g)
			for row := range 10 {
				det(key, row, 0.5, g == 0 && row >= 6) // k0: flagged from its 7th row on
			}
		}()
	}
	wg.Wait()
	prada("k1", 49, 0.97, false)
	prada("k1", 50, 0.82, true)
	if err := log.Err(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDecisions(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d key summaries, want 5 (4 detect, 1 prada): %+v", len(got), got)
	}
	k0 := got[0]
	if k0.Detector != "detect" || k0.Key != "k0" || k0.Decisions != 10 || k0.Flagged != 4 || k0.FirstFlag != 7 || k0.Suspicion() != 0.4 {
		t.Errorf("k0: %+v (suspicion %v), want 10 rows, 4 flagged, first after 7, suspicion 0.4", k0, k0.Suspicion())
	}
	if got[2].Flagged != 0 || got[2].FirstFlag != 0 || got[2].Suspicion() != 0 {
		t.Errorf("k2: %+v, want never flagged", got[2])
	}
	p := got[4]
	if p.Detector != "prada" || p.Decisions != 2 || p.FirstFlag != 51 || p.Suspicion() < 0.179 || p.Suspicion() > 0.181 {
		t.Errorf("prada k1: %+v (suspicion %v), want 2 tests, first flag after 51, suspicion 1-0.82", p, p.Suspicion())
	}
}

// TestReadDecisionsRejects names the line of every malformed entry.
func TestReadDecisionsRejects(t *testing.T) {
	good := `{"detector":"detect","key":"a","row":0,"score":0.5,"flagged":false}` + "\n"
	for name, bad := range map[string]string{
		"not JSON":         "hello\n",
		"unknown detector": `{"detector":"b4b","key":"a","row":0,"score":0.5,"flagged":false}`,
		"negative row":     `{"detector":"prada","key":"a","row":-1,"score":0.5,"flagged":false}`,
		"long key":         `{"detector":"detect","key":"` + strings.Repeat("x", 300) + `","row":0,"score":0.5}`,
		"long line":        strings.Repeat(" ", MaxDecisionLine+10) + "\n",
		"huge number":      `{"detector":"detect","key":"a","row":0,"score":1e999}`,
	} {
		_, err := ReadDecisions(strings.NewReader(good + bad))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: err %v, want an error naming line 2", name, err)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestDecisionLogWriteError keeps the first write error for the caller to report, and a
// non-finite score (a degenerate test) is logged as 0 instead of breaking the log.
func TestDecisionLogWriteError(t *testing.T) {
	log := NewDecisionLog(failWriter{})
	log.Logger("detect")("k", 0, 0.5, false)
	if err := log.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Err() = %v, want the write error", err)
	}
	var buf bytes.Buffer
	ok := NewDecisionLog(&buf)
	ok.Logger("prada")("k", 3, nanScore(), false)
	if err := ok.Err(); err != nil {
		t.Fatalf("NaN score: %v", err)
	}
	if got, err := ReadDecisions(&buf); err != nil || len(got) != 1 || got[0].LastScore != 0 {
		t.Errorf("NaN score read back as %+v, %v; want score 0", got, err)
	}
}

func nanScore() float64 { var z float64; return z / z }
