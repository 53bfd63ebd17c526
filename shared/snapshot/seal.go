package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Seal makes the job's fragments, in order, the snapshot's sorted, sharded
// manifest and finishes its recovery point record. A fragment whose
// summary (its metadata, see fragment.go) says it holds no skip record is
// adopted as a shard by one server-side copy, unread; the others (and the
// work-item files of failed batches) are read, their records re-encoded
// into shards between the adopted ones and their skips into the failure
// shards, so the seal's work grows with the files and the failures, not
// with the objects. The record is AVAILABLE when every current object is
// in the vault, PARTIAL listing every object that is not and why (a work-item file without a fragment means its copy
// batch failed: its objects are listed as failed). A job whose scan the
// completion window stopped ends ABORTED, its recovery point PARTIAL with
// what it finished.
func (e *Engine) Seal(ctx context.Context, job Job) (*Job, error) {
	if err := job.started(); err != nil {
		return nil, err
	}
	if job.State == StateExpired {
		return &job, nil
	}
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return nil, classify(err)
	}
	sp, err := v.Snapshot(ctx, job.Bucket, job.RecoveryPointID)
	if err != nil {
		return nil, classify(err)
	}
	if sp.Status != vault.PointCreating {
		// Sealed before (a seal retried after its job record's write
		// failed): the manifest is the sealed point's, written once.
		return e.resealed(ctx, v, job, sp)
	}
	if now := e.now(); sp.JobDeadline != nil && now.After(*sp.JobDeadline) {
		// Past its deadline expiry may stop the point at any moment, and
		// a state machine would have ended the job: a seal run now (say
		// by the local runner, resumed) writes nothing.
		return nil, invalid("job %s: its deadline %s has passed (now %s): its recovery point %s cannot be sealed, and expiry stops it",
			job.JobID, sp.JobDeadline.Format(time.RFC3339), now.Format(time.RFC3339), sp.RecoveryPointID)
	}
	// The scan's progress says which chunks are work-item files (and,
	// for a job whose scan did not finish, how far it got).
	prog, found, err := loadProgress(ctx, v, job.JobID)
	if err != nil {
		return nil, classify(err)
	}
	if !found && (job.Scan.Rounds > 0 || job.Scan.Files > 0) {
		return nil, lostProgress(job)
	}
	if !job.Scan.Done {
		job.Scan = prog.State
	}
	manifest := v.NewShardWriter(job.Bucket, func(n int) string { return vault.SnapshotShardKey(job.Bucket, job.RecoveryPointID, n, false) })
	failures := v.NewShardWriter(job.Bucket, func(n int) string { return vault.SnapshotShardKey(job.Bucket, job.RecoveryPointID, n, true) })
	var inline []vault.Record
	totals := &Totals{}
	// Chunks are planned (one HEAD of each fragment, for its summary) a
	// window ahead of the merge, and the fragments to read opened a little
	// ahead: the seal waits on the vault's latency once, not per file.
	plans := e.planFragments(ctx, v, job, prog.Items)
	defer plans.close()
	defer manifest.Wait() // an adopted shard's copy outlives no failed seal
	for n := 1; n <= job.Scan.Files; n++ {
		fp, err := plans.next(ctx)
		if err != nil {
			return nil, classify(err)
		}
		totals.Copied += fp.copied
		totals.CopiedBytes += fp.copiedBytes
		if fp.adopt {
			// Sorted, disjoint, no skips: the fragment is a shard as it is.
			sh := vault.RunShard{FirstKey: fp.sum.FirstKey, LastKey: fp.sum.LastKey, Records: fp.sum.Records}
			if err := manifest.Adopt(ctx, vault.JobFragmentKey(job.JobID, n), fp.etag, sh, fp.sum.Bytes); err != nil {
				return nil, classify(err)
			}
			totals.Objects += int64(fp.sum.Records)
			totals.Bytes += fp.sum.Bytes
			continue
		}
		if err := e.sealRead(ctx, v, job, fp, manifest, failures, totals, &inline); err != nil {
			return nil, classify(err)
		}
	}
	if err := manifest.Close(ctx); err != nil {
		return nil, classify(err)
	}
	if err := failures.Close(ctx); err != nil {
		return nil, classify(err)
	}
	now := e.now()
	if !job.Scan.EndedAt.IsZero() {
		end := job.Scan.EndedAt
		sp.ScanCompletionDate = &end
	}
	sp.Shards, sp.FailureShards, sp.Failures = manifest.Shards, failures.Shards, inline
	sp.ObjectCount, sp.BackupSizeInBytes, sp.FailedObjects = totals.Objects, totals.Bytes, totals.Failed
	sp.CopiedObjects, sp.CopiedBytes = totals.Copied, totals.CopiedBytes
	sp.CompletionDate = &now
	sp.CalculatedLifecycle = sp.Lifecycle.Calculate(sp.CreationDate)
	// How the vault stored it: its default encryption (bucketvault writes
	// no encryption headers of its own).
	enc, err := v.Encryption(ctx)
	if err != nil {
		return nil, classify(err)
	}
	sp.IsEncrypted, sp.EncryptionKeyArn = enc.Encrypted, enc.KMSKeyARN
	switch {
	case job.Scan.Stopped:
		sp.Status = vault.PointPartial
		sp.StatusMessage = fmt.Sprintf("the completion window ended during the scan: keys after %q are not in this snapshot", job.Scan.KeyMarker)
		job.State = StateAborted
	case totals.Failed > 0:
		sp.Status = vault.PointPartial
		sp.StatusMessage = fmt.Sprintf("%d of %d objects were not backed up (see Failures)", totals.Failed, totals.Failed+totals.Objects)
		job.State = StatePartial
	default:
		sp.Status = vault.PointAvailable
		job.State = StateCompleted
	}
	if n := len(job.Scan.Warnings); n > 0 {
		// Complete all the same: what the vault could not vouch for was
		// copied again. Said, with how to learn what repair can rebuild
		// (a lost manifest shard or journal segment it may not).
		if sp.StatusMessage != "" {
			sp.StatusMessage += "; "
		}
		sp.StatusMessage += fmt.Sprintf("the scan read around %d damaged vault objects and copied again what they could not vouch for, so this snapshot is whole; "+
			"`bucketvault vault repair --vault %s --dry-run` lists what it can rebuild: %s", n, job.Vault, strings.Join(job.Scan.Warnings, "; "))
	}
	job.StatusMessage = sp.StatusMessage
	job.Totals = totals
	// In a locked vault, what the point references stays locked while it
	// lives: before it is sealed, so a sealed point is always retained.
	if err := v.RetainPoint(ctx, sp, e.now(), e.concurrency()); err != nil {
		return nil, classify(err)
	}
	// The point first, then the job: a seal that fails after the point
	// is sealed is retried, finds it sealed and finishes the job from it.
	if err := v.SetPoint(ctx, sp); err != nil {
		var pt *vault.PointTransitionError
		if errors.As(err, &pt) {
			// Stopped (or sealed) while this seal ran: by expiry, past
			// the job's deadline. Its record stands; this seal's shards
			// go with the point.
			return nil, invalid("job %s: %v; nothing was sealed", job.JobID, err)
		}
		return nil, classify(err)
	}
	e.log().InfoContext(ctx, "snapshot sealed", "job", job.JobID, "state", job.State, "objects", totals.Objects, "copied", totals.Copied, "failed", totals.Failed)
	return e.finishSealed(ctx, v, job, sp)
}

