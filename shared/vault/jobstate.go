package vault

// Job states: the "state" of a job record (JobKey), AWS Backup's names.
// Every type of job (JobTypeBackup, JobTypeRestore) uses these; which ones
// a type's record holds, and how it may move between them, is the type's
// (docs/vault-format.md, "Jobs"):
//
//   - BACKUP (snapshot.Job): RUNNING, then one of COMPLETED, PARTIAL,
//     ABORTED or FAILED; or EXPIRED from the start. Forward only: a
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
