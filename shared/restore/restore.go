package restore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// What a restore reads back after each write (Request.Verify).
const (
	VerifyAll   = "all"
	VerifyBytes = "bytes"
)

// Modes of a restore.
const (
	// NonDestructive writes every selected key whose content at T differs
	// from the target's and leaves keys that were absent at T alone (AWS
	// Backup's behaviour).
	NonDestructive = "non-destructive"
	// Rollback also puts a delete marker on every selected key of the target
	// that was absent at T. It never deletes a version.
	Rollback = "rollback"
)

// Request is a restore request, as the CLI and the restore function take it.
type Request struct {
	Vault  string    `json:"vault"`
	Bucket string    `json:"bucket"` // the protected (source) bucket
	At     time.Time `json:"at,omitzero"`
	// RecoveryPointID restores a SNAPSHOT recovery point instead of a
	// point in time (give one of At and RecoveryPointID).
	RecoveryPointID string   `json:"recoveryPointId,omitempty"`
	TargetBucket    string   `json:"targetBucket"`
	CreateBucket    bool     `json:"createBucket,omitempty"`
	Prefixes        []string `json:"prefixes,omitempty"`
	Keys            []string `json:"keys,omitempty"`
	Mode            string   `json:"mode,omitempty"` // NonDestructive (default) or Rollback
	Concurrency     int      `json:"concurrency,omitempty"`
	// AllowIncomplete accepts a time after the journal's completeness
	// watermark (vault.CompleteThrough): the restore then uses what events
	// journaled since, warns, and is COMPLETED; without it such a restore
	// is PARTIAL (the same work, exit code 3).
	AllowIncomplete bool `json:"allowIncomplete,omitempty"`
	// IncludeUncertain restores keys a lost journal object held records
	// of as the rest of the vault knows them (named uncertain); without it
	// they are not written (named uncertain, skipped): a restore never
	// writes an object it cannot vouch for unless asked to.
	IncludeUncertain bool `json:"includeUncertain,omitempty"`
	// DryRun reads what the restore would read and writes nothing: no
	// target bucket, no object, no job record. Its report says what a
	// restore would do: the keys it would write (Restored, Bytes, mapping
	// action "would-restore"), those already identical, the delete markers
	// a rollback would put ("would-delete-marker").
	DryRun bool `json:"dryRun,omitempty"`
	// ArchiveWaitMinutes is how long the restore waits for data it finds
	// in an archive storage class (the cold tier in Deep Archive) to come
	// back once it has requested it (archive.go); 0 requests it back and
	// fails those keys, saying when to run the restore again. A Lambda's
	// deadline bounds the wait too.
	ArchiveWaitMinutes int `json:"archiveWaitMinutes,omitempty"`
	// ArchiveTier is the retrieval tier of those requests: Standard (the
	// default, within 12 hours) or Bulk (within 48, cheaper).
	ArchiveTier string `json:"archiveTier,omitempty"`
	// Verify is what is read back after each write: VerifyAll (the
	// default) reads every object back and checks its bytes and every
	// field written; VerifyBytes checks the bytes alone, from the write's
	// own ETag where it proves them (one request per object fewer: see
	// docs/benchmarks.md), else with a HEAD.
	Verify string `json:"verify,omitempty"`
	// JobID names the job when the caller must know it before the job
	// starts (the CLI starting the restore function, then following the
	// job's record); empty: a new id.
	JobID string `json:"jobId,omitempty"`
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// InvalidRequestError reports a restore request that cannot run as given.
type InvalidRequestError struct{ Reason string }

func (e *InvalidRequestError) Error() string { return "invalid restore request: " + e.Reason }

// Validate checks a request against the clock and the allowed targets
// (shell patterns; empty allows any). The bucket's window is checked
// against the vault (vault.WindowAt).
func (r *Request) Validate(now time.Time, allowed []string) error {
	bad := func(f string, a ...any) error { return &InvalidRequestError{Reason: fmt.Sprintf(f, a...)} }
	switch {
	case r.Vault == "":
		return bad("vault is required")
	case r.Bucket == "":
		return bad("bucket (the protected bucket to restore) is required")
	case r.TargetBucket == "":
		return bad("target bucket is required")
	case r.At.IsZero() && r.RecoveryPointID == "":
		return bad("at (the point in time, RFC 3339) or a snapshot recovery point id is required")
	case !r.At.IsZero() && r.RecoveryPointID != "":
		return bad("give either at (a point in time) or a recovery point id, not both")
	case r.At.After(now):
		return bad("at %s is in the future", r.At.Format(time.RFC3339))
	}
	for _, b := range []struct{ what, name string }{{"vault", r.Vault}, {"bucket", r.Bucket}, {"target bucket", r.TargetBucket}} {
		if err := s3x.ValidateBucketName(b.name); err != nil {
			return bad("%s: %v", b.what, err)
		}
	}
	for _, k := range r.Keys {
		if err := s3x.ValidateKey(k); err != nil {
			return bad("--key: %v", err)
		}
	}
	for _, p := range r.Prefixes {
		if err := s3x.ValidatePrefix(p); err != nil {
			return bad("--prefix: %v", err)
		}
	}
	switch r.Mode {
	case "":
		r.Mode = NonDestructive
	case NonDestructive, Rollback:
	default:
		return bad("mode %q: want %s or %s", r.Mode, NonDestructive, Rollback)
	}
	if r.JobID != "" && !jobIDPattern.MatchString(r.JobID) {
		return bad("job id %q: want 1 to 128 letters, digits, '.', '_' or '-'", r.JobID)
	}
	switch r.Verify {
	case "", VerifyAll, VerifyBytes:
	default:
		return bad("verify %q: want %s or %s", r.Verify, VerifyAll, VerifyBytes)
	}
	if r.Concurrency < 0 {
		return bad("concurrency %d: want a positive number", r.Concurrency)
	}
	if r.ArchiveWaitMinutes < 0 {
		return bad("archive wait %d minutes: want 0 (do not wait) or more", r.ArchiveWaitMinutes)
	}
	switch r.ArchiveTier {
	case "", ArchiveTierStandard, ArchiveTierBulk:
	default:
		return bad("archive tier %q: want %s or %s (Expedited does not reach Deep Archive)", r.ArchiveTier, ArchiveTierStandard, ArchiveTierBulk)
	}
	if len(allowed) > 0 {
		ok := false
		for _, p := range allowed {
			if m, _ := path.Match(p, r.TargetBucket); m {
				ok = true
			}
		}
		if !ok {
			return bad("target bucket %q is not in the allowed restore targets %v", r.TargetBucket, allowed)
		}
	}
	return nil
}

// Restorer runs restores.
type Restorer struct {
	// S3 reaches the target bucket (and the vault, which it copies from).
	S3 s3x.Client
	// AllowedTargets limits target buckets (shell patterns); empty: any.
	AllowedTargets []string
	// ExpectedOwner, when set, is the account a target bucket must belong
	// to (S3's ExpectedBucketOwner on the target's check): bucket names
	// are global, and a pattern could name another account's bucket.
	ExpectedOwner string
	Copy          s3x.CopyOptions
	Log           *slog.Logger
	// Progress, when set, is called as objects finish.
	Progress func(Progress)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Progress counts a running restore.
type Progress struct {
	Examined, Restored, Identical, DeleteMarkers, Failed int64
	Bytes                                                int64
}

// Mapping is one restored key.
type Mapping struct {
	Key             string `json:"key"`
	SourceVersionID string `json:"sourceVersionId"`
	RestoredVersion string `json:"restoredVersionId,omitempty"`
	Action          string `json:"action"` // restored, identical, delete-marker, failed
	Size            int64  `json:"size,omitempty"`
	Verified        string `json:"verified,omitempty"` // etag, checksum, or size-only (the bytes could not be checked)
	// Checked lists the fields read back after the write and found as
	// the restore wrote them: metadata, tags, storage-class, acl (an
	// identical object: everything the comparison covered).
	Checked []string `json:"checked,omitempty"`
	// ACL is "not-restored" for an object restored without the ACL it
	// had, because the target bucket has ACLs disabled.
	ACL string `json:"acl,omitempty"`
	// VaultDamage says the vault's data object for this version was
	// damaged (its current version is not the one the record names) and
	// the object was restored from the older version that is.
	VaultDamage string `json:"vaultDamage,omitempty"`
	// Uncertain says why the restore cannot vouch that this is the key's
	// state at the requested time (a journal object that held records of
	// it is lost, say): it restored the best state it knows.
	Uncertain string `json:"uncertain,omitempty"`
	Error     string `json:"error,omitempty"`

	archived bool // failed because its data is in an archive storage class
}

// ACLNotRestored marks a mapping whose object's ACL the target refused.
const ACLNotRestored = "not-restored"

// Actions of a mapping.
const (
	ActionRestored     = "restored"
	ActionIdentical    = "identical"
	ActionDeleteMarker = "delete-marker"
	ActionFailed       = "failed"
	// ActionAbsent: nothing was done, the key being absent at T as far as
	// the journal knows (only named when that is uncertain).
	ActionAbsent = "absent"
	// ActionSkipped: nothing was written for a key the restore cannot
	// vouch for (see Request.IncludeUncertain).
	ActionSkipped = "skipped"
	// ActionWouldRestore and ActionWouldDeleteMarker: what a dry run
	// would do (Request.DryRun).
	ActionWouldRestore      = "would-restore"
	ActionWouldDeleteMarker = "would-delete-marker"
)

func (r *Restorer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Restorer) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Run restores as req says and returns the job's report, which it also
// keeps in the vault. The report's State is COMPLETED, PARTIAL (some
// objects failed; see Failures) or FAILED (err is set too).
func (r *Restorer) Run(ctx context.Context, req Request) (*Report, error) {
	var deadline *time.Time
	if d, ok := ctx.Deadline(); ok {
		deadline = &d
	}
	b, err := r.begin(ctx, req, thisRunner(), deadline)
	if err != nil || b.finished != nil {
		return b.finished, err
	}
	v, rep := b.v, b.rep
	req = b.req
	if req.DryRun {
		return r.dryRun(ctx, v, req, b.base, rep, b.incomplete)
	}
	stopBeat := make(chan struct{})
	beat := make(chan struct{})
	go func() { defer close(beat); r.heartbeat(ctx, b.record, rep, stopBeat) }()
	// Under a deadline (a Lambda's) the work stops DeadlineMargin before
	// it, so the report and the mapping are written in time.
	work := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(ctx, d.Add(-min(DeadlineMargin, time.Until(d)/4)), errDeadlineNear)
		defer cancel()
	}
	runErr := r.run(work, v, req, b.base, rep)
	if runErr == nil && work.Err() != nil {
		// Stopped (a deadline, a cancellation): the keys it did not reach
		// failed for that reason alone; running the job again finishes it.
		runErr = fmt.Errorf("stopped before it finished (%w): run the same restore again (the same job id) to finish it", context.Cause(work))
		rep.Stopped = true
	}
	close(stopBeat)
	<-beat
	r.conclude(v, rep, runErr)
	if err := b.record.Put(context.WithoutCancel(ctx), rep); err != nil && runErr == nil {
		runErr = err
		if vault.IsConflict(err) {
			runErr = fmt.Errorf("job %s's record was changed by another writer while it ran (a restore of the same request that took it over as interrupted, or a second run of the job): "+
				"this report is not recorded in the vault: %w", rep.JobID, err)
		}
	}
	return rep, runErr
}

// begun is a restore job past its checks, its target ready and its
// record written (a dry run: checked, nothing written).
type begun struct {
	v      *vault.Vault
	req    Request
	base   *vault.SnapshotPoint
	rep    *Report
	record *vault.JobRecord
	// incomplete says why the journal cannot vouch for req.At ("": it can).
	incomplete string
	// finished is the report of a job that is COMPLETED already: there is
	// nothing to do.
	finished *Report
}

// begin checks a request against the vault and the target, and starts
// its job: the request's earlier run (same job id) is taken over, the
// same request running is refused, the target is created, and the job's
// record is written RUNNING, naming runner and deadline.
func (r *Restorer) begin(ctx context.Context, req Request, runner *Runner, deadline *time.Time) (*begun, error) {
	v, err := vault.Open(ctx, r.S3, req.Vault)
	if err != nil {
		return &begun{}, err
	}
	start := r.now().UTC()
	if err := req.Validate(start, r.AllowedTargets); err != nil {
		return &begun{}, err
	}
	if req.RecoveryPointID == "" {
		w, err := v.WindowAt(ctx, req.Bucket, start)
		if err != nil {
			return &begun{}, err
		}
		if why := w.Refuses(req.Bucket, req.At); why != "" {
			return &begun{}, &InvalidRequestError{Reason: why}
		}
	}
	var base *vault.SnapshotPoint
	if req.RecoveryPointID != "" {
		if base, err = snapshotPoint(ctx, v, req); err != nil {
			return &begun{}, err
		}
		req.At = base.ScanCompletionDate.UTC()
	} else if base, err = v.BaseSnapshot(ctx, req.Bucket, req.At); err != nil {
		return &begun{}, err
	}
	// A job id already recorded: the same job run again (a retry, a
	// re-run after a kill) finishes it.
	prev, err := r.previousRun(ctx, v, req, start)
	if err != nil || prev != nil && prev.State == StateCompleted {
		return &begun{finished: prev}, err
	}
	created := false // the target is the one this job's earlier run created
	if prev != nil && req.CreateBucket {
		switch _, err := r.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(req.TargetBucket)}); {
		case err == nil:
			req.CreateBucket, created = false, true
		case !s3x.IsNotFound(err):
			return &begun{}, fmt.Errorf("target bucket %s: %w", req.TargetBucket, err)
		}
	}
	if err := r.checkTarget(ctx, req); err != nil {
		return &begun{}, err
	}
	rep := &Report{JobID: req.JobID, Type: vault.JobTypeRestore, State: StateRunning, Request: req, StartedAt: start, mu: &sync.Mutex{}}
	if rep.JobID == "" {
		rep.JobID = vault.NewJobID("restore", start)
	}
	if created {
		rep.Request.CreateBucket = true
	}
	rep.Deadline, rep.Runner = deadline, runner
	if prev != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("finishes job %s's earlier run (%s: %s): what it restored is identical now and skipped", rep.JobID, prev.State, prev.StatusMessage))
	}
	pb, perr := v.Protected(ctx, req.Bucket)
	switch err := perr; {
	case req.RecoveryPointID != "":
		rep.Warnings = append(rep.Warnings, snapshotWarnings(base)...)
	case err != nil && s3x.IsNotFound(err) && base != nil:
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("s3://%s is not protected continuously: restored from snapshot %s (scanned %s), the newest before %s",
			req.Bucket, base.RecoveryPointID, base.ScanCompletionDate.UTC().Format(time.RFC3339), req.At.UTC().Format(time.RFC3339)))
	case err != nil && s3x.IsNotFound(err):
		// Never protected, never snapshotted: refuse rather than restore
		// nothing into a target created for it.
		switch has, err := v.HasJournal(ctx, req.Bucket); {
		case err != nil:
			return &begun{}, err
		case !has:
			return &begun{}, &InvalidRequestError{Reason: fmt.Sprintf("vault %s holds nothing of s3://%s: it was never protected or backed up there (see `bucketvault recovery-points --vault %s`)",
				v.Bucket, req.Bucket, v.Bucket)}
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("s3://%s is not protected by vault %s: only what was journaled for it is restored", req.Bucket, v.Bucket))
	case err != nil:
		return &begun{}, err
	case pb.FirstFullBackupAt == nil:
		rep.Warnings = append(rep.Warnings, "the initial full backup of this bucket has not finished: objects it has not reached yet are not restored")
	case req.At.Before(*pb.FirstFullBackupAt):
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is before the initial full backup finished (%s): objects deleted before then are unknown to the vault",
			req.At.UTC().Format(time.RFC3339), pb.FirstFullBackupAt.UTC().Format(time.RFC3339)))
	}
	b := &begun{v: v, req: req, base: base, rep: rep}
	// Only a continuously protected bucket has a journal to vouch for; a
	// bucket backed up by snapshots restores a snapshot's state, which
	// its warning names.
	if req.RecoveryPointID == "" && perr == nil {
		if b.incomplete, err = r.checkComplete(ctx, v, req); err != nil {
			return &begun{}, err
		}
		if b.incomplete != "" {
			rep.Warnings = append(rep.Warnings, b.incomplete)
			rep.Incomplete = !req.AllowIncomplete
		}
	}
	if req.DryRun {
		return b, nil
	}
	// Claimed before the target is created: a restore refused because the
	// same one is running leaves nothing behind.
	release, err := r.claim(ctx, v, req, rep)
	if err != nil {
		return &begun{}, err
	}
	if req.CreateBucket {
		if err := r.createTarget(ctx, req); err != nil {
			if release != nil {
				release()
			}
			return &begun{}, err
		}
	}
	rep.UpdatedAt = start
	if prev == nil {
		b.record, err = v.CreateJobRecord(ctx, rep.JobID, rep)
	} else {
		// Over the version the earlier run left: a writer in between
		// (the earlier run alive after all, another retry) wins.
		var cur Report
		b.record, err = v.TakeJobRecord(ctx, rep.JobID, &cur, func() (any, bool) { return rep, cur.UpdatedAt.Equal(prev.UpdatedAt) })
		if err == nil && !cur.UpdatedAt.Equal(prev.UpdatedAt) {
			err = &vault.ConflictError{Key: vault.JobKey(rep.JobID)}
		}
	}
	switch {
	case vault.IsConflict(err):
		return &begun{}, &InvalidRequestError{Reason: fmt.Sprintf("job %s's record was written by another run meanwhile: see `bucketvault job show --vault %s %s`", rep.JobID, v.Bucket, rep.JobID)}
	case err != nil:
		if release != nil {
			release()
		}
		return &begun{}, err
	}
	return b, nil
}

