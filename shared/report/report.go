// Package report builds a vault's report for people who would rather look
// than read: each protected bucket's recovery points on a timeline (the
// CONTINUOUS window as a band, SNAPSHOT points as marks coloured by their
// status), the restore tests' restore times against their RTO targets,
// every failed test with the keys that failed and why, and a table of all
// the runs. Build reads the vault through shared/vault and
// shared/restoretest (it builds no vault key); New makes the same Report
// from records already read; Render writes it as one self-contained HTML
// page (inline CSS and SVG, nothing loaded from anywhere) with
// html/template, which escapes everything a record holds.
package report

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// RecentDays is the span of the summary's recent restore tests.
const RecentDays = 30

// Report is what the page shows.
type Report struct {
	Vault string
	// Bucket is the one bucket reported ("": every bucket of the vault).
	Bucket      string
	GeneratedAt time.Time
	Summary     Summary
	// Buckets are the protected buckets and those with snapshots or
	// restore tests, by name.
	Buckets []Bucket
	// Runs are the restore tests, most recent first; Failures those that
	// FAILED, most recent first.
	Runs     []Run
	Failures []Run
	Timeline Timeline
	// Charts holds one restore time chart per bucket with restore tests.
	Charts []RestoreChart
}

// Summary is the page's header in numbers.
type Summary struct {
	Buckets int `json:"buckets"`
	// Points counts recovery points: ContinuousPoints (one per protected
	// bucket) and Snapshots; SnapshotStatus counts snapshots by status.
	Points           int     `json:"points"`
	ContinuousPoints int     `json:"continuousPoints"`
	Snapshots        int     `json:"snapshots"`
	SnapshotStatus   []Count `json:"snapshotStatus,omitempty"`
	// Tests counts every restore test recorded; RecentPassed and
	// RecentFailed those started in the last RecentDays days.
	Tests        int `json:"tests"`
	RecentPassed int `json:"recentPassed"`
	RecentFailed int `json:"recentFailed"`
	// RTOMeasured counts runs with an RTO target, RTOMissed those whose
	// restore took longer.
	RTOMeasured int `json:"rtoMeasured"`
	RTOMissed   int `json:"rtoMissed"`
}

// Count is a number of things with one status.
type Count struct {
	Status string `json:"status"`
	Class  string `json:"-"`
	N      int    `json:"n"`
}

// Bucket is one bucket's recovery points and restore tests.
type Bucket struct {
	Name string
	// Continuous is its CONTINUOUS point (nil: not protected, only
	// snapshots left); Snapshots its SNAPSHOT points, oldest first.
	Continuous     *vault.RecoveryPoint
	Snapshots      []vault.RecoveryPoint
	SnapshotStatus []Count
	// Runs are its restore tests, oldest first; LastTest the newest.
	Runs     []Run
	LastTest *Run
	Passed   int
	Failed   int
}

// Run is one restore test as the page shows it.
type Run struct {
	restoretest.Run
	// RTOMissed says the restore took longer than its RTO target.
	RTOMissed bool
	// UserValidation is the verdict a user's validation reported for the
	// run, when its record carries one ("": none).
	UserValidation string
}

// Build reads the vault's recovery points and restore tests (of bucket
// only, when it is not "") as of now and makes the report.
func Build(ctx context.Context, v *vault.Vault, bucket string, now time.Time) (*Report, error) {
	points, err := v.RecoveryPoints(ctx, bucket, now)
	if err != nil {
		return nil, err
	}
	runs, err := restoretest.History(ctx, v, bucket)
	if err != nil {
		return nil, err
	}
	return New(v.Bucket, bucket, now, points, runs), nil
}

