package snapshot_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestFinishedBackupJobNeverChangesState: a backup job's record changes
// forward only. A fail step run after the job finished (its notification
// failed) leaves the record COMPLETED and its point AVAILABLE, and
// publishes the job's completion again, never BACKUP_JOB_FAILED; a fail
// step run again after it recorded FAILED keeps FAILED; and a step whose
// write of the record loses a race to another writer fails (retryable)
// instead of overwriting what the other wrote.
func TestFinishedBackupJobNeverChangesState(t *testing.T) {
	e := setup(t)
	e.put(t, "a", "a")
	f := &faulty{Client: e.c}
	eng := e.engine(f)
	record := func(id string) snapshot.Job {
		t.Helper()
		var j snapshot.Job
		if err := e.v.GetJSON(e.ctx, vault.JobKey(id), &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	fail := func(j snapshot.Job) (*snapshot.Job, error) {
		req := snapshot.FailRequest{Job: j}
		req.Error.Error = "States.TaskFailed"
		return eng.Fail(e.ctx, req)
	}

	done := e.run(t, eng, snapshot.Job{})
	if done.State != snapshot.StateCompleted {
		t.Fatalf("backup: %s", done.State)
	}
	e.ev.got = nil
	got, err := fail(*done)
	if err != nil {
		t.Fatalf("fail step after the job finished: %v", err)
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, done.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if rec := record(done.JobID); got.State != snapshot.StateCompleted || rec.State != snapshot.StateCompleted || sp.Status != vault.PointAvailable {
		t.Errorf("fail step after the job finished: returned %s, record %s, point %s; want COMPLETED, COMPLETED, AVAILABLE", got.State, rec.State, sp.Status)
	}
	if evs := e.ev.types(); !slices.Equal(evs, []string{notify.BackupJobCompleted + ":" + snapshot.StateCompleted}) {
		t.Errorf("fail step after the job finished published %v, want its completion again", evs)
	}

	// A job that fails while running is FAILED, once.
	running, err := eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := fail(*running); err != nil || got.State != snapshot.StateFailed {
			t.Fatalf("fail step of a running job: %+v %v", got, err)
		}
		if rec := record(running.JobID); rec.State != snapshot.StateFailed {
			t.Fatalf("record %s, want FAILED", rec.State)
		}
	}

	// A lost race: another writer changes the record between the seal's
	// read of it and its write.
	j := e.startScanCopy(t, eng)
	other := record(j.JobID)
	other.StatusMessage = "written by another writer"
	f.failPut = func(key string) error {
		if key == vault.JobKey(j.JobID) {
			f.failPut = nil
			body, _ := json.Marshal(other)
			if err := e.v.PutBytes(e.ctx, key, body, "application/json"); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	_, err = eng.Seal(e.ctx, *j)
	var retry *snapshot.RetryableError
	if !errors.As(err, &retry) || !vault.IsConflict(err) {
		t.Fatalf("seal that lost the race for its job record: %v (%T), want a RetryableError of a vault.ConflictError", err, err)
	}
	if rec := record(j.JobID); rec.StatusMessage != other.StatusMessage || rec.State != snapshot.StateRunning {
		t.Fatalf("the losing seal overwrote the record: %s %q", rec.State, rec.StatusMessage)
	}
	// Retried, it reads the record again and finishes the job.
	if sealed, err := eng.Seal(e.ctx, *j); err != nil || sealed.State != snapshot.StateCompleted || record(j.JobID).State != snapshot.StateCompleted {
		t.Fatalf("retried seal: %+v %v", sealed, err)
	}
}
