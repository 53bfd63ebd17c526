package report

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/vault"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func tp(t time.Time) *time.Time { return &t }
func bp(b bool) *bool           { return &b }

func TestReportTimeTicks(t *testing.T) {
	for _, c := range []struct {
		name       string
		start, end time.Time
		want       []string
	}{
		{"a minute: every 10 s", t0.Add(-time.Minute), t0, []string{"09:59:00", "09:59:10", "09:59:20", "09:59:30", "09:59:40", "09:59:50", "10:00:00"}},
		{"a day: every 3 h, from the first whole one", t0.Add(-24*time.Hour + 30*time.Minute), t0,
			[]string{"Nov 22 12:00", "Nov 22 15:00", "Nov 22 18:00", "Nov 22 21:00", "Nov 23 00:00", "Nov 23 03:00", "Nov 23 06:00", "Nov 23 09:00"}},
		{"35 days: weekly dates", t0.AddDate(0, 0, -35), t0, []string{"2026-10-22", "2026-10-29", "2026-11-05", "2026-11-12", "2026-11-19"}},
		{"no span", t0, t0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := timeScale{Start: c.start, End: c.end, X0: 100, X1: 1100}
			ticks := timeTicks(s, 8)
			var got []string
			for i, tk := range ticks {
				got = append(got, tk.Label)
				if tk.Pos < s.X0 || tk.Pos > s.X1 || i > 0 && tk.Pos <= ticks[i-1].Pos {
					t.Errorf("tick %s at %v: outside [%v, %v] or out of order", tk.Label, tk.Pos, s.X0, s.X1)
				}
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
		})
	}
	// A tick sits where the scale puts its time.
	s := timeScale{Start: t0.Add(-time.Minute), End: t0, X0: 0, X1: 600}
	if got := timeTicks(s, 8)[3]; got.Pos != 300 || got.Label != "09:59:30" {
		t.Errorf("middle tick %+v, want 09:59:30 at 300", got)
	}
}

