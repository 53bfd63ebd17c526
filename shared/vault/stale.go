package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// A snapshot job that dies without its fail step (its execution aborted
// or timed out, a step crashed with nothing to catch it, a deploy) leaves
// its recovery point CREATING: it would hold its base (carriers) and its
// fragments forever and list as CREATING. Its life is bounded
// (BackupJobDeadline), so expiry stops it once the deadline has passed,
// before it expires points: the same run then expires its base at the
// base's DeleteAt, and collects its fragments' data when nothing else
// references it (docs/vault-format.md, "Expiry").
//
// Each change is conditional and forward only. The job's record first
// (RUNNING becomes FAILED, If-Match on the version read; a finished one is
// left as it is), then the point (CREATING becomes STOPPED, If-Match; one
// sealed or stopped meanwhile is left as it is): a run stopped between
// the two finds the point CREATING again and finishes. A job that was
// somehow still running finds its point STOPPED: its seal refuses it
// (the seal of a STOPPED point is refused, writing nothing; one that read
// it CREATING loses its If-Match write), and its fail step leaves both
// records as they are.

// StoppedPoint is a CREATING recovery point expiry stopped (dry: would
// stop) because its job's deadline had passed.
type StoppedPoint struct {
	Bucket          string    `json:"bucket"`
	RecoveryPointID string    `json:"recoveryPointId"`
	BackupJobID     string    `json:"backupJobId"`
	Deadline        time.Time `json:"deadline"`
	// DeadlineFrom says where the deadline came from: the point's record
	// (JobDeadline), its job's record (startedAt and its window), or its
	// CreationDate with the default window (neither recorded one).
	DeadlineFrom string `json:"deadlineFrom"`
	// JobState is the job record's state after the stop (FAILED, or the
	// state it had ended in already; "" when there is no record).
	JobState string `json:"jobState,omitempty"`
	Message  string `json:"statusMessage"`
}

// stopAbandoned stops the CREATING points whose job's deadline has
// passed. What a job may still be doing is judged by the clock: the
// deadline must have passed both at o.Now and now, so a what-if run with
// a later --now stops nothing that may be running (it says so).
func (v *Vault) stopAbandoned(ctx context.Context, o ExpireOptions, rep *ExpireReport) error {
	at := o.Now
	if now := time.Now().UTC(); now.Before(at) {
		at = now
	}
	return v.eachBucketPoints(ctx, func(b string, points []SnapshotPoint) error {
		for i := range points {
			sp := &points[i]
			if sp.Status != PointCreating {
				continue
			}
			deadline, from, err := v.abandonDeadline(ctx, sp)
			if err != nil {
				return err
			}
			if deadline.After(at) {
				if !deadline.After(o.Now) {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("recovery point %s of %s is CREATING past its job's deadline %s as of %s, but not yet by the clock: its job may still be running, so it is not stopped",
						sp.RecoveryPointID, b, deadline.Format(time.RFC3339), o.Now.Format(time.RFC3339)))
				}
				continue
			}
			st := StoppedPoint{Bucket: b, RecoveryPointID: sp.RecoveryPointID, BackupJobID: sp.BackupJobID, Deadline: deadline, DeadlineFrom: from,
				Message: fmt.Sprintf("stopped by expiry at %s: its backup job %s did not end by its deadline %s (%s), so it can no longer be running: "+
					"its execution ended without its seal or fail step (aborted, timed out, or a step crashed with nothing to catch it)",
					at.Format(time.RFC3339), sp.BackupJobID, deadline.Format(time.RFC3339), from)}
			if o.DryRun {
				rep.Stopped = append(rep.Stopped, st)
				continue
			}
			if st.JobState, err = v.failAbandonedJob(ctx, sp.BackupJobID, st.Message); err != nil {
				return fmt.Errorf("stop recovery point %s of %s: its job's record: %w", sp.RecoveryPointID, b, err)
			}
			stopped, err := v.stopPoint(ctx, b, sp.RecoveryPointID, at, st.Message)
			if err != nil {
				return fmt.Errorf("stop recovery point %s of %s: %w", sp.RecoveryPointID, b, err)
			}
			if stopped {
				rep.Stopped = append(rep.Stopped, st)
			}
			if err := expireStep("point-stopped"); err != nil {
				return err
			}
		}
		return nil
	})
}

