package snapshot

import (
	"context"
	"fmt"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// MaxEventFailures bounds the failed objects one S3_BACKUP_OBJECT_FAILED
// event lists (the recovery point record lists them all).
const MaxEventFailures = 20

// Notify publishes the finished job's state change: BACKUP_JOB_COMPLETED
// for COMPLETED and PARTIAL jobs (and S3_BACKUP_OBJECT_FAILED with the
// first failed objects of a PARTIAL one), BACKUP_JOB_FAILED for FAILED,
// ABORTED and EXPIRED ones. A publish failure is a RetryableError.
func (e *Engine) Notify(ctx context.Context, job Job) (*Job, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	ev := e.event(job)
	switch job.State {
	case StateCompleted, StatePartial:
		ev.Type = notify.BackupJobCompleted
	default:
		ev.Type = notify.BackupJobFailed
	}
	if err := e.publish(ctx, ev); err != nil {
		return nil, err
	}
	if job.State == StatePartial && job.RecoveryPointID != "" {
		if err := e.notifyFailures(ctx, job); err != nil {
			return nil, err
		}
	}
	return &job, nil
}

func (e *Engine) notifyFailures(ctx context.Context, job Job) error {
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return classify(err)
	}
	sp, err := v.Snapshot(ctx, job.Bucket, job.RecoveryPointID)
	if err != nil {
		return classify(err)
	}
	var objs []map[string]any
	for _, f := range sp.Failures[:min(len(sp.Failures), MaxEventFailures)] {
		objs = append(objs, map[string]any{"key": f.Key, "versionId": f.VersionID, "reason": f.Reason, "detail": f.Detail})
	}
	ev := e.event(job)
	ev.Type = notify.S3BackupObjectFailed
	ev.StatusMessage = fmt.Sprintf("%d objects were not backed up", sp.FailedObjects)
	ev.Detail["failedObjects"] = sp.FailedObjects
	ev.Detail["objects"] = objs
	return e.publish(ctx, ev)
}

func (e *Engine) event(job Job) notify.Event {
	ev := notify.Event{JobID: job.JobID, JobType: notify.JobTypeBackup, State: job.State, Vault: job.Vault, Bucket: job.Bucket,
		RecoveryPointID: job.RecoveryPointID, StatusMessage: job.StatusMessage, Time: e.now(), Detail: map[string]any{}}
	if t := job.Totals; t != nil {
		ev.Detail["objects"], ev.Detail["bytes"] = t.Objects, t.Bytes
		ev.Detail["copiedObjects"], ev.Detail["copiedBytes"], ev.Detail["failedObjects"] = t.Copied, t.CopiedBytes, t.Failed
	}
	if c := job.CreatedBy; c != nil {
		ev.Detail["backupPlanId"], ev.Detail["backupRuleName"] = c.BackupPlanID, c.BackupRuleName
	}
	return ev
}

func (e *Engine) events() notify.Publisher {
	if e.Events == nil {
		return notify.Log{Logger: e.Log}
	}
	return e.Events
}

func (e *Engine) publish(ctx context.Context, ev notify.Event) error {
	if err := e.events().Publish(ctx, ev); err != nil {
		return &RetryableError{Err: fmt.Errorf("publish %s of job %s: %w", ev.Type, ev.JobID, err)}
	}
	return nil
}

// FailRequest is the fail step's input: the job, and what the state
// machine's Catch caught.
type FailRequest struct {
	Job   Job `json:"job"`
	Error struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error"`
}

// Fail records a job that failed outright: the job FAILED, its recovery
// point (if start made one) STOPPED so no restore or later snapshot uses
// it, and BACKUP_JOB_FAILED published. A finished job never changes
// state: one that has finished already (its notification failed after
// the seal) stays as its record has it, and its own state change is
// published again, as Notify would. A job whose point was sealed but
// whose record was not finished (the seal's last write failed) is
// finished from its point, as a retried seal would, and published so.
func (e *Engine) Fail(ctx context.Context, req FailRequest) (*Job, error) {
	job := req.Job
	if err := job.validate(); err != nil {
		return nil, err
	}
	job.State = StateFailed
	job.StatusMessage = req.Error.Error
	if req.Error.Cause != "" {
		job.StatusMessage += ": " + req.Error.Cause
	}
	if job.JobID != "" {
		v, err := vault.Open(ctx, e.S3, job.Vault)
		if err != nil {
			return nil, classify(err)
		}
		if job.RecoveryPointID != "" {
			switch sp, err := v.Snapshot(ctx, job.Bucket, job.RecoveryPointID); {
			case err == nil && sp.Status == vault.PointCreating:
				now := e.now()
				sp.Status, sp.StatusMessage, sp.CompletionDate = vault.PointStopped, "the backup job failed: "+job.StatusMessage, &now
				// It expires with its lifecycle, as a sealed point does.
				sp.CalculatedLifecycle = sp.Lifecycle.Calculate(sp.CreationDate)
				if err := v.SetPoint(ctx, sp); err != nil {
					return nil, classify(err)
				}
			case err == nil && sp.Status != vault.PointStopped:
				// Sealed (or expired) already: a failure after the seal
				// does not unseal it, and the job is what its seal made it.
				var rec Job
				if err := v.GetJSON(ctx, vault.JobKey(job.JobID), &rec); err != nil && !s3x.IsNotFound(err) {
					return nil, classify(err)
				}
				if vault.JobFinished(rec.State) {
					return e.failedAfterEnd(ctx, rec, job.StatusMessage)
				}
				sealed, err := e.resealed(ctx, v, req.Job, sp)
				if err != nil {
					return nil, err
				}
				return e.Notify(ctx, *sealed)
			case err != nil && !s3x.IsNotFound(err):
				return nil, classify(err)
			}
		}
		rec, wrote, err := recordEnd(ctx, v, job)
		if err != nil {
			return nil, classify(err)
		}
		if !wrote {
			// Finished already: FAILED by an earlier run of this step
			// (whose publish failed), or another state.
			return e.failedAfterEnd(ctx, rec, job.StatusMessage)
		}
	}
	ev := e.event(job)
	ev.Type = notify.BackupJobFailed
	if err := e.publish(ctx, ev); err != nil {
		return nil, err
	}
	return &job, nil
}

// failedAfterEnd answers a fail step of a job that had finished: its
// record stays, and its state change is published again (events are at
// least once; the one its last step sent may have failed).
func (e *Engine) failedAfterEnd(ctx context.Context, rec Job, cause string) (*Job, error) {
	if rec.State != StateFailed {
		e.log().WarnContext(ctx, "backup job failed after it finished: its record stays", "job", rec.JobID, "state", rec.State, "error", cause)
	}
	return e.Notify(ctx, rec)
}