// conclude ends a job's report: its warnings of what limits the result,
// its times and its state (FAILED with runErr, PARTIAL, COMPLETED).
func (r *Restorer) conclude(v *vault.Vault, rep *Report, runErr error) {
	req := rep.Request
	if rep.VaultDamaged > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d objects were restored from older versions of damaged vault data objects (their mappings say vaultDamage); "+
			"run `bucketvault verify --vault %s` to list every damaged object", rep.VaultDamaged, v.Bucket))
	}
	if n := rep.VerifiedBy[VerifiedSizeOnly]; n > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d restored objects' bytes could not be checked after the write: no digest compares (an SSE-KMS object's ETag is not its MD5, and their records hold no checksum); their sizes match (mappings say %q)", n, VerifiedSizeOnly))
	}
	if rep.ACLsNotRestored > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d objects restored without their ACLs: s3://%s has ACLs disabled (Object Ownership BucketOwnerEnforced); "+
			"their mappings say acl %q. To have the ACLs too, restore those keys into a bucket whose Object Ownership allows ACLs", rep.ACLsNotRestored, req.TargetBucket, ACLNotRestored))
	}
	rep.CompletedAt = r.now().UTC()
	rep.UpdatedAt = rep.CompletedAt
	rep.DurationSeconds = rep.CompletedAt.Sub(rep.StartedAt).Seconds()
	switch {
	case runErr != nil:
		rep.State, rep.StatusMessage = StateFailed, runErr.Error()
	case rep.Failed > 0 || len(rep.Unvouched) > 0 || rep.Uncertain > 0 || rep.Incomplete:
		var says []string
		if rep.Failed > 0 {
			says = append(says, fmt.Sprintf("%d objects failed", rep.Failed))
		}
		for _, d := range rep.Unvouched {
			holder := "the journal"
			if d.InSnapshot() {
				holder = "the snapshot"
			}
			says = append(says, holder+" cannot vouch for "+d.Keys()+" (object "+d.Object+" is lost)")
		}
		if rep.Uncertain > 0 {
			says = append(says, fmt.Sprintf("%d keys restored or left uncertain (see uncertainKeys)", rep.Uncertain))
		}
		if rep.Incomplete {
			says = append(says, "the time is after the journal's completeness watermark (see warnings)")
		}
		rep.State, rep.StatusMessage = StatePartial, strings.Join(says, "; ")
	default:
		rep.State = StateCompleted
	}
}

