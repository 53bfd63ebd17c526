package restorejob

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/restore"
)

var (
	at    = time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC)
	start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	end   = start.Add(90 * time.Second)
	req   = restore.Request{Vault: "acme-vault", Bucket: "acme-media", At: at, TargetBucket: "acme-media-restored",
		Prefixes: []string{"a/", "b/"}, Mode: restore.Rollback}
)

func TestStarted(t *testing.T) {
	got := Started(req, "req-1", start)
	want := notify.Event{
		Type: notify.RestoreJobStarted, JobType: notify.JobTypeRestore, State: restore.StateRunning,
		Vault: "acme-vault", Bucket: "acme-media", Time: start,
		Detail: map[string]any{"targetBucket": "acme-media-restored", "mode": restore.Rollback,
			"at": "2026-02-28T23:59:59Z", "prefixes": 2, DetailInvocation: "req-1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Started (-want +got):\n%s", diff)
	}
	// The default mode is named; no invocation, no entry.
	got = Started(restore.Request{Vault: "v", Bucket: "b", TargetBucket: "t", Keys: []string{"k"}}, "", start)
	if diff := cmp.Diff(map[string]any{"targetBucket": "t", "mode": restore.NonDestructive, "keys": 1}, got.Detail); diff != "" {
		t.Errorf("Started detail (-want +got):\n%s", diff)
	}
}

func TestEnded(t *testing.T) {
	report := func(state, msg string, failed int64) *restore.Report {
		return &restore.Report{JobID: "restore-20260301T120000Z-00000001", Type: "RESTORE", State: state, StatusMessage: msg,
			Request: req, StartedAt: start, CompletedAt: end, DurationSeconds: 90,
			Restored: 10, Identical: 3, DeleteMarkers: 1, Absent: 2, Failed: failed, Bytes: 4096,
			Unknown: []string{"x"}, Warnings: []string{"the initial full backup of this bucket has not finished"}}
	}
	counts := func(failed int64) map[string]any {
		return map[string]any{
			"targetBucket": "acme-media-restored", "mode": restore.Rollback, "at": "2026-02-28T23:59:59Z", "prefixes": 2,
			DetailInvocation: "req-1", "startedAt": "2026-03-01T12:00:00Z", "durationSeconds": 90.0,
			"restored": int64(10), "identical": int64(3), "deleteMarkers": int64(1), "absentAtTime": int64(2),
			"failed": failed, "bytes": int64(4096), "unknownKeys": 1,
			"warnings": []string{"the initial full backup of this bucket has not finished"},
		}
	}
	boom := errors.New("list journal: access denied")
	tests := []struct {
		name   string
		rep    *restore.Report
		err    error
		want   notify.Event
		detail bool // Detail has the report's counts
	}{
		{"completed", report(restore.StateCompleted, "", 0), nil, notify.Event{
			Type: notify.RestoreJobCompleted, JobID: "restore-20260301T120000Z-00000001", State: restore.StateCompleted}, true},
		{"partial", report(restore.StatePartial, "2 objects failed", 2), nil, notify.Event{
			Type: notify.RestoreJobCompleted, JobID: "restore-20260301T120000Z-00000001", State: restore.StatePartial,
			StatusMessage: "2 objects failed"}, true},
		{"failed with a report", report(restore.StateFailed, boom.Error(), 0), boom, notify.Event{
			Type: notify.RestoreJobFailed, JobID: "restore-20260301T120000Z-00000001", State: restore.StateFailed,
			StatusMessage: boom.Error()}, true},
		{"failed before a report", nil, &restore.InvalidRequestError{Reason: "target bucket is required"}, notify.Event{
			Type: notify.RestoreJobFailed, State: restore.StateFailed,
			StatusMessage: "invalid restore request: target bucket is required"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Ended(req, tc.rep, tc.err, "req-1", end.Add(time.Second))
			want := tc.want
			want.JobType, want.Vault, want.Bucket = notify.JobTypeRestore, "acme-vault", "acme-media"
			if tc.detail {
				want.Time = end // the report's completion
				failed := int64(0)
				if tc.rep != nil {
					failed = tc.rep.Failed
				}
				want.Detail = counts(failed)
			} else {
				want.Time = end.Add(time.Second)
				want.Detail = map[string]any{"targetBucket": "acme-media-restored", "mode": restore.Rollback,
					"at": "2026-02-28T23:59:59Z", "prefixes": 2, DetailInvocation: "req-1"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Ended (-want +got):\n%s", diff)
			}
		})
	}
}
