package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"

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
	// Fragments are opened a little ahead of the merge, stats files all
	// at once: the seal waits on the vault's latency once, not per file.
	fragments := e.openFragments(ctx, v, job)
	defer fragments.close()
	stats := e.readStats(ctx, v, job)
	for n := 1; n <= job.Scan.Files; n++ {
		src, batchFailed, err := fragments.next(ctx)
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
	st, err := stats()
	if err != nil {
		return nil, classify(err)
	}
	totals.Copied, totals.CopiedBytes = st.Copied, st.CopiedBytes
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

// readStats reads every copy step's stats file in the background and
// returns a function that waits for their sum.
func (e *Engine) readStats(ctx context.Context, v *vault.Vault, job Job) func() (CopyResult, error) {
	var sum CopyResult
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for n := 1; n <= job.Scan.Files; n++ {
		g.Go(func() error {
			var st CopyResult
			switch err := v.GetJSON(gctx, statsKey(job.JobID, n), &st); {
			case err == nil:
				mu.Lock()
				sum.Copied += st.Copied
				sum.CopiedBytes += st.CopiedBytes
				mu.Unlock()
			case !s3x.IsNotFound(err): // chunks the scan found in the vault have none
				return err
			}
			return nil
		})
	}
	return func() (CopyResult, error) { err := g.Wait(); return sum, err }
}

// fragmentOpener opens a job's fragments in order, a few ahead of the
// reader.
type fragmentOpener struct {
	ch     chan openedFragment
	cancel context.CancelFunc
}

type openedFragment struct {
	src         vault.RecordSource
	batchFailed bool
	err         error
}

// fragmentsAhead is how many fragments the seal opens before it reads
// them (each holds a decoder and a connection).
const fragmentsAhead = 2

func (e *Engine) openFragments(ctx context.Context, v *vault.Vault, job Job) *fragmentOpener {
	ctx, cancel := context.WithCancel(ctx)
	o := &fragmentOpener{ch: make(chan openedFragment, fragmentsAhead), cancel: cancel}
	go func() {
		defer close(o.ch)
		for n := 1; n <= job.Scan.Files; n++ {
			src, failed, err := e.openFragment(ctx, v, job, n)
			select {
			case o.ch <- openedFragment{src, failed, err}:
			case <-ctx.Done():
				if src != nil {
					src.Close()
				}
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *fragmentOpener) next(ctx context.Context) (vault.RecordSource, bool, error) {
	select {
	case f, ok := <-o.ch:
		if !ok {
			return nil, false, fmt.Errorf("snapshot seal: fewer fragments than the scan wrote")
		}
		return f.src, f.batchFailed, f.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// close stops the opening and closes what was opened and not read.
func (o *fragmentOpener) close() {
	o.cancel()
	for f := range o.ch {
		if f.src != nil {
			f.src.Close()
		}
	}
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
