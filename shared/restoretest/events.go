package restoretest

import (
	"github.com/bucketvault/bucketvault/shared/notify"
)

// The job events of a restore test (RESTORE_TESTING jobs): STARTED once
// the run is recorded, COMPLETED (SUCCESSFUL) or FAILED once its verdict
// is known, which may be before its restored bucket goes. The restore a
// test makes is a RESTORE job with events of its own, where the restore
// function runs it.

func startedEvent(run *Run) notify.Event {
	return notify.Event{Type: notify.RestoreTestingJobStarted, JobType: notify.JobTypeRestoreTesting, JobID: run.ID, State: StatusRunning,
		Vault: run.Vault, Bucket: run.Bucket, RecoveryPointID: run.RecoveryPointID, Time: run.StartedAt, Detail: runDetail(run)}
}

func endedEvent(run *Run) notify.Event {
	e := notify.Event{Type: notify.RestoreTestingJobCompleted, JobType: notify.JobTypeRestoreTesting, JobID: run.ID, State: run.Status,
		Vault: run.Vault, Bucket: run.Bucket, RecoveryPointID: run.RecoveryPointID, StatusMessage: run.StatusMessage, Time: run.CompletedAt, Detail: runDetail(run)}
	if run.Status != StatusSuccessful {
		e.Type = notify.RestoreTestingJobFailed
	}
	return e
}

// runDetail is what an event says of a run beyond its job's fields.
func runDetail(run *Run) map[string]any {
	d := map[string]any{
		"recoveryPointType": string(run.Type), "restoredAsOf": run.At, "targetBucket": run.TargetBucket, "restoreJobId": run.RestoreJobID,
	}
	if run.PlanName != "" {
		d["restoreTestingPlanName"] = run.PlanName
	}
	if run.SelectionName != "" {
		d["restoreTestingSelectionName"] = run.SelectionName
	}
	if !run.CompletedAt.IsZero() {
		d["restoreState"], d["restoreSeconds"], d["objects"], d["bytes"] = run.RestoreState, run.RestoreSeconds, run.Objects, run.Bytes
		d["failedKeys"] = len(run.Failures)
		if run.Validation != nil {
			d["validationStatus"] = run.Validation.Verdict
		}
		if run.RTOMet != nil {
			d["rtoTargetSeconds"], d["rtoMet"] = run.RTOTargetSeconds, *run.RTOMet
		}
		if uv := run.UserValidation; uv != nil {
			d["userValidationStatus"] = uv.Status
		}
	}
	return d
}