// resealed finishes the job of a point sealed by an earlier run of its
// seal, from the sealed record: the job's state, totals and message are
// what that seal made them. A point that is STOPPED (the fail step ran)
// or EXPIRED without having been sealed cannot be.
func (e *Engine) resealed(ctx context.Context, v *vault.Vault, job Job, sp *vault.SnapshotPoint) (*Job, error) {
	if sp.CompletionDate == nil || (sp.Status != vault.PointAvailable && sp.Status != vault.PointPartial && sp.Status != vault.PointExpired) {
		why := ""
		if sp.StatusMessage != "" {
			why = " (" + sp.StatusMessage + ")"
		}
		return nil, invalid("job %s: its recovery point %s is %s%s, not sealed: it cannot be sealed now", job.JobID, sp.RecoveryPointID, sp.Status, why)
	}
	stopped := job.Scan.Stopped
	if !job.Scan.Done {
		prog, found, err := loadProgress(ctx, v, job.JobID)
		if err != nil {
			return nil, classify(err)
		}
		if found {
			job.Scan = prog.State
			stopped = prog.State.Stopped
		}
	}
	switch {
	case stopped:
		job.State = StateAborted
	case sp.FailedObjects > 0:
		job.State = StatePartial
	default:
		job.State = StateCompleted
	}
	job.StatusMessage = sp.StatusMessage
	if sp.Status == vault.PointExpired {
		// Its sealed message is gone with the expiry's.
		job.StatusMessage = ""
	}
	job.Totals = &Totals{Objects: sp.ObjectCount, Bytes: sp.BackupSizeInBytes, Copied: sp.CopiedObjects, CopiedBytes: sp.CopiedBytes, Failed: sp.FailedObjects}
	return e.finishSealed(ctx, v, job, sp)
}

