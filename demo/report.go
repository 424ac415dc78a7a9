package demo

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/study"
)

// WriteReport writes dir/report.html: the side-by-side table of the victims, per victim its
// accuracy-vs-queries plot, evaluation and ledger, and the defense study's trade-off charts,
// with the plots embedded so the page is one self-contained file.
func WriteReport(r *Results, dir string) error {
	type section struct {
		Run    *VictimRun
		Plot   template.URL
		Table  string
		Ledger []Ledger
	}
	var sections []section
	for _, run := range r.Runs {
		path := filepath.Join(run.Dir, "accuracy-vs-queries.png")
		if err := plotAccuracy(run, path); err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var table strings.Builder
		if err := run.Eval.Print(&table); err != nil {
			return err
		}
		ledger := append([]Ledger(nil), run.Ledger...)
		sort.Slice(ledger, func(i, j int) bool { return ledger[i].Key < ledger[j].Key })
		// The page is ours and the data is base64 PNG: safe to mark as a URL.
		sections = append(sections, section{Run: run, Plot: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b)),
			Table: table.String(), Ledger: ledger})
	}
	var summary strings.Builder
	PrintSummary(&summary, r)
	var charts []template.HTML
	if r.Study != nil {
		for _, svg := range study.TradeoffSVG(r.Study) {
			charts = append(charts, template.HTML(svg)) // drawn by package study, every text escaped
		}
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	defer f.Close()
	return reportTmpl.Execute(f, map[string]any{"R": r, "Sections": sections, "Summary": summary.String(), "Charts": charts})
}

// plotAccuracy draws one victim's stolen copies' probe accuracy against queries, with the
// victim and the baselines as flat lines.
func plotAccuracy(run *VictimRun, path string) error {
	rows := map[string]eval.Row{}
	for _, row := range run.Eval.Rows {
		rows[row.Model] = row
	}
	series, intervals := map[string][][2]float64{}, map[string][][2]float64{}
	lo, hi := 0.0, 0.0
	for _, a := range run.Attacks {
		row := rows[a.Model]
		series[a.Loss] = append(series[a.Loss], [2]float64{float64(a.Spent), row.ProbeTop1})
		intervals[a.Loss] = append(intervals[a.Loss], row.ProbeCI)
		if hi == 0 || float64(a.Spent) > hi {
			hi = float64(a.Spent)
		}
		if lo == 0 || float64(a.Spent) < lo {
			lo = float64(a.Spent)
		}
	}
	for _, row := range run.Eval.Rows {
		if row.Kind == eval.KindReference || row.Kind == eval.KindBaseline {
			series[row.Name] = [][2]float64{{lo, row.ProbeTop1}, {hi, row.ProbeTop1}}
		}
	}
	return eval.PlotLines(path, run.Name+": stolen copies' probe top-1 vs queries, 95% intervals (flat: victim, baselines)", "queries", "probe top-1", series, intervals)
}

// PrintSummary writes the demo's final tables: the victims side by side (each stolen copy's
// probe with its interval, advantage recovered and fidelity), the watermark checks, and the
// defense study.
func PrintSummary(w io.Writer, r *Results) {
	for _, run := range r.Runs {
		rows := map[string]eval.Row{}
		var victim, random eval.Row
		for _, row := range run.Eval.Rows {
			rows[row.Model] = row
			switch {
			case row.Kind == eval.KindReference:
				victim = row
			case row.Name == eval.BaselineRandom:
				random = row
			}
		}
		fmt.Fprintf(w, "victim %s: probe %.3f %s (random init %.3f); probe on %d train / %d test images\n",
			run.Name, victim.ProbeTop1, victim.ProbeCI, random.ProbeTop1, run.Eval.TrainN, run.Eval.TestN)
		fmt.Fprintf(w, "  %-16s %7s %7s %-24s %9s %9s %9s\n", "stolen copy", "queries", "billed", "probe [95% CI]", "vs victim", "advantage", "fid.cos")
		for _, a := range run.Attacks {
			row := rows[a.Model]
			fmt.Fprintf(w, "  %-16s %7d %7d %-24s %9s %9s %9s\n", a.Row, a.Spent, a.Billed, fmt.Sprintf("%.3f %s", row.ProbeTop1, row.ProbeCI),
				pText(row.ProbeP), optText(row.Advantage, "%.2f"), optText(row.FidelityCos, "%.3f"))
		}
		for _, v := range run.Watermark {
			fmt.Fprintf(w, "  watermark in %-28s accuracy %.3f  p %-9.2g %s\n", v.Encoder, v.Result.Accuracy, v.Result.PValue, v.Result.Verdict)
		}
		fmt.Fprintln(w)
	}
	if r.Study != nil {
		fmt.Fprintf(w, "what defenses cost (compact study; `ssl-onnx defend` runs the full one):\n")
		r.Study.Print(w)
	}
}

func pText(p *float64) string {
	switch {
	case p == nil:
		return "-"
	case *p >= 0.05:
		return "n.s."
	}
	return fmt.Sprintf("p %.1g", *p)
}

func optText(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

var reportTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ssl-onnx demo report</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 13px; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
</style></head><body>
<h1>ssl-onnx: stealing self-supervised and label-trained encoders</h1>
<p>Each victim (ResNet-18 on Fashion-MNIST: {{range $i, $r := .R.Runs}}{{if $i}}, {{end}}<code>{{$r.Name}}</code>{{end}}) was served as a
paid API and stolen over HTTP with several losses and query budgets; a compact defense study then measured what defenses
cost honest users and attackers. Every copy and baseline is evaluated with a linear probe and a kNN monitor on the
Fashion-MNIST test split, and compared with its victim: fidelity (mean cosine of representations), the probe's 95% Wilson
interval, an exact McNemar test against the victim's probe on the same images (n.s.: not significantly different at 5%),
and the advantage recovered, (copy - random init) / (victim - random init). The whole run took {{printf "%.0f" .R.Seconds}} s.</p>
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
{{if .Charts}}<h2>What defenses cost users and attackers</h2>
<p>A compact version of <code>ssl-onnx defend</code> (its full report: <code>defend/report.html</code>). x: legitimate users' probe
accuracy lost against the undefended API, in points; y: the attacker's copy against the undefended victim.</p>
<div style="display:flex;flex-wrap:wrap;gap:8px">{{range .Charts}}{{.}}{{end}}</div>{{end}}
{{range .Sections}}<h2>Victim {{.Run.Name}}</h2>
<img alt="accuracy vs queries, {{.Run.Name}}" src="{{.Plot}}">
<h3>Full evaluation</h3>
<pre>{{.Table}}</pre>
<h3>Server ledger</h3>
<table><tr><th>API key</th><th>queries billed</th></tr>
{{range .Ledger}}<tr><td>{{.Key}}</td><td>{{.Queries}}</td></tr>{{end}}
</table>
{{end}}
<p>Raw numbers: <code>results.json</code>, and <code>eval.json</code> in each victim's folder.</p>
</body></html>
`))
