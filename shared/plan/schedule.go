package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones on Lambda's provided.al2023 image, which has no /usr/share/zoneinfo

	"github.com/hashicorp/cronexpr"
)

// DefaultScheduleExpression is what AWS Backup uses for a rule without a
// ScheduleExpression (BackupRuleInput.ScheduleExpression).
const DefaultScheduleExpression = "cron(0 5 ? * * *)"

// Schedule is a parsed ScheduleExpression evaluated in a time zone. The zero
// Schedule never fires. A Schedule is safe for concurrent use.
type Schedule struct {
	expr string         // as written
	loc  *time.Location // ScheduleExpressionTimezone
	cron string         // the expression in cronexpr's dialect; "" for rate()
	// perHour is how many distinct minutes of an hour a cron expression
	// names: more than one means it fires more often than hourly.
	perHour int
	every   time.Duration // rate()
}

// ParseSchedule parses an AWS schedule expression, cron(...) with AWS's six
// fields or rate(N unit), to be evaluated in the IANA time zone tz ("" means
// UTC). Errors say which part of the expression is wrong.
func ParseSchedule(expression, tz string) (Schedule, error) {
	loc, err := loadZone(tz)
	if err != nil {
		return Schedule{}, err
	}
	s := Schedule{expr: expression, loc: loc}
	e := strings.TrimSpace(expression)
	switch {
	case strings.HasPrefix(e, "cron(") && strings.HasSuffix(e, ")"):
		s.cron, s.perHour, err = translateCron(e[len("cron(") : len(e)-1])
		if err != nil {
			return Schedule{}, fmt.Errorf("%s: %w", expression, err)
		}
		// The translation only emits what cronexpr accepts; parse once to be
		// sure, so Next can rely on it.
		if _, err := cronexpr.Parse(s.cron); err != nil {
			return Schedule{}, fmt.Errorf("%s: %w", expression, err)
		}
	case strings.HasPrefix(e, "rate(") && strings.HasSuffix(e, ")"):
		s.every, err = parseRate(e[len("rate(") : len(e)-1])
		if err != nil {
			return Schedule{}, fmt.Errorf("%s: %w", expression, err)
		}
	default:
		return Schedule{}, fmt.Errorf("%q: want cron(minutes hours day-of-month month day-of-week year) or rate(value unit)", expression)
	}
	return s, nil
}

func loadZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	// time.LoadLocation also takes "Local" (the machine's zone), which
	// would make a plan mean different things on different machines.
	if tz == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name (for example Europe/Paris)", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone name (for example Europe/Paris)", tz)
	}
	return loc, nil
}

// String returns the expression as written.
func (s Schedule) String() string { return s.expr }

// Location returns the time zone the schedule is evaluated in.
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Interval returns the fixed interval of a rate() schedule, or 0 for cron().
func (s Schedule) Interval() time.Duration { return s.every }

// Next returns the first time the schedule fires strictly after after, in
// the schedule's time zone, or the zero time if it never fires again.
//
// cron() follows EventBridge Scheduler's rules for daylight saving time: a
// wall-clock time that does not exist (clocks spring forward over it) is
// skipped, and one that happens twice (clocks fall back) fires once, at its
// first occurrence.
//
// rate(N unit) fires every N units of elapsed time counted from the Unix
// epoch (1970-01-01T00:00:00Z), so rate(1 day) fires at 00:00 UTC and
// rate(6 hours) at 00:00, 06:00, 12:00 and 18:00 UTC whatever the time zone.
// EventBridge counts from when a schedule is created instead; a fixed origin
// makes every process (Lambda, CLI, local runner) agree on the times without
// storing state.
func (s Schedule) Next(after time.Time) time.Time {
	switch {
	case s.every > 0:
		step := int64(s.every / time.Second)
		k := floorDiv(after.Unix(), step) + 1
		return time.Unix(k*step, 0).In(s.Location())
	case s.cron != "":
		return s.nextCron(after)
	}
	return time.Time{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// nextCron runs cronexpr on wall-clock times expressed in UTC, where no day
// has 23 or 25 hours, and maps each candidate back to the schedule's zone
// itself. cronexpr's own daylight-saving handling is not used: it neither
// skips non-existent times nor fires repeated ones once.
func (s Schedule) nextCron(after time.Time) time.Time {
	// cronexpr.Expression caches per-month data inside Next, so it is not
	// safe for concurrent use; parsing per call keeps Schedule shareable.
	expr, err := cronexpr.Parse(s.cron)
	if err != nil {
		return time.Time{} // unreachable: ParseSchedule parsed it
	}
	loc := s.Location()
	w := wall(after, loc)
	// Each skip moves past one non-existent or repeated wall-clock minute;
	// a daylight-saving shift is at most an hour or two of them.
	for range 10_000 {
		w = expr.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		t, ok := instant(w, loc)
		if !ok {
			continue // clocks sprang forward over w
		}
		if !t.After(after) {
			continue // w is repeated (clocks fell back) and its first occurrence is past
		}
		return t
	}
	return time.Time{}
}

// wall returns t's wall-clock reading in loc as a UTC time.
func wall(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// instant returns the earliest instant whose wall clock in loc reads w (a
// UTC time standing for a wall-clock reading), and false if there is none.
func instant(w time.Time, loc *time.Location) (time.Time, bool) {
	var best time.Time
	found := false
	seen := map[int]bool{}
	// The offsets in force within a day either side of w: a wall-clock
	// reading can only map to an instant under one of them.
	for h := -30; h <= 30; h += 6 {
		_, off := w.Add(time.Duration(h) * time.Hour).In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		c := w.Add(-time.Duration(off) * time.Second)
		if wall(c, loc).Equal(w) && (!found || c.Before(best)) {
			best, found = c.In(loc), true
		}
	}
	return best, found
}

// parseRate parses the inside of rate(value unit).
func parseRate(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("want rate(value unit), for example rate(12 hours)")
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 1 || f[0][0] == '+' {
		return 0, fmt.Errorf("rate value %q: want a positive whole number", f[0])
	}
	var unit time.Duration
	switch strings.TrimSuffix(f[1], "s") {
	case "minute":
		unit = time.Minute
	case "hour":
		unit = time.Hour
	case "day":
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("rate unit %q: want minute(s), hour(s) or day(s)", f[1])
	}
	// EventBridge: a value of 1 takes the singular unit, larger values the
	// plural.
	plural := strings.HasSuffix(f[1], "s")
	if n == 1 && plural {
		return 0, fmt.Errorf("rate(1 %s): a value of 1 takes the singular unit %q", f[1], strings.TrimSuffix(f[1], "s"))
	}
	if n > 1 && !plural {
		return 0, fmt.Errorf("rate(%d %s): a value above 1 takes the plural unit %q", n, f[1], f[1]+"s")
	}
	if n > int64(100*365*24*time.Hour/unit) {
		return 0, fmt.Errorf("rate value %d %s: longer than 100 years", n, f[1])
	}
	return time.Duration(n) * unit, nil
}
