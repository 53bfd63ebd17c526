package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// AWS cron and github.com/hashicorp/cronexpr
//
// AWS's cron (EventBridge, CloudWatch Events, AWS Backup) has six fields:
// minutes hours day-of-month month day-of-week year. cronexpr takes the
// same fields (plus an optional leading seconds field) and implements the
// hard part, the search for the next matching time with L, W and #. What
// differs, and what translateCron does about it:
//
//   - Day-of-week numbers: AWS counts 1-7 for SUN-SAT (Quartz's numbering),
//     cronexpr 0-6 (Unix's, with 7 also Sunday). Every number in the
//     day-of-week field, in values, ranges, steps, "5L" and "2#1", is
//     lowered by one; names (SUN-SAT) mean the same in both and become the
//     same numbers. Without this, cron(0 9 ? * 2#1 *) (first Monday) would
//     fire on the first Tuesday.
//   - A bare "L" in day-of-week is the last day of the week (Saturday) in
//     AWS; cronexpr has no bare "L" there, so it becomes Saturday.
//   - "?": AWS requires it in exactly one of day-of-month and day-of-week.
//     cronexpr treats "?" like "*"; the rule is checked here and "?" is
//     written as "*".
//   - cronexpr accepts some things silently that would be wrong: a range
//     that runs backwards ("50-10") or an empty field yields an expression
//     that never matches, or panics in Next; a step larger than the field.
//     Every value, range and step is checked against the field's bounds
//     here, with an error naming the field.
//   - Years: AWS takes 1970-2199, cronexpr 1970-2099. Years after 2099 are
//     refused with an error saying so (a gap in the library).
//   - A leading "0" seconds field is added, so cronexpr never has to guess
//     which fields a six-field expression has.
//
// L, LW and nW in day-of-month, nL and n#k in day-of-week, lists, ranges
// and steps then mean in cronexpr what they mean in AWS.

type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

	minuteField = cronField{name: "minutes", min: 0, max: 59}
	hourField   = cronField{name: "hours", min: 0, max: 23}
	domField    = cronField{name: "day-of-month", min: 1, max: 31}
	monthField  = cronField{name: "month", min: 1, max: 12, names: monthNames}
	dowField    = cronField{name: "day-of-week", min: 1, max: 7, names: dayNames}
	yearField   = cronField{name: "year", min: 1970, max: 2199}
)

// cronexprMaxYear is the last year github.com/hashicorp/cronexpr knows.
const cronexprMaxYear = 2099

// translateCron checks the inside of an AWS cron(...) expression and
// returns it in cronexpr's dialect, with the number of distinct minutes per
// hour it names.
func translateCron(s string) (string, int, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return "", 0, fmt.Errorf("AWS cron has 6 fields (minutes hours day-of-month month day-of-week year), this has %d", len(f))
	}
	dom, dow := f[2], f[4]
	switch {
	case dom == "?" && dow == "?":
		return "", 0, fmt.Errorf("day-of-month and day-of-week are both ?: give one of them a value or *")
	case dom != "?" && dow != "?":
		return "", 0, fmt.Errorf("day-of-month %q and day-of-week %q: one of them must be ? (AWS cron cannot restrict both)", dom, dow)
	}
	out := []string{"0"}
	perHour := 0
	for i, spec := range []cronField{minuteField, hourField, domField, monthField, dowField, yearField} {
		t, n, err := spec.translate(f[i])
		if err != nil {
			return "", 0, err
		}
		if i == 0 {
			perHour = n
		}
		out = append(out, t)
	}
	return strings.Join(out, " "), perHour, nil
}

// translate checks one field and returns it for cronexpr, with the number
// of distinct values it names (for plain values, ranges and steps).
func (c cronField) translate(field string) (string, int, error) {
	if field == "?" {
		if c.name != "day-of-month" && c.name != "day-of-week" {
			return "", 0, fmt.Errorf("%s field: ? is only allowed in day-of-month and day-of-week", c.name)
		}
		return "*", c.max - c.min + 1, nil
	}
	var items []string
	seen := map[int]bool{}
	for _, item := range strings.Split(field, ",") {
		t, vals, err := c.item(strings.ToUpper(item))
		if err != nil {
			return "", 0, fmt.Errorf("%s field %q: %w", c.name, field, err)
		}
		for _, v := range vals {
			seen[v] = true
		}
		items = append(items, t)
	}
	return strings.Join(items, ","), len(seen), nil
}