// DeadlineMargin is how long before its context's deadline (a Lambda's) a
// restore stops taking work, to write its report and mapping: at most a
// quarter of the time it has. errDeadlineNear says so.
var DeadlineMargin = time.Minute

var errDeadlineNear = errors.New("its deadline is near")

// previousRun is the record of a job id given that a run has recorded
// already: nil for a new job. A job COMPLETED is returned as it is (there
// is nothing to do again); one RUNNING (its heartbeat fresh, its deadline
// ahead) refuses; one of another request refuses; one interrupted,
// FAILED or PARTIAL is the run this one finishes.
func (r *Restorer) previousRun(ctx context.Context, v *vault.Vault, req Request, now time.Time) (*Report, error) {
	if req.JobID == "" || req.DryRun {
		return nil, nil
	}
	prev, err := LoadJob(ctx, v, req.JobID, now)
	switch {
	case err != nil && s3x.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case prev.Type != vault.JobTypeRestore || requestHash(prev.Request) != requestHash(req):
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("job id %s names another job in vault %s (`bucketvault job show --vault %s %s`): give this restore another id", req.JobID, v.Bucket, v.Bucket, req.JobID)}
	case prev.State == StateRunning && prev.Runner.gone():
		prev.State, prev.StatusMessage = StateAborted, fmt.Sprintf("interrupted: its %s is gone", prev.Runner)
	case prev.State == StateRunning:
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("job %s is running (heartbeat at %s): wait for it (`bucketvault job show --vault %s %s`); "+
			"a run whose heartbeat stops for %s, or whose deadline passed, reads as interrupted, and running the job again finishes it",
			req.JobID, prev.UpdatedAt.UTC().Format(time.RFC3339), v.Bucket, req.JobID, StaleAfter)}
	}
	return prev, nil
}

