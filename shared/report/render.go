package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

//go:embed report.html.tmpl
var pageText string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"when":    when,
	"seconds": FormatSeconds,
	"bytes":   FormatBytes,
	"count":   count,
	"percent": percent,
	"class":   statusClass,
	"add":     func(a, b float64) float64 { return a + b },
	"sub":     func(a, b float64) float64 { return a - b },
}).Parse(pageText))

// Render writes the report as one HTML page that loads nothing (its
// Content-Security-Policy forbids it too): styles and charts inline.
func (r *Report) Render(w io.Writer) error {
	return page.Execute(w, r)
}

// RecentDays is the span of the summary's recent tests, for the page.
func (r *Report) RecentDays() int { return RecentDays }

// HasUserValidation says a run carries a user's validation verdict (the
// runs table then has a column for it).
func (r *Report) HasUserValidation() bool {
	for _, run := range r.Runs {
		if run.UserValidation != "" {
			return true
		}
	}
	return false
}

// WriteFile renders the report into path atomically: into a temporary
// file beside it, then renamed over it, so a reader never sees half a
// page and a failure leaves what was there.
func (r *Report) WriteFile(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := r.Render(f); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// when writes a time (or a *time.Time; nil: "—") in UTC to the second.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		t = *x
	default:
		return fmt.Sprint(v)
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// count writes an integer with thousands separators.
func count(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// percent writes a fraction as a percentage: 0.001 is "0.1%".
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(f*100*1e4)/1e4, 'f', -1, 64) + "%"
}
