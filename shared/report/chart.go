package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/vault"
)

// The charts' geometry, in SVG user units (the page draws each chart in a
// viewBox of Width × Height that scales to the page's width). It is all
// computed here, so the template only places what it is given and the
// tests check positions, not pixels.

// Tick is one labelled position on an axis.
type Tick struct {
	Pos   float64
	Label string
}

// linear maps the domain [D0, D1] onto the range [R0, R1]; a domain of
// one value maps to the middle of the range.
type linear struct{ D0, D1, R0, R1 float64 }

func (s linear) at(v float64) float64 {
	if s.D1 == s.D0 {
		return (s.R0 + s.R1) / 2
	}
	return s.R0 + (v-s.D0)/(s.D1-s.D0)*(s.R1-s.R0)
}

// timeScale maps times onto x (seconds since the Unix epoch, linearly).
type timeScale struct {
	Start, End time.Time
	X0, X1     float64
}

func (s timeScale) at(t time.Time) float64 {
	return round(linear{D0: unix(s.Start), D1: unix(s.End), R0: s.X0, R1: s.X1}.at(unix(t)))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// round keeps two decimals: enough for any screen, and stable text.
func round(v float64) float64 { return math.Round(v*100) / 100 }

// timeSteps are the tick intervals a time axis takes, finest first.
var timeSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 30 * 24 * time.Hour,
	60 * 24 * time.Hour, 90 * 24 * time.Hour, 180 * 24 * time.Hour, 365 * 24 * time.Hour,
}

// timeTicks are the ticks of the time axis s, at most max of them, on
// whole multiples of the finest step that fits (in UTC: a day's ticks
// fall on midnights), labelled as precisely as the step needs.
func timeTicks(s timeScale, max int) []Tick {
	span := s.End.Sub(s.Start)
	if span <= 0 || max < 1 {
		return nil
	}
	step := timeSteps[len(timeSteps)-1]
	for _, st := range timeSteps {
		if span/st+1 <= time.Duration(max) {
			step = st
			break
		}
	}
	layout := "2006-01-02"
	switch {
	case step < time.Minute:
		layout = "15:04:05"
	case step < 24*time.Hour:
		layout = "Jan 2 15:04"
	}
	// Whole steps since the epoch, from the first at or after Start.
	n := s.Start.UnixNano() / int64(step)
	if n*int64(step) < s.Start.UnixNano() {
		n++
	}
	var out []Tick
	for t := time.Unix(0, n*int64(step)).UTC(); !t.After(s.End); t = t.Add(step) {
		out = append(out, Tick{Pos: s.at(t), Label: t.Format(layout)})
	}
	return out
}

