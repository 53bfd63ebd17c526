package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Copy runs the copy step for a batch of work-item files: every version
// the vault lacks is copied once, and each file's records become its
// manifest fragment. A file whose fragment exists is done already; a file
// started by an earlier attempt is copied carefully (the vault is checked
// before each copy), so a retried batch copies nothing twice.
func (e *Engine) Copy(ctx context.Context, req CopyRequest) (*CopyResult, error) {
	job := req.BatchInput.Job
	if err := job.started(); err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return nil, classify(err)
	}
	res := &CopyResult{}
	sem := make(chan struct{}, e.concurrency())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2) // two files in flight keep the copiers busy across file ends
	var mu sync.Mutex
	for _, ref := range req.Items {
		g.Go(func() error {
			r, err := e.copyFile(gctx, v, job, ref, sem)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			res.Files++
			res.FilesSkipped += r.FilesSkipped
			res.Copied += r.Copied
			res.CopiedBytes += r.CopiedBytes
			res.Carried += r.Carried
			res.Failed += r.Failed
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, classify(err)
	}
	return res, nil
}

func (e *Engine) copyFile(ctx context.Context, v *vault.Vault, job Job, ref ItemRef, sem chan struct{}) (CopyResult, error) {
	var res CopyResult
	if ref.Key != vault.SnapshotItemKey(job.JobID, ref.N) {
		return res, invalid("item %d: key %q is not this job's item file", ref.N, ref.Key)
	}
	// The file's three first reads at once: is it done (its fragment), was
	// it started (its marker), and its records.
	frag := vault.JobFragmentKey(job.JobID, ref.N)
	var fragErr, startedErr, readErr error
	var fragHead *s3.HeadObjectOutput
	var recs []vault.Record
	var first sync.WaitGroup
	first.Add(3)
	go func() {
		defer first.Done()
		fragHead, fragErr = e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(frag)})
	}()
	go func() {
		defer first.Done()
		_, startedErr = e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(vault.SnapshotStartedKey(job.JobID, ref.N))})
	}()
	go func() {
		defer first.Done()
		recs, readErr = e.readItems(ctx, v, ref.Key)
	}()
	first.Wait()
	switch {
	case fragErr == nil:
		// The file's fragment, unless a crashed attempt of the scan wrote
		// one for this chunk number when it held other versions.
		if !staleFor(fragHead.Metadata) {
			res.FilesSkipped = 1
			return res, nil
		}
	case !s3x.IsNotFound(fragErr):
		return res, fmt.Errorf("check fragment %s: %w", frag, fragErr)
	}
	careful := false
	switch {
	case startedErr == nil:
		careful = true
	case !s3x.IsNotFound(startedErr):
		return res, fmt.Errorf("check item file %d: %w", ref.N, startedErr)
	}
	if readErr != nil {
		return res, readErr
	}
	if !careful {
		// Before any copy: a retry after a crash must find it.
		if err := v.PutBytes(ctx, vault.SnapshotStartedKey(job.JobID, ref.N), nil, "text/plain"); err != nil {
			return res, err
		}
	}
	stop := job.stopAt()
	var copied, bytes, carried, failed atomic.Int64
	var wg sync.WaitGroup
	var fatal error
	var fatalOnce sync.Once
	var stopped atomic.Bool
	var toPack []int
	for i := range recs {
		if stopped.Load() {
			break // the step fails: dispatch nothing more
		}
		if recs[i].Data != "" {
			carried.Add(1)
			continue
		}
		if e.packable(recs[i]) {
			toPack = append(toPack, i)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &recs[i]
			if !stop.IsZero() && !e.now().Before(stop) {
				*r = skip(*r, vault.SkipWindowEnded, "the completion window ended before this object was copied")
				failed.Add(1)
				return
			}
			did, err := e.copyVersion(ctx, v, job, r, careful)
			switch {
			case err != nil:
				fatalOnce.Do(func() { fatal = err })
				stopped.Store(true)
			case r.Op == vault.OpSkip:
				failed.Add(1)
			case did:
				copied.Add(1)
				bytes.Add(r.Size)
			default:
				carried.Add(1)
			}
			if e.Progress != nil {
				e.Progress(Progress{Copied: copied.Load(), Carried: carried.Load(), Failed: failed.Load(), Bytes: bytes.Load()})
			}
		}()
	}
	// Small versions: read while the copies above run, and written as
	// packs, each pack's write overlapping the next one's reads.
	for _, grp := range packGroups(recs, toPack, e.packBytes()) {
		if stopped.Load() {
			break
		}
		bodies, err := e.readMembers(ctx, job, recs, grp, stop, sem)
		if err != nil {
			fatalOnce.Do(func() { fatal = err })
			stopped.Store(true)
			break
		}
		sem <- struct{}{} // the write is one of the step's requests in flight
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, err := e.writePack(ctx, v, job.Bucket, recs, grp, bodies)
			if err != nil {
				fatalOnce.Do(func() { fatal = err })
				stopped.Store(true)
				return
			}
			copied.Add(p.stored)
			bytes.Add(p.bytes)
			failed.Add(p.failed)
			if e.Progress != nil {
				e.Progress(Progress{Copied: copied.Load(), Carried: carried.Load(), Failed: failed.Load(), Bytes: bytes.Load()})
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return res, fatal
	}
	res.Copied, res.CopiedBytes, res.Carried, res.Failed = copied.Load(), bytes.Load(), carried.Load(), failed.Load()
	// The fragment carries the file's counts and summary in its metadata,
	// so both are there exactly when the file is done.
	if err := v.WriteRecords(ctx, job.Bucket, frag, recs, summarize(recs, res, stepCopy).meta()); err != nil {
		return res, err
	}
	return res, nil
}