// item translates one comma-separated item of a field and lists the plain
// values it names (none for L, W and #, which depend on the month).
func (c cronField) item(it string) (string, []int, error) {
	if it == "" {
		return "", nil, fmt.Errorf("empty item")
	}
	if it == "?" {
		return "", nil, fmt.Errorf("? must stand alone in the field")
	}
	switch c.name {
	case "day-of-month":
		switch {
		case it == "L" || it == "LW":
			return it, nil, nil
		case strings.HasSuffix(it, "W"):
			v, err := c.value(strings.TrimSuffix(it, "W"))
			if err != nil {
				return "", nil, fmt.Errorf("%s: W takes a single day, as in 15W: %w", it, err)
			}
			return strconv.Itoa(v) + "W", nil, nil
		}
	case "day-of-week":
		switch {
		case it == "L":
			return "6", nil, nil // Saturday, the last day of AWS's week
		case strings.HasSuffix(it, "L"):
			v, err := c.value(strings.TrimSuffix(it, "L"))
			if err != nil {
				return "", nil, fmt.Errorf("%s: L takes a single day, as in 6L (the last Friday): %w", it, err)
			}
			return strconv.Itoa(v-1) + "L", nil, nil
		case strings.Contains(it, "#"):
			d, k, _ := strings.Cut(it, "#")
			v, err := c.value(d)
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", it, err)
			}
			n, err := strconv.Atoi(k)
			if err != nil || n < 1 || n > 5 {
				return "", nil, fmt.Errorf("%s: the week after # is 1-5", it)
			}
			return fmt.Sprintf("%d#%d", v-1, n), nil, nil
		}
	}
	for _, tok := range strings.FieldsFunc(it, func(r rune) bool { return r == '-' || r == '/' }) {
		if _, name := c.names[tok]; !name && strings.ContainsAny(tok, "LW#") {
			return "", nil, fmt.Errorf("%s: L, W and # are not allowed in the %s field", it, c.name)
		}
	}
	base, stepText, hasStep := strings.Cut(it, "/")
	lo, hi := c.min, c.max
	switch {
	case base == "*":
	case strings.Contains(base, "-"):
		a, b, _ := strings.Cut(base, "-")
		var err error
		if lo, err = c.value(a); err != nil {
			return "", nil, err
		}
		if hi, err = c.value(b); err != nil {
			return "", nil, err
		}
		if lo > hi {
			return "", nil, fmt.Errorf("range %s runs backwards: write it as two ranges", base)
		}
	default:
		v, err := c.value(base)
		if err != nil {
			return "", nil, err
		}
		lo = v
		if !hasStep {
			hi = v
		}
	}
	step := 1
	if hasStep {
		var err error
		step, err = strconv.Atoi(stepText)
		if err != nil || step < 1 || step > c.max-c.min {
			return "", nil, fmt.Errorf("step %q: want 1-%d", stepText, c.max-c.min)
		}
	}
	var vals []int
	for v := lo; v <= hi; v += step {
		vals = append(vals, v)
	}
	if c.name == "year" && lo > cronexprMaxYear {
		return "", nil, fmt.Errorf("years after %d are not supported (github.com/hashicorp/cronexpr stops at %d)", cronexprMaxYear, cronexprMaxYear)
	}
	if c.name == "year" && hi > cronexprMaxYear {
		hi = cronexprMaxYear // no search reaches past it anyway
	}
	shift := 0
	if c.name == "day-of-week" {
		shift = -1
	}
	var t string
	switch {
	case base == "*":
		t = "*"
	case lo == hi:
		// A one-day range like SUN-SUN is written as a value: cronexpr reads
		// a range ending in 0 as ending on Saturday.
		t = strconv.Itoa(lo + shift)
	default:
		t = fmt.Sprintf("%d-%d", lo+shift, hi+shift)
	}
	if hasStep {
		if base != "*" && !strings.Contains(base, "-") {
			t = strconv.Itoa(lo+shift) + "/" + strconv.Itoa(step)
		} else {
			t += "/" + strconv.Itoa(step)
		}
	}
	return t, vals, nil
}

// value parses a number or name of the field and checks its bounds.
func (c cronField) value(s string) (int, error) {
	if v, ok := c.names[s]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		if c.names != nil {
			return 0, fmt.Errorf("%q: want %d-%d or a name (%s)", s, c.min, c.max, c.nameList())
		}
		return 0, fmt.Errorf("%q: want a number %d-%d", s, c.min, c.max)
	}
	if v < c.min || v > c.max {
		if c.name == "day-of-week" {
			return 0, fmt.Errorf("%d: AWS numbers days of the week 1-7 for SUN-SAT", v)
		}
		return 0, fmt.Errorf("%d: want %d-%d", v, c.min, c.max)
	}
	return v, nil
}

func (c cronField) nameList() string {
	l := make([]string, len(c.names))
	for n, v := range c.names {
		l[v-1] = n
	}
	return l[0] + "-" + l[len(l)-1]
}
