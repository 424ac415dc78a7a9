package study

import (
	"context"
	"sort"
	"sync"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// KeyVerdict is what a detector decided about one key.
type KeyVerdict struct {
	Key  string `json:"key"`
	Role string `json:"role"` // user, catalogue, attacker, sybil
	// Queries is the images the key sent; Flagged whether the detector flagged (detect),
	// blocked (prada) or drowned in noise (b4b: sigma >= 1 x the row's RMS) any of them, and
	// FirstFlag after how many of its images that first happened (0 when never).
	Queries   int64 `json:"queries"`
	Flagged   bool  `json:"flagged"`
	FirstFlag int64 `json:"first_flag_after"`
	// Score is the detector's continuous suspicion of the key, higher = more suspicious:
	// detect: the fraction of its answers replaced by noise; prada: 1 - the Shapiro-Wilk W of
	// its last test (0 untested); b4b: the fraction of hash buckets its answers covered.
	Score float64 `json:"score"`
}

// Detection scores a detector over the keys: attackers (single-key and sybil) are the
// positives, legitimate users the negatives.
type Detection struct {
	Detector string  `json:"detector"`
	TPR      float64 `json:"tpr"`       // attacker keys flagged / attacker keys (sybil keys included)
	SybilTPR float64 `json:"sybil_tpr"` // sybil keys flagged / sybil keys
	FPR      float64 `json:"fpr"`       // user keys flagged / user keys
	F1       float64 `json:"f1"`
	// AUC is the ROC-AUC of Score: the probability that a random attacker key scores above a
	// random user key (ties count half).
	AUC       float64 `json:"roc_auc"`
	Positives int     `json:"positives"`
	Negatives int     `json:"negatives"`
}

// detectors watches the defense layers that judge keys, recording when each key was first
// flagged.
type detectors struct {
	detect *defense.Detector
	prada  *defense.PRADA
	b4b    *defense.B4B
	mu     sync.Mutex
	rows   map[string]int64 // detect: rows judged so far per key id
	first  map[string]int64 // first flag per key id (rows judged, or distances for prada)
}

func watchDetectors(enc infer.Encoder) *detectors {
	d := &detectors{rows: map[string]int64{}, first: map[string]int64{}}
	if x, ok := defense.Find[*defense.Detector](enc); ok {
		d.detect = x
		x.SetLogger(func(key string, _ int, _ float64, flagged bool) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.rows[key]++
			if _, seen := d.first[key]; flagged && !seen {
				d.first[key] = d.rows[key]
			}
		})
	}
	if x, ok := defense.Find[*defense.PRADA](enc); ok {
		d.prada = x
		x.SetLogger(func(key string, row int, _ float64, flagged bool) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if _, seen := d.first[key]; flagged && !seen {
				d.first[key] = int64(row) + 1 // distances tested + the growing set's first image
			}
		})
	}
	if x, ok := defense.Find[*defense.B4B](enc); ok {
		d.b4b = x
	}
	return d
}

func (d *detectors) name() string {
	switch {
	case d.detect != nil:
		return "detect"
	case d.prada != nil:
		return "prada"
	case d.b4b != nil:
		return "b4b"
	}
	return ""
}

// verdicts judges every key of the stage and scores the detector over them.
func (d *detectors) verdicts(ctx context.Context, store *serve.Store, st *Stage) ([]KeyVerdict, error) {
	if d.name() == "" {
		return nil, nil
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	role := map[string]string{}
	for _, u := range st.Users {
		role[u.Name] = "user"
		if u.Catalogue {
			role[u.Name] = "catalogue"
		}
	}
	for _, a := range st.Attackers {
		for _, k := range a.Keys {
			role[k] = "attacker"
			if len(a.Keys) > 1 {
				role[k] = "sybil"
			}
		}
	}
	var out []KeyVerdict
	for _, k := range keys {
		v := KeyVerdict{Key: k.Name, Role: role[k.Name]}
		d.judge(k.ID, &v)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	st.Detection = Score(d.name(), out)
	return out, nil
}

// judge fills v from the detector's state for key id.
func (d *detectors) judge(id string, v *KeyVerdict) {
	d.mu.Lock()
	first, flagged := d.first[id]
	d.mu.Unlock()
	switch {
	case d.detect != nil:
		s := d.detect.Stats(id)
		v.Queries = s.Queries
		if s.Queries > 0 {
			v.Score = float64(s.Flagged) / float64(s.Queries)
		}
	case d.prada != nil:
		s := d.prada.Stats(id)
		v.Queries = s.Queries
		if s.Tested {
			v.Score = 1 - s.W
		}
		flagged = flagged || d.prada.Blocked(id)
	case d.b4b != nil:
		v.Queries = d.b4b.Queries(id)
		_, v.Score = d.b4b.Coverage(id)
		flagged = d.b4b.Sigma(v.Score) >= 1
	}
	v.Flagged = flagged
	if flagged {
		v.FirstFlag = first
	}
}

// Score computes TPR, FPR, F1 and ROC-AUC over judged keys (roles attacker and sybil are
// the positives, user and catalogue the negatives).
func Score(name string, keys []KeyVerdict) *Detection {
	det := &Detection{Detector: name}
	var pos, neg []float64
	tp, fp, sybils, sybilTP := 0, 0, 0, 0
	for _, k := range keys {
		switch k.Role {
		case "attacker", "sybil":
			pos = append(pos, k.Score)
			if k.Flagged {
				tp++
			}
			if k.Role == "sybil" {
				sybils++
				if k.Flagged {
					sybilTP++
				}
			}
		case "user", "catalogue":
			neg = append(neg, k.Score)
			if k.Flagged {
				fp++
			}
		}
	}
	det.Positives, det.Negatives = len(pos), len(neg)
	if len(pos) > 0 {
		det.TPR = float64(tp) / float64(len(pos))
	}
	if sybils > 0 {
		det.SybilTPR = float64(sybilTP) / float64(sybils)
	}
	if len(neg) > 0 {
		det.FPR = float64(fp) / float64(len(neg))
	}
	if tp > 0 {
		prec := float64(tp) / float64(tp+fp)
		det.F1 = 2 * prec * det.TPR / (prec + det.TPR)
	}
	det.AUC = rocAUC(pos, neg)
	return det
}

// rocAUC is the Mann-Whitney estimate of the ROC area: P(pos > neg) + P(pos = neg)/2 over all
// pairs (0.5 when either side is empty).
func rocAUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return 0.5
	}
	s := 0.0
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				s++
			case p == n:
				s += 0.5
			}
		}
	}
	return s / float64(len(pos)*len(neg))
}
