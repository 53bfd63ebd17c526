package restoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// One restore test: pick a recovery point (or a second of the continuous
// window) as the selection says, restore it into a new bucket of its own
// (restore-test-<random>, versioned, public access blocked), validate the
// restored bucket against the vault's records independently of the
// restore (restore.Restorer.Validate), keep the result in the vault
// (restore-tests/<bucket>/<id>.json) and delete the bucket once its
// validation window ends.

// TargetPrefix starts the name of every bucket a restore test makes; the
// sweeper deletes only buckets named so.
const TargetPrefix = "restore-test-"

// Run statuses (AWS Backup's restore testing job and validation words).
const (
	StatusSuccessful = "SUCCESSFUL"
	StatusFailed     = "FAILED"
)

// RunRequest is one restore test of one protected bucket.
type RunRequest struct {
	Vault  string `json:"vault"`
	Bucket string `json:"bucket"`
	// Selection picks the recovery point (a plan's); nil: the newest of
	// either type within the last DefaultSelectionWindowDays days.
	Selection *RecoveryPointSelection `json:"selection,omitempty"`
	PlanName  string                  `json:"planName,omitempty"`
	// Seed seeds the pick and the validation's sample (0: a random seed,
	// recorded).
	Seed uint64 `json:"seed,omitempty"`
	// Keep is how long the restored bucket stays after its validation (a
	// selection's ValidationWindowHours); 0 deletes it at once.
	Keep time.Duration `json:"keep,omitempty"`
	// Fraction and Confidence size the sample validated whole (defaults:
	// 0.1% corrupt found with 99%: 4,603 objects).
	Fraction   float64 `json:"fraction,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	// RTO is the plan's recovery time objective: the restore's time is
	// recorded against it (0: none).
	RTO time.Duration `json:"rto,omitempty"`
	// Now is the clock (zero: time.Now).
	Now time.Time `json:"-"`
}

// Run is the record of one restore test, kept in the vault.
type Run struct {
	ID       string `json:"id"`
	PlanName string `json:"planName,omitempty"`
	Vault    string `json:"vault"`
	Bucket   string `json:"bucket"`
	// What was picked: a SNAPSHOT point, or a second of the CONTINUOUS
	// window; with the window it was picked from.
	Type            RecoveryPointType `json:"type"`
	RecoveryPointID string            `json:"recoveryPointId,omitempty"`
	At              time.Time         `json:"at"`
	Algorithm       Algorithm         `json:"algorithm"`
	WindowStart     time.Time         `json:"windowStart"`
	WindowEnd       time.Time         `json:"windowEnd"`
	Seed            uint64            `json:"seed"`
	TargetBucket    string            `json:"targetBucket"`
	StartedAt       time.Time         `json:"startedAt"`
	// The restore: its job, state, time, objects and bytes.
	RestoreJobID   string  `json:"restoreJobId"`
	RestoreState   string  `json:"restoreState"`
	RestoreSeconds float64 `json:"restoreSeconds"`
	Objects        int64   `json:"objects"`
	Bytes          int64   `json:"bytes"`
	// RTOTargetSeconds is the recovery time objective the restore was
	// measured against (0: none was set) and RTOMet whether RestoreSeconds
	// was within it. A missed RTO is reported, not a failed test: the data
	// came back.
	RTOTargetSeconds float64 `json:"rtoTargetSeconds,omitempty"`
	RTOMet           *bool   `json:"rtoMet,omitempty"`
	// Validation is what reading the restored bucket back found.
	Validation *restore.Validation `json:"validation,omitempty"`
	// Status is SUCCESSFUL when the restore COMPLETED from an undamaged
	// vault and the validation found nothing; StatusMessage says why not,
	// and Failures names the keys.
	Status        string                      `json:"status"`
	StatusMessage string                      `json:"statusMessage,omitempty"`
	Failures      []restore.ValidationFailure `json:"failures,omitempty"`
	CompletedAt   time.Time                   `json:"completedAt"`
	// DeleteAfter is when the restored bucket goes, DeletedAt when it
	// went.
	DeleteAfter time.Time  `json:"deleteAfter"`
	DeletedAt   *time.Time `json:"deletedAt,omitempty"`
}

// Tester runs restore tests.
type Tester struct {
	S3 s3x.Client
	// Restorer restores and validates (its S3 is S3 when nil).
	Restorer *restore.Restorer
	// Prefix names this tester's buckets and bounds its sweeps: it must
	// start with TargetPrefix ("": TargetPrefix). Tests that share a
	// server give each its own.
	Prefix string
}

func (t *Tester) prefix() string {
	if strings.HasPrefix(t.Prefix, TargetPrefix) {
		return t.Prefix
	}
	return TargetPrefix
}

func (t *Tester) restorer() *restore.Restorer {
	if t.Restorer != nil {
		return t.Restorer
	}
	return &restore.Restorer{S3: t.S3}
}

// Run runs one restore test and returns its record, also kept in the
// vault. A test that ran and found problems is a Run with Status FAILED
// and no error; an error is a test that could not run (nothing to pick,
// the vault unreadable), after which no restored bucket is left behind.
func (t *Tester) Run(ctx context.Context, req RunRequest) (*Run, error) {
	v, err := vault.Open(ctx, t.S3, req.Vault)
	if err != nil {
		return nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	sel := req.Selection
	if sel == nil {
		sel = &RecoveryPointSelection{Algorithm: LatestWithinWindow, RecoveryPointTypes: []RecoveryPointType{Snapshot, Continuous}, IncludeVaults: []string{"*"}}
	}
	run := &Run{PlanName: req.PlanName, Vault: v.Bucket, Bucket: req.Bucket, Algorithm: sel.Algorithm, Seed: req.Seed, StartedAt: now}
	if run.Seed == 0 {
		run.Seed = mrand.Uint64()
	}
	rng := mrand.New(mrand.NewPCG(run.Seed, run.Seed^0x5851f42d4c957f2d))
	run.WindowStart, run.WindowEnd = sel.Window(now)
	if err := t.pick(ctx, v, sel, run, rng); err != nil {
		return nil, err
	}
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	run.ID = now.Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix[:4])
	run.TargetBucket = t.prefix() + hex.EncodeToString(suffix)
	rreq := restore.Request{Vault: v.Bucket, Bucket: req.Bucket, TargetBucket: run.TargetBucket, CreateBucket: true, JobID: "restore-test-" + run.ID}
	if run.Type == Snapshot {
		rreq.RecoveryPointID = run.RecoveryPointID
	} else {
		rreq.At = run.At
	}
	r := t.restorer()
	rep, rerr := r.Run(ctx, rreq)
	// The bucket goes whatever happens next (a crash leaves it to the
	// sweeper: its name says what it is).
	run.DeleteAfter = now.Add(req.Keep)
	defer func() {
		if req.Keep <= 0 {
			t.deleteTarget(context.WithoutCancel(ctx), v, run)
		}
	}()
	var why []string
	if rep != nil {
		run.RestoreJobID, run.RestoreState, run.RestoreSeconds = rep.JobID, rep.State, rep.DurationSeconds
		run.Objects, run.Bytes = rep.Restored, rep.Bytes
		run.setRTO(req.RTO)
		for _, f := range rep.Failures {
			run.Failures = append(run.Failures, restore.ValidationFailure{Key: f.Key, Why: "restore: " + f.Error})
		}
		for _, m := range rep.Mapping {
			if m.VaultDamage != "" {
				run.Failures = append(run.Failures, restore.ValidationFailure{Key: m.Key, Why: "vault damage: " + m.VaultDamage})
			}
		}
		if rep.State != restore.StateCompleted {
			why = append(why, fmt.Sprintf("the restore ended %s: %s", rep.State, rep.StatusMessage))
		}
		if rep.VaultDamaged > 0 {
			why = append(why, fmt.Sprintf("%d objects were restored from older versions of damaged vault data objects (see `bucketvault vault repair --vault %s`)", rep.VaultDamaged, v.Bucket))
		}
	}
	if rerr != nil && (rep == nil || rep.State == "") {
		if !errors.As(rerr, new(*restore.InvalidRequestError)) {
			return nil, rerr
		}
		why = append(why, "the restore was refused: "+rerr.Error())
	}
	if rep != nil && rep.State != restore.StateFailed {
		blockPublicAccess(ctx, t.S3, run.TargetBucket)
		val, err := r.Validate(ctx, restore.ValidateRequest{Restore: rreq, Target: run.TargetBucket, Fraction: orDefault(req.Fraction, 0.001), Confidence: orDefault(req.Confidence, 0.99), Seed: run.Seed})
		if err != nil {
			return nil, err
		}
		run.Validation = val
		if val.Verdict != restore.ValidationSuccessful {
			why = append(why, fmt.Sprintf("validation found %d keys not as the vault recorded them", val.Failed))
			run.Failures = append(run.Failures, val.Failures...)
		}
	}
	sort.SliceStable(run.Failures, func(i, j int) bool { return run.Failures[i].Key < run.Failures[j].Key })
	run.Status = StatusSuccessful
	if len(why) > 0 {
		run.Status, run.StatusMessage = StatusFailed, strings.Join(why, "; ")
	}
	run.CompletedAt = time.Now().UTC()
	if err := v.PutJSON(ctx, vault.RestoreTestKey(run.Bucket, run.ID), run); err != nil {
		return run, err
	}
	return run, nil
}

// setRTO records the restore's time against the target rto (none: 0).
func (r *Run) setRTO(rto time.Duration) {
	if rto <= 0 {
		return
	}
	r.RTOTargetSeconds = rto.Seconds()
	met := r.RestoreSeconds <= r.RTOTargetSeconds
	r.RTOMet = &met
}

func orDefault(x, def float64) float64 {
	if x == 0 {
		return def
	}
	return x
}

// pick chooses what the test restores: among the SNAPSHOT points in the
// window and, when the selection takes CONTINUOUS, the continuous
// recovery point (its window: the part of the selection's window the
// journal restores exactly, up to its completeness watermark). LATEST
// takes the newest of them (the continuous point at its newest second);
// RANDOM one of them uniformly, and a random second for the continuous
// one.
func (t *Tester) pick(ctx context.Context, v *vault.Vault, sel *RecoveryPointSelection, run *Run, rng *mrand.Rand) error {
	start, end := run.WindowStart, run.WindowEnd
	var snaps []Candidate
	if sel.Takes(Snapshot) {
		points, err := v.Snapshots(ctx, run.Bucket)
		if err != nil {
			return err
		}
		for _, p := range points {
			if p.Status == vault.PointAvailable && p.ScanCompletionDate != nil {
				snaps = append(snaps, Candidate{ID: p.RecoveryPointID, Time: p.ScanCompletionDate.UTC()})
			}
		}
	}
	var cStart, cEnd time.Time
	continuous := false
	if sel.Takes(Continuous) {
		w, err := v.WindowAt(ctx, run.Bucket, end)
		if err != nil {
			return err
		}
		wm, err := v.CompleteThrough(ctx, run.Bucket)
		if err != nil {
			return err
		}
		if wm != nil && !w.Earliest.IsZero() {
			cStart, cEnd = later(start, w.Earliest), earlier(end, *wm)
			continuous = !cEnd.Before(cStart)
		}
	}
	var inWindow []Candidate
	for _, s := range snaps {
		if !s.Time.Before(start) && !s.Time.After(end) {
			inWindow = append(inWindow, s)
		}
	}
	n := len(inWindow)
	if continuous {
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: s3://%s has no %s recovery point in vault %s between %s and %s", ErrNothingToPick, run.Bucket, typesText(sel), v.Bucket,
			start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	useContinuous := false
	switch sel.Algorithm {
	case RandomWithinWindow:
		useContinuous = continuous && int64n(rng, int64(n)) == int64(n-1)
	default:
		newest := time.Time{}
		for _, s := range inWindow {
			newest = later(newest, s.Time)
		}
		useContinuous = continuous && !cEnd.Before(newest)
	}
	if useContinuous {
		at, err := PickContinuous(cStart, cEnd, sel.Algorithm, rng)
		if err != nil {
			return err
		}
		run.Type, run.At = Continuous, at
		return nil
	}
	c, err := PickSnapshot(inWindow, start, end, sel.Algorithm, rng)
	if err != nil {
		return err
	}
	run.Type, run.RecoveryPointID, run.At = Snapshot, c.ID, c.Time
	return nil
}

func typesText(sel *RecoveryPointSelection) string {
	var s []string
	for _, t := range sel.RecoveryPointTypes {
		s = append(s, string(t))
	}
	return strings.Join(s, " or ")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// blockPublicAccess blocks every form of public access to a restored
// bucket. A server without the setting (MinIO) is left as it is: its
// buckets are private unless a policy says otherwise.
func blockPublicAccess(ctx context.Context, c s3x.Client, bucket string) {
	pc, ok := c.(interface {
		PutPublicAccessBlock(context.Context, *s3.PutPublicAccessBlockInput, ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	})
	if !ok {
		return
	}
	_, _ = pc.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(bucket), PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{
		BlockPublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true),
	}})
}

// deleteTarget deletes a run's restored bucket and records when.
func (t *Tester) deleteTarget(ctx context.Context, v *vault.Vault, run *Run) {
	if !strings.HasPrefix(run.TargetBucket, TargetPrefix) {
		return
	}
	if _, err := s3x.DeleteBucket(ctx, t.S3, run.TargetBucket); err != nil {
		run.StatusMessage = strings.TrimPrefix(run.StatusMessage+"; ", "; ") + "the restored bucket was not deleted (the sweeper will): " + err.Error()
		return
	}
	d := time.Now().UTC()
	run.DeletedAt = &d
	if run.ID != "" && !run.CompletedAt.IsZero() {
		_ = v.PutJSON(ctx, vault.RestoreTestKey(run.Bucket, run.ID), run)
	}
}

// History returns a bucket's restore test runs ("": every bucket's),
// oldest first.
func History(ctx context.Context, v *vault.Vault, bucket string) ([]Run, error) {
	var runs []Run
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(vault.RestoreTestsPrefix(bucket))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the restore tests of vault %s: %w", v.Bucket, err)
		}
		for _, o := range page.Contents {
			var r Run
			if err := v.GetJSON(ctx, aws.ToString(o.Key), &r); err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	return runs, nil
}

// OrphanAfter is how old a restore-test-* bucket no run of the vault
// names must be before the sweeper deletes it (a run that crashed before
// it recorded itself; a younger one may be a run still going).
var OrphanAfter = 24 * time.Hour

// Swept is what a sweep did.
type Swept struct {
	// Deleted are the buckets deleted: their windows ended, or no run
	// names them and they are older than OrphanAfter.
	Deleted []string `json:"deleted"`
	// Kept are restore-test-* buckets still in their validation window
	// (or too young to call orphans).
	Kept []string `json:"kept"`
}

// Sweep deletes the restore-test-* buckets (those of the tester's
// Prefix) whose time is up: a run's
// restored bucket past its DeleteAfter (the run records when it went),
// and any restore-test-* bucket older than OrphanAfter that no run of the
// vault names (a crashed run's). It deletes nothing else.
func (t *Tester) Sweep(ctx context.Context, v *vault.Vault, now time.Time) (*Swept, error) {
	runs, err := History(ctx, v, "")
	if err != nil {
		return nil, err
	}
	byTarget := map[string]*Run{}
	for i := range runs {
		byTarget[runs[i].TargetBucket] = &runs[i]
	}
	out := &Swept{}
	p := s3.NewListBucketsPaginator(t.S3, &s3.ListBucketsInput{Prefix: aws.String(t.prefix())})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list buckets: %w", err)
		}
		for _, b := range page.Buckets {
			name := aws.ToString(b.Name)
			if !strings.HasPrefix(name, t.prefix()) {
				continue
			}
			run, named := byTarget[name]
			due := named && !now.Before(run.DeleteAfter) ||
				!named && b.CreationDate != nil && now.Sub(*b.CreationDate) >= OrphanAfter
			if !due {
				out.Kept = append(out.Kept, name)
				continue
			}
			if _, err := s3x.DeleteBucket(ctx, t.S3, name); err != nil {
				return out, err
			}
			out.Deleted = append(out.Deleted, name)
			if named {
				d := now.UTC()
				run.DeletedAt = &d
				if err := v.PutJSON(ctx, vault.RestoreTestKey(run.Bucket, run.ID), run); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}
