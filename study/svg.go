package study

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// point is one marker of a chart, labelled with its defense setting.
type point struct {
	x, y  float64
	label string
	// ylo, yhi: the 95% interval of y, drawn as an error bar (both 0: none).
	ylo, yhi float64
}

// series is one kind of marker; joined series are drawn as a line through their points in
// order (the noise sweep).
type series struct {
	name   string
	color  string
	shape  string // circle, triangle, square
	hollow bool
	joined bool
	labels bool // write each point's label beside it
	points []point
}

// hline is a horizontal reference line (the victim's level, random init's).
type hline struct {
	y     float64
	label string
}

// chart is a scatter chart drawn as inline SVG: axes scaled to the data, tick labels, and the
// legend below the plot area, never on the data.
type chart struct {
	title, xlabel, ylabel string
	series                []series
	hlines                []hline
}

const (
	chartW, chartH       = 560, 420
	padL, padR, padT     = 64, 20, 34
	plotH                = 300
	legendTop            = padT + plotH + 44
	chartFont            = `font-family="sans-serif"`
	gridColor, axisColor = "#ddd", "#333"
)

func (c chart) bounds() (x0, x1, y0, y1 float64) {
	x0, x1, y0, y1 = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, p := range s.points {
			x0, x1 = math.Min(x0, p.x), math.Max(x1, p.x)
			y0, y1 = math.Min(y0, p.y), math.Max(y1, p.y)
			if p.ylo != 0 || p.yhi != 0 {
				y0, y1 = math.Min(y0, p.ylo), math.Max(y1, p.yhi)
			}
		}
	}
	for _, h := range c.hlines {
		y0, y1 = math.Min(y0, h.y), math.Max(y1, h.y)
	}
	x0, x1 = math.Min(x0, 0), math.Max(x1, 1) // the undefended point sits at 0 drop
	// x is padded by 8% of its range on the symlog scale, y on its linear one.
	d := (symlog(x1) - symlog(x0)) * 0.08
	x0, x1 = symexp(symlog(x0)-d), symexp(symlog(x1)+d)
	dy := math.Max((y1-y0)*0.08, 1e-3)
	y0, y1 = y0-dy, y1+dy
	return
}