// finishSealed records the end of the job of the sealed point sp (its
// record is forward only: one finished already stays as it is) and, in
// a locked vault, locks the sealed record as the point's data.
func (e *Engine) finishSealed(ctx context.Context, v *vault.Vault, job Job, sp *vault.SnapshotPoint) (*Job, error) {
	rec, _, err := recordEnd(ctx, v, job)
	if err != nil {
		return nil, classify(err)
	}
	if rec.State != job.State {
		return nil, invalid("job %s ended %s already: its sealed point %s would make it %s", job.JobID, rec.State, sp.RecoveryPointID, job.State)
	}
	if v.Lock != nil && sp.Status != vault.PointExpired {
		// The sealed record is a new version: locked as the point's data.
		if err := v.Retain(ctx, []string{vault.SnapshotKey(job.Bucket, job.RecoveryPointID)}, v.PointRetainUntil(sp, e.now()), 1); err != nil {
			return nil, classify(err)
		}
	}
	return &job, nil
}

// sealRead reads one chunk's records (its fragment, or the work-item file
// of a batch that failed) into the manifest and failure shards.
func (e *Engine) sealRead(ctx context.Context, v *vault.Vault, job Job, fp *fragPlan, manifest, failures *vault.ShardWriter, totals *Totals, inline *[]vault.Record) error {
	src, batchFailed := fp.src, fp.batchFailed
	if src == nil {
		var err error
		if src, batchFailed, err = e.openFragment(ctx, v, job, fp.n, fp.stale); err != nil {
			return err
		}
	}
	defer src.Close()
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r := o.Record
		if batchFailed && r.Data == "" {
			r = skip(r, vault.SkipBatchFailed, "the copy step of this object's batch failed")
		}
		if r.Op == vault.OpSkip {
			totals.Failed++
			if len(*inline) < vault.MaxInlineFailures {
				*inline = append(*inline, r)
			}
			if err := failures.Add(ctx, r); err != nil {
				return err
			}
			continue
		}
		totals.Objects++
		totals.Bytes += r.Size
		if err := manifest.Add(ctx, r); err != nil {
			return err
		}
	}
}

// openFragment opens fragment n, or, when its copy batch never finished
// (no fragment, or a stale one), the work-item file (batchFailed).
func (e *Engine) openFragment(ctx context.Context, v *vault.Vault, job Job, n int, stale bool) (vault.RecordSource, bool, error) {
	if !stale {
		src, err := v.OpenSegmentFile(ctx, vault.JobFragmentKey(job.JobID, n))
		if err == nil {
			return src, false, nil
		}
		if !s3x.IsNotFound(err) {
			return nil, false, err
		}
	}
	src, err := v.OpenSegmentFile(ctx, vault.SnapshotItemKey(job.JobID, n))
	if err != nil {
		return nil, false, fmt.Errorf("snapshot %s: chunk %d has neither a fragment nor a work-item file: %w", job.RecoveryPointID, n, err)
	}
	return src, true, nil
}
