package study

import (
	"fmt"
	"html"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ssl-onnx/ssl-onnx/eval"
)

func pct(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

func optf(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

func wmText(w *WatermarkCheck) string {
	if w == nil {
		return "n/a"
	}
	verdict := "absent"
	if w.Present {
		verdict = "present"
	}
	return fmt.Sprintf("%s (%.1f%%, p %.2g)", verdict, 100*w.Accuracy, w.PValue)
}

// attackerCells are the table cells of one stolen copy.
func attackerCells(a AttackerResult) []string {
	got := fmt.Sprintf("%d / %d", a.Answered, a.Billed)
	if a.Refused != "" {
		got += " (refused)"
	}
	return []string{a.Name, pct(a.Probe) + " " + ciText(a.ProbeCI) + sig(a.ProbeP), optf(a.Fidelity, "%.3f"), optf(a.Advantage, "%.2f"), got, wmText(a.Watermark)}
}

var attackerHead = []string{"attacker", "stolen probe [95% CI]", "fidelity (cos)", "advantage", "answered / billed", "watermark"}

func ciText(iv eval.Interval) string { return fmt.Sprintf("[%.1f, %.1f]", 100*iv[0], 100*iv[1]) }

// sig marks a difference from the undefended API that is not significant at 5% (McNemar).
func sig(p *float64) string {
	if p != nil && *p >= 0.05 {
		return " (n.s.)"
	}
	return ""
}

// dropText is a stage's mean drop in points, marked n.s. when no user's own drop is significant.
func dropText(st *Stage) string {
	t := fmt.Sprintf("%.2f", st.UserDrop)
	sigAny, tested := false, false
	for _, u := range st.Users {
		if u.DropP != nil {
			tested = true
			sigAny = sigAny || *u.DropP < 0.05
		}
	}
	if tested && !sigAny {
		t += " (n.s.)"
	}
	return t
}

// Print writes the study's main table: per defense, the users' cost and each attacker's copy.
func (r *Results) Print(w io.Writer) error {
	fmt.Fprintf(w, "victim %s: probe %s (random init %s) on %d train / %d test images\n",
		r.Victim, pct(r.Eval.VictimProbe), pct(r.Eval.RandomProbe), r.Eval.TrainN, r.Eval.TestN)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "defense\tusers' probe (mean, spread)\tdrop (points)\t"+strings.Join(attackerHead, "\t")+"\t")
	for _, st := range r.Stages {
		for i, a := range st.Attackers {
			lead := []string{"", "", ""}
			if i == 0 {
				lead = []string{st.Defense, fmt.Sprintf("%s +- %.2f", pct(st.UserTop1Mean), 100*st.UserTop1Spread/2), dropText(st)}
			}
			fmt.Fprintln(tw, strings.Join(append(lead, attackerCells(a)...), "\t")+"\t")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printOverSeeds(w, r.OverSeeds); err != nil {
		return err
	}
	for _, st := range r.Stages {
		if d := st.Detection; d != nil {
			fmt.Fprintf(w, "detector %s (%s): TPR %.2f (sybil keys %.2f), FPR %.2f, F1 %.2f, ROC-AUC %.2f over %d attacker / %d user keys\n",
				d.Detector, st.Defense, d.TPR, d.SybilTPR, d.FPR, d.F1, d.AUC, d.Positives, d.Negatives)
		}
	}
	return nil
}

// WriteReport writes the self-contained HTML report.
func WriteReport(r *Results, path string) error {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>ssl-onnx defend: what each defense costs</title><style>
body{font-family:sans-serif;max-width:1180px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#555;font-size:90%}</style></head><body>`)
	fmt.Fprintf(&b, "<h1>What each defense costs legitimate users and attackers</h1>")
	c := r.Config
	fmt.Fprintf(&b, `<p>Victim <code>%s</code>: linear probe %s (random-init ResNet-18 of its shape: %s), on fmnist train[0,%d) / test[0,%d). `+
		`Every defense setting was served by a real <code>ssl-onnx serve</code> on loopback with one API key per user. `+
		`%d legitimate users each embedded %d own labelled images and %d test images (the last user is a catalogue: sorted by class, every image twice); `+
		`attackers stole with %s at %d queries, %d epochs; the sybil attacker split the same budget over %d keys. Wall time %.1f min.</p>`,
		e(r.Victim), pct(r.Eval.VictimProbe), pct(r.Eval.RandomProbe), r.Eval.TrainN, r.Eval.TestN,
		c.Users, c.UserImages, c.TestImages, e(strings.Join(c.Losses, ", ")), c.Budget, c.StealEpochs, c.Sybils, r.Seconds/60)
	b.WriteString(`<h2>Trade-off</h2><div class="charts">`)
	for _, svg := range TradeoffSVG(r) {
		b.WriteString(svg)
	}
	b.WriteString(`</div><p class="note">x: the legitimate users' mean probe accuracy lost against the undefended API (points, on a symmetric log scale: right = costlier for honest users). ` +
		`y: what the attacker's copy is worth, measured against the undefended victim (bars: 95% Wilson intervals over the test images). The noise sweep is joined by a line; the star is the undefended API.</p>`)
	b.WriteString(`<h2>Per defense</h2>`)
	table(&b, append([]string{"defense", "users' probe (mean ± half-spread)", "drop (points)"}, attackerHead...), summaryRows(r))
	b.WriteString(`<p class="note">Intervals: 95% Wilson over the test images. (n.s.): not significantly different from the undefended API at 5% ` +
		`(exact McNemar test on the same test images; for the users' drop: no user's own drop is significant). ` +
		`advantage = (stolen probe - random init) / (victim - random init): 1 = the victim's edge over random init recovered, 0 = none. ` +
		`answered / billed: queries the API answered before any refusal, and what its ledger charged.</p>`)
	if len(r.OverSeeds) > 0 {
		b.WriteString(`<h2>Over training seeds</h2>`)
		table(&b, seedHead, seedRows(r.OverSeeds))
		b.WriteString(`<p class="note">Each attacker stole once per seed (the stolen encoder's initialisation and batch order; same queries). ` +
			`sd: sample standard deviation over the seeds. watermark: copies in which the owner's watermark was found, of those checked.</p>`)
	}
	writeDetectors(&b, r)
	writeUsers(&b, r)
	b.WriteString(`</body></html>`)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func table(b *strings.Builder, head []string, rows [][]string) {
	b.WriteString("<table><tr>")
	for _, h := range head {
		fmt.Fprintf(b, "<th>%s</th>", html.EscapeString(h))
	}
	b.WriteString("</tr>")
	for _, row := range rows {
		b.WriteString("<tr>")
		for _, c := range row {
			fmt.Fprintf(b, "<td>%s</td>", html.EscapeString(c))
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</table>")
}

func summaryRows(r *Results) [][]string {
	var rows [][]string
	for _, st := range r.Stages {
		for i, a := range st.Attackers {
			lead := []string{"", "", ""}
			if i == 0 {
				lead = []string{st.Defense, fmt.Sprintf("%s ± %.2f", pct(st.UserTop1Mean), 100*st.UserTop1Spread/2), dropText(st)}
			}
			rows = append(rows, append(lead, attackerCells(a)...))
		}
	}
	return rows
}

func writeDetectors(b *strings.Builder, r *Results) {
	var rows [][]string
	for _, st := range r.Stages {
		if d := st.Detection; d != nil {
			rows = append(rows, []string{st.Defense, fmt.Sprintf("%.2f", d.TPR), fmt.Sprintf("%.2f", d.SybilTPR), fmt.Sprintf("%.2f", d.FPR),
				fmt.Sprintf("%.2f", d.F1), fmt.Sprintf("%.2f", d.AUC), fmt.Sprintf("%d / %d", d.Positives, d.Negatives)})
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString(`<h2>Detectors</h2>`)
	table(b, []string{"defense", "TPR (attacker keys)", "TPR (sybil keys)", "FPR (user keys)", "F1", "ROC-AUC", "attacker / user keys"}, rows)
	b.WriteString(`<p class="note">Scores: detect - fraction of a key's answers replaced by noise; prada - 1 - Shapiro-Wilk W of its last test; ` +
		`b4b - fraction of hash buckets covered (flagged when its noise reaches the answers' RMS).</p>`)
	for _, st := range r.Stages {
		if len(st.Keys) == 0 {
			continue
		}
		var kr [][]string
		for _, k := range st.Keys {
			first := "-"
			if k.Flagged {
				first = fmt.Sprint(k.FirstFlag)
			}
			kr = append(kr, []string{k.Key, k.Role, fmt.Sprint(k.Queries), fmt.Sprint(k.Flagged), first, fmt.Sprintf("%.4f", k.Score)})
		}
		fmt.Fprintf(b, "<h3>%s: every key</h3>", html.EscapeString(st.Defense))
		table(b, []string{"key", "role", "images sent", "flagged", "first flagged after", "score"}, kr)
	}
}

func writeUsers(b *strings.Builder, r *Results) {
	b.WriteString(`<h2>Legitimate users</h2>`)
	var rows [][]string
	for _, st := range r.Stages {
		for _, u := range st.Users {
			refused := ""
			if u.Refused != "" {
				refused = "yes"
			}
			p := "-"
			if u.DropP != nil {
				p = fmt.Sprintf("%.2g", *u.DropP) + sig(u.DropP)
			}
			rows = append(rows, []string{st.Defense, u.Name, fmt.Sprintf("%d / %d", u.Answered, u.Sent), refused, pct(u.Top1) + " " + ciText(u.CI), fmt.Sprintf("%.2f", u.Drop), p})
		}
	}
	table(b, []string{"defense", "user", "answered / sent", "refused", "probe top-1 [95% CI]", "drop (points)", "drop p (McNemar)"}, rows)
}

// TradeoffSVG draws the trade-off charts as inline SVG (every text escaped).
func TradeoffSVG(r *Results) []string {
	var out []string
	for _, ch := range tradeoffCharts(r) {
		out = append(out, ch.SVG())
	}
	return out
}

// tradeoffCharts draws the users' cost against the attackers' gain: accuracy, then fidelity.
func tradeoffCharts(r *Results) []chart {
	acc := chart{title: "Attacker's copy: linear probe vs users' cost", xlabel: "legitimate users' accuracy drop (points, symlog)", ylabel: "stolen copy's probe top-1 (%)",
		hlines: []hline{{100 * r.Eval.VictimProbe, "victim"}, {100 * r.Eval.RandomProbe, "random init"}}}
	fid := chart{title: "Attacker's copy: fidelity vs users' cost", xlabel: "legitimate users' accuracy drop (points, symlog)", ylabel: "cosine to the undefended victim"}
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	shapes := []string{"circle", "triangle", "square", "circle"}
	if len(r.Stages) == 0 {
		return []chart{acc, fid}
	}
	for i, a := range r.Stages[0].Attackers {
		sa := series{name: a.Name, color: colors[i%len(colors)], shape: shapes[i%len(shapes)], hollow: strings.HasPrefix(a.Name, "sybil"), labels: i == 0}
		sf := sa
		noiseA, noiseF := sa, sa
		noiseA.name, noiseA.joined, noiseA.labels, noiseA.points = "", true, false, nil
		noiseF.name, noiseF.joined, noiseF.labels, noiseF.points = "", true, false, nil
		for _, st := range r.Stages {
			if i >= len(st.Attackers) {
				continue
			}
			at := st.Attackers[i]
			label := st.Defense
			pa := point{x: st.UserDrop, y: 100 * at.Probe, label: label, ylo: 100 * at.ProbeCI[0], yhi: 100 * at.ProbeCI[1]}
			sa.points = append(sa.points, pa)
			if at.Fidelity != nil {
				pf := point{x: st.UserDrop, y: *at.Fidelity, label: label}
				sf.points = append(sf.points, pf)
				if st.Defense == None || strings.HasPrefix(st.Defense, "noise") {
					noiseF.points = append(noiseF.points, pf)
				}
			}
			if st.Defense == None || strings.HasPrefix(st.Defense, "noise") {
				noiseA.points = append(noiseA.points, pa)
			}
		}
		if i == 0 { // the noise sweep of the first attacker, as a curve
			acc.series = append(acc.series, noiseA)
			fid.series = append(fid.series, noiseF)
		}
		acc.series = append(acc.series, sa)
		fid.series = append(fid.series, sf)
	}
	for _, ch := range []*chart{&acc, &fid} {
		for _, s := range ch.series {
			for _, p := range s.points {
				if p.label == None && s.labels {
					ch.series = append(ch.series, series{name: "undefended", color: "#ff7f0e", shape: "star", points: []point{p}})
				}
			}
		}
	}
	return []chart{acc, fid}
}

var seedHead = []string{"defense", "attacker", "seeds", "probe top-1 (mean ± sd)", "fidelity (mean ± sd)", "watermark found"}

func seedRows(ss []SeedSummary) [][]string {
	var rows [][]string
	for _, s := range ss {
		wm := "-"
		if s.WatermarkChecked > 0 {
			wm = fmt.Sprintf("%d of %d", s.WatermarkFound, s.WatermarkChecked)
		}
		rows = append(rows, []string{s.Defense, s.Attacker, fmt.Sprint(s.Seeds),
			fmt.Sprintf("%s ± %.2f", pct(s.ProbeMean), 100*s.ProbeSD), fmt.Sprintf("%.3f ± %.3f", s.FidelityMean, s.FidelitySD), wm})
	}
	return rows
}

// printOverSeeds writes the over-seeds table (nothing without one).
func printOverSeeds(w io.Writer, ss []SeedSummary) error {
	if len(ss) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(seedHead, "\t")+"\t")
	for _, r := range seedRows(ss) {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	return tw.Flush()
}