// ticks returns about five round tick values covering [lo, hi].
func ticks(lo, hi float64) []float64 {
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 6 {
			step *= m
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+1e-12; v += step {
		out = append(out, v)
	}
	return out
}

func tickText(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

func marker(b *strings.Builder, s series, x, y float64) {
	fill := s.color
	if s.hollow {
		fill = "white"
	}
	switch s.shape {
	case "triangle":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" stroke="%s" stroke-width="1.5"/>`, x, y-6, x-5.5, y+4.5, x+5.5, y+4.5, fill, s.color)
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s" stroke="%s" stroke-width="1.5"/>`, x-5, y-5, fill, s.color)
	case "star":
		fmt.Fprintf(b, `<polygon points="%s" fill="%s" stroke="%s"/>`, starPoints(x, y, 8), fill, s.color)
	default:
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="%s" stroke-width="1.5"/>`, x, y, fill, s.color)
	}
}

func starPoints(x, y, r float64) string {
	var pts []string
	for i := 0; i < 10; i++ {
		rr := r
		if i%2 == 1 {
			rr = r * 0.45
		}
		a := math.Pi/2 + float64(i)*math.Pi/5
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x+rr*math.Cos(a), y-rr*math.Sin(a)))
	}
	return strings.Join(pts, " ")
}

// symlog is the x axis' scale: linear near 0, logarithmic further out (sign(x) log(1+|x|)),
// so that defenses costing users 0.1 and 80 points both stay readable on one axis.
func symlog(x float64) float64 {
	if x < 0 {
		return -math.Log1p(-x)
	}
	return math.Log1p(x)
}

// symexp inverts symlog.
func symexp(v float64) float64 {
	if v < 0 {
		return -math.Expm1(-v)
	}
	return math.Expm1(v)
}

// symlogTicks are round values for a symlog axis covering [lo, hi].
func symlogTicks(lo, hi float64) []float64 {
	var out []float64
	for _, v := range []float64{-30, -10, -3, -1, 0, 1, 3, 10, 30, 100, 300} {
		if v >= lo && v <= hi {
			out = append(out, v)
		}
	}
	return out
}

// SVG draws the chart.
func (c chart) SVG() string {
	x0, x1, y0, y1 := c.bounds()
	pw := float64(chartW - padL - padR)
	sx0, sx1 := symlog(x0), symlog(x1)
	px := func(x float64) float64 { return padL + (symlog(x)-sx0)/(sx1-sx0)*pw }
	py := func(y float64) float64 { return padT + (y1-y)/(y1-y0)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`, chartW, chartH, chartW, chartH, chartFont)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`, padL, html.EscapeString(c.title))
	for _, t := range symlogTicks(x0, x1) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`, px(t), padT, px(t), padT+plotH, gridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, px(t), padT+plotH+15, tickText(t))
	}
	for _, t := range ticks(y0, y1) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, padL, py(t), padL+pw, py(t), gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-5, py(t)+4, tickText(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="none" stroke="%s"/>`, padL, padT, pw, plotH, axisColor)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, padL+pw/2, padT+plotH+32, html.EscapeString(c.xlabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">%s</text>`, padT+plotH/2, html.EscapeString(c.ylabel))
	for _, h := range c.hlines {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="5,4"/>`, padL, py(h.y), padL+pw, py(h.y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#666">%s</text>`, padL+pw-4, py(h.y)-4, html.EscapeString(h.label))
	}
	labels := &labelSet{}
	for _, s := range c.series {
		if s.joined && len(s.points) > 1 {
			var pts []string
			for _, p := range s.points {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.Join(pts, " "), s.color)
		}
		for _, p := range s.points {
			if p.ylo != 0 || p.yhi != 0 {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`, px(p.x), py(p.ylo), px(p.x), py(p.yhi), s.color)
			}
			marker(&b, s, px(p.x), py(p.y))
			if s.labels && p.label != "" {
				labels.place(&b, p.label, px(p.x), py(p.y), padL+0.7*pw)
			}
		}
	}
	// Legend below the plot area.
	lx, ly := float64(padL), float64(legendTop)
	for _, s := range c.series {
		if s.name == "" {
			continue
		}
		w := 22 + 6.5*float64(len(s.name))
		if lx+w > chartW {
			lx, ly = padL, ly+18
		}
		marker(&b, s, lx+5, ly)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, lx+14, ly+4, html.EscapeString(s.name))
		lx += w
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// labelSet places point labels without overlapping each other: a label goes beside its point,
// or moved up or down a line at a time, or is left out when no place is free (the tables
// carry every number).
type labelSet struct{ boxes [][4]float64 }

func (l *labelSet) place(b *strings.Builder, text string, x, y, rightEdge float64) {
	w, h := 5.5*float64(len(text)), 11.0
	anchor, left := "start", x+7
	if x > rightEdge { // near the right edge: write it to the left
		anchor, left = "end", x-7-w
	}
	for _, dy := range []float64{-6, 8, -18, 20, -30, 32, -42} {
		box := [4]float64{left, y + dy - h + 2, left + w, y + dy + 2}
		if !l.overlaps(box) {
			l.boxes = append(l.boxes, box)
			tx := x + 7
			if anchor == "end" {
				tx = x - 7
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="#222" text-anchor="%s">%s</text>`, tx, y+dy, anchor, html.EscapeString(text))
			return
		}
	}
}

func (l *labelSet) overlaps(a [4]float64) bool {
	for _, o := range l.boxes {
		if a[0] < o[2] && o[0] < a[2] && a[1] < o[3] && o[1] < a[3] {
			return true
		}
	}
	return false
}