// dryRun runs the restore's reads and says what it would write.
func (r *Restorer) dryRun(ctx context.Context, v *vault.Vault, req Request, base *vault.SnapshotPoint, rep *Report, incomplete string) (*Report, error) {
	runErr := r.run(ctx, v, req, base, rep)
	rep.CompletedAt = r.now().UTC()
	rep.UpdatedAt = rep.CompletedAt
	rep.DurationSeconds = rep.CompletedAt.Sub(rep.StartedAt).Seconds()
	switch {
	case runErr != nil:
		rep.State, rep.StatusMessage = StateFailed, runErr.Error()
	case rep.Failed > 0 || len(rep.Unvouched) > 0 || rep.Uncertain > 0 || incomplete != "" && !req.AllowIncomplete:
		rep.State, rep.StatusMessage = StatePartial, "the restore would be PARTIAL: see failures, uncertain keys and warnings"
	default:
		rep.State = StateCompleted
	}
	rep.StatusMessage = strings.TrimSpace("dry run: nothing was written. " + rep.StatusMessage)
	return rep, runErr
}

// checkComplete says why req.At is after the journal's completeness
// watermark ("" when it is not): the restore cannot vouch that events
// journaled every change up to it.
func (r *Restorer) checkComplete(ctx context.Context, v *vault.Vault, req Request) (string, error) {
	wm, err := v.CompleteThrough(ctx, req.Bucket)
	if err != nil {
		return "", err
	}
	at := req.At.UTC().Truncate(time.Second)
	fix := fmt.Sprintf("run `bucketvault reconcile --vault %s --bucket %s` (it vouches for the time it starts) and restore again, or pass --allow-incomplete to restore what events journaled", v.Bucket, req.Bucket)
	switch {
	case wm == nil:
		return fmt.Sprintf("no reconcile of s3://%s has finished: the journal cannot vouch that it holds every change up to %s; %s",
			req.Bucket, at.Format(time.RFC3339), fix), nil
	case at.After(*wm):
		return fmt.Sprintf("%s is after the journal's completeness watermark %s (the last finished reconcile): changes after it are known only by their events, "+
			"which S3 does not guarantee; %s", at.Format(time.RFC3339), wm.UTC().Format(time.RFC3339), fix), nil
	}
	return "", nil
}

// checkTarget refuses a target that exists when the request would create
// it, or that does not when it would not.
func (r *Restorer) checkTarget(ctx context.Context, req Request) error {
	in := &s3.HeadBucketInput{Bucket: aws.String(req.TargetBucket)}
	if r.ExpectedOwner != "" {
		in.ExpectedBucketOwner = aws.String(r.ExpectedOwner)
	}
	_, err := r.S3.HeadBucket(ctx, in)
	switch {
	case err != nil && r.ExpectedOwner != "" && s3x.IsAccessDenied(err):
		return &InvalidRequestError{Reason: fmt.Sprintf("target bucket %q is not account %s's (or this role may not reach it): a restore writes only into its own account's buckets", req.TargetBucket, r.ExpectedOwner)}
	case err == nil && req.CreateBucket:
		return &InvalidRequestError{Reason: fmt.Sprintf("target bucket %q exists already: drop --create-bucket to restore into it", req.TargetBucket)}
	case err == nil:
		return nil
	case !s3x.IsNotFound(err):
		return fmt.Errorf("target bucket %s: %w", req.TargetBucket, err)
	case !req.CreateBucket:
		return &InvalidRequestError{Reason: fmt.Sprintf("target bucket %q does not exist: pass --create-bucket to create it", req.TargetBucket)}
	}
	return nil
}

// createTarget creates the target bucket, versioned.
func (r *Restorer) createTarget(ctx context.Context, req Request) error {
	if _, err := r.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(req.TargetBucket)}); err != nil {
		return fmt.Errorf("create target bucket %s: %w", req.TargetBucket, err)
	}
	_, err := r.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(req.TargetBucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	})
	if err != nil {
		return fmt.Errorf("enable versioning on target bucket %s: %w", req.TargetBucket, err)
	}
	return nil
}

// selection decides which keys a request covers.
type selection struct {
	prefixes []string
	keys     map[string]bool
}

func newSelection(req Request) selection {
	s := selection{prefixes: req.Prefixes}
	if len(req.Keys) > 0 {
		s.keys = make(map[string]bool, len(req.Keys))
		for _, k := range req.Keys {
			s.keys[k] = true
		}
	}
	return s
}

func (s selection) all() bool { return len(s.prefixes) == 0 && s.keys == nil }

