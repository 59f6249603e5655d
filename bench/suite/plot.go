package suite

import (
	"math"
	"path/filepath"

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
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
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
	w := vg.Points(40 / float64(max(1, len(series))))
	for i, s := range series {
		vals := make(plotter.Values, len(groups))
		for j := range vals {
			if j < len(s.Values) && !math.IsNaN(s.Values[j]) && !math.IsInf(s.Values[j], 0) {
				vals[j] = s.Values[j]
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
