package eval

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot size: 8 x 4.5 inches, which is 768 x 432 pixels in a PNG (96 dpi).
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// PlotProbe writes a bar chart of every row's linear-probe top-1 accuracy to path; the
// format follows the extension (.png, .svg, .pdf, ...).
func PlotProbe(r *Report, path string) error {
	if r == nil || len(r.Rows) == 0 {
		return fmt.Errorf("plot %s: the report has no rows: expected at least one evaluated model", path)
	}
	vals := make([]float64, len(r.Rows))
	names := make([]string, len(r.Rows))
	for i, row := range r.Rows {
		vals[i] = row.ProbeTop1
		names[i] = row.Name
	}
	title := fmt.Sprintf("Linear probe top-1 on %s (%d train / %d test)", r.Dataset, r.TrainN, r.TestN)
	return PlotBars(path, title, "top-1 accuracy", names, vals, 1)
}

// PlotBars writes a labelled bar chart (one bar per name) to path; yMax > 0 fixes the top of
// the axis (e.g. 1 for accuracies), 0 lets it follow the data.
func PlotBars(path, title, ylabel string, names []string, values []float64, yMax float64) error {
	if len(values) == 0 || len(names) != len(values) {
		return fmt.Errorf("plot %s: %d names for %d values: expected the same positive number", path, len(names), len(values))
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	if yMax > 0 {
		p.Y.Max = yMax
	}
	vals := make(plotter.Values, len(values))
	copy(vals, values)
	bars, err := plotter.NewBarChart(vals, vg.Points(min(80, 300/float64(len(vals)))))
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	bars.Color = plotutil.Color(0)
	bars.LineStyle.Width = 0
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(bars, grid)
	xys := make(plotter.XYs, len(vals))
	text := make([]string, len(vals))
	for i, v := range vals {
		xys[i] = plotter.XY{X: float64(i), Y: v}
		text[i] = fmt.Sprintf("%.3g", v)
		if v >= 1000 && v == math.Trunc(v) {
			text[i] = fmt.Sprintf("%.0f", v) // counts: 2000, not 2e+03
		}
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign = -0.5
		labels.TextStyle[i].YAlign = 0.2
	}
	p.Add(labels)
	p.NominalX(names...)
	if len(names) > 6 { // long rows of names overlap: slant them
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	p.X.Min, p.X.Max = -0.5, float64(len(vals))-0.5
	return save(p, path)
}

// PlotLines writes a line chart to path (format from the extension): one line with
// point markers per series, named by its key in the legend, each point an (x, y) pair.
// Points are drawn in increasing x. Every series needs at least one point, and every
// value must be finite.
func PlotLines(path, title, xlabel, ylabel string, series map[string][][2]float64) error {
	if len(series) == 0 {
		return fmt.Errorf("plot %s: no series: expected at least one", path)
	}
	names := make([]string, 0, len(series))
	for name, pts := range series {
		if len(pts) == 0 {
			return fmt.Errorf("plot %s: series %q has no points: expected at least one", path, name)
		}
		for i, pt := range pts {
			for _, v := range pt {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("plot %s: point %d of series %q is (%v, %v): expected finite values", path, i, name, pt[0], pt[1])
				}
			}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	args := make([]any, 0, 2*len(names))
	for _, name := range names {
		pts := slices.Clone(series[name])
		slices.SortStableFunc(pts, func(a, b [2]float64) int {
			switch {
			case a[0] < b[0]:
				return -1
			case a[0] > b[0]:
				return 1
			}
			return 0
		})
		xys := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xys[i] = plotter.XY{X: pt[0], Y: pt[1]}
		}
		args = append(args, name, xys)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	// Room above the data for the legend (drawn top left), so that it covers no line: each
	// entry takes about a twelfth of the plot's height.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, pts := range series {
		for _, pt := range pts {
			lo, hi = math.Min(lo, pt[1]), math.Max(hi, pt[1])
		}
	}
	if span := math.Max(hi-lo, 1e-3); len(names) > 0 {
		frac := math.Min(0.6, float64(len(names))/12+0.05)
		p.Y.Min, p.Y.Max = lo-0.05*span, hi+span*frac/(1-frac)
	}
	return save(p, path)
}

func save(p *plot.Plot, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := p.Save(plotWidth, plotHeight, path); err != nil {
		if strings.Contains(err.Error(), "unsupported format") {
			return fmt.Errorf("plot %s: %w: expected a .png, .svg, .pdf, .eps, .jpg or .tif file", path, err)
		}
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
