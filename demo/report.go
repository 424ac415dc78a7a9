package demo

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/study"
)

// WriteReport writes dir/report.html: the results table, two plots (accuracy vs queries per
// loss, the server's ledger per key) and the defense study's trade-off charts,
// with the PNGs embedded so the page is one self-contained file.
func WriteReport(r *Results, dir string) error {
	plots := map[string]template.URL{}
	add := func(name string, draw func(path string) error) error {
		path := filepath.Join(dir, name+".png")
		if err := draw(path); err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// The page is ours and the data is base64 PNG: safe to mark as a URL.
		plots[name] = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
		return nil
	}
	top1 := map[string]float64{}
	for _, row := range r.Eval.Rows {
		top1[row.Model] = row.ProbeTop1
	}
	series := map[string][][2]float64{}
	for _, a := range r.Attacks {
		series[a.Loss] = append(series[a.Loss], [2]float64{float64(a.Spent), top1[a.Model]})
	}
	lo, hi := 0.0, 0.0
	for _, a := range r.Attacks {
		if hi == 0 || float64(a.Spent) > hi {
			hi = float64(a.Spent)
		}
		if lo == 0 || float64(a.Spent) < lo {
			lo = float64(a.Spent)
		}
	}
	for _, row := range r.Eval.Rows {
		if row.Kind == eval.KindReference || row.Kind == eval.KindBaseline {
			series[row.Name] = [][2]float64{{lo, row.ProbeTop1}, {hi, row.ProbeTop1}}
		}
	}
	if err := add("accuracy-vs-queries", func(p string) error {
		return eval.PlotLines(p, "Stolen copies: probe top-1 vs queries (flat lines: victim and baselines)", "queries", "probe top-1", series)
	}); err != nil {
		return err
	}
	ledger := append([]Ledger(nil), r.Ledger...)
	sort.Slice(ledger, func(i, j int) bool { return ledger[i].Key < ledger[j].Key })
	if len(ledger) > 0 {
		names, vals := make([]string, len(ledger)), make([]float64, len(ledger))
		for i, l := range ledger {
			names[i], vals[i] = l.Key, float64(l.Queries)
		}
		if err := add("ledger", func(p string) error {
			return eval.PlotBars(p, "Server ledger: queries billed per API key", "queries", names, vals, 0)
		}); err != nil {
			return err
		}
	}
	var table strings.Builder
	if err := r.Eval.Print(&table); err != nil {
		return err
	}
	var summary strings.Builder
	PrintSummary(&summary, r)
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	defer f.Close()
	var charts []template.HTML
	if r.Study != nil {
		for _, svg := range study.TradeoffSVG(r.Study) {
			charts = append(charts, template.HTML(svg)) // drawn by package study, every text escaped
		}
	}
	return reportTmpl.Execute(f, map[string]any{
		"R": r, "Plots": plots, "Table": table.String(), "Summary": summary.String(), "Ledger": ledger, "Charts": charts,
	})
}

// PrintSummary writes the demo's final table: each stolen copy with its queries, billed
// queries, probe accuracy and fidelity, next to the victim and the baselines.
func PrintSummary(w interface{ Write([]byte) (int, error) }, r *Results) {
	rows := map[string]eval.Row{}
	for _, row := range r.Eval.Rows {
		rows[row.Model] = row
	}
	f := func(p *float64) string {
		if p == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.3f", *p)
	}
	fmt.Fprintf(w, "%-24s %8s %8s %8s %8s %9s %9s\n", "encoder", "queries", "billed", "probe", "kNN", "fid.cos", "agree")
	for _, row := range r.Eval.Rows {
		if row.Kind != eval.KindModel {
			fmt.Fprintf(w, "%-24s %8s %8s %8.3f %8.3f %9s %9s\n", row.Name, "-", "-", row.ProbeTop1, row.KNNTop1, f(row.FidelityCos), f(row.Agreement))
		}
	}
	for _, a := range r.Attacks {
		row := rows[a.Model]
		name := "stolen " + a.Row
		fmt.Fprintf(w, "%-24s %8d %8d %8.3f %8.3f %9s %9s\n", name, a.Spent, a.Billed, row.ProbeTop1, row.KNNTop1, f(row.FidelityCos), f(row.Agreement))
	}
	if r.Study != nil {
		fmt.Fprintf(w, "\nwhat defenses cost (compact study; `ssl-onnx defend` runs the full one):\n")
		r.Study.Print(w)
	}
	if len(r.Watermark) > 0 {
		fmt.Fprintf(w, "\nwatermark check (owner's secret rotation head):\n")
		for _, v := range r.Watermark {
			fmt.Fprintf(w, "  %-28s accuracy %.3f  p %-9.2g %s\n", v.Encoder, v.Result.Accuracy, v.Result.PValue, v.Result.Verdict)
		}
	}
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
<h1>ssl-onnx: stealing a self-supervised encoder</h1>
<p>A SimCLR victim (ResNet-18) trained on Fashion-MNIST was served as a paid API and stolen over HTTP
with several losses and query budgets, and through defended APIs in a compact defense study. Every copy and
baseline is evaluated with a linear probe and a kNN monitor on the Fashion-MNIST test split, and compared
with the victim (fidelity: mean cosine similarity of representations; agreement of probe predictions).
The whole run took {{printf "%.0f" .R.Seconds}} s.</p>
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
{{with index .Plots "accuracy-vs-queries"}}<h2>Accuracy vs queries</h2><img alt="accuracy vs queries" src="{{.}}">{{end}}
{{if .Charts}}<h2>What defenses cost users and attackers</h2>
<p>A compact version of <code>ssl-onnx defend</code> (its full report: <code>defend/report.html</code>). x: legitimate users' probe
accuracy lost against the undefended API, in points; y: the attacker's copy against the undefended victim.</p>
<div style="display:flex;flex-wrap:wrap;gap:8px">{{range .Charts}}{{.}}{{end}}</div>{{end}}
<h2>Server ledger</h2>
{{with index .Plots "ledger"}}<img alt="ledger" src="{{.}}">{{end}}
<table><tr><th>API key</th><th>server</th><th>queries billed</th></tr>
{{range .Ledger}}<tr><td>{{.Key}}</td><td>{{.Server}}</td><td>{{.Queries}}</td></tr>{{end}}
</table>
<h2>Full evaluation</h2>
<pre>{{.Table}}</pre>
<p>Raw numbers: <code>results.json</code>, <code>eval.json</code>.</p>
</body></html>
`))
