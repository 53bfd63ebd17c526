package restoretest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// A run's record has more than one writer: the run's own steps, the
// sweeper, a validation's PutValidationResult (and, should a step run
// twice, a second copy of it). So it is written as the vault's other
// state records are: created once (If-None-Match), then changed only over
// the version its writer read or last wrote (If-Match), and only forward
// (runMay): RUNNING becomes VALIDATING, SUCCESSFUL or FAILED; VALIDATING
// becomes SUCCESSFUL or FAILED; a run that ended keeps its status (only
// when its bucket went is added). A writer that lost a race gets a
// vault.ConflictError, or, where it can decide again (update), reads the
// record again and decides on what is there now: nobody's stale copy is
// ever written over another writer's verdict.

// updateAttempts is how many times update decides and writes before it
// gives the conflict up to its caller.
const updateAttempts = 4

// RunTransitionError refuses a change of a run's status that would go
// backwards: a run that ended (SUCCESSFUL, FAILED) never changes status,
// and nothing goes back to RUNNING.
type RunTransitionError struct{ RunID, From, To string }

func (e *RunTransitionError) Error() string {
	return fmt.Sprintf("restore test %s is %s: it cannot become %s", e.RunID, e.From, e.To)
}

// ended says whether a status is a run's end.
func ended(status string) bool { return status == StatusSuccessful || status == StatusFailed }

// runMay says whether a run's record whose status is from may be written
// with status to ("" from: a record not written yet).
func runMay(from, to string) bool {
	switch from {
	case "":
		return true
	case StatusRunning:
		return to == StatusRunning || to == StatusValidating || ended(to)
	case StatusValidating:
		return to == StatusValidating || ended(to)
	}
	return to == from
}

// save writes run over the version of its record it was read from or
// last wrote (If-Match), or creates the record (If-None-Match) when it
// has none. A record changed meanwhile is a vault.ConflictError, and a
// status going backwards a RunTransitionError; neither writes anything.
func save(ctx context.Context, v *vault.Vault, run *Run) error {
	if !runMay(run.stored, run.Status) {
		return &RunTransitionError{RunID: run.ID, From: run.stored, To: run.Status}
	}
	etag, err := v.PutJSONIf(ctx, vault.RestoreTestKey(run.Bucket, run.ID), run, run.etag)
	if err != nil {
		return fmt.Errorf("record restore test %s of s3://%s: %w", run.ID, run.Bucket, err)
	}
	run.etag, run.stored = etag, run.Status
	return nil
}

// loadRun reads a run's record, with the version it read (for save).
func loadRun(ctx context.Context, v *vault.Vault, bucket, id string) (*Run, error) {
	return readRun(ctx, v, vault.RestoreTestKey(bucket, id))
}

func readRun(ctx context.Context, v *vault.Vault, key string) (*Run, error) {
	var run Run
	etag, err := v.GetJSONETag(ctx, key, &run)
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("read restore test s3://%s/%s: %w", v.Bucket, key, err)
	}
	run.etag, run.stored = etag, run.Status
	return &run, nil
}

// update lets decide change run (false: nothing to write) and writes it
// (save). When another writer changed the record meanwhile, run becomes
// what the record holds now and decide decides again on that, up to
// updateAttempts times. It reports whether it wrote.
func update(ctx context.Context, v *vault.Vault, run *Run, decide func() (bool, error)) (bool, error) {
	for attempt := 1; ; attempt++ {
		write, err := decide()
		if err != nil || !write {
			return false, err
		}
		err = save(ctx, v, run)
		if err == nil {
			return true, nil
		}
		if !vault.IsConflict(err) || attempt == updateAttempts {
			return false, err
		}
		fresh, err := loadRun(ctx, v, run.Bucket, run.ID)
		if err != nil {
			return false, err
		}
		*run = *fresh
	}
}

// end sets a run's verdict from its problems: SUCCESSFUL without any,
// FAILED with them (the message joins them), ended at.
func (r *Run) end(at time.Time) {
	r.Status, r.StatusMessage = StatusSuccessful, ""
	if len(r.Problems) > 0 {
		r.Status, r.StatusMessage = StatusFailed, strings.Join(r.Problems, "; ")
	}
	r.CompletedAt = at.UTC()
}

// markDeleted records when a run's restored bucket went (once: a record
// that says so already is left as it is).
func markDeleted(ctx context.Context, v *vault.Vault, run *Run, at time.Time) error {
	_, err := update(ctx, v, run, func() (bool, error) {
		if run.DeletedAt != nil {
			return false, nil
		}
		d := at.UTC()
		run.DeletedAt = &d
		return true, nil
	})
	return err
}