func (s selection) has(key string) bool {
	if s.all() || s.keys[key] {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// scope is the prefixes that bound the journal read.
func (s selection) scope() []string {
	if s.all() {
		return nil
	}
	out := append([]string(nil), s.prefixes...)
	for k := range s.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type task struct {
	key    string
	obj    vault.Object
	marker bool // put a delete marker (rollback of a key absent at T)
	// uncertain says why the state restored may not be the key's state
	// at T (see Mapping.Uncertain).
	uncertain string
	// data is the version of the data object that holds the record's
	// bytes, once a read found it.
	data vault.DataVersion
	// coldTags: the record comes from a COLD recovery point, whose data
	// objects may carry the cold tier's tag among the tags they carry.
	coldTags bool
	// packs reads packed members for the whole restore, a window of a
	// pack at a time.
	packs *vault.PackReader
}

func (r *Restorer) run(ctx context.Context, v *vault.Vault, req Request, base *vault.SnapshotPoint, rep *Report) error {
	mw := newMappingWriter(ctx, v, rep.JobID)
	mw.dry = req.DryRun
	var collectErr error
	out := func(mp Mapping) {
		rep.add(mp)
		if err := mw.add(mp); err != nil && collectErr == nil {
			collectErr = err
		}
		if r.Progress != nil {
			r.Progress(rep.progress())
		}
	}
	ph := phase{cold: base != nil && base.IsCold(), packs: v.NewPackReader()}
	// The plan's writes, then (a rollback) its delete markers, once every
	// write is done.
	var markers markerSpool
	defer markers.close()
	planErr := r.restorePhase(ctx, v, req, rep, ph, func(send func(task) error) error {
		_, err := r.plan(ctx, v, req, base, rep, planRound{write: send, mark: markers.add})
		return err
	}, out)
	var markErr error
	if planErr == nil && ctx.Err() == nil {
		markErr = r.restorePhase(ctx, v, req, rep, ph, markers.each, out)
	}
	if err := mw.close(); err != nil && collectErr == nil {
		collectErr = err
	}
	rep.mu.Lock()
	rep.MappingParts = mw.parts
	rep.mu.Unlock()
	return errors.Join(planErr, markErr, collectErr)
}

// phase is what the tasks of one restore share.
type phase struct {
	// cold: the records come from a COLD recovery point (see task.coldTags).
	cold bool
	// packs reads packed members, a window of a pack at a time.
	packs *vault.PackReader
	// compare: a bucket the restore created is compared with all the same
	// (a batch run again finds what its first run wrote).
	compare bool
}

// restorePhase restores the tasks feed sends, req.Concurrency at a time,
// and hands each one's mapping to out, from one goroutine at a time.
// Tasks whose data is in an archive storage class are thawed after
// everything else (archive.go).
func (r *Restorer) restorePhase(ctx context.Context, v *vault.Vault, req Request, rep *Report, ph phase, feed func(send func(task) error) error, out func(Mapping)) error {
	conc := req.Concurrency
	if conc == 0 {
		conc = 32
	}
	if ph.compare {
		req.CreateBucket = false
	}
	tasks := make(chan task, conc*4)
	results := make(chan Mapping, conc*4)
	var thawing archived
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range tasks {
				t.coldTags, t.packs = ph.cold, ph.packs
				if t.marker && ph.compare && !req.DryRun {
					// A delete marker this job put already is not put again.
					switch marked, err := isDeleteMarked(ctx, r.S3, req.TargetBucket, t.key); {
					case err != nil:
						results <- Mapping{Key: t.key, Action: ActionFailed, Error: err.Error()}
						continue
					case marked:
						results <- Mapping{Key: t.key, Action: ActionIdentical}
						continue
					}
				}
				mp := r.restoreOne(ctx, v, req, t)
				if mp.archived {
					thawing.add(t) // after everything else
					continue
				}
				results <- mp
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for mp := range results {
			out(mp)
		}
	}()
	feedErr := feed(func(t task) error {
		select {
		case tasks <- t:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(tasks)
	wg.Wait()
	if len(thawing.tasks) > 0 {
		r.thaw(ctx, v, req, thawing.tasks, results, rep)
	}
	close(results)
	<-done
	return feedErr
}

// restoreOne restores one key (or puts its delete marker) and verifies it.
func (r *Restorer) restoreOne(ctx context.Context, v *vault.Vault, req Request, t task) Mapping {
	if t.marker && req.DryRun {
		return Mapping{Key: t.key, Action: ActionWouldDeleteMarker}
	}
	if t.marker {
		out, err := r.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(req.TargetBucket), Key: aws.String(t.key)})
		if err != nil {
			return Mapping{Key: t.key, Action: ActionFailed, Error: fmt.Sprintf("put delete marker: %v", err)}
		}
		return Mapping{Key: t.key, Action: ActionDeleteMarker, RestoredVersion: aws.ToString(out.VersionId)}
	}
	rec := t.obj.Version
	mp := Mapping{Key: t.key, SourceVersionID: rec.VersionID, Size: rec.Size, Uncertain: t.uncertain}
	fail := func(err error) Mapping {
		mp.Action, mp.Error, mp.archived = ActionFailed, err.Error(), s3x.IsArchived(err)
		r.log().WarnContext(ctx, "restore failed", "bucket", req.TargetBucket, "key", t.key, "versionId", rec.VersionID, "error", err)
		return mp
	}
	// The version of the data object to read, once a read found it.
	var dv vault.DataVersion
	// A bucket this restore created holds nothing to compare with.
	if !req.CreateBucket {
		same, hv, err := r.identical(ctx, v, req.TargetBucket, t)
		if err != nil {
			return fail(err)
		}
		dv, mp.VaultDamage = hv, hv.Damage
		if same != "" {
			mp.Action, mp.RestoredVersion, mp.Verified = ActionIdentical, same, "etag"
			mp.Checked = []string{CheckedMetadata, CheckedTags, CheckedStorageClass}
			if t.obj.ACL != nil && len(t.obj.ACL.Grants) > 0 {
				mp.Checked = append(mp.Checked, CheckedACL)
			}
			return mp
		}
	}
	if req.DryRun {
		mp.Action = ActionWouldRestore
		return mp
	}
	if t.coldTags && rec.MetaInData && t.obj.Tags == nil {
		// Its tags are those its data object carries, less the cold
		// tier's (the copy would carry them all).
		_, tags, hv, err := carried(ctx, r.S3, v, rec)
		if err != nil {
			return fail(err)
		}
		t.obj.Tags, dv, mp.VaultDamage = tags, hv, hv.Damage
	}
	if rec.Packed {
		return r.restorePacked(ctx, v, req, t, mp, fail)
	}
	// The copy is conditional on the data object being the one the
	// record names (vault.IfMatch): a data key overwritten in the vault
	// fails it, and the copy is made from the older version that holds
	// the recorded bytes, or from the version repair wrote again (on its
	// own ETag, which its repair record vouches for), or not at all.
	if rec.MetaInData && dv.VersionID == "" {
		// Its metadata and tags are copied from its data object: from the
		// version first written, whatever was put over it since.
		hv, ok, err := v.OriginalData(ctx, rec)
		if err != nil {
			return fail(err)
		}
		if ok {
			dv, mp.VaultDamage = hv, hv.Damage
		}
	}
	in := copyInput(v.Bucket, req.TargetBucket, t)
	if dv.Found() || rec.MetaInData && dv.VersionID != "" {
		v.CopyFrom(in, rec, dv)
	}
	// Rebuild the original's shape so the restored ETag equals the
	// original's: a multipart object with its part size, a single-part one
	// (at most 5 GiB, S3's limit) with one copy.
	opts := r.Copy
	switch {
	case rec.PartSize > 0 && etagShape(rec.ETag) != "":
		opts.Multipart, opts.PartSize = true, rec.PartSize
	case etagShape(rec.ETag) == "" && rec.Size <= s3x.MaxCopySize:
		opts.Threshold = s3x.MaxCopySize
	}
	if rec.MetaInData && (opts.Multipart || rec.Size > s3x.MaxCopySize) {
		// A multipart copy starts empty: read what the data object carries.
		h, hv, err := v.HeadOriginalData(ctx, rec)
		if err != nil {
			return fail(err)
		}
		dv, mp.VaultDamage = hv, hv.Damage
		v.CopyFrom(in, rec, dv)
		if err := s3x.CarryFromHead(ctx, r.S3, v.Bucket, rec.Data, h, in); err != nil {
			return fail(err)
		}
		if in.Tagging, err = withoutTierTagging(in.Tagging); err != nil {
			return fail(fmt.Errorf("tags of s3://%s/%s: %w", v.Bucket, rec.Data, err))
		}
		if t.obj.Tags != nil {
			in.Tagging = aws.String(s3x.EncodeTags(t.obj.Tags))
		}
	}
	if !opts.SingleCall(rec.Size) {
		// A copy in parts gets a checksum of its parts, not the
		// original's full-object one: the parts' ETags check it.
		in.ChecksumAlgorithm = ""
	}
	res, err := s3x.Copy(ctx, r.S3, in, rec.Size, opts)
	if vault.IsDataMismatch(err) && !dv.Found() {
		if dv, err = v.FindData(ctx, rec); err != nil {
			return fail(err)
		}
		mp.VaultDamage = dv.Damage
		v.CopyFrom(in, rec, dv)
		res, err = s3x.Copy(ctx, r.S3, in, rec.Size, opts)
	}
	if err != nil {
		return fail(fmt.Errorf("copy %s to s3://%s/%s: %w", rec.Data, req.TargetBucket, t.key, err))
	}
	return r.finish(ctx, v, req, t, mp, res.VersionID, res.ETag, fail)
}

// finish completes a restored object (its ACL) and checks it after the
// write, read back with a HEAD: its bytes (the ETag S3 computed equal to
// the original's is proof of the same bytes, the MD5 or the MD5 of the
// same parts; else the checksum of the original's algorithm; else only
// the size, said so), and every field the restore wrote: system and user
// metadata, tags, storage class, and the ACL where it was restored. An
// object that fails is removed (unwrite) and the key FAILED.
func (r *Restorer) finish(ctx context.Context, v *vault.Vault, req Request, t task, mp Mapping, versionID, etag string, fail func(error) Mapping) Mapping {
	mp.RestoredVersion = versionID
	aclRestored := false
	if t.obj.ACL != nil && len(t.obj.ACL.Grants) > 0 {
		switch err := r.putACL(ctx, req.TargetBucket, t.key, versionID, t.obj.ACL); {
		case s3x.IsACLNotSupported(err):
			// The bytes, metadata and tags are back; the report says
			// which objects lack their ACL, and why.
			mp.ACL = ACLNotRestored
		case err != nil:
			return fail(err)
		default:
			aclRestored = true
		}
	}
	if req.Verify == VerifyBytes {
		if etag != "" && etag == t.obj.Version.ETag {
			// S3 computed the original's ETag for the write: the bytes.
			mp.Action, mp.Verified = ActionRestored, "etag"
			return mp
		}
		how, err := r.verify(ctx, req.TargetBucket, t.key, versionID, t.obj.Version, etag, fields{storageClass: t.obj.StorageClass})
		if err != nil && ctx.Err() == nil {
			return fail(r.unwrite(ctx, req.TargetBucket, t.key, versionID, err))
		}
		if err != nil {
			return fail(fmt.Errorf("written as version %s but not checked: the restore stopped (%w); running the same restore again checks it", versionID, context.Cause(ctx)))
		}
		mp.Action, mp.Verified = ActionRestored, how
		return mp
	}
	want, err := r.written(ctx, v, t)
	if err != nil {
		return fail(err)
	}
	if aclRestored {
		want.acl = t.obj.ACL
	}
	how, err := r.verify(ctx, req.TargetBucket, t.key, versionID, t.obj.Version, etag, want)
	if err != nil && ctx.Err() != nil {
		// Stopped before the check, not failed by it: the object stays
		// (removing it would cost a second copy), and running the same
		// restore again compares it with the record, as its check would.
		return fail(fmt.Errorf("written as version %s but not checked: the restore stopped (%w); running the same restore again checks it", versionID, context.Cause(ctx)))
	}
	if err != nil {
		return fail(r.unwrite(ctx, req.TargetBucket, t.key, versionID, err))
	}
	mp.Action, mp.Verified, mp.Checked = ActionRestored, how, want.checked()
	return mp
}

// fields are what a restore wrote beside the bytes, to check after the
// write: nil metadata or tags are not known (not checked).
type fields struct {
	meta         *vault.Meta
	tags         map[string]string
	storageClass string
	acl          *vault.ACL
}

// checked names the fields a check covers, for the mapping.
func (f fields) checked() []string {
	var out []string
	if f.meta != nil {
		out = append(out, CheckedMetadata)
	}
	if f.tags != nil {
		out = append(out, CheckedTags)
	}
	out = append(out, CheckedStorageClass)
	if f.acl != nil {
		out = append(out, CheckedACL)
	}
	return out
}

// Fields a restore checks after the write (Mapping.Checked).
const (
	CheckedMetadata     = "metadata"
	CheckedTags         = "tags"
	CheckedStorageClass = "storage-class"
	CheckedACL          = "acl"
)

// written is what the restore of t wrote: the record's metadata and the
// tags at T, or, for a record whose data object carries them (a copy
// with S3's COPY directives), what the data object carries.
func (r *Restorer) written(ctx context.Context, v *vault.Vault, t task) (fields, error) {
	rec := t.obj.Version
	f := fields{meta: rec.Meta, tags: t.obj.Tags, storageClass: t.obj.StorageClass}
	if rec.MetaInData && !rec.Packed && (f.meta == nil || f.tags == nil) {
		meta, tags, _, err := carried(ctx, r.S3, v, rec)
		if err != nil {
			return f, err
		}
		if f.meta == nil {
			f.meta = meta
		}
		if f.tags == nil {
			f.tags = tags
		}
	}
	if f.meta == nil {
		f.meta = &vault.Meta{} // none: the restore wrote none
	}
	if f.tags == nil {
		f.tags = map[string]string{}
	}
	return f, nil
}

// restorePacked restores a version a snapshot packed: its bytes are a
// range of a pack, read and written with the metadata, tags and checksum
// its record holds (what copyInput would set on a copy).
func (r *Restorer) restorePacked(ctx context.Context, v *vault.Vault, req Request, t task, mp Mapping, fail func(error) Mapping) Mapping {
	rec := t.obj.Version
	// The pack reader (ReadData) checks the bytes against the record
	// before they are used.
	body, dv, err := t.packs.Read(ctx, rec)
	if err != nil {
		return fail(err)
	}
	mp.VaultDamage = dv.Damage
	sum := md5.Sum(body)
	c := copyInput(v.Bucket, req.TargetBucket, t)
	in := &s3.PutObjectInput{
		Bucket: c.Bucket, Key: c.Key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ContentMD5:  aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType: c.ContentType, ContentEncoding: c.ContentEncoding, ContentDisposition: c.ContentDisposition,
		ContentLanguage: c.ContentLanguage, CacheControl: c.CacheControl, WebsiteRedirectLocation: c.WebsiteRedirectLocation,
		Expires: c.Expires, Metadata: c.Metadata, Tagging: c.Tagging, StorageClass: c.StorageClass,
	}
	if ck := rec.Checksum; ck != nil && ck.Type != string(types.ChecksumTypeComposite) {
		// The same algorithm as the original's, so the same checksum.
		in.ChecksumAlgorithm = types.ChecksumAlgorithm(ck.Algorithm)
	}
	out, err := r.S3.PutObject(ctx, in)
	if err != nil {
		return fail(fmt.Errorf("write %s to s3://%s/%s: %w", rec.Data, req.TargetBucket, t.key, err))
	}
	return r.finish(ctx, v, req, t, mp, aws.ToString(out.VersionId), s3x.TrimETag(aws.ToString(out.ETag)), fail)
}

func copyInput(vaultBucket, target string, t task) *s3.CopyObjectInput {
	rec := t.obj.Version
	in := &s3.CopyObjectInput{
		Bucket: aws.String(target), Key: aws.String(t.key),
		CopySource:        aws.String(s3x.CopySource(vaultBucket, rec.Data, "")),
		CopySourceIfMatch: vault.IfMatch(rec),
		MetadataDirective: types.MetadataDirectiveReplace,
		TaggingDirective:  types.TaggingDirectiveReplace,
	}
	if m := rec.Meta; m != nil {
		in.ContentType = nonEmpty(m.ContentType)
		in.ContentEncoding = nonEmpty(m.ContentEncoding)
		in.ContentDisposition = nonEmpty(m.ContentDisposition)
		in.ContentLanguage = nonEmpty(m.ContentLanguage)
		in.CacheControl = nonEmpty(m.CacheControl)
		in.WebsiteRedirectLocation = nonEmpty(m.WebsiteRedirect)
		if m.Expires != "" {
			if t, err := http.ParseTime(m.Expires); err == nil {
				in.Expires = &t
			}
		}
		in.Metadata = m.User
	}
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	if len(t.obj.Tags) > 0 {
		in.Tagging = aws.String(s3x.EncodeTags(t.obj.Tags))
	}
	if rec.MetaInData {
		// The data object carries the version's metadata (and its tags,
		// unless a later change set them).
		in.MetadataDirective = types.MetadataDirectiveCopy
		in.ContentType, in.Metadata = nil, nil
		if t.obj.Tags == nil {
			in.TaggingDirective = types.TaggingDirectiveCopy
		}
	}
	if sc := t.obj.StorageClass; sc != "" && sc != string(types.StorageClassStandard) {
		in.StorageClass = types.StorageClass(sc)
	}
	if ck := rec.Checksum; ck != nil && ck.Type != string(types.ChecksumTypeComposite) {
		// The copy gets a checksum of the original's algorithm (S3 would
		// pick its own otherwise), so the write can be checked by it.
		in.ChecksumAlgorithm = types.ChecksumAlgorithm(ck.Algorithm)
	}
	return in
}

// identical returns the version id of the target's current object for the
// key when it already equals what the restore would write (and, for a
// record whose data object carries its metadata, which version of the
// data object holds it).
func (r *Restorer) identical(ctx context.Context, v *vault.Vault, bucket string, t task) (string, vault.DataVersion, error) {
	id, err := r.identicalIn(ctx, v, bucket, &t)
	return id, t.data, err
}

func (r *Restorer) identicalIn(ctx context.Context, v *vault.Vault, bucket string, t *task) (string, error) {
	rec := t.obj.Version
	if rec.MetaInData {
		// Compare with what the data object carries.
		meta, tags, dv, err := carried(ctx, r.S3, v, rec)
		if err != nil {
			return "", err
		}
		t.data = dv
		rec.Meta = meta
		if t.obj.Tags == nil {
			t.obj.Tags = tags
		}
	}
	head, err := r.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(t.key)})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.IsDeleteMarker(err) {
			return "", nil
		}
		return "", fmt.Errorf("head s3://%s/%s: %w", bucket, t.key, err)
	}
	if aws.ToInt64(head.ContentLength) != rec.Size || s3x.TrimETag(aws.ToString(head.ETag)) != rec.ETag {
		return "", nil
	}
	if m := rec.Meta; m != nil && metaDiffers(head, m) != "" {
		return "", nil
	}
	if storageClass(string(head.StorageClass)) != storageClass(t.obj.StorageClass) {
		return "", nil
	}
	want := t.obj.Tags
	if int(aws.ToInt32(head.TagCount)) != len(want) {
		return "", nil
	}
	if len(want) > 0 {
		out, err := r.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(t.key), VersionId: head.VersionId})
		if err != nil {
			return "", fmt.Errorf("tags of s3://%s/%s: %w", bucket, t.key, err)
		}
		got := map[string]string{}
		for _, tg := range out.TagSet {
			got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if !maps.Equal(got, want) {
			return "", nil
		}
	}
	if acl := t.obj.ACL; acl != nil && len(acl.Grants) > 0 {
		same, err := r.sameACL(ctx, bucket, t.key, aws.ToString(head.VersionId), acl)
		if err != nil || !same {
			return "", err
		}
	}
	id := aws.ToString(head.VersionId)
	if id == "" {
		id = "null"
	}
	return id, nil
}

