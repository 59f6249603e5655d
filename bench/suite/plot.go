package suite

import (
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one line of a line plot.
type Series struct {
	Name   string
	X, Y   []float64
	Dashed bool // an ideal or reference line
}

// BarSeries is one colour of a grouped bar chart: a value per group.
type BarSeries struct {
	Name   string
	Values []float64
}

const plotW, plotH = 6 * vg.Inch, 3.6 * vg.Inch

// LinePlot writes Out/<name>.svg. Points that a log axis cannot show
// (zero, negative, NaN) are left out.
func (e *Env) LinePlot(name, title, xlabel, ylabel string, logX, logY bool, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	any := false
	for i, s := range series {
		var xys plotter.XYs
		for j := range s.X {
			x, y := s.X[j], s.Y[j]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(y, 0) || (logX && x <= 0) || (logY && y <= 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
		}
		if len(xys) == 0 {
			continue
		}
		any = true
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		l.Color, pts.Color = c, c
		pts.Shape = plotutil.Shape(i)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			pts.Radius = 0
		}
		p.Add(l, pts)
		p.Legend.Add(s.Name, l, pts)
	}
	if !any {
		p.Title.Text += " (no data)"
		logX, logY = false, false
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	}
	p.X.Tick.Marker = compactTicks{plot.DefaultTicks{}}
	p.Y.Tick.Marker = compactTicks{plot.DefaultTicks{}}
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = compactTicks{plot.LogTicks{Prec: -1}}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = compactTicks{logTicks{}}
	}
	p.Add(plotter.NewGrid())
	return e.save(p, name)
}

// BarPlot writes Out/<name>.svg: one group of bars per group label.
func (e *Env) BarPlot(name, title, ylabel string, groups []string, series []BarSeries) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	w := vg.Points(min(18, 0.75*330/float64(max(1, len(groups)))/float64(max(1, len(series)))))
	top := 0.0
	for i, s := range series {
		vals := make(plotter.Values, len(groups))
		for j := range vals {
			if j < len(s.Values) && !math.IsNaN(s.Values[j]) && !math.IsInf(s.Values[j], 0) {
				vals[j] = s.Values[j]
				top = max(top, vals[j])
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		b.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	p.NominalX(groups...)
	p.Y.Tick.Marker = compactTicks{plot.DefaultTicks{}}
	// Head room for the legend.
	p.Y.Min, p.Y.Max = 0, max(1, top*(1.15+0.07*float64(len(series))))
	p.Add(plotter.NewGrid())
	return e.save(p, name)
}

func (e *Env) save(p *plot.Plot, name string) error {
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Points(18)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	path := filepath.Join(e.Out, name+".svg")
	if err := p.Save(plotW, plotH, path); err != nil {
		return err
	}
	e.written = append(e.written, path)
	return nil
}

// compactTicks labels ticks as 2K, 1.5M, ...
type compactTicks struct{ plot.Ticker }

func (c compactTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := c.Ticker.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = compact(ts[i].Value)
		}
	}
	return ts
}

func compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "K"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// logTicks labels 1, 2 and 5 times each power of ten in range (LogTicks
// labels powers of ten only, often leaving a plot with one label).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		base := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := float64(m) * base
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = compact(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}