// niceStep is the step of 1, 2 or 5 times a power of ten that cuts
// [0, max] into at most n intervals.
func niceStep(max float64, n int) float64 {
	if max <= 0 || n < 1 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// durationSteps are the steps, in seconds, of an axis of durations
// longer than tens of seconds: whole minutes, hours and days.
var durationSteps = []float64{10, 15, 30, 60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60,
	3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400}

// secondsStep is the step of an axis of durations from 0 to max seconds
// in at most n intervals: 1, 2 or 5 times a power of ten below ten
// seconds, else the first of durationSteps that fits (whole weeks past
// them).
func secondsStep(max float64, n int) float64 {
	raw := max / float64(max1(n))
	if raw <= 10 {
		return niceStep(max, n)
	}
	for _, st := range durationSteps {
		if st >= raw {
			return st
		}
	}
	return math.Ceil(raw/(7*86400)) * 7 * 86400
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// FormatSeconds writes a duration in seconds for people: "0.42 s",
// "12.5 s", "3 min 20 s", "2 h 5 min".
func FormatSeconds(sec float64) string {
	switch {
	case sec < 0:
		return "-" + FormatSeconds(-sec)
	case sec < 10:
		return strconv.FormatFloat(math.Round(sec*100)/100, 'f', -1, 64) + " s"
	case sec < 60:
		return strconv.FormatFloat(math.Round(sec*10)/10, 'f', -1, 64) + " s"
	case sec < 3600:
		m, s := int(sec)/60, int(math.Round(sec))%60
		if s == 0 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %d s", m, s)
	default:
		h, m := int(sec)/3600, int(math.Round(sec/60))%60
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
}

// Timeline is the recovery points chart: one row per bucket, time left to
// right, each CONTINUOUS window a band from its earliest restorable second
// to its completeness watermark (and, lighter, on to the newest second
// events were journaled for), each SNAPSHOT point a diamond at the time
// it holds, coloured by its status, and each restore test a small
// triangle under the row at the time it restored, coloured by its status.
type Timeline struct {
	Width, Height  float64
	PlotX0, PlotX1 float64
	// AxisY is where the tick labels sit; GridY0..GridY1 the grid lines.
	AxisY, GridY0, GridY1 float64
	Ticks                 []Tick
	Start, End            time.Time
	// NowX marks the report's time.
	NowX float64
	Rows []TimelineRow
}

// TimelineRow is one bucket's row.
type TimelineRow struct {
	Bucket string
	// Label is the name as the row shows it (a long one cut short).
	Label string
	// Y is the row's top, MidY its centre line, LabelY its label's
	// baseline; Empty says the row holds no recovery point.
	Y, MidY, LabelY float64
	Band            *Band
	Marks           []Mark
	Tests           []Mark
	Empty           bool
}

// Band is a CONTINUOUS window: X..X+W restorable, then Journal..Journal+
// JournalW journaled but not yet vouched for by a reconcile.
type Band struct {
	X, Y, W, H         float64
	JournalX, JournalW float64
	Status             string
	Title              string
}

// Mark is one mark at (X, Y): D is its SVG path, Class its status class.
type Mark struct {
	X, Y  float64
	D     string
	Class string
	Title string
}

// Timeline layout constants.
const (
	chartWidth     = 1200.0
	timelineLeft   = 220.0
	timelineRight  = 24.0
	timelineTop    = 34.0
	timelineRowH   = 46.0
	timelineBandH  = 14.0
	timelineMarkR  = 7.0
	timelineTestR  = 5.0
	timelineBottom = 12.0
	maxTimeTicks   = 8
)

// NewTimeline lays the buckets' recovery points and restore tests out on
// one time axis that ends at now and starts at the oldest time any of
// them holds (at least a minute before now).
func NewTimeline(buckets []Bucket, now time.Time) Timeline {
	start, end := now, now
	take := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if t.Before(start) {
			start = t
		}
		if t.After(end) {
			end = t
		}
	}
	for _, b := range buckets {
		if c := b.Continuous; c != nil {
			for _, t := range []*time.Time{c.EarliestRestorableTime, c.LatestRestorableTime, c.JournaledThrough} {
				if t != nil {
					take(*t)
				}
			}
		}
		for _, p := range b.Snapshots {
			take(pointTime(p))
		}
		for _, r := range b.Runs {
			take(r.At)
		}
	}
	if end.Sub(start) < time.Minute {
		start = end.Add(-time.Minute)
	}
	pad := end.Sub(start) / 50
	start, end = start.Add(-pad), end.Add(pad)
	tl := Timeline{Width: chartWidth, PlotX0: timelineLeft, PlotX1: chartWidth - timelineRight, Start: start, End: end, AxisY: 20, GridY0: timelineTop - 6}
	s := timeScale{Start: start, End: end, X0: tl.PlotX0, X1: tl.PlotX1}
	tl.Ticks = timeTicks(s, maxTimeTicks)
	tl.NowX = s.at(now)
	for i, b := range buckets {
		y := timelineTop + float64(i)*timelineRowH
		row := TimelineRow{Bucket: b.Name, Label: shorten(b.Name, 26), Y: y, MidY: y + timelineRowH/2 - 4, LabelY: y + timelineRowH/2}
		if c := b.Continuous; c != nil && c.EarliestRestorableTime != nil && c.LatestRestorableTime != nil {
			x0, x1 := s.at(*c.EarliestRestorableTime), s.at(*c.LatestRestorableTime)
			band := &Band{X: x0, Y: row.MidY - timelineBandH/2, W: math.Max(round(x1-x0), 4), H: timelineBandH, Status: statusClass(c.Status),
				Title: fmt.Sprintf("%s CONTINUOUS %s: restorable %s to %s (complete through the last finished reconcile)", b.Name, c.Status,
					c.EarliestRestorableTime.UTC().Format(time.RFC3339), c.LatestRestorableTime.UTC().Format(time.RFC3339))}
			if j := c.JournaledThrough; j != nil && j.After(*c.LatestRestorableTime) {
				band.JournalX = round(band.X + band.W)
				band.JournalW = math.Max(round(s.at(*j)-band.JournalX), 0)
				band.Title += "; journaled through " + j.UTC().Format(time.RFC3339) + " (a restore past the watermark needs --allow-incomplete)"
			}
			row.Band = band
		}
		for _, p := range b.Snapshots {
			x := s.at(pointTime(p))
			title := fmt.Sprintf("%s SNAPSHOT %s %s at %s: %d objects, %s", b.Name, p.RecoveryPointID, p.Status, pointTime(p).UTC().Format(time.RFC3339),
				p.ObjectCount, FormatBytes(p.BackupSizeInBytes))
			if p.StorageClass == vault.StorageCold {
				title += ", COLD"
			}
			if p.StatusMessage != "" {
				title += " (" + p.StatusMessage + ")"
			}
			cls := "pt " + statusClass(p.Status)
			if p.StorageClass == vault.StorageCold {
				cls += " cold"
			}
			row.Marks = append(row.Marks, Mark{X: x, Y: row.MidY, D: diamond(x, row.MidY, timelineMarkR), Class: cls, Title: title})
		}
		for _, r := range b.Runs {
			if r.At.IsZero() {
				continue
			}
			x, ty := s.at(r.At), round(row.MidY+timelineBandH/2+timelineTestR+3)
			row.Tests = append(row.Tests, Mark{X: x, Y: ty, D: triangle(x, ty, timelineTestR), Class: "test " + statusClass(r.Status),
				Title: fmt.Sprintf("restore test %s %s: restored %s as of %s", r.ID, r.Status, r.Type, r.At.UTC().Format(time.RFC3339))})
		}
		row.Empty = row.Band == nil && len(row.Marks) == 0
		tl.Rows = append(tl.Rows, row)
	}
	tl.GridY1 = timelineTop + float64(len(buckets))*timelineRowH
	tl.Height = tl.GridY1 + timelineBottom
	return tl
}

// pointTime is the time a SNAPSHOT point holds: when its scan ended (its
// creation while it has none).
func pointTime(p vault.RecoveryPoint) time.Time {
	if p.ScanCompletionDate != nil {
		return *p.ScanCompletionDate
	}
	return p.CreationDate
}

func diamond(x, y, r float64) string {
	return fmt.Sprintf("M%s %sL%s %sL%s %sL%s %sZ", num(x), num(y-r), num(x+r), num(y), num(x), num(y+r), num(x-r), num(y))
}

func triangle(x, y, r float64) string {
	return fmt.Sprintf("M%s %sL%s %sL%s %sZ", num(x), num(y-r), num(x+r), num(y+r), num(x-r), num(y+r))
}

func num(v float64) string { return strconv.FormatFloat(round(v), 'f', -1, 64) }

// RestoreChart is one bucket's restore tests over time: each run a dot at
// its start (x) and restore time (y), coloured by its status and ringed
// when it missed its RTO; the RTO targets a step line (each run's target
// holds from that run to the next; a run without one breaks the line).
type RestoreChart struct {
	Bucket                         string
	Width, Height                  float64
	PlotX0, PlotX1, PlotY0, PlotY1 float64 // PlotY0 the top
	XTicks, YTicks                 []Tick
	Marks                          []RunMark
	// RTOPath is the step line's SVG path ("": no run had a target),
	// RTOLabelX/Y where its label sits.
	RTOPath              string
	RTOLabel             string
	RTOLabelX, RTOLabelY float64
	Start, End           time.Time
	MaxSeconds           float64
}

// RunMark is one run's dot.
type RunMark struct {
	X, Y, R   float64
	ID        string
	Status    string
	Class     string
	RTOMissed bool
	Title     string
}

// Restore chart layout constants.
const (
	restoreHeight = 260.0
	restoreLeft   = 80.0
	restoreRight  = 24.0
	restoreTop    = 16.0
	restoreBottom = 36.0
	restoreMarkR  = 6.0
	maxValueTicks = 5
)

// NewRestoreChart lays out the runs of one bucket (in any order).
func NewRestoreChart(bucket string, runs []Run) RestoreChart {
	runs = append([]Run(nil), runs...)
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	c := RestoreChart{Bucket: bucket, Width: chartWidth, Height: restoreHeight, PlotX0: restoreLeft, PlotX1: chartWidth - restoreRight,
		PlotY0: restoreTop, PlotY1: restoreHeight - restoreBottom}
	if len(runs) == 0 {
		return c
	}
	start, end := runs[0].StartedAt, runs[len(runs)-1].StartedAt
	max := 0.0
	for _, r := range runs {
		max = math.Max(max, math.Max(r.RestoreSeconds, r.RTOTargetSeconds))
	}
	if end.Sub(start) < time.Minute {
		mid := start.Add(end.Sub(start) / 2)
		start, end = mid.Add(-30*time.Second), mid.Add(30*time.Second)
	}
	pad := end.Sub(start) / 20
	c.Start, c.End = start.Add(-pad), end.Add(pad)
	s := timeScale{Start: c.Start, End: c.End, X0: c.PlotX0, X1: c.PlotX1}
	c.XTicks = timeTicks(s, maxTimeTicks)
	if max <= 0 {
		max = 1
	}
	step := secondsStep(max*1.1, maxValueTicks)
	c.MaxSeconds = math.Ceil(max*1.1/step) * step
	y := linear{D0: 0, D1: c.MaxSeconds, R0: c.PlotY1, R1: c.PlotY0}
	for v := 0.0; v <= c.MaxSeconds+step/2; v += step {
		c.YTicks = append(c.YTicks, Tick{Pos: round(y.at(v)), Label: FormatSeconds(v)})
	}
	var path strings.Builder
	prevTarget := 0.0
	for i, r := range runs {
		x, yy := s.at(r.StartedAt), round(y.at(r.RestoreSeconds))
		m := RunMark{X: x, Y: yy, R: restoreMarkR, ID: r.ID, Status: r.Status, Class: "run " + statusClass(r.Status), RTOMissed: r.RTOMissed}
		m.Title = fmt.Sprintf("%s %s at %s: restored %s in %s", r.Bucket, r.Status, r.StartedAt.UTC().Format(time.RFC3339), r.Type, FormatSeconds(r.RestoreSeconds))
		if r.RTOTargetSeconds > 0 {
			m.Title += fmt.Sprintf(", RTO %s %s", FormatSeconds(r.RTOTargetSeconds), map[bool]string{true: "missed", false: "met"}[r.RTOMissed])
		}
		if r.RTOMissed {
			m.Class += " missed"
		}
		c.Marks = append(c.Marks, m)
		// The step line: this run's target holds until the next run.
		if r.RTOTargetSeconds <= 0 {
			prevTarget = 0
			continue
		}
		ty := round(y.at(r.RTOTargetSeconds))
		if prevTarget > 0 {
			path.WriteString("V" + num(ty))
		} else {
			if path.Len() > 0 {
				path.WriteString(" ")
			}
			path.WriteString("M" + num(x) + " " + num(ty))
		}
		nx := c.PlotX1
		if i+1 < len(runs) {
			nx = s.at(runs[i+1].StartedAt)
		}
		path.WriteString("H" + num(nx))
		prevTarget = r.RTOTargetSeconds
		c.RTOLabel, c.RTOLabelX, c.RTOLabelY = "RTO "+FormatSeconds(r.RTOTargetSeconds), nx, round(ty-5)
	}
	c.RTOPath = path.String()
	return c
}

// FormatBytes writes a size for people, in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// statusClass is a status as a CSS class: "s-" and its letters,
// lowercased (what a vault record says is never taken as it is).
func statusClass(status string) string {
	var b strings.Builder
	b.WriteString("s-")
	for _, r := range strings.ToLower(status) {
		if r >= 'a' && r <= 'z' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 2 {
		b.WriteString("unknown")
	}
	return b.String()
}

// shorten cuts s to at most n runes, ending it with "…" when cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
