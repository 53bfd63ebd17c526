package vault

import "time"

// Job states: the "state" of a job record (JobKey), AWS Backup's names.
// Every type of job (JobTypeBackup, JobTypeRestore) uses these; which ones
// a type's record holds, and how it may move between them, is the type's
// (docs/vault-format.md, "Jobs"):
//
//   - BACKUP (snapshot.Job): RUNNING, then one of COMPLETED, PARTIAL,
//     ABORTED or FAILED (its fail step, or expiry once its deadline has
//     passed: stale.go); or EXPIRED from the start. Forward only: a
//     finished backup job never changes state.
//   - RESTORE (restore.Report): RUNNING, then COMPLETED, PARTIAL, FAILED
//     or ABORTED (interrupted). A run again with the job's id takes an
//     ABORTED, FAILED or PARTIAL job back to RUNNING and finishes it; a
//     COMPLETED one never changes.
const (
	JobRunning   = "RUNNING"
	JobCompleted = "COMPLETED"
	JobPartial   = "PARTIAL"
	JobAborted   = "ABORTED"
	JobExpired   = "EXPIRED"
	JobFailed    = "FAILED"
)

// JobFinished says whether a job in state has ended (it is neither
// RUNNING nor unset).
func JobFinished(state string) bool { return state != "" && state != JobRunning }

// A backup job's life is bounded: it runs as one execution of a Step
// Functions state machine whose timeout is its rule's completion window
// (a rule's state machine) or AWS Backup's default one (the on-demand
// state machine, DefaultCompletionWindow), and the execution starts
// before the job's start step does; a Lambda invocation in flight when
// the execution ends runs at most 15 minutes more. So once
// BackupJobDeadline has passed, no step of the job can be running: a
// point still CREATING then was abandoned (the execution aborted or
// timed out, or a step crashed with nothing to catch it), and expiry
// stops it (stale.go). A step run outside a state machine (the local
// runner) is bounded by the seal, which refuses to seal past the
// deadline.
const DefaultCompletionWindow = 7 * 24 * time.Hour

// JobDeadlineGrace is what a backup job's deadline adds to the longest
// its execution can run: the last Lambda invocation's 15 minutes, and
// clocks that disagree. Tests shorten it.
var JobDeadlineGrace = time.Hour

// BackupJobDeadline is when a backup job started at startedAt, with the
// completion window window (0: unknown, the default), has ended whatever
// became of it: startedAt plus the longer of its window and
// DefaultCompletionWindow (whichever state machine ran it), plus
// JobDeadlineGrace.
func BackupJobDeadline(startedAt time.Time, window time.Duration) time.Time {
	return startedAt.Add(max(window, DefaultCompletionWindow)).Add(JobDeadlineGrace).UTC()
}
