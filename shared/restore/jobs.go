package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// A running restore rewrites its job record every HeartbeatEvery
// (UpdatedAt). A record still RUNNING whose heartbeat is older than
// StaleAfter belongs to a process that ended without finishing (a killed
// CLI, a Lambda that timed out): `job show` reads it as ABORTED,
// interrupted, and the next run of the same request marks it so and goes
// on (objects the first run restored are identical now, and skipped).
var (
	HeartbeatEvery = time.Minute
	StaleAfter     = 5 * time.Minute
)

// StateAborted is a job that ended without finishing (AWS Backup's word).
const StateAborted = vault.JobAborted

// Interrupted reports whether the job's record says RUNNING while its
// heartbeat stopped more than StaleAfter before now.
func (r *Report) Interrupted(now time.Time) bool {
	last := r.UpdatedAt
	if last.IsZero() {
		last = r.StartedAt
	}
	if r.Type != vault.JobTypeRestore || r.State != StateRunning {
		return false
	}
	if r.Runner.execution() != "" {
		// No heartbeat while the Distributed Map runs: the execution's
		// deadline says when it can no longer be running.
		return r.Deadline != nil && now.After(*r.Deadline)
	}
	return now.Sub(last) > StaleAfter || r.Deadline != nil && now.After(*r.Deadline)
}

// markInterrupted turns a stale RUNNING record into what it is.
func (r *Report) markInterrupted() {
	last := r.UpdatedAt
	if last.IsZero() {
		last = r.StartedAt
	}
	r.State = StateAborted
	r.StatusMessage = fmt.Sprintf("interrupted: its process ended without finishing (no heartbeat since %s); run the same restore again to finish it",
		last.UTC().Format(time.RFC3339))
	if e := r.Runner.execution(); e != "" {
		r.StatusMessage = fmt.Sprintf("interrupted: state machine execution %s passed its deadline without finishing; run the same restore again to finish it", e)
	}
}

// LoadJob reads a job's record as of now: a restore's RUNNING record
// whose heartbeat stopped reads as ABORTED (interrupted). (Other jobs'
// records are read as they are.)
func LoadJob(ctx context.Context, v *vault.Vault, jobID string, now time.Time) (*Report, error) {
	var rep Report
	if err := v.GetJSON(ctx, vault.JobKey(jobID), &rep); err != nil {
		return nil, err
	}
	if rep.Interrupted(now) {
		rep.markInterrupted()
	}
	return &rep, nil
}