// metaDiffers names the first field of a HEAD's system or user metadata
// that differs from m ("" when none does). A record without a content
// type takes whatever S3 gave the object.
func metaDiffers(head *s3.HeadObjectOutput, m *vault.Meta) string {
	switch {
	case aws.ToString(head.ContentType) != m.ContentType && m.ContentType != "":
		return "Content-Type " + strconv.Quote(aws.ToString(head.ContentType)) + ", want " + strconv.Quote(m.ContentType)
	case aws.ToString(head.ContentEncoding) != m.ContentEncoding:
		return "Content-Encoding " + strconv.Quote(aws.ToString(head.ContentEncoding)) + ", want " + strconv.Quote(m.ContentEncoding)
	case aws.ToString(head.ContentDisposition) != m.ContentDisposition:
		return "Content-Disposition " + strconv.Quote(aws.ToString(head.ContentDisposition)) + ", want " + strconv.Quote(m.ContentDisposition)
	case aws.ToString(head.ContentLanguage) != m.ContentLanguage:
		return "Content-Language " + strconv.Quote(aws.ToString(head.ContentLanguage)) + ", want " + strconv.Quote(m.ContentLanguage)
	case aws.ToString(head.CacheControl) != m.CacheControl:
		return "Cache-Control " + strconv.Quote(aws.ToString(head.CacheControl)) + ", want " + strconv.Quote(m.CacheControl)
	case !sameUserMeta(head.Metadata, m.User):
		return fmt.Sprintf("user metadata %v, want %v", head.Metadata, m.User)
	}
	return ""
}