// abandonDeadline is the deadline of a CREATING point's job, and where
// it came from: the point's JobDeadline; for a record written before
// deadlines were recorded, the job record's startedAt and completion
// window; without either, the point's CreationDate (its job's start) and
// the default window.
func (v *Vault) abandonDeadline(ctx context.Context, sp *SnapshotPoint) (time.Time, string, error) {
	if sp.JobDeadline != nil {
		return sp.JobDeadline.UTC(), "the point's JobDeadline", nil
	}
	var rec struct {
		StartedAt               time.Time `json:"startedAt"`
		CompletionWindowMinutes int64     `json:"completionWindowMinutes"`
	}
	if sp.BackupJobID != "" {
		if err := v.GetJSON(ctx, JobKey(sp.BackupJobID), &rec); err != nil && !s3x.IsNotFound(err) {
			return time.Time{}, "", err
		}
	}
	if rec.StartedAt.IsZero() {
		return BackupJobDeadline(sp.CreationDate, 0), "its creation date and the default completion window: no deadline recorded", nil
	}
	return BackupJobDeadline(rec.StartedAt, time.Duration(rec.CompletionWindowMinutes)*time.Minute), "its job record's start and completion window", nil
}

// staleRetries bounds the fresh reads after a lost conditional write
// (another writer changed the record between the read and the write).
const staleRetries = 3

// failAbandonedJob finishes the record of an abandoned backup job:
// RUNNING becomes FAILED with msg (If-Match on the version read); a
// finished job (or a record of another type) is left as it is. It
// returns the record's state after; "" when there is none.
func (v *Vault) failAbandonedJob(ctx context.Context, jobID, msg string) (string, error) {
	if jobID == "" {
		return "", nil
	}
	key := JobKey(jobID)
	for attempt := 0; ; attempt++ {
		// Raw fields: the record's schema is the snapshot package's; only
		// its state and message change, every other field as it was.
		var rec map[string]json.RawMessage
		etag, err := v.getJSONETag(ctx, key, &rec)
		if s3x.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		var state, typ string
		_ = json.Unmarshal(rec["state"], &state)
		_ = json.Unmarshal(rec["type"], &typ)
		if (typ != "" && typ != JobTypeBackup) || JobFinished(state) {
			return state, nil
		}
		rec["state"], _ = json.Marshal(JobFailed)
		rec["statusMessage"], _ = json.Marshal(msg)
		_, err = v.putJSONIf(ctx, key, rec, etag)
		if IsConflict(err) && attempt < staleRetries {
			continue
		}
		if err != nil {
			return "", err
		}
		return JobFailed, nil
	}
}

// stopPoint makes a CREATING point STOPPED with msg (If-Match on the
// version read); it says whether it did: a point sealed, stopped or gone
// meanwhile is left as it is.
func (v *Vault) stopPoint(ctx context.Context, bucket, id string, at time.Time, msg string) (bool, error) {
	key := SnapshotKey(bucket, id)
	for attempt := 0; ; attempt++ {
		var cur SnapshotPoint
		etag, err := v.getJSONETag(ctx, key, &cur)
		if s3x.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if cur.Status != PointCreating {
			return false, nil
		}
		stopped := at
		cur.Status, cur.StatusMessage, cur.CompletionDate = PointStopped, msg, &stopped
		if cur.CalculatedLifecycle == nil {
			// A STOPPED point expires with its lifecycle like any other
			// (and with it whatever a late seal wrote under its prefix).
			cur.CalculatedLifecycle = cur.Lifecycle.Calculate(cur.CreationDate)
		}
		_, err = v.putJSONIf(ctx, key, &cur, etag)
		if IsConflict(err) && attempt < staleRetries {
			continue
		}
		return err == nil, err
	}
}
