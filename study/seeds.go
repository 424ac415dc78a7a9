package study

import (
	"math"
	"regexp"
)

// SeedSummary is one attacker of one defense setting over its training seeds: the mean and
// sample standard deviation of its copies' probe accuracy and fidelity, and in how many of
// its copies the owner's watermark was found.
type SeedSummary struct {
	Defense      string  `json:"defense"`
	Attacker     string  `json:"attacker"`
	Seeds        int     `json:"seeds"`
	ProbeMean    float64 `json:"probe_top1_mean"`
	ProbeSD      float64 `json:"probe_top1_sd"`
	FidelityMean float64 `json:"fidelity_cos_mean"`
	FidelitySD   float64 `json:"fidelity_cos_sd"`
	// WatermarkFound of WatermarkChecked copies carried the watermark (0 of 0: no check).
	WatermarkFound   int `json:"watermark_found"`
	WatermarkChecked int `json:"watermark_checked"`
}

var seedSuffix = regexp.MustCompile(`-seed\d+$`)

// overSeeds groups every stage's attackers by name without their seed suffix; nil unless some
// attacker ran with more than one seed.
func overSeeds(stages []*Stage) []SeedSummary {
	var out []SeedSummary
	multi := false
	for _, st := range stages {
		local := overSeedsOf(st)
		for _, s := range local {
			multi = multi || s.Seeds > 1
		}
		out = append(out, local...)
	}
	if !multi {
		return nil
	}
	return out
}

// overSeedsOf summarises one stage's attackers, in the order they first appear.
func overSeedsOf(st *Stage) []SeedSummary {
	var out []SeedSummary
	var probes, fids [][]float64
	idx := map[string]int{}
	for _, a := range st.Attackers {
		base := seedSuffix.ReplaceAllString(a.Name, "")
		i, ok := idx[base]
		if !ok {
			i = len(out)
			idx[base] = i
			out = append(out, SeedSummary{Defense: st.Defense, Attacker: base})
			probes, fids = append(probes, nil), append(fids, nil)
		}
		out[i].Seeds++
		probes[i] = append(probes[i], a.Probe)
		if a.Fidelity != nil {
			fids[i] = append(fids[i], *a.Fidelity)
		}
		if a.Watermark != nil {
			out[i].WatermarkChecked++
			if a.Watermark.Present {
				out[i].WatermarkFound++
			}
		}
	}
	for i := range out {
		out[i].ProbeMean, out[i].ProbeSD = meanSD(probes[i])
		out[i].FidelityMean, out[i].FidelitySD = meanSD(fids[i])
	}
	return out
}

// meanSD is the mean and sample standard deviation (0 for fewer than two values).
func meanSD(v []float64) (mean, sd float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if len(v) < 2 {
		return mean, 0
	}
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)-1))
}