// requestHash names what a request asks for (not its job id, concurrency,
// whether it creates the target, accepts an incomplete journal or waits
// for archived data): two runs of the same restore share it, the second
// one into the target the first created.
func requestHash(req Request) string {
	req.JobID, req.Concurrency, req.CreateBucket, req.AllowIncomplete = "", 0, false, false
	req.ArchiveWaitMinutes, req.ArchiveTier, req.Verify = 0, "", ""
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// activeJob is the record at vault.ActiveJobKey: the job that claimed a
// request last.
type activeJob struct {
	JobID string `json:"jobId"`
	// ClaimedAt is when it claimed the request, and Runner what runs it: a
	// job that claimed the request and has written no record yet is
	// starting, until its runner is gone or StaleAfter has passed.
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
	Runner    *Runner   `json:"runner,omitempty"`
	// Released: the job ended before it wrote a record (its target could
	// not be created, say), so nothing holds the request.
	Released bool `json:"released,omitempty"`
}

// claimAttempts bounds how many times claim reads the request's latest
// job again after another restore of the same request claimed it first.
const claimAttempts = 3

// claim checks the previous job of the same request before a new one
// starts: one still running (a fresh heartbeat), or starting (it claimed
// the request and has no record yet), refuses the new one; one
// interrupted is marked so, and the new job says it finishes it. It then
// names the new job as the request's latest, over the version of the
// record it read (If-Match; If-None-Match when there was none), so of two
// identical restores started together exactly one claims the request:
// the other reads the winner's claim and is refused by it.
//
// It returns the release of the claim (nil when the job already had it),
// for a job that ends before it writes its record: an identical restore
// may then start at once instead of waiting StaleAfter.
func (r *Restorer) claim(ctx context.Context, v *vault.Vault, req Request, rep *Report) (release func(), err error) {
	key := vault.ActiveJobKey(requestHash(req))
	for attempt := 1; ; attempt++ {
		var prev activeJob
		etag, err := v.GetJSONETag(ctx, key, &prev)
		switch {
		case s3x.IsNotFound(err):
			prev, etag = activeJob{}, ""
		case err != nil:
			return nil, err
		case prev.JobID == rep.JobID && !prev.Released:
			return nil, nil // this job's own claim: a run of it again
		case prev.JobID != "" && !prev.Released:
			if err := r.supersede(ctx, v, prev, rep); err != nil {
				return nil, err
			}
		}
		claim := activeJob{JobID: rep.JobID, ClaimedAt: r.now().UTC(), Runner: rep.Runner}
		etag, err = v.PutJSONIf(ctx, key, claim, etag)
		if err == nil {
			return func() {
				// Over this claim only: a restore that took the request
				// over meanwhile keeps it.
				claim.Released = true
				if _, err := v.PutJSONIf(context.WithoutCancel(ctx), key, claim, etag); err != nil && !vault.IsConflict(err) {
					r.log().WarnContext(ctx, "release the restore's claim", "job", rep.JobID, "error", err)
				}
			}, nil
		}
		if !vault.IsConflict(err) {
			return nil, err
		}
		if attempt == claimAttempts {
			return nil, &InvalidRequestError{Reason: fmt.Sprintf("other runs of the same restore claimed it %d times while this one read its claim (%s): run it again", attempt, key)}
		}
	}
}

// supersede decides whether a new job of the same request may follow the
// job prev names: not while that one runs or starts; one interrupted is
// marked ABORTED (over the version of its record read), and rep says it
// finishes it.
func (r *Restorer) supersede(ctx context.Context, v *vault.Vault, prev activeJob, rep *Report) error {
	old, err := LoadJob(ctx, v, prev.JobID, r.now())
	if err != nil && !s3x.IsNotFound(err) {
		return err
	}
	if old != nil && old.State == StateRunning && old.Runner.gone() {
		old.markInterrupted()
	}
	switch {
	case old == nil && !prev.ClaimedAt.IsZero() && r.now().Sub(prev.ClaimedAt) <= StaleAfter && !prev.Runner.gone():
		return &InvalidRequestError{Reason: fmt.Sprintf("the same restore is starting as job %s (it claimed the request at %s and has not written its record yet): wait for it (`bucketvault job show --vault %s %s`); "+
			"a claim with no record for %s is taken over", prev.JobID, prev.ClaimedAt.UTC().Format(time.RFC3339), v.Bucket, prev.JobID, StaleAfter)}
	case old == nil:
		// It claimed the request and ended before it recorded anything.
	case old.State == StateRunning:
		return &InvalidRequestError{Reason: fmt.Sprintf("the same restore is running as job %s (heartbeat at %s): wait for it (`bucketvault job show --vault %s %s`); "+
			"a job whose heartbeat stops for %s reads as interrupted, and this restore then finishes it", old.JobID, old.UpdatedAt.UTC().Format(time.RFC3339), v.Bucket, old.JobID, StaleAfter)}
	case old.State == StateAborted && old.CompletedAt.IsZero():
		// Over the version read: a heartbeat in between means it runs.
		var cur Report
		_, err := v.UpdateJobRecord(ctx, old.JobID, &cur, func() bool {
			if !cur.UpdatedAt.Equal(old.UpdatedAt) {
				return false
			}
			cur.State, cur.StatusMessage, cur.CompletedAt = old.State, old.StatusMessage, r.now().UTC()
			return true
		})
		if err == nil && !cur.UpdatedAt.Equal(old.UpdatedAt) || vault.IsConflict(err) {
			return &InvalidRequestError{Reason: fmt.Sprintf("the same restore is running as job %s (it has just written its record): wait for it (`bucketvault job show --vault %s %s`)", old.JobID, v.Bucket, old.JobID)}
		}
		if err != nil {
			return err
		}
		if w := fmt.Sprintf("finishes job %s of the same request, which was %s", old.JobID, old.StatusMessage); !slices.Contains(rep.Warnings, w) {
			rep.Warnings = append(rep.Warnings, w)
		}
	}
	return nil
}

// heartbeat rewrites the running job's record every HeartbeatEvery until
// stop is closed.
func (r *Restorer) heartbeat(ctx context.Context, record *vault.JobRecord, rep *Report, stop <-chan struct{}) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			snap := rep.snapshot(r.now().UTC())
			err := record.Put(ctx, snap)
			if vault.IsConflict(err) {
				r.log().ErrorContext(ctx, "restore heartbeat refused: another writer changed the job's record (it was taken over as interrupted?)", "job", rep.JobID, "error", err)
				return
			}
			if err != nil {
				r.log().WarnContext(ctx, "restore heartbeat not written", "job", rep.JobID, "error", err)
			}
		}
	}
}

// snapshot copies the report (under its lock) with UpdatedAt set.
func (r *Report) snapshot(now time.Time) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *r
	c.UpdatedAt = now
	c.mu = nil
	c.Failures = append([]Mapping(nil), r.Failures...)
	c.VerifiedBy = maps.Clone(r.VerifiedBy)
	if r.Archived != nil {
		a := *r.Archived
		c.Archived = &a
	}
	c.Mapping = append([]Mapping(nil), r.Mapping...)
	c.UncertainKeys = append([]Mapping(nil), r.UncertainKeys...)
	c.Warnings = append([]string(nil), r.Warnings...)
	c.Unknown = append([]string(nil), r.Unknown...)
	c.Unvouched = append([]vault.Damage(nil), r.Unvouched...)
	return &c
}