// readItems reads a work-item file's records.
func (e *Engine) readItems(ctx context.Context, v *vault.Vault, key string) ([]vault.Record, error) {
	src, err := v.OpenSegmentFile(ctx, key)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var recs []vault.Record
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, o.Record)
	}
}

// copyVersion copies one version into its data key and completes its
// record; it reports whether it copied. A version that cannot be copied
// becomes a skip record; only failures of the vault itself (and context
// cancellation) return an error. When the job reads ACLs, the version's
// ACL is read first: one that cannot be read makes the version a skip
// record (a restore could not give it back its access), and before
// anything is stored.
func (e *Engine) copyVersion(ctx context.Context, v *vault.Vault, job Job, r *vault.Record, careful bool) (bool, error) {
	bucket := job.Bucket
	if job.readACLs() {
		acl, err := vault.ReadACL(ctx, e.S3, bucket, r.Key, r.VersionID)
		if err != nil {
			return false, e.skipOrFail(r, err)
		}
		r.ACL = acl
	}
	st, err := v.StoreData(ctx, vault.StoreRequest{Bucket: bucket, Key: r.Key, VersionID: r.VersionID, ETag: r.ETag, Size: r.Size,
		LastModified: r.Time, SourceMetadata: true, Copy: e.CopyOptions,
		Prepare: func(in *s3.CopyObjectInput) error {
			if r.Size > s3x.MaxCopySize {
				return s3x.CarryMetadata(ctx, e.S3, bucket, r.Key, r.VersionID, in)
			}
			return nil
		}})
	if err != nil {
		return false, e.skipOrFail(r, err)
	}
	r.Data, r.DataETag, r.MetaInData = st.Key, st.ETag, st.MetaInData
	if !st.MetaInData {
		// The journal's copy, which carries bucketvault's metadata, not
		// the source's: the record carries them.
		if err := e.sourceMeta(ctx, bucket, r); err != nil {
			return false, e.skipOrFail(r, err)
		}
	}
	// A copy this job made before it was interrupted counts as copied.
	return !st.Reused || careful, e.partSize(ctx, bucket, r)
}

// sourceMeta fills a record's metadata, checksum and tags from the
// source version.
func (e *Engine) sourceMeta(ctx context.Context, bucket string, r *vault.Record) error {
	h, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(r.Key), VersionId: aws.String(r.VersionID)})
	if err != nil {
		return err
	}
	r.Meta, r.Checksum, r.SSE = vault.MetaOf(h), vault.ChecksumOf(h), string(h.ServerSideEncryption)
	r.Tags = map[string]string{}
	if aws.ToInt32(h.TagCount) == 0 {
		return nil
	}
	tags, err := e.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(r.Key), VersionId: aws.String(r.VersionID)})
	switch {
	case s3x.IsNotImplemented(err):
		r.Tags = nil // the server keeps no tags: unknown
		return nil
	case err != nil:
		return err
	}
	for _, t := range tags.TagSet {
		r.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return nil
}

// partSize records a multipart source's first part size, so a restore can
// rebuild its parts and so its ETag.
func (e *Engine) partSize(ctx context.Context, bucket string, r *vault.Record) error {
	if !strings.Contains(r.ETag, "-") || r.PartSize > 0 {
		return nil
	}
	p1, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(r.Key), VersionId: aws.String(r.VersionID), PartNumber: aws.Int32(1)})
	if err == nil {
		r.PartSize = aws.ToInt64(p1.ContentLength)
	}
	return nil // without it a restore verifies by size and checksum instead of ETag
}

// skipOrFail turns a copy failure into the item's skip record, or returns
// it when the step itself must fail (cancelled).
func (e *Engine) skipOrFail(r *vault.Record, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	reason := vault.SkipCopyFailed
	switch {
	case s3x.IsNotFound(err) || s3x.IsPreconditionFailed(err):
		reason = vault.SkipGone
	case s3x.IsArchived(err):
		reason = vault.SkipArchived
	case s3x.IsSSEC(err):
		reason = vault.SkipSSEC
	case s3x.IsAccessDenied(err):
		reason = vault.SkipAccessDenied
	}
	*r = skip(*r, reason, err.Error())
	return nil
}

func skip(r vault.Record, reason, detail string) vault.Record {
	return vault.Record{Op: vault.OpSkip, Key: r.Key, VersionID: r.VersionID, Time: r.Time, Size: r.Size, ETag: r.ETag,
		Origin: vault.OriginSnapshot, Reason: reason, Detail: detail}
}