// sameUserMeta compares user metadata; S3 gives names in lower case.
func sameUserMeta(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[strings.ToLower(k)]; !ok || g != v {
			if g, ok := got[k]; !ok || g != v {
				return false
			}
		}
	}
	return true
}

// storageClass names S3's default class as HEAD omits it.
func storageClass(sc string) string {
	if sc == "" {
		return string(types.StorageClassStandard)
	}
	return sc
}

// sameACL says whether the target's version has the grants the restore
// would put. A bucket with ACLs disabled (Object Ownership
// BucketOwnerEnforced) takes no grants: its objects are as the restore
// would leave them (their mappings say the ACL was not restored).
func (r *Restorer) sameACL(ctx context.Context, bucket, key, versionID string, want *vault.ACL) (bool, error) {
	got, err := vault.ReadACL(ctx, r.S3, bucket, key, versionID)
	if err != nil || got == nil {
		return got != nil, err // a server without ACLs: unknown, so restore
	}
	if sameGrants(got.Grants, want.Grants) {
		return true, nil
	}
	oc, err := r.S3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(bucket)})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.Code(err) == "OwnershipControlsNotFoundError" || s3x.IsNotImplemented(err) {
			return false, nil
		}
		return false, fmt.Errorf("ownership controls of s3://%s: %w", bucket, err)
	}
	if oc.OwnershipControls == nil {
		return false, nil
	}
	for _, rule := range oc.OwnershipControls.Rules {
		if rule.ObjectOwnership == types.ObjectOwnershipBucketOwnerEnforced {
			return true, nil
		}
	}
	return false, nil
}

// sameGrants compares two grant lists as sets.
func sameGrants(a, b []vault.Grant) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[vault.Grant]int{}
	for _, g := range a {
		count[g]++
	}
	for _, g := range b {
		if count[g] == 0 {
			return false
		}
		count[g]--
	}
	return true
}

// verify checks a restored version after the write, read back with one
// HEAD (and its tags and ACL where it has them): its size; its bytes by
// the ETag where it proves them (etag, the write's own ETag equal to the
// original's, or the same MD5 or multipart shape), else by the checksum
// of the record's algorithm, else by nothing (size-only, said so); and
// the fields want names. It returns how the bytes were checked.
func (r *Restorer) verify(ctx context.Context, bucket, key, versionID string, rec vault.Record, written string, want fields) (string, error) {
	head, err := r.S3.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonEmpty(versionID), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return "", fmt.Errorf("verify s3://%s/%s: %w", bucket, key, err)
	}
	if got := aws.ToInt64(head.ContentLength); got != rec.Size {
		return "", fmt.Errorf("verify s3://%s/%s: size %d, want %d", bucket, key, got, rec.Size)
	}
	how, err := bytesCheck(head, rec, written)
	if err != nil {
		return "", fmt.Errorf("verify s3://%s/%s: %w", bucket, key, err)
	}
	if want.meta != nil {
		if d := metaDiffers(head, want.meta); d != "" {
			return "", fmt.Errorf("verify s3://%s/%s: %s", bucket, key, d)
		}
	}
	if got, w := storageClass(string(head.StorageClass)), storageClass(want.storageClass); got != w {
		return "", fmt.Errorf("verify s3://%s/%s: storage class %s, want %s", bucket, key, got, w)
	}
	if want.tags != nil {
		if n := int(aws.ToInt32(head.TagCount)); n != len(want.tags) {
			return "", fmt.Errorf("verify s3://%s/%s: %d tags, want %d", bucket, key, n, len(want.tags))
		}
		if len(want.tags) > 0 {
			out, err := r.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonEmpty(versionID)})
			if err != nil {
				return "", fmt.Errorf("verify the tags of s3://%s/%s: %w", bucket, key, err)
			}
			got := map[string]string{}
			for _, tg := range out.TagSet {
				got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			if !maps.Equal(got, want.tags) {
				return "", fmt.Errorf("verify s3://%s/%s: tags %v, want %v", bucket, key, got, want.tags)
			}
		}
	}
	if want.acl != nil {
		got, err := vault.ReadACL(ctx, r.S3, bucket, key, versionID)
		if err != nil {
			return "", fmt.Errorf("verify the ACL of s3://%s/%s: %w", bucket, key, err)
		}
		if got != nil && !sameGrants(got.Grants, want.acl.Grants) {
			return "", fmt.Errorf("verify s3://%s/%s: ACL grants %v, want %v", bucket, key, got.Grants, want.acl.Grants)
		}
	}
	return how, nil
}

