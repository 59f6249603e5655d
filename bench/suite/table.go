package suite

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Table is one experiment's result: printed as Markdown, written as CSV.
// A cell is a string, an integer, a float64, a Sample (median and spread
// over the runs) or nil (empty).
type Table struct {
	Name    string // file stem: Out/<Name>.csv
	Title   string
	Columns []string
	Rows    [][]any
	Notes   []string // printed under the table
}

// Add appends a row.
func (t *Table) Add(cells ...any) { t.Rows = append(t.Rows, cells) }

// Note appends a note printed under the table.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Markdown renders the table.
func (t *Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.Title)
	b.WriteString("| " + strings.Join(t.Columns, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(t.Columns)) + "\n")
	for _, r := range t.Rows {
		cells := make([]string, len(t.Columns))
		for i := range cells {
			if i < len(r) {
				cells[i] = human(r[i])
			}
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// human formats a cell for people.
func human(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case Sample:
		s := humanFloat(x.Median())
		if len(x.Values) > 1 {
			s += fmt.Sprintf(" ±%.0f%%", 50*x.Spread())
		}
		return s
	case float64:
		return humanFloat(x)
	case int:
		return humanInt(int64(x))
	case int64:
		return humanInt(x)
	case uint64:
		return humanInt(int64(x))
	}
	return fmt.Sprint(v)
}

func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanFloat(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "n/a"
	case math.Abs(f) >= 100:
		return humanInt(int64(math.Round(f)))
	case math.Abs(f) >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

// csvHeader expands Sample columns into median, min, max.
func (t *Table) csvRecords() [][]string {
	isSample := make([]bool, len(t.Columns))
	for _, r := range t.Rows {
		for i := range t.Columns {
			if i < len(r) {
				if _, ok := r[i].(Sample); ok {
					isSample[i] = true
				}
			}
		}
	}
	var head []string
	for i, c := range t.Columns {
		c = csvName(c)
		head = append(head, c)
		if isSample[i] {
			head = append(head, c+"_min", c+"_max")
		}
	}
	recs := [][]string{head}
	for _, r := range t.Rows {
		var rec []string
		for i := range t.Columns {
			var v any
			if i < len(r) {
				v = r[i]
			}
			if isSample[i] {
				if s, ok := v.(Sample); ok && len(s.Values) > 0 {
					rec = append(rec, raw(s.Median()), raw(s.Min()), raw(s.Max()))
				} else {
					rec = append(rec, raw(v), "", "")
				}
				continue
			}
			rec = append(rec, raw(v))
		}
		recs = append(recs, rec)
	}
	return recs
}

func csvName(c string) string {
	c = strings.ToLower(c)
	var b strings.Builder
	under := false
	for _, r := range c {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func raw(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return ""
		}
		return strconv.FormatFloat(x, 'g', 8, 64)
	case Sample:
		return raw(x.Median())
	}
	return fmt.Sprint(v)
}

// Emit prints t on Stdout and writes Out/<Name>.csv.
func (e *Env) Emit(t *Table) error {
	fmt.Fprintln(e.Stdout, t.Markdown())
	p := filepath.Join(e.Out, t.Name+".csv")
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(t.csvRecords()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	e.written = append(e.written, p)
	return nil
}
