package snapshot

import (
	"context"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// A backup job's record (vault.JobKey) changes forward only. Start
// creates it (If-None-Match: a new job id each time); the seal, or the
// fail step, finishes it over the RUNNING version it read (If-Match). A
// finished job never changes state: a step that finds its job finished
// leaves the record as it is. A write that loses a race (another step
// changed the record between the read and the write) is a
// vault.ConflictError, which the state machine retries, reading the
// record again; it never overwrites what the other wrote.

// recordEnd writes job, finished, into its record over the version read
// while that is not finished (where start wrote none, it creates it). It
// returns the job as recorded and whether this call wrote it: a job found
// finished already is returned as its record has it, unchanged.
func recordEnd(ctx context.Context, v *vault.Vault, job Job) (Job, bool, error) {
	var cur Job
	wrote := false
	_, err := v.UpdateJobRecord(ctx, job.JobID, &cur, func() bool {
		if vault.JobFinished(cur.State) {
			return false
		}
		cur, wrote = job, true
		return true
	})
	switch {
	case s3x.IsNotFound(err):
		if _, err := v.CreateJobRecord(ctx, job.JobID, job); err != nil {
			return Job{}, false, err
		}
		return job, true, nil
	case err != nil:
		return Job{}, false, err
	case !wrote:
		return cur, false, nil
	}
	return job, true, nil
}