// New makes the report of vault from its recovery points and restore
// test runs, in any order.
func New(vaultName, bucket string, now time.Time, points []vault.RecoveryPoint, runs []restoretest.Run) *Report {
	now = now.UTC()
	r := &Report{Vault: vaultName, Bucket: bucket, GeneratedAt: now}
	byName := map[string]*Bucket{}
	get := func(name string) *Bucket {
		b := byName[name]
		if b == nil {
			b = &Bucket{Name: name}
			byName[name] = b
		}
		return b
	}
	snapStatus := map[string]int{}
	for _, p := range points {
		b := get(p.ResourceName)
		switch p.Type {
		case "CONTINUOUS":
			b.Continuous = &p
			r.Summary.ContinuousPoints++
		default:
			b.Snapshots = append(b.Snapshots, p)
			r.Summary.Snapshots++
			snapStatus[p.Status]++
		}
	}
	recent := now.AddDate(0, 0, -RecentDays)
	for _, rr := range runs {
		run := Run{Run: rr, UserValidation: userValidation(rr)}
		run.RTOMissed = rr.RTOMet != nil && !*rr.RTOMet
		r.Runs = append(r.Runs, run)
		b := get(rr.Bucket)
		b.Runs = append(b.Runs, run)
		switch rr.Status {
		case restoretest.StatusSuccessful:
			b.Passed++
		case restoretest.StatusFailed:
			b.Failed++
		}
		r.Summary.Tests++
		if !rr.StartedAt.Before(recent) && !rr.StartedAt.After(now) {
			switch rr.Status {
			case restoretest.StatusSuccessful:
				r.Summary.RecentPassed++
			case restoretest.StatusFailed:
				r.Summary.RecentFailed++
			}
		}
		if rr.RTOMet != nil {
			r.Summary.RTOMeasured++
			if run.RTOMissed {
				r.Summary.RTOMissed++
			}
		}
	}
	for _, b := range byName {
		sort.SliceStable(b.Snapshots, func(i, j int) bool { return pointTime(b.Snapshots[i]).Before(pointTime(b.Snapshots[j])) })
		sort.SliceStable(b.Runs, func(i, j int) bool { return b.Runs[i].StartedAt.Before(b.Runs[j].StartedAt) })
		if n := len(b.Runs); n > 0 {
			last := b.Runs[n-1]
			b.LastTest = &last
		}
		st := map[string]int{}
		for _, p := range b.Snapshots {
			st[p.Status]++
		}
		b.SnapshotStatus = counts(st)
		r.Buckets = append(r.Buckets, *b)
	}
	sort.Slice(r.Buckets, func(i, j int) bool { return r.Buckets[i].Name < r.Buckets[j].Name })
	sort.SliceStable(r.Runs, func(i, j int) bool { return r.Runs[i].StartedAt.After(r.Runs[j].StartedAt) })
	for _, run := range r.Runs {
		if run.Status == restoretest.StatusFailed {
			r.Failures = append(r.Failures, run)
		}
	}
	r.Summary.Buckets = len(r.Buckets)
	r.Summary.Points = r.Summary.ContinuousPoints + r.Summary.Snapshots
	r.Summary.SnapshotStatus = counts(snapStatus)
	r.Timeline = NewTimeline(r.Buckets, now)
	for _, b := range r.Buckets {
		if len(b.Runs) > 0 {
			r.Charts = append(r.Charts, NewRestoreChart(b.Name, b.Runs))
		}
	}
	return r
}

// counts orders counts by status.
func counts(m map[string]int) []Count {
	var out []Count
	for s, n := range m {
		out = append(out, Count{Status: s, Class: statusClass(s), N: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Status < out[j].Status })
	return out
}

// userValidation is the verdict of a user's validation that the run's
// record holds, read by its JSON name (userValidation) so the report
// shows it whatever form the record gives it: a word, or an object with
// AWS Backup's ValidationStatus and ValidationStatusMessage (or a
// verdict and a message).
func userValidation(r restoretest.Run) string {
	b, err := json.Marshal(r)
	if err != nil {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		return ""
	}
	return verdictText(fields["userValidation"])
}

// verdictText is a user validation's JSON as words ("": none).
func verdictText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var word string
	if json.Unmarshal(raw, &word) == nil {
		return word
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return string(raw)
	}
	pick := func(names ...string) string {
		for _, n := range names {
			for k, v := range obj {
				if s, ok := v.(string); ok && strings.EqualFold(k, n) && s != "" {
					return s
				}
			}
		}
		return ""
	}
	verdict := pick("validationStatus", "verdict", "status")
	msg := pick("validationStatusMessage", "message", "statusMessage")
	switch {
	case verdict == "":
		return string(raw)
	case msg != "":
		return verdict + ": " + msg
	default:
		return verdict
	}
}
