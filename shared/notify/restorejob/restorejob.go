// Package restorejob turns a restore job (shared/restore's request and
// report) into job events. It is apart from package notify so that notify
// imports no engine package, and any engine package, restore included, can
// publish through it.
package restorejob

import (
	"errors"
	"time"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/restore"
)

// DetailInvocation is the Detail entry that ties a restore's STARTED event
// to the event that ends it: the Lambda request id (or any id of the run).
const DetailInvocation = "invocation"

// Started is RESTORE_JOB_STARTED for a request about to run. The job id is
// assigned once the request is checked and the job record written (inside
// restore.Restorer.Run), so this event has none: DetailInvocation, set when
// invocation is, ties it to the event that ends the job, which has both.
func Started(req restore.Request, invocation string, now time.Time) notify.Event {
	return notify.Event{
		Type: notify.RestoreJobStarted, JobType: notify.JobTypeRestore, State: restore.StateRunning,
		Vault: req.Vault, Bucket: req.Bucket, Time: now,
		Detail: requestDetail(req, invocation),
	}
}

// Ended is the event that ends a restore: RESTORE_JOB_COMPLETED when the
// report's state is COMPLETED or PARTIAL (some objects failed: State says
// PARTIAL, Detail counts them), RESTORE_JOB_FAILED when it is FAILED or
// when the request failed before a report existed (rep nil: an invalid
// request, a target not allowed, a vault that cannot be opened).
func Ended(req restore.Request, rep *restore.Report, runErr error, invocation string, now time.Time) notify.Event {
	e := notify.Event{
		Type: notify.RestoreJobFailed, JobType: notify.JobTypeRestore, State: restore.StateFailed,
		Vault: req.Vault, Bucket: req.Bucket, Time: now,
		Detail: requestDetail(req, invocation),
	}
	if rep == nil {
		if runErr == nil {
			runErr = errors.New("the restore returned no report")
		}
		e.StatusMessage = runErr.Error()
		return e
	}
	e.JobID, e.State, e.StatusMessage = rep.JobID, rep.State, rep.StatusMessage
	if rep.State == restore.StateCompleted || rep.State == restore.StatePartial {
		e.Type = notify.RestoreJobCompleted
	}
	if e.State == "" {
		e.State = restore.StateFailed
	}
	if e.StatusMessage == "" && runErr != nil {
		e.StatusMessage = runErr.Error()
	}
	if !rep.CompletedAt.IsZero() {
		e.Time = rep.CompletedAt
	}
	d := e.Detail
	d["startedAt"] = rep.StartedAt.UTC().Format(time.RFC3339)
	d["durationSeconds"] = rep.DurationSeconds
	d["restored"] = rep.Restored
	d["identical"] = rep.Identical
	d["deleteMarkers"] = rep.DeleteMarkers
	d["absentAtTime"] = rep.Absent
	d["failed"] = rep.Failed
	d["bytes"] = rep.Bytes
	if n := len(rep.Unknown); n > 0 {
		d["unknownKeys"] = n
	}
	if len(rep.Warnings) > 0 {
		d["warnings"] = rep.Warnings
	}
	return e
}

// requestDetail is what every restore event says about the request: where
// to, as of when, how. Keys and prefixes are counted, not listed (an event
// is at most 256 KB).
func requestDetail(req restore.Request, invocation string) map[string]any {
	d := map[string]any{
		"targetBucket": req.TargetBucket,
		"mode":         req.Mode,
	}
	if !req.At.IsZero() {
		d["at"] = req.At.UTC().Format(time.RFC3339Nano)
	}
	if req.Mode == "" {
		d["mode"] = restore.NonDestructive
	}
	if n := len(req.Prefixes); n > 0 {
		d["prefixes"] = n
	}
	if n := len(req.Keys); n > 0 {
		d["keys"] = n
	}
	if invocation != "" {
		d[DetailInvocation] = invocation
	}
	return d
}
