package plan

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// nextN returns the next n fire times after from, in UTC.
func nextN(t *testing.T, s Schedule, from time.Time, n int) []time.Time {
	t.Helper()
	var out []time.Time
	for range n {
		from = s.Next(from)
		if from.IsZero() {
			break
		}
		out = append(out, from.UTC())
	}
	return out
}

func times(ss ...string) []time.Time {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = utc(s)
	}
	return out
}

// The examples are the ones AWS documents for cron expressions
// (EventBridge "Cron expressions" table and the L, W and # wildcards),
// evaluated from Friday 2026-01-30 17:58 UTC unless the case says
// otherwise. The expected times were worked out by hand from a calendar:
// 2026-01-31 is a Saturday, 2026-02-02 a Monday, 2026-01-03 a Saturday,
// 2026-05-31 a Sunday.
func TestScheduleNextAWSExamples(t *testing.T) {
	const fri = "2026-01-30T17:58:00Z"
	tests := []struct {
		expr string
		from string
		want []time.Time
	}{
		// Run at 10:00 am (UTC) every day.
		{"cron(0 10 * * ? *)", fri, times("2026-01-31T10:00:00Z", "2026-02-01T10:00:00Z", "2026-02-02T10:00:00Z")},
		// Run at 12:15 pm (UTC) every day.
		{"cron(15 12 * * ? *)", fri, times("2026-01-31T12:15:00Z", "2026-02-01T12:15:00Z", "2026-02-02T12:15:00Z")},
		// Run at 6:00 pm (UTC) every Monday through Friday: Friday, then the
		// weekend is skipped.
		{"cron(0 18 ? * MON-FRI *)", fri, times("2026-01-30T18:00:00Z", "2026-02-02T18:00:00Z", "2026-02-03T18:00:00Z")},
		// Run at 8:00 am (UTC) every first day of the month.
		{"cron(0 8 1 * ? *)", fri, times("2026-02-01T08:00:00Z", "2026-03-01T08:00:00Z", "2026-04-01T08:00:00Z")},
		// Run every 15 minutes.
		{"cron(0/15 * * * ? *)", fri, times("2026-01-30T18:00:00Z", "2026-01-30T18:15:00Z", "2026-01-30T18:30:00Z")},
		// Run every 10 minutes Monday through Friday: from late Friday night
		// to Monday 00:00.
		{"cron(0/10 * ? * MON-FRI *)", "2026-01-30T23:55:00Z", times("2026-02-02T00:00:00Z", "2026-02-02T00:10:00Z", "2026-02-02T00:20:00Z")},
		// Run every 5 minutes Monday through Friday between 8:00 am and
		// 5:55 pm: Friday's last was 17:55, so Monday 08:00.
		{"cron(0/5 8-17 ? * MON-FRI *)", fri, times("2026-02-02T08:00:00Z", "2026-02-02T08:05:00Z", "2026-02-02T08:10:00Z")},
		// Run at 9 am (UTC) the first Monday of every month: 2 February,
		// 2 March, 6 April (1 April is a Wednesday).
		{"cron(0 9 ? * 2#1 *)", fri, times("2026-02-02T09:00:00Z", "2026-03-02T09:00:00Z", "2026-04-06T09:00:00Z")},
		// L in day-of-month: the last day of the month.
		{"cron(0 0 L * ? *)", fri, times("2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z")},
		// W: the weekday nearest the 3rd. 3 January 2026 is a Saturday, so
		// Friday the 2nd; 3 February and 3 March are Tuesdays.
		{"cron(0 0 3W * ? *)", "2025-12-31T00:00:00Z", times("2026-01-02T00:00:00Z", "2026-02-03T00:00:00Z", "2026-03-03T00:00:00Z")},
		// LW: the last weekday of the month. 31 January is a Saturday, 28
		// February a Saturday, 31 March a Tuesday.
		{"cron(0 0 LW * ? *)", "2026-01-01T00:00:00Z", times("2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-31T00:00:00Z")},
		// AWS numbers days 1-7 for SUN-SAT: 1 is Sunday, 7 Saturday.
		{"cron(0 12 ? * 1 *)", fri, times("2026-02-01T12:00:00Z", "2026-02-08T12:00:00Z")},
		{"cron(0 12 ? * 7 *)", fri, times("2026-01-31T12:00:00Z", "2026-02-07T12:00:00Z")},
		{"cron(0 12 ? * 2-6 *)", fri, times("2026-02-02T12:00:00Z", "2026-02-03T12:00:00Z")},
		// 6L: the last Friday of the month (6 is Friday in AWS).
		{"cron(0 20 ? * 6L *)", fri, times("2026-01-30T20:00:00Z", "2026-02-27T20:00:00Z", "2026-03-27T20:00:00Z")},
		// A bare L in day-of-week is the last day of the week, Saturday.
		{"cron(0 12 ? * L *)", fri, times("2026-01-31T12:00:00Z", "2026-02-07T12:00:00Z")},
		// Steps over day-of-week count in AWS's numbering: 2/2 is MON, WED,
		// FRI.
		{"cron(0 12 ? * 2/2 *)", fri, times("2026-02-02T12:00:00Z", "2026-02-04T12:00:00Z", "2026-02-06T12:00:00Z", "2026-02-09T12:00:00Z")},
		// A one-day range of Sunday is Sunday, not the whole week.
		{"cron(0 12 ? * SUN-SUN *)", fri, times("2026-02-01T12:00:00Z", "2026-02-08T12:00:00Z")},
		// Month names and a year: the last run is in 2027.
		{"cron(0 6 1 JAN,JUL ? 2026-2027)", fri, times("2026-07-01T06:00:00Z", "2027-01-01T06:00:00Z", "2027-07-01T06:00:00Z")},
		// AWS Backup's default expression: 05:00 UTC daily.
		{DefaultScheduleExpression, fri, times("2026-01-31T05:00:00Z", "2026-02-01T05:00:00Z")},
		// rate(): counted from the Unix epoch.
		{"rate(1 hour)", fri, times("2026-01-30T18:00:00Z", "2026-01-30T19:00:00Z")},
		{"rate(6 hours)", fri, times("2026-01-30T18:00:00Z", "2026-01-31T00:00:00Z")},
		{"rate(90 minutes)", fri, times("2026-01-30T18:00:00Z", "2026-01-30T19:30:00Z")},
		{"rate(1 day)", fri, times("2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z")},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr, "")
			if err != nil {
				t.Fatal(err)
			}
			got := nextN(t, s, utc(tc.from), len(tc.want))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Next from %s (-want +got):\n%s", tc.from, diff)
			}
		})
	}
}