func TestReportNiceStepAndFormats(t *testing.T) {
	for _, c := range []struct {
		max  float64
		n    int
		want float64
	}{{1, 5, 0.2}, {7.3, 5, 2}, {110, 5, 50}, {4000, 5, 1000}, {0, 5, 1}} {
		if got := niceStep(c.max, c.n); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("niceStep(%v, %d) = %v, want %v", c.max, c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		max  float64
		want float64
	}{{13.2, 5}, {44, 10}, {140, 30}, {3960, 15 * 60}, {4 * 3600 * 1.1, 3600}, {400 * 86400, 12 * 7 * 86400}} {
		if got := secondsStep(c.max, 5); got != c.want {
			t.Errorf("secondsStep(%v, 5) = %v, want %v", c.max, got, c.want)
		}
	}
	for sec, want := range map[float64]string{0: "0 s", 0.4234: "0.42 s", 12.46: "12.5 s", 200: "3 min 20 s", 120: "2 min", 7500: "2 h 5 min", 3600: "1 h"} {
		if got := FormatSeconds(sec); got != want {
			t.Errorf("FormatSeconds(%v) = %q, want %q", sec, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[int64]string{0: "0", 999: "999", 4603: "4,603", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := count(v); got != want {
			t.Errorf("count(%d) = %q, want %q", v, got, want)
		}
	}
	if got := percent(0.001); got != "0.1%" {
		t.Errorf("percent(0.001) = %q", got)
	}
	if got := statusClass(`AVAIL"ABLE <x>`); got != "s-availablex" {
		t.Errorf("statusClass = %q: want letters only", got)
	}
}

// run is a restore test of bucket started at t0+at that took sec seconds
// against an RTO of rto seconds (0: none).
func run(bucket, id string, at time.Duration, status string, sec, rto float64) restoretest.Run {
	r := restoretest.Run{ID: id, Vault: "vault", Bucket: bucket, Type: restoretest.Continuous, At: t0.Add(at - time.Minute), StartedAt: t0.Add(at),
		RestoreSeconds: sec, Status: status, Objects: 3, Bytes: 30}
	if rto > 0 {
		r.RTOTargetSeconds, r.RTOMet = rto, bp(sec <= rto)
	}
	return r
}

func wrap(runs ...restoretest.Run) []Run {
	var out []Run
	for _, r := range runs {
		out = append(out, Run{Run: r, RTOMissed: r.RTOMet != nil && !*r.RTOMet})
	}
	return out
}

func TestReportRestoreChart(t *testing.T) {
	runs := wrap(
		run("b", "r3", 20*time.Minute, restoretest.StatusFailed, 3, 0),
		run("b", "r1", 0, restoretest.StatusSuccessful, 2, 10),
		run("b", "r2", 10*time.Minute, restoretest.StatusSuccessful, 12, 10),
	)
	c := NewRestoreChart("b", runs)
	// x: 20 minutes padded by a minute each side onto 80..1176; y: 0..15 s
	// (12 s × 1.1, up to a whole step of 5 s) onto 224..16.
	if c.MaxSeconds != 15 || c.PlotY1 != 224 || c.PlotY0 != 16 {
		t.Fatalf("y domain %v onto %v..%v", c.MaxSeconds, c.PlotY1, c.PlotY0)
	}
	x := func(m float64) float64 { return round(80 + (m+1)/22*1096) }
	y := func(s float64) float64 { return round(224 - s/15*208) }
	want := []RunMark{
		{X: x(0), Y: y(2), R: 6, ID: "r1", Status: "SUCCESSFUL", Class: "run s-successful"},
		{X: x(10), Y: y(12), R: 6, ID: "r2", Status: "SUCCESSFUL", Class: "run s-successful missed", RTOMissed: true},
		{X: x(20), Y: y(3), R: 6, ID: "r3", Status: "FAILED", Class: "run s-failed"},
	}
	if d := cmp.Diff(want, c.Marks, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Title" }, cmp.Ignore())); d != "" {
		t.Errorf("marks (-want +got):\n%s", d)
	}
	if !strings.Contains(c.Marks[1].Title, "RTO 10 s missed") || !strings.Contains(c.Marks[0].Title, "RTO 10 s met") {
		t.Errorf("titles: %q, %q", c.Marks[0].Title, c.Marks[1].Title)
	}
	// Both targets are 10 s: one step from r1 to r3, where the run without
	// a target ends it.
	if want := "M" + num(x(0)) + " " + num(y(10)) + "H" + num(x(10)) + "V" + num(y(10)) + "H" + num(x(20)); c.RTOPath != want {
		t.Errorf("RTO path %q, want %q", c.RTOPath, want)
	}
	if c.RTOLabel != "RTO 10 s" {
		t.Errorf("RTO label %q", c.RTOLabel)
	}
	var ys []string
	for _, tk := range c.YTicks {
		ys = append(ys, tk.Label)
	}
	if d := cmp.Diff([]string{"0 s", "5 s", "10 s", "15 s"}, ys); d != "" {
		t.Errorf("y ticks (-want +got):\n%s", d)
	}

	// A target that changes steps up, and a last run's target runs to the
	// plot's edge; a gap starts a new line.
	c = NewRestoreChart("b", wrap(
		run("b", "a", 0, restoretest.StatusSuccessful, 1, 5),
		run("b", "b", time.Minute, restoretest.StatusSuccessful, 1, 0),
		run("b", "c", 2*time.Minute, restoretest.StatusSuccessful, 1, 5),
		run("b", "d", 3*time.Minute, restoretest.StatusSuccessful, 1, 10),
	))
	if got := strings.Count(c.RTOPath, "M"); got != 2 || !strings.HasSuffix(c.RTOPath, "H"+num(c.PlotX1)) || !strings.Contains(c.RTOPath, "V") {
		t.Errorf("RTO path %q: want two lines, a step, to the edge", c.RTOPath)
	}

	// No run with a target: no line.
	c = NewRestoreChart("b", wrap(run("b", "a", 0, restoretest.StatusSuccessful, 0, 0)))
	if c.RTOPath != "" || len(c.Marks) != 1 || c.Marks[0].X != round((c.PlotX0+c.PlotX1)/2) || c.Marks[0].Y != c.PlotY1 {
		t.Errorf("one run, no RTO: path %q marks %+v", c.RTOPath, c.Marks)
	}
}

func TestReportTimeline(t *testing.T) {
	now := t0
	points := []vault.RecoveryPoint{
		{RecoveryPointID: "continuous:photos", ResourceName: "photos", Type: "CONTINUOUS", Status: "AVAILABLE",
			EarliestRestorableTime: tp(now.Add(-40 * time.Minute)), LatestRestorableTime: tp(now.Add(-20 * time.Minute)), JournaledThrough: tp(now.Add(-10 * time.Minute))},
		{RecoveryPointID: "snap-2", ResourceName: "photos", Type: "SNAPSHOT", Status: "PARTIAL", ScanCompletionDate: tp(now.Add(-30 * time.Minute)), StorageClass: vault.StorageWarm},
		{RecoveryPointID: "snap-1", ResourceName: "photos", Type: "SNAPSHOT", Status: "AVAILABLE", ScanCompletionDate: tp(now.Add(-50 * time.Minute)), StorageClass: vault.StorageCold},
	}
	runs := []restoretest.Run{run("logs", "r1", -5*time.Minute, restoretest.StatusFailed, 1, 0)}
	r := New("vault", "", now, points, runs)
	tl := r.Timeline
	if len(tl.Rows) != 2 || tl.Rows[0].Bucket != "logs" || tl.Rows[1].Bucket != "photos" {
		t.Fatalf("rows %+v", tl.Rows)
	}
	// The axis spans the oldest time held (50 min ago) to now, padded by
	// a 50th each side.
	if want := now.Add(-50*time.Minute - time.Minute); !tl.Start.Equal(want) || !tl.End.Equal(now.Add(time.Minute)) {
		t.Errorf("axis %s..%s, want %s..%s", tl.Start, tl.End, want, now.Add(time.Minute))
	}
	s := timeScale{Start: tl.Start, End: tl.End, X0: tl.PlotX0, X1: tl.PlotX1}
	if tl.NowX != s.at(now) || tl.NowX >= tl.PlotX1 {
		t.Errorf("now at %v, want %v", tl.NowX, s.at(now))
	}
	logs, photos := tl.Rows[0], tl.Rows[1]
	if !logs.Empty || logs.Band != nil || len(logs.Marks) != 0 || len(logs.Tests) != 1 || logs.Tests[0].Class != "test s-failed" || logs.Tests[0].X != s.at(now.Add(-6*time.Minute)) {
		t.Errorf("logs row (a restore test, no point): %+v", logs)
	}
	b := photos.Band
	if photos.Empty || b == nil || b.X != s.at(now.Add(-40*time.Minute)) || round(b.X+b.W) != s.at(now.Add(-20*time.Minute)) ||
		b.JournalX != round(b.X+b.W) || round(b.JournalX+b.JournalW) != s.at(now.Add(-10*time.Minute)) || b.Status != "s-available" {
		t.Errorf("photos band %+v", b)
	}
	if b.Y+b.H/2 != photos.MidY || photos.MidY <= photos.Y || photos.MidY >= photos.Y+timelineRowH {
		t.Errorf("band %+v outside its row %+v", b, photos)
	}
	want := []Mark{
		{X: s.at(now.Add(-50 * time.Minute)), Y: photos.MidY, Class: "pt s-available cold"},
		{X: s.at(now.Add(-30 * time.Minute)), Y: photos.MidY, Class: "pt s-partial"},
	}
	for i := range want {
		want[i].D = diamond(want[i].X, want[i].Y, timelineMarkR)
	}
	if d := cmp.Diff(want, photos.Marks, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Title" }, cmp.Ignore())); d != "" {
		t.Errorf("snapshot marks, oldest first (-want +got):\n%s", d)
	}
	if !strings.Contains(photos.Marks[0].Title, "snap-1") || !strings.Contains(photos.Marks[0].Title, "COLD") {
		t.Errorf("title %q", photos.Marks[0].Title)
	}
	if tl.GridY1 != timelineTop+2*timelineRowH || tl.Height <= tl.GridY1 {
		t.Errorf("height %v grid to %v", tl.Height, tl.GridY1)
	}
	if got := diamond(10, 20, 5); got != "M10 15L15 20L10 25L5 20Z" {
		t.Errorf("diamond %q", got)
	}
}

// An empty vault: no bucket, no point, no test; the page says so and
// what to run.
func TestReportEmptyVault(t *testing.T) {
	r := New("empty-vault", "", t0, nil, nil)
	if d := cmp.Diff(Summary{}, r.Summary); d != "" || len(r.Buckets) != 0 || len(r.Charts) != 0 || len(r.Failures) != 0 || len(r.Timeline.Rows) != 0 {
		t.Fatalf("empty report: %+v (summary -want +got:\n%s)", r, d)
	}
	html := render(t, r)
	for _, want := range []string{
		"bucketvault protect --vault empty-vault --bucket B",
		"No restore test has run yet",
		"No restore test has run, so none has failed.",
		"No restore test recorded.",
		`<div class="n" id="sum-points">0</div>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the empty page lacks %q", want)
		}
	}
	if strings.Contains(html, "<svg class=\"chart") {
		t.Error("the empty page draws a chart")
	}
	checkSelfContained(t, html)

	// A protected bucket without snapshots or tests: its window, and the
	// note that no snapshot exists.
	r = New("v", "", t0, []vault.RecoveryPoint{{ResourceName: "b", Type: "CONTINUOUS", Status: "CREATING", StatusMessage: "the initial full backup has not finished"}}, nil)
	html = render(t, r)
	if r.Summary.Points != 1 || r.Summary.ContinuousPoints != 1 || !r.Timeline.Rows[0].Empty ||
		!strings.Contains(html, "No SNAPSHOT recovery point yet") || !strings.Contains(html, "the initial full backup has not finished") ||
		!strings.Contains(html, "never tested") {
		t.Errorf("a bucket without points: %+v\n%s", r.Summary, html)
	}
}

// Only failures: every run FAILED, one bucket no longer protected (no
// CONTINUOUS point); failures most recent first, with their keys.
func TestReportOnlyFailures(t *testing.T) {
	r1 := run("gone", "r1", -48*time.Hour, restoretest.StatusFailed, 4, 0)
	r1.StatusMessage = "validation found 1 keys not as the vault recorded them"
	r1.Failures = []restore.ValidationFailure{{Key: "a/2", Why: "bytes differ"}}
	r2 := run("gone", "r2", -time.Hour, restoretest.StatusFailed, 5, 0)
	r2.StatusMessage = "the restore was refused: no such point"
	old := run("gone", "r0", -40*24*time.Hour, restoretest.StatusFailed, 5, 0)
	r := New("v", "", t0, nil, []restoretest.Run{r1, old, r2})
	var ids []string
	for _, f := range r.Failures {
		ids = append(ids, f.ID)
	}
	if d := cmp.Diff([]string{"r2", "r1", "r0"}, ids); d != "" {
		t.Errorf("failures, most recent first (-want +got):\n%s", d)
	}
	want := Summary{Buckets: 1, Tests: 3, RecentFailed: 2}
	if d := cmp.Diff(want, r.Summary); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
	b := r.Buckets[0]
	if b.Continuous != nil || b.Failed != 3 || b.Passed != 0 || b.LastTest == nil || b.LastTest.ID != "r2" || len(r.Charts) != 1 || len(r.Charts[0].Marks) != 3 {
		t.Errorf("bucket %+v charts %d", b, len(r.Charts))
	}
	html := render(t, r)
	if strings.Count(html, `<article class="failure"`) != 3 || !strings.Contains(html, "<code>a/2</code></td><td>bytes differ</td>") ||
		!strings.Contains(html, "the restore was refused: no such point") || strings.Contains(html, "No restore test failed") {
		t.Errorf("failures section:\n%s", section(html, "failures"))
	}
	if f := section(html, "failures"); strings.Index(f, `data-run="r2"`) > strings.Index(f, `data-run="r1"`) {
		t.Error("the newest failure is not first")
	}
	checkSelfContained(t, html)
}

// RTO: runs without a target draw no line and count in no RTO number;
// one missed among measured ones counts.
func TestReportRTOMissing(t *testing.T) {
	r := New("v", "b", t0, nil, []restoretest.Run{
		run("b", "r1", -time.Hour, restoretest.StatusSuccessful, 4, 0),
		run("b", "r2", -30*time.Minute, restoretest.StatusSuccessful, 4, 0),
	})
	if r.Summary.RTOMeasured != 0 || r.Summary.RTOMissed != 0 || r.Charts[0].RTOPath != "" || r.Summary.RecentPassed != 2 {
		t.Errorf("no RTO: summary %+v path %q", r.Summary, r.Charts[0].RTOPath)
	}
	html := render(t, r)
	if strings.Contains(html, `class="rto-line"`) || !strings.Contains(html, "of 0 tests with an RTO target") || strings.Contains(html, `class="miss-ring"`) {
		t.Errorf("no RTO page:\n%s", section(html, "tests"))
	}
	r = New("v", "b", t0, nil, []restoretest.Run{
		run("b", "r1", -time.Hour, restoretest.StatusSuccessful, 4, 60),
		run("b", "r2", -30*time.Minute, restoretest.StatusSuccessful, 90, 60),
		run("b", "r3", -10*time.Minute, restoretest.StatusSuccessful, 4, 0),
	})
	if r.Summary.RTOMeasured != 2 || r.Summary.RTOMissed != 1 || r.Charts[0].RTOPath == "" || !r.Runs[1].RTOMissed || r.Runs[0].RTOMissed {
		t.Errorf("one missed: summary %+v runs %+v", r.Summary, r.Runs)
	}
	html = render(t, r)
	if strings.Count(html, `class="miss-ring"`) != 1 || strings.Count(html, `class="rto-line"`) != 1 || !strings.Contains(html, `<span class="bad-text">missed</span> (1 min)`) {
		t.Errorf("one missed page:\n%s", section(html, "tests")+section(html, "runs"))
	}
}

// Everything a record holds is escaped: a key, a message, a bucket.
func TestReportEscapes(t *testing.T) {
	r1 := run("b", `r"1`, 0, restoretest.StatusFailed, 1, 0)
	r1.StatusMessage = `"><img src=http://example.com/x.png>`
	r1.Failures = []restore.ValidationFailure{{Key: "<script>alert(1)</script>", Why: "it's </title><b>bold</b>"}}
	r := New("v", "", t0.Add(time.Hour), []vault.RecoveryPoint{{ResourceName: "b", Type: "SNAPSHOT", Status: "<i>AVAILABLE</i>", RecoveryPointID: "</title><script>x</script>", CreationDate: t0}},
		[]restoretest.Run{r1})
	html := render(t, r)
	for _, bad := range []string{"<script>", "<img", "<b>bold", "<i>AVAILABLE"} {
		if strings.Contains(html, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=http://example.com/x.png&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	checkSelfContained(t, html)
}

func TestReportUserValidation(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{``, ""},
		{`null`, ""},
		{`"SUCCESSFUL"`, "SUCCESSFUL"},
		{`{"validationStatus":"FAILED","validationStatusMessage":"checksums differ"}`, "FAILED: checksums differ"},
		{`{"ValidationStatus":"SUCCESSFUL"}`, "SUCCESSFUL"},
		{`{"verdict":"FAILED","message":"x"}`, "FAILED: x"},
		{`{"other":1}`, `{"other":1}`},
		{`{"function":"check-photos","status":"TIMED_OUT","message":"no verdict within 2h","invokedAt":"2026-11-23T10:00:00Z"}`, "TIMED_OUT: no verdict within 2h"},
	} {
		if got := verdictText(json.RawMessage(c.raw)); got != c.want {
			t.Errorf("verdictText(%s) = %q, want %q", c.raw, got, c.want)
		}
	}
	// A run without one: no column.
	r := New("v", "", t0, nil, []restoretest.Run{run("b", "r1", 0, restoretest.StatusSuccessful, 1, 0)})
	if r.Runs[0].UserValidation != "" || r.HasUserValidation() || strings.Contains(render(t, r), "user validation") {
		t.Errorf("user validation shown without one: %+v", r.Runs[0])
	}
	r.Runs[0].UserValidation = "FAILED: checksums differ"
	if html := render(t, r); !r.HasUserValidation() || !strings.Contains(html, "<th>user validation</th>") || !strings.Contains(html, "<td>FAILED: checksums differ</td>") {
		t.Errorf("user validation not shown:\n%s", section(html, "runs"))
	}
}

func render(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// section is the page's <section id=id>, for failure messages.
func section(html, id string) string {
	i := strings.Index(html, `<section id="`+id+`">`)
	if i < 0 {
		return ""
	}
	j := strings.Index(html[i:], "</section>")
	if j < 0 {
		return html[i:]
	}
	return html[i : i+j]
}

var (
	tagRE  = regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	attrRE = regexp.MustCompile(`(?i)\s(src|href|xlink:href|action|formaction|poster|srcset|background|data|codebase|manifest)\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)`)
	urlRE  = regexp.MustCompile(`(?i)url\(\s*['"]?\s*(.)`)
)

// checkSelfContained fails unless the page can load nothing: no tag
// that loads (link, script with src, img, iframe, object, embed, base),
// no attribute naming anything but a fragment of the page, no CSS
// @import or url() but to a fragment, and a Content-Security-Policy that
// forbids every load.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, tag := range tagRE.FindAllString(page, -1) {
		name := strings.ToLower(strings.FieldsFunc(tag[1:], func(r rune) bool { return r == ' ' || r == '>' || r == '/' || r == '\n' })[0])
		switch name {
		case "link", "script", "img", "iframe", "object", "embed", "base", "frame", "audio", "video", "source", "track", "input", "form", "image", "use", "foreignobject":
			t.Errorf("the page has a <%s> tag: %s", name, tag)
		}
		for _, m := range attrRE.FindAllStringSubmatch(tag, -1) {
			v := strings.Trim(m[2], `"'`)
			if v != "" && !strings.HasPrefix(v, "#") {
				t.Errorf("the page refers to %q in %s", v, tag)
			}
		}
	}
	if strings.Contains(strings.ToLower(page), "@import") {
		t.Error("the page has a CSS @import")
	}
	for _, m := range urlRE.FindAllStringSubmatch(page, -1) {
		if m[1] != "#" {
			t.Errorf("the page has a url() to something outside it: %s", m[0])
		}
	}
	if !strings.Contains(page, `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`) {
		t.Error("the page has no Content-Security-Policy forbidding loads")
	}
}
