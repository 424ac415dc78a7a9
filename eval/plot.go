package eval

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// PlotProbe writes every row's linear-probe top-1 accuracy with its 95% interval to path (a
// point and an error bar per row, the axis zoomed to the intervals so that the differences
// show); the format follows the extension (.png, .svg, .pdf, ...).
func PlotProbe(r *Report, path string) error {
	if r == nil || len(r.Rows) == 0 {
		return fmt.Errorf("plot %s: the report has no rows: expected at least one evaluated model", path)
	}
	pts := make([]IntervalPoint, len(r.Rows))
	for i, row := range r.Rows {
		pts[i] = IntervalPoint{Name: row.Name, Value: 100 * row.ProbeTop1, Lo: 100 * row.ProbeCI[0], Hi: 100 * row.ProbeCI[1]}
	}
	title := fmt.Sprintf("Linear probe top-1 on %s (%d train / %d test images), 95%% Wilson intervals", r.Dataset, r.TrainN, r.TestN)
	return PlotIntervals(path, title, "probe top-1 accuracy (%)", pts)
}

// IntervalPoint is one named value with its interval [Lo, Hi] (both 0: none drawn).
type IntervalPoint struct {
	Name          string
	Value, Lo, Hi float64
}

// PlotIntervals writes one point per name with its interval as an error bar and its value as a
// label, on an axis that spans the intervals (not zero: accuracies of 80-90% differ by tenths).
func PlotIntervals(path, title, ylabel string, pts []IntervalPoint) error {
	if len(pts) == 0 {
		return fmt.Errorf("plot %s: no points: expected at least one", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)
	xys := make(plotter.XYs, len(pts))
	errs := make(plotter.YErrors, len(pts))
	text := make([]string, len(pts))
	names := make([]string, len(pts))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, pt := range pts {
		if math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) {
			return fmt.Errorf("plot %s: %s is %v: expected a finite value", path, pt.Name, pt.Value)
		}
		xys[i] = plotter.XY{X: float64(i), Y: pt.Value}
		if pt.Lo != 0 || pt.Hi != 0 {
			errs[i].Low, errs[i].High = pt.Value-pt.Lo, pt.Hi-pt.Value
		}
		text[i], names[i] = fmt.Sprintf("%.1f", pt.Value), pt.Name
		lo, hi = math.Min(lo, pt.Value-errs[i].Low), math.Max(hi, pt.Value+errs[i].High)
	}
	dots, err := plotter.NewScatter(xys)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	dots.GlyphStyle.Shape, dots.GlyphStyle.Radius, dots.GlyphStyle.Color = draw.CircleGlyph{}, vg.Points(3), plotutil.Color(0)
	bars, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{xys, errs})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	bars.LineStyle.Color, bars.LineStyle.Width = plotutil.Color(0), vg.Points(1.2)
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign = 0.3 // right of the point, clear of its bar
	}
	p.Add(bars, dots, labels)
	p.NominalX(names...)
	if len(names) > 6 { // long rows of names overlap: slant them
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	span := math.Max(hi-lo, 1e-3)
	p.Y.Min, p.Y.Max = lo-0.08*span, hi+0.08*span
	p.Y.Tick.Marker = evenTicks(span)
	p.X.Min, p.X.Max = -0.5, float64(len(pts))-0.5
	return save(p, path)
}

// evenTicks labels the axis every 1, 2, 5, 10 ... units, about 5 to 12 labels over span.
func evenTicks(span float64) plot.Ticker {
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 12 {
			step *= m
			break
		}
	}
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ticks []plot.Tick
		for v := math.Ceil(lo/step) * step; v <= hi; v += step {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
		return ticks
	})
}

// PlotLines writes a line chart to path (format from the extension): one line with
// point markers per series, named by its key in the legend, each point an (x, y) pair.
// Points are drawn in increasing x. Every series needs at least one point, and every
// value must be finite. intervals, when it has a series' name, gives each of its points'
// [lo, hi] in the series' order, drawn as error bars.
func PlotLines(path, title, xlabel, ylabel string, series map[string][][2]float64, intervals map[string][][2]float64) error {
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
	lo, hi := math.Inf(1), math.Inf(-1)
	var bars []plot.Plotter
	for k, name := range names {
		pts, ivs := series[name], intervals[name]
		if ivs != nil && len(ivs) != len(pts) {
			return fmt.Errorf("plot %s: series %q has %d points and %d intervals: expected one per point", path, name, len(pts), len(ivs))
		}
		order := make([]int, len(pts))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case pts[a][0] < pts[b][0]:
				return -1
			case pts[a][0] > pts[b][0]:
				return 1
			}
			return 0
		})
		xys := make(plotter.XYs, len(pts))
		errs := make(plotter.YErrors, len(pts))
		for i, j := range order {
			xys[i] = plotter.XY{X: pts[j][0], Y: pts[j][1]}
			lo, hi = math.Min(lo, pts[j][1]), math.Max(hi, pts[j][1])
			if ivs != nil {
				errs[i].Low, errs[i].High = pts[j][1]-ivs[j][0], ivs[j][1]-pts[j][1]
				lo, hi = math.Min(lo, ivs[j][0]), math.Max(hi, ivs[j][1])
			}
		}
		args = append(args, name, xys)
		if ivs != nil {
			eb, err := plotter.NewYErrorBars(struct {
				plotter.XYs
				plotter.YErrors
			}{xys, errs})
			if err != nil {
				return fmt.Errorf("plot %s: %w", path, err)
			}
			eb.LineStyle.Color = plotutil.Color(k)
			bars = append(bars, eb)
		}
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	p.Add(bars...)
	// Room above the data for the legend (drawn top left), so that it covers no line: each
	// entry takes about a twelfth of the plot's height.
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