func TestScheduleNeverFiresAgain(t *testing.T) {
	from := utc("2026-12-01T00:00:00Z")
	for _, expr := range []string{
		"cron(0 0 30 2 ? *)",   // 30 February
		"cron(0 0 31 4,6 ? *)", // 31 April and June
		"cron(0 0 1 1 ? 2020)", // a year in the past
	} {
		s, err := ParseSchedule(expr, "")
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := s.Next(from); !got.IsZero() {
			t.Errorf("%s: Next(%s) = %s, want never", expr, from, got)
		}
	}
	// The fifth Monday in 2026 only: November has Mondays 2, 9, 16, 23 and
	// 30; December's are 7, 14, 21 and 28. From December there is none.
	s, err := ParseSchedule("cron(0 0 ? * 2#5 2026)", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(utc("2026-11-01T00:00:00Z")); !got.Equal(utc("2026-11-30T00:00:00Z")) {
		t.Errorf("fifth Monday from November: %s, want 2026-11-30", got)
	}
	if got := s.Next(from); !got.IsZero() {
		t.Errorf("fifth Monday from December 2026: %s, want never", got)
	}
}

// Time zones and daylight saving time, with EventBridge Scheduler's rules:
// a wall-clock time skipped by the spring change does not fire, one
// repeated by the autumn change fires once.
func TestScheduleTimeZones(t *testing.T) {
	tests := []struct {
		name, expr, tz, from string
		want                 []time.Time
	}{
		{
			// BST starts 2026-03-29 at 01:00 UTC: 10:00 London is 10:00 UTC
			// before and 09:00 UTC after.
			name: "london spring", expr: "cron(0 10 * * ? *)", tz: "Europe/London", from: "2026-03-27T12:00:00Z",
			want: times("2026-03-28T10:00:00Z", "2026-03-29T09:00:00Z", "2026-03-30T09:00:00Z"),
		},
		{
			// BST ends 2026-10-25.
			name: "london autumn", expr: "cron(0 10 * * ? *)", tz: "Europe/London", from: "2026-10-24T00:00:00Z",
			want: times("2026-10-24T09:00:00Z", "2026-10-25T10:00:00Z"),
		},
		{
			// New York springs forward on 2026-03-08 from 02:00 to 03:00:
			// 02:30 does not exist that day and is skipped.
			name: "new york gap skipped", expr: "cron(30 2 * * ? *)", tz: "America/New_York", from: "2026-03-07T00:00:00Z",
			want: times("2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"),
		},
		{
			// New York falls back on 2026-11-01 from 02:00 EDT to 01:00 EST:
			// 01:30 happens twice and fires once, at 01:30 EDT (05:30 UTC).
			name: "new york repeat fires once", expr: "cron(30 1 * * ? *)", tz: "America/New_York", from: "2026-10-31T00:00:00Z",
			want: times("2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
		},
		{
			// Hourly across the repeat: 01:00 fires at 01:00 EDT only.
			name: "hourly across repeat", expr: "cron(0 * * * ? *)", tz: "America/New_York", from: "2026-11-01T03:30:00Z",
			want: times("2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"),
		},
		{
			// From inside the second 01:xx hour (01:10 EST), 01:15 has
			// already fired as EDT: the next is 02:15 EST.
			name: "from inside the repeated hour", expr: "cron(15 * * * ? *)", tz: "America/New_York", from: "2026-11-01T06:10:00Z",
			want: times("2026-11-01T07:15:00Z", "2026-11-01T08:15:00Z"),
		},
		{
			// Kathmandu is UTC+5:45.
			name: "half-hour shift", expr: "cron(0 12 * * ? *)", tz: "Asia/Kathmandu", from: "2026-01-30T00:00:00Z",
			want: times("2026-01-30T06:15:00Z", "2026-01-31T06:15:00Z"),
		},
		{
			// rate() ignores the time zone: it counts elapsed time.
			name: "rate ignores zone", expr: "rate(1 day)", tz: "Asia/Tokyo", from: "2026-01-30T17:58:00Z",
			want: times("2026-01-31T00:00:00Z"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr, tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			if s.Location().String() != tc.tz {
				t.Errorf("Location = %s, want %s", s.Location(), tc.tz)
			}
			got := nextN(t, s, utc(tc.from), len(tc.want))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Next from %s (-want +got):\n%s", tc.from, diff)
			}
			if n := s.Next(utc(tc.from)); n.Location().String() != tc.tz {
				t.Errorf("Next returns times in %s, want %s", n.Location(), tc.tz)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ expr, tz, say string }{
		{"cron(0 10 * * *)", "", "6 fields"},
		{"cron(0 10 * * * *)", "", "one of them must be ?"},
		{"cron(0 10 ? * ? *)", "", "both ?"},
		{"cron(0 10 * * 0 *)", "", "one of them must be ?"},
		{"cron(0 10 ? * 0 *)", "", "1-7 for SUN-SAT"},
		{"cron(0 10 ? * 8 *)", "", "1-7 for SUN-SAT"},
		{"cron(60 10 * * ? *)", "", "minutes field"},
		{"cron(0 24 * * ? *)", "", "hours field"},
		{"cron(0 10 32 * ? *)", "", "day-of-month field"},
		{"cron(0 10 * 13 ? *)", "", "month field"},
		{"cron(0 10 * FOO ? *)", "", "JAN-DEC"},
		{"cron(50-10 * * * ? *)", "", "runs backwards"},
		{"cron(0/0 * * * ? *)", "", "step"},
		{"cron(? 10 * * ? *)", "", "only allowed in day-of-month and day-of-week"},
		{"cron(0 10 L ? * *)", "", "one of them must be ?"},
		{"cron(0 10 ? * 2#6 *)", "", "1-5"},
		{"cron(0 10 1-5W * ? *)", "", "W takes a single day"},
		{"cron(0 10 ? * 2W *)", "", "not allowed"},
		{"cron(0 10 * * ? 2150)", "", "after 2099"},
		{"cron(0 10 * * ? 1969)", "", "1970-2199"},
		{"rate(5 minute)", "", "plural"},
		{"rate(1 hours)", "", "singular"},
		{"rate(0 hours)", "", "positive"},
		{"rate(2 weeks)", "", "minute(s), hour(s) or day(s)"},
		{"rate(1)", "", "rate(value unit)"},
		{"at(2026-01-01T00:00:00)", "", "want cron("},
		{"cron(0 10 * * ? *)", "Mars/Olympus", "IANA"},
		{"cron(0 10 * * ? *)", "Local", "IANA"},
	}
	for _, tc := range tests {
		t.Run(tc.expr+" "+tc.tz, func(t *testing.T) {
			_, err := ParseSchedule(tc.expr, tc.tz)
			if err == nil || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("ParseSchedule(%q, %q) = %v, want an error saying %q", tc.expr, tc.tz, err, tc.say)
			}
		})
	}
}

func TestTranslateCron(t *testing.T) {
	tests := []struct {
		aws, want string
		perHour   int
	}{
		{"0 10 * * ? *", "0 0 10 * * * *", 1},
		{"0 9 ? * 2#1 *", "0 0 9 * * 1#1 *", 1},
		{"0 18 ? * MON-FRI *", "0 0 18 * * 1-5 *", 1},
		{"0 18 ? * 1,7 *", "0 0 18 * * 0,6 *", 1},
		{"0/15 * * * ? *", "0 0/15 * * * * *", 4},
		{"5,35 * * * ? *", "0 5,35 * * * * *", 2},
		{"0 0 ? * 6L *", "0 0 0 * * 5L *", 1},
		{"0 0 ? * L *", "0 0 0 * * 6 *", 1},
		{"0 0 15W jan-mar ? *", "0 0 0 15W 1-3 * *", 1},
		{"0 0 1 * ? 2090-2150", "0 0 0 1 * * 2090-2099", 1},
	}
	for _, tc := range tests {
		got, perHour, err := translateCron(tc.aws)
		if err != nil || got != tc.want || perHour != tc.perHour {
			t.Errorf("translateCron(%q) = %q, %d, %v; want %q, %d", tc.aws, got, perHour, err, tc.want, tc.perHour)
		}
	}
}

// cronexpr keeps per-month state inside Next; Schedule must not share it.
func TestScheduleConcurrentNext(t *testing.T) {
	s, err := ParseSchedule("cron(0 9 ? * 2#1 *)", "Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	from := utc("2026-01-30T17:58:00Z")
	want := s.Next(from)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			f := from.AddDate(0, i%4, 0)
			for range 50 {
				if got := s.Next(from); !got.Equal(want) {
					t.Errorf("concurrent Next = %s, want %s", got, want)
					return
				}
				s.Next(f)
			}
		})
	}
	wg.Wait()
}
