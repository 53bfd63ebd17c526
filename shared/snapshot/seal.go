package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Seal merges the job's fragments, in order, into the snapshot's sorted,
// sharded manifest and finishes its recovery point record: AVAILABLE when
// every current object is in the vault, PARTIAL listing every object that
// is not and why (a work-item file without a fragment means its copy
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
	if !job.Scan.Done {
		var prog scanProgress
		if err := v.GetJSON(ctx, scanStateKey(job.JobID), &prog); err != nil && !s3x.IsNotFound(err) {
			return nil, classify(err)
		}
		job.Scan = prog.State
	}
	manifest := v.NewShardWriter(job.Bucket, func(n int) string { return vault.SnapshotShardKey(job.Bucket, job.RecoveryPointID, n, false) })
	failures := v.NewShardWriter(job.Bucket, func(n int) string { return vault.SnapshotShardKey(job.Bucket, job.RecoveryPointID, n, true) })
	var inline []vault.Record
	totals := &Totals{}
	for n := 1; n <= job.Scan.Files; n++ {
		src, batchFailed, err := e.openFragment(ctx, v, job, n)
		if err != nil {
			return nil, classify(err)
		}
		for {
			o, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				src.Close()
				return nil, classify(err)
			}
			r := o.Record
			if batchFailed && r.Data == "" {
				r = skip(r, SkipBatchFailed, "the copy step of this object's batch failed")
			}
			if r.Op == vault.OpSkip {
				totals.Failed++
				if len(inline) < vault.MaxInlineFailures {
					inline = append(inline, r)
				}
				if err := failures.Add(ctx, r); err != nil {
					src.Close()
					return nil, classify(err)
				}
				continue
			}
			totals.Objects++
			totals.Bytes += r.Size
			if err := manifest.Add(ctx, r); err != nil {
				src.Close()
				return nil, classify(err)
			}
		}
		src.Close()
	}
	if err := manifest.Flush(ctx); err != nil {
		return nil, classify(err)
	}
	if err := failures.Flush(ctx); err != nil {
		return nil, classify(err)
	}
	for n := 1; n <= job.Scan.Files; n++ {
		var st CopyResult
		switch err := v.GetJSON(ctx, statsKey(job.JobID, n), &st); {
		case err == nil:
			totals.Copied += st.Copied
			totals.CopiedBytes += st.CopiedBytes
		case !s3x.IsNotFound(err): // chunks the scan found in the vault have none
			return nil, classify(err)
		}
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
	sp.IsEncrypted = true // the vault's default encryption (SSE-S3 at least, SSE-KMS as deployed)
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
	job.StatusMessage = sp.StatusMessage
	job.Totals = totals
	if err := v.PutJSON(ctx, vault.SnapshotKey(job.Bucket, job.RecoveryPointID), sp); err != nil {
		return nil, classify(err)
	}
	if err := v.PutJSON(ctx, vault.JobKey(job.JobID), job); err != nil {
		return nil, classify(err)
	}
	e.log().InfoContext(ctx, "snapshot sealed", "job", job.JobID, "state", job.State, "objects", totals.Objects, "copied", totals.Copied, "failed", totals.Failed)
	return &job, nil
}

// openFragment opens fragment n, or, when its copy batch never finished,
// the work-item file (batchFailed).
func (e *Engine) openFragment(ctx context.Context, v *vault.Vault, job Job, n int) (vault.RecordSource, bool, error) {
	src, err := v.OpenSegmentFile(ctx, fragmentKey(job.JobID, n))
	if err == nil {
		return src, false, nil
	}
	if !s3x.IsNotFound(err) {
		return nil, false, err
	}
	src, err = v.OpenSegmentFile(ctx, itemFileKey(job.JobID, n))
	if err != nil {
		return nil, false, fmt.Errorf("snapshot %s: chunk %d has neither a fragment nor a work-item file: %w", job.RecoveryPointID, n, err)
	}
	return src, true, nil
}
