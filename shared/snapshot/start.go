package snapshot

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Start opens a job: it names the job and its recovery point, applies the
// start window (a job that cannot start inside it ends EXPIRED, with no
// recovery point) and records the job in the vault. A job that has an id
// already is returned unchanged (a retried start).
func (e *Engine) Start(ctx context.Context, job Job) (*Job, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	if job.JobID != "" {
		return &job, nil
	}
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return nil, classify(err)
	}
	// The vault lock bounds every recovery point's retention.
	days := 0
	if job.Lifecycle != nil {
		days = int(job.Lifecycle.DeleteAfterDays)
	}
	if err := v.CheckRetention("Lifecycle.DeleteAfterDays", days); err != nil {
		return nil, invalid("%v", err)
	}
	now := e.now()
	job.Type = vault.JobTypeBackup
	job.JobID = vault.NewJobID("backup", now)
	job.StartedAt = now
	if job.ScheduledAt.IsZero() {
		job.ScheduledAt = now
	}
	start := time.Duration(orDefaultMinutes(job.StartWindowMinutes, DefaultStartWindowMinutes)) * time.Minute
	if now.After(job.ScheduledAt.Add(start)) {
		job.State = StateExpired
		job.StatusMessage = fmt.Sprintf("the job could not start inside its start window: scheduled %s, window %s, now %s",
			job.ScheduledAt.Format(time.RFC3339), start, now.Format(time.RFC3339))
		if _, err := v.CreateJobRecord(ctx, job.JobID, job); err != nil {
			return nil, classify(err)
		}
		return &job, nil
	}
	if job.ACLs == nil {
		on, err := e.usesACLs(ctx, v, job.Bucket)
		if err != nil {
			return nil, classify(err)
		}
		job.ACLs = &on
	}
	window := time.Duration(orDefaultMinutes(job.CompletionWindowMinutes, DefaultCompletionWindowMinutes)) * time.Minute
	job.CompleteBy = now.Add(window)
	job.RecoveryPointID = vault.NewJobID("snapshot", now)
	job.State = StateRunning
	sp := v.NewSnapshotPoint(job.Bucket, job.RecoveryPointID, job.JobID, now)
	sp.CreatedBy, sp.Lifecycle, sp.RecoveryPointTags = job.CreatedBy, job.Lifecycle, job.RecoveryPointTags
	// When the job has ended whatever becomes of it (its state machine's
	// timeout, then its last invocation's): a point still CREATING then
	// was abandoned, and expiry stops it.
	deadline := vault.BackupJobDeadline(now, window)
	sp.JobDeadline = &deadline
	// The base the scan may carry records from, named before the scan
	// reads it, so that expiry keeps it while this point is CREATING
	// (vault.BaseOf).
	points, err := v.Snapshots(ctx, job.Bucket)
	if err != nil {
		return nil, classify(err)
	}
	base := ""
	if b := vault.IncrementalBase(points, ""); b != nil {
		base = b.RecoveryPointID
	}
	sp.BaseRecoveryPointID = &base
	// The two records at once: neither names the other's state, and a
	// retried start makes new ones.
	var g errgroup.Group
	g.Go(func() error { return v.CreatePoint(ctx, sp) })
	rec := job
	g.Go(func() error {
		_, err := v.CreateJobRecord(ctx, rec.JobID, rec)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, classify(err)
	}
	ev := e.event(job)
	ev.Type = notify.BackupJobStarted
	notify.Send(ctx, e.events(), ev, e.Log)
	e.log().InfoContext(ctx, "snapshot job started", "job", job.JobID, "bucket", job.Bucket, "vault", job.Vault, "completeBy", job.CompleteBy)
	return &job, nil
}

// usesACLs decides whether a job captures object ACLs: the vault's record
// of the bucket says so (protect --acls), or its ownership controls leave
// ACLs enabled.
func (e *Engine) usesACLs(ctx context.Context, v *vault.Vault, bucket string) (bool, error) {
	if pb, err := v.Protected(ctx, bucket); err == nil && pb.ACLs {
		return true, nil
	}
	return s3x.ObjectACLs(ctx, e.S3, bucket)
}

func orDefaultMinutes(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}
