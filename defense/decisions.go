package defense

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
)

// Decision is one line of a decision log: what a detecting defense decided about one row (the
// similarity detector) or one test (PRADA) of a caller. Key is the caller's key id, never its
// secret.
type Decision struct {
	Detector string  `json:"detector"` // detect or prada
	Key      string  `json:"key"`
	Row      int     `json:"row"`
	Score    float64 `json:"score"`
	Flagged  bool    `json:"flagged"`
}

// DecisionLog writes decisions as JSON lines (see ReadDecisions), serialising concurrent
// loggers. A write error stops the log; Err reports it.
type DecisionLog struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

// NewDecisionLog returns a log writing to w.
func NewDecisionLog(w io.Writer) *DecisionLog { return &DecisionLog{enc: json.NewEncoder(w)} }

// Logger returns the Logger of one detector ("detect" or "prada") into the log.
func (l *DecisionLog) Logger(detector string) Logger {
	return func(key string, row int, score float64, flagged bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if math.IsNaN(score) || math.IsInf(score, 0) {
			score = 0 // JSON has no NaN; a degenerate test says nothing about the key
		}
		if l.err == nil {
			l.err = l.enc.Encode(Decision{detector, key, row, score, flagged})
		}
	}
}

// Err is the first write error, nil when every decision was written.
func (l *DecisionLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// KeyDecisions sums up one detector's decisions about one key.
type KeyDecisions struct {
	Detector  string
	Key       string
	Decisions int64 // rows judged (detect) or tests run (prada)
	Flagged   int64
	// FirstFlag is when the key was first flagged: after how many of its rows (detect) or
	// distances tested plus one (prada); 0 when never.
	FirstFlag int64
	LastScore float64
}

// Suspicion is the detector's continuous verdict on the key, higher = more suspicious: the
// fraction of rows flagged (detect), 1 - the last Shapiro-Wilk W (prada).
func (k KeyDecisions) Suspicion() float64 {
	if k.Detector == "prada" {
		return 1 - k.LastScore
	}
	if k.Decisions == 0 {
		return 0
	}
	return float64(k.Flagged) / float64(k.Decisions)
}

// MaxDecisionLine bounds one line of a decision log.
const MaxDecisionLine = 4096

// ReadDecisions reads a decision log and sums it up per detector and key, sorted by detector
// then key. A malformed line is an error naming its number.
func ReadDecisions(r io.Reader) ([]KeyDecisions, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, MaxDecisionLine), MaxDecisionLine)
	byKey := map[[2]string]*KeyDecisions{}
	line := 0
	for sc.Scan() {
		line++
		var d Decision
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("decision log line %d: %w", line, err)
		}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("decision log line %d: %w", line, err)
		}
		k := byKey[[2]string{d.Detector, d.Key}]
		if k == nil {
			k = &KeyDecisions{Detector: d.Detector, Key: d.Key}
			byKey[[2]string{d.Detector, d.Key}] = k
		}
		k.add(d)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("decision log line %d: longer than %d bytes", line+1, MaxDecisionLine)
		}
		return nil, err
	}
	out := make([]KeyDecisions, 0, len(byKey))
	for _, k := range byKey {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Detector != out[j].Detector {
			return out[i].Detector < out[j].Detector
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

func (d Decision) check() error {
	switch {
	case d.Detector != "detect" && d.Detector != "prada":
		return fmt.Errorf("detector %q: expected detect or prada", d.Detector)
	case d.Row < 0:
		return fmt.Errorf("row %d: expected >= 0", d.Row)
	case len(d.Key) > 255:
		return fmt.Errorf("key of %d bytes: expected at most 255", len(d.Key))
	}
	return nil
}

func (k *KeyDecisions) add(d Decision) {
	k.Decisions++
	k.LastScore = d.Score
	if !d.Flagged {
		return
	}
	k.Flagged++
	if k.FirstFlag == 0 {
		k.FirstFlag = k.Decisions // detect: rows judged so far
		if d.Detector == "prada" {
			k.FirstFlag = int64(d.Row) + 1 // distances tested + the growing set's first image
		}
	}
}