// bytesCheck says how a HEAD proves a restored version's bytes: etag,
// checksum, or size-only (nothing compares), or fails.
func bytesCheck(head *s3.HeadObjectOutput, rec vault.Record, written string) (string, error) {
	etag := s3x.TrimETag(aws.ToString(head.ETag))
	kms := head.ServerSideEncryption == types.ServerSideEncryptionAwsKms || rec.SSE == string(types.ServerSideEncryptionAwsKms)
	if written != "" && written == rec.ETag && etag == written {
		return "etag", nil // S3 computed the original's ETag for the write
	}
	if !kms && etagShape(etag) == etagShape(rec.ETag) {
		if etag != rec.ETag {
			return "", fmt.Errorf("etag %s, want %s", etag, rec.ETag)
		}
		return "etag", nil
	}
	if c := rec.Checksum; c != nil && c.Type != string(types.ChecksumTypeComposite) {
		got := map[string]*string{"CRC32": head.ChecksumCRC32, "CRC32C": head.ChecksumCRC32C, "CRC64NVME": head.ChecksumCRC64NVME, "SHA1": head.ChecksumSHA1, "SHA256": head.ChecksumSHA256}[c.Algorithm]
		if got != nil {
			if *got != c.Value {
				return "", fmt.Errorf("%s checksum %s, want %s", c.Algorithm, *got, c.Value)
			}
			return "checksum", nil
		}
	}
	// No digest compares (an SSE-KMS object's ETag is not its MD5, and the
	// record holds no checksum): only the size is known to match, which
	// proves nothing of the bytes. Said so, never called verified.
	return VerifiedSizeOnly, nil
}

// VerifiedSizeOnly is a restored object whose bytes no digest could
// check after the write: its size matches.
const VerifiedSizeOnly = "size-only"

// etagShape is "" for a single-part ETag (the MD5 of the bytes) and "-N"
// for an N-part upload's; only ETags of one shape compare.
func etagShape(etag string) string {
	if i := strings.LastIndexByte(etag, '-'); i >= 0 {
		return etag[i:]
	}
	return ""
}

func (r *Restorer) putACL(ctx context.Context, bucket, key, versionID string, acl *vault.ACL) error {
	pol := &types.AccessControlPolicy{}
	if acl.Owner != "" {
		pol.Owner = &types.Owner{ID: aws.String(acl.Owner)}
	}
	for _, g := range acl.Grants {
		pol.Grants = append(pol.Grants, types.Grant{
			Permission: types.Permission(g.Permission),
			Grantee:    &types.Grantee{Type: types.Type(g.Type), ID: nonEmpty(g.ID), URI: nonEmpty(g.URI), EmailAddress: nonEmpty(g.Email)},
		})
	}
	_, err := r.S3.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonEmpty(versionID), AccessControlPolicy: pol})
	if err != nil {
		return fmt.Errorf("restore acl of s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// unwrite deletes a version the restore wrote that failed its check, so no
// unverified object stays in the target, and returns the failure (with
// what became of the version).
func (r *Restorer) unwrite(ctx context.Context, bucket, key, versionID string, cause error) error {
	in := &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" && versionID != "null" {
		in.VersionId = aws.String(versionID)
	}
	if _, err := r.S3.DeleteObject(context.WithoutCancel(ctx), in); err != nil {
		return fmt.Errorf("%w; the object written could not be removed, delete s3://%s/%s version %s: %v", cause, bucket, key, versionID, err)
	}
	return fmt.Errorf("%w; the object written was removed", cause)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// snapshotPoint finds the snapshot recovery point a request names.
func snapshotPoint(ctx context.Context, v *vault.Vault, req Request) (*vault.SnapshotPoint, error) {
	sp, err := v.Snapshot(ctx, req.Bucket, req.RecoveryPointID)
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, &InvalidRequestError{Reason: fmt.Sprintf("vault %s has no snapshot recovery point %q of s3://%s (see `bucketvault recovery-points`)", v.Bucket, req.RecoveryPointID, req.Bucket)}
		}
		return nil, err
	}
	if (sp.Status != vault.PointAvailable && sp.Status != vault.PointPartial) || sp.ScanCompletionDate == nil {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("recovery point %s is %s, not AVAILABLE or PARTIAL: %s", sp.RecoveryPointID, sp.Status, sp.StatusMessage)}
	}
	return sp, nil
}

func snapshotWarnings(sp *vault.SnapshotPoint) []string {
	if sp.Status == vault.PointPartial {
		return []string{fmt.Sprintf("recovery point %s is PARTIAL: %s", sp.RecoveryPointID, sp.StatusMessage)}
	}
	return nil
}

// carried reads the metadata and tags a record's data object carries, in
// its original version (vault.HeadOriginalData): a rewrite with the same
// bytes and other metadata or tags is not what the record vouches for.
func carried(ctx context.Context, c s3x.Client, v *vault.Vault, rec vault.Record) (*vault.Meta, map[string]string, vault.DataVersion, error) {
	return carriedBy(ctx, c, v, rec, v.HeadOriginalData)
}

// carriedBy is carried, with the data object's version HEADed by head
// (vault.Vault.HeadData, or HeadOriginalData for the version first
// written).
func carriedBy(ctx context.Context, c s3x.Client, v *vault.Vault, rec vault.Record,
	head func(context.Context, vault.Record) (*s3.HeadObjectOutput, vault.DataVersion, error)) (*vault.Meta, map[string]string, vault.DataVersion, error) {
	h, dv, err := head(ctx, rec)
	if err != nil {
		return nil, nil, dv, err
	}
	in := &s3.CopyObjectInput{}
	if err := s3x.CarryFromHead(ctx, c, v.Bucket, rec.Data, h, in); err != nil {
		return nil, nil, dv, err
	}
	m := &vault.Meta{
		ContentType: aws.ToString(in.ContentType), ContentEncoding: aws.ToString(in.ContentEncoding),
		ContentDisposition: aws.ToString(in.ContentDisposition), ContentLanguage: aws.ToString(in.ContentLanguage),
		CacheControl: aws.ToString(in.CacheControl), WebsiteRedirect: aws.ToString(in.WebsiteRedirectLocation), User: in.Metadata,
	}
	if len(m.User) == 0 {
		m.User = nil
	}
	tags := map[string]string{}
	if q := aws.ToString(in.Tagging); q != "" {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return nil, nil, dv, fmt.Errorf("tags of s3://%s/%s: %w", v.Bucket, rec.Data, err)
		}
		for k, vs := range vals {
			tags[k] = vs[0]
		}
	}
	// The cold tier's tag is the vault's, never the version's.
	return m, vault.WithoutTierTag(tags), dv, nil
}
