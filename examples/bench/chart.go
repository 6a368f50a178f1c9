package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // png, jpeg, tiff
	_ "gonum.org/v1/plot/vg/vgsvg" // svg
)

var (
	chainColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	rawColor   = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
)

const (
	chartWidth  = 11 * vg.Inch
	chartRow    = 2.3 * vg.Inch // per pattern
	chartHeader = 0.75 * vg.Inch
)

// writeChart draws recs to path, in the format its extension names (.svg,
// .png, .jpg, .tiff): one row per record with its throughput, its p50/p99
// latency and its CPU time per envelope, chain and raw side by side, each
// panel titled with the chain/raw ratio. The header lines are title lines.
func writeChart(path string, header []string, recs []record) error {
	if len(recs) == 0 {
		return fmt.Errorf("chart %s: no results to draw", path)
	}
	format := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	c, err := draw.NewFormattedCanvas(chartWidth, chartHeader+vg.Length(len(recs))*chartRow, format)
	if err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	dc := draw.New(c)

	sty := draw.TextStyle{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, 11),
		XAlign:  draw.XCenter,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
	y := dc.Max.Y - 6
	for _, line := range header {
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: y}, line)
		y -= sty.Font.Size * 1.4
	}

	rows := make([][]*plot.Plot, len(recs))
	for i, r := range recs {
		rows[i], err = chartRowPlots(r)
		if err != nil {
			return fmt.Errorf("chart %s: %w", path, err)
		}
	}
	body := draw.Crop(dc, 0, 0, 0, -chartHeader)
	tiles := draw.Tiles{Rows: len(recs), Cols: 3, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 3,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for i, row := range plot.Align(rows, tiles, body) {
		for j, cv := range row {
			rows[i][j].Draw(cv)
		}
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return f.Close()
}

// chartRowPlots returns the three panels of r: throughput, latency and CPU.
func chartRowPlots(r record) ([]*plot.Plot, error) {
	tput, err := pairPlot(fmt.Sprintf("%s: env/s, chain/raw %.2f", r.label(), r.Ratio),
		[]string{"throughput"}, []float64{r.ChainEnvPerS}, []float64{r.RawEnvPerS}, "%.0f")
	if err != nil {
		return nil, err
	}
	lat, err := pairPlot(fmt.Sprintf("latency ms, chain/raw p50 %.2f, p99 %.2f", r.P50Ratio, r.P99Ratio),
		[]string{"p50", "p99"}, []float64{r.ChainP50US / 1000, r.ChainP99US / 1000}, []float64{r.RawP50US / 1000, r.RawP99US / 1000}, "%.2f")
	if err != nil {
		return nil, err
	}
	cpu, err := pairPlot(fmt.Sprintf("CPU µs/env, chain/raw %.2f", r.CPURatio),
		[]string{"CPU"}, []float64{r.ChainCPUUSPerEnv}, []float64{r.RawCPUUSPerEnv}, "%.1f")
	if err != nil {
		return nil, err
	}
	return []*plot.Plot{tput, lat, cpu}, nil
}

// pairPlot is a bar chart with, for each name, a chain bar and a raw bar
// labelled with their values in the format valFmt.
func pairPlot(title string, names []string, chain, raw []float64, valFmt string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 10
	p.Y.Min = 0
	p.Y.Tick.Label.Font.Size = 8
	p.X.Tick.Label.Font.Size = 9
	const w = 0.3 * vg.Inch
	for _, side := range []struct {
		name   string
		vals   []float64
		color  color.Color
		offset vg.Length
	}{{"chain", chain, chainColor, -w / 2}, {"raw franz-go", raw, rawColor, w / 2}} {
		b, err := plotter.NewBarChart(plotter.Values(side.vals), w)
		if err != nil {
			return nil, err
		}
		b.Color, b.Offset, b.LineStyle.Width = side.color, side.offset, 0
		p.Add(b)
		p.Legend.Add(side.name, b)
		var xy plotter.XYLabels
		for i, v := range side.vals {
			xy.XYs = append(xy.XYs, plotter.XY{X: float64(i), Y: v})
			xy.Labels = append(xy.Labels, fmt.Sprintf(valFmt, v))
		}
		l, err := plotter.NewLabels(xy)
		if err != nil {
			return nil, err
		}
		l.Offset = vg.Point{X: side.offset, Y: 2}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = 7
			l.TextStyle[i].XAlign = draw.XCenter
		}
		p.Add(l)
	}
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 8
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.7, float64(len(names))-0.3
	// Room above the tallest bar for its label and the legend.
	p.Y.Max *= 1.3
	return p, nil
}
