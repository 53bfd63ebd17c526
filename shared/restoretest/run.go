package restoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/notify"
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
	// A run restoring and validating is RUNNING, and VALIDATING while a
	// validation function's verdict is awaited.
	StatusRunning    = "RUNNING"
	StatusValidating = "VALIDATING"
)

// RunRequest is one restore test of one protected bucket.
type RunRequest struct {
	Vault  string `json:"vault"`
	Bucket string `json:"bucket"`
	// Selection picks the recovery point (a plan's); nil: the newest of
	// either type within the last DefaultSelectionWindowDays days.
	Selection *RecoveryPointSelection `json:"selection,omitempty"`
	PlanName  string                  `json:"planName,omitempty"`
	// SelectionName is the restore testing selection that took the bucket.
	SelectionName string `json:"selectionName,omitempty"`
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
	// ValidationFunction is a Lambda function (name or ARN) that validates
	// the restored bucket after bucketvault's own validation and gives its
	// verdict within the validation window (hook.go); "": none.
	ValidationFunction string `json:"validationFunction,omitempty"`
	// MetadataOverrides are the selection's RestoreMetadataOverrides.
	MetadataOverrides map[string]string `json:"metadataOverrides,omitempty"`
	// Now is the clock (zero: time.Now).
	Now time.Time `json:"-"`
}

// Run is the record of one restore test, kept in the vault.
type Run struct {
	ID            string `json:"id"`
	PlanName      string `json:"planName,omitempty"`
	SelectionName string `json:"selectionName,omitempty"`
	Vault         string `json:"vault"`
	Bucket        string `json:"bucket"`
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
	// Deadline is the latest a RUNNING run can still be going (its
	// workflow's timeout): past it, the sweeper takes the run for dead,
	// deletes its bucket and records it FAILED.
	Deadline time.Time `json:"deadline"`
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
	Status        string   `json:"status"`
	StatusMessage string   `json:"statusMessage,omitempty"`
	Problems      []string `json:"problems,omitempty"`
	// Notes say what the run did otherwise than asked (an override it
	// does not apply), without failing it.
	Notes    []string                    `json:"notes,omitempty"`
	Failures []restore.ValidationFailure `json:"failures,omitempty"`
	// UserValidation is the validation function's part, when the run has
	// one.
	UserValidation *UserValidation `json:"userValidation,omitempty"`
	CompletedAt    time.Time       `json:"completedAt,omitzero"`
	// DeleteAfter is when the restored bucket goes, DeletedAt when it
	// went.
	DeleteAfter time.Time  `json:"deleteAfter,omitzero"`
	DeletedAt   *time.Time `json:"deletedAt,omitempty"`

	// etag is the ETag of the version of the run's record this copy was
	// read from or last wrote ("": none yet), and stored that version's
	// status: the next write goes over that version only (record.go).
	etag, stored string
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
	// Hook invokes validation functions (nil: LambdaHook with Lambda).
	Hook   Hook
	Lambda LambdaInvoker
	// Events get the runs' RESTORE_TESTING_JOB_* events (nil: none); Log
	// the failures to send them.
	Events notify.Publisher
	Log    *slog.Logger
	// PollEvery: how often an in-process run looks for an awaited verdict
	// (0: PollEvery).
	PollEvery time.Duration
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

// Run runs one restore test in this process and returns its record, also
// kept in the vault: the steps of the restore test state machine
// (workflow.go), with the restore run in-process. A test that ran and
// found problems is a Run with Status FAILED and no error. An error is a
// test that could not run: nothing to pick (ErrNothingToPick, nothing
// recorded), or the restore could not start (the run recorded FAILED).
// No restored bucket is left behind by an error. With Keep the restored
// bucket stays until its window ends, for the sweeper; a validation
// function's verdict is awaited until then.
func (t *Tester) Run(ctx context.Context, req RunRequest) (*Run, error) {
	deadline := time.Now().Add(OrphanAfter)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	v, run, err := t.begin(ctx, req, deadline)
	if err != nil {
		return nil, err
	}
	rep, rerr := t.restorer().Run(ctx, run.restoreRequest())
	if rep == nil || rep.State == "" {
		if rerr == nil {
			rerr = errors.New("the restore returned no report")
		}
		if !errors.As(rerr, new(*restore.InvalidRequestError)) {
			t.fail(context.WithoutCancel(ctx), v, run, "the restore could not run: "+rerr.Error())
			return run, rerr
		}
	}
	if err := t.conclude(ctx, v, run, req, rep, rerr); err != nil {
		t.fail(context.WithoutCancel(ctx), v, run, "the validation could not run: "+err.Error())
		return run, err
	}
	if run.UserValidation != nil {
		if err := t.userValidate(ctx, v, run); err != nil {
			return run, err
		}
		for run.Status == StatusValidating && run.UserValidation.Status == ValidationValidating {
			wait := min(t.pollEvery(), time.Until(run.UserValidation.Deadline))
			if wait > 0 {
				select {
				case <-ctx.Done():
					return run, ctx.Err()
				case <-time.After(wait):
				}
			}
			if err := t.await(ctx, v, run, time.Now()); err != nil {
				return run, err
			}
		}
	}
	if req.Keep <= 0 {
		t.deleteTarget(context.WithoutCancel(ctx), v, run)
	}
	return run, nil
}

// PollEvery is how often a run awaiting a validation function's verdict
// looks for it, in this process (the state machine: its AwaitEvery).
var PollEvery = 30 * time.Second

func (t *Tester) pollEvery() time.Duration {
	if t.PollEvery > 0 {
		return t.PollEvery
	}
	return PollEvery
}

// begin opens the vault, picks what the test restores, names the restored
// bucket and records the run RUNNING (the sweeper leaves its bucket until
// deadline, the latest the run can still be going), and says so
// (RESTORE_TESTING_JOB_STARTED).
func (t *Tester) begin(ctx context.Context, req RunRequest, deadline time.Time) (*vault.Vault, *Run, error) {
	v, err := vault.Open(ctx, t.S3, req.Vault)
	if err != nil {
		return nil, nil, err
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
	run := &Run{PlanName: req.PlanName, SelectionName: req.SelectionName, Vault: v.Bucket, Bucket: req.Bucket, Algorithm: sel.Algorithm, Seed: req.Seed,
		StartedAt: now, Deadline: deadline.UTC(), Status: StatusRunning}
	if run.Seed == 0 {
		run.Seed = mrand.Uint64()
	}
	rng := mrand.New(mrand.NewPCG(run.Seed, run.Seed^0x5851f42d4c957f2d))
	run.WindowStart, run.WindowEnd = sel.Window(now)
	if err := t.pick(ctx, v, sel, run, rng); err != nil {
		return nil, nil, err
	}
	if run.ID, run.TargetBucket, err = newNames(now, t.prefix()); err != nil {
		return nil, nil, err
	}
	run.RestoreJobID = "restore-test-" + run.ID
	for _, k := range sortedKeys(req.MetadataOverrides) {
		run.Notes = append(run.Notes, fmt.Sprintf("RestoreMetadataOverrides %s=%s is not applied: a restore test writes each object with its recorded encryption and ACL, as a restore does", k, req.MetadataOverrides[k]))
	}
	if err := save(ctx, v, run); err != nil {
		return nil, nil, err
	}
	notify.Send(ctx, t.Events, startedEvent(run), t.Log)
	return v, run, nil
}

// newNames names a run started at now, and its restored bucket.
func newNames(now time.Time, prefix string) (id, target string, err error) {
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return "", "", err
	}
	return now.Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix[:4]), prefix + hex.EncodeToString(suffix), nil
}

// restoreRequest is the restore a run makes: the pick into a new bucket,
// as a job of its own.
func (r *Run) restoreRequest() restore.Request {
	rreq := restore.Request{Vault: r.Vault, Bucket: r.Bucket, TargetBucket: r.TargetBucket, CreateBucket: true, JobID: r.RestoreJobID}
	if r.Type == Snapshot {
		rreq.RecoveryPointID = r.RecoveryPointID
	} else {
		rreq.At = r.At
	}
	return rreq
}

// problem adds one reason the run FAILED.
func (r *Run) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

// conclude takes the restore's end (its report; rerr when the restore
// refused or failed), validates the restored bucket against the vault
// independently of the restore, and records the run: VALIDATING when a
// validation function is to give its verdict, else settled. Run again,
// it does the same (every field is set anew). An error is a validation
// that could not run.
func (t *Tester) conclude(ctx context.Context, v *vault.Vault, run *Run, req RunRequest, rep *restore.Report, rerr error) error {
	run.Problems, run.Failures, run.Validation, run.UserValidation = nil, nil, nil, nil
	if rep != nil && rep.State != "" {
		run.RestoreState, run.RestoreSeconds = rep.State, rep.DurationSeconds
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
			run.problem("the restore ended %s: %s", rep.State, rep.StatusMessage)
		}
		if rep.VaultDamaged > 0 {
			run.problem("%d objects were restored from older versions of damaged vault data objects (see `bucketvault vault repair --vault %s`)", rep.VaultDamaged, v.Bucket)
		}
	} else {
		why := "no report"
		if rerr != nil {
			why = rerr.Error()
		}
		run.RestoreState = restore.StateFailed
		run.problem("the restore was refused: %s", why)
	}
	if run.RestoreState != restore.StateFailed {
		blockPublicAccess(ctx, t.S3, run.TargetBucket)
		val, err := t.restorer().Validate(ctx, restore.ValidateRequest{Restore: run.restoreRequest(), Target: run.TargetBucket,
			Fraction: orDefault(req.Fraction, 0.001), Confidence: orDefault(req.Confidence, 0.99), Seed: run.Seed})
		if err != nil {
			return err
		}
		run.Validation = val
		if val.Verdict != restore.ValidationSuccessful {
			run.problem("validation found %d keys not as the vault recorded them", val.Failed)
			run.Failures = append(run.Failures, val.Failures...)
		}
	}
	sort.SliceStable(run.Failures, func(i, j int) bool { return run.Failures[i].Key < run.Failures[j].Key })
	now := time.Now().UTC()
	run.DeleteAfter = now.Add(req.Keep)
	if req.ValidationFunction != "" && run.RestoreState != restore.StateFailed {
		run.UserValidation = &UserValidation{Function: req.ValidationFunction, Status: ValidationValidating, Deadline: run.DeleteAfter}
		run.Status = StatusValidating
		return save(ctx, v, run)
	}
	return t.settle(ctx, v, run)
}

// userValidate invokes the run's validation function and records its
// answer: a verdict settles the run, VALIDATING leaves it awaiting one.
// When another writer changed the run meanwhile, the answer goes on what
// the record holds now, unless that one was invoked already or ended.
func (t *Tester) userValidate(ctx context.Context, v *vault.Vault, run *Run) error {
	invokedAt := time.Now().UTC()
	hook := t.Hook
	if hook == nil {
		hook = LambdaHook{Lambda: t.Lambda}
	}
	verdict, err := hook.Invoke(ctx, run.UserValidation.Function, hookEvent(run))
	if err == nil {
		verdict, err = normalizeVerdict(verdict)
	}
	if err != nil {
		verdict = Verdict{ValidationStatus: ValidationFailed, ValidationStatusMessage: err.Error()}
	}
	settled := false
	_, err = update(ctx, v, run, func() (bool, error) {
		uv := run.UserValidation
		if run.Status != StatusValidating || uv == nil || !uv.InvokedAt.IsZero() {
			return false, nil
		}
		uv.InvokedAt = invokedAt
		if verdict.ValidationStatus == ValidationValidating {
			uv.Message = verdict.ValidationStatusMessage
			return true, nil
		}
		// The function's answer is the verdict, over one it reported
		// through PutValidationResult while it ran.
		uv.ReportedAt = nil
		t.verdict(run, verdict)
		run.end(time.Now())
		settled = true
		return true, nil
	})
	if err == nil && settled {
		notify.Send(ctx, t.Events, endedEvent(run), t.Log)
	}
	return err
}

// await looks for the verdict PutValidationResult recorded; none by the
// validation window's end is TIMED_OUT. Either settles the run. A run
// another writer changed meanwhile is read again and looked at again (a
// verdict reported in between is taken; a run ended in between is left
// as it ended).
func (t *Tester) await(ctx context.Context, v *vault.Vault, run *Run, now time.Time) error {
	settled := false
	_, err := update(ctx, v, run, func() (bool, error) {
		if run.Status != StatusValidating || run.UserValidation == nil {
			return false, nil
		}
		verdict, ok, err := reportedVerdict(ctx, v, run)
		if err != nil {
			return false, err
		}
		if !ok {
			if now.Before(run.UserValidation.Deadline) {
				return false, nil
			}
			verdict = Verdict{ValidationStatus: ValidationTimedOut,
				ValidationStatusMessage: fmt.Sprintf("the validation function %s gave no verdict by the end of the validation window (%s)", run.UserValidation.Function, run.UserValidation.Deadline.Format(time.RFC3339))}
		}
		t.verdict(run, verdict)
		run.end(time.Now())
		settled = true
		return true, nil
	})
	if err == nil && settled {
		notify.Send(ctx, t.Events, endedEvent(run), t.Log)
	}
	return err
}

// verdict records a validation function's verdict: anything but
// SUCCESSFUL fails the run (a verdict that never came proves nothing).
// A verdict reported through PutValidationResult keeps the time it came.
func (t *Tester) verdict(run *Run, verdict Verdict) {
	uv := run.UserValidation
	uv.Status, uv.Message = verdict.ValidationStatus, verdict.ValidationStatusMessage
	if uv.ReportedAt == nil {
		at := time.Now().UTC()
		uv.ReportedAt = &at
	}
	if uv.Status != ValidationSuccessful {
		msg := ""
		if uv.Message != "" {
			msg = ": " + uv.Message
		}
		run.problem("the validation function %s said %s%s", uv.Function, uv.Status, msg)
	}
}

// settle ends the run: SUCCESSFUL without problems, FAILED with them (the
// message joins them), recorded over the version of the record the run
// was read from (a record changed meanwhile is a vault.ConflictError),
// and says so (RESTORE_TESTING_JOB_COMPLETED or _FAILED).
func (t *Tester) settle(ctx context.Context, v *vault.Vault, run *Run) error {
	run.end(time.Now())
	if err := save(ctx, v, run); err != nil {
		return err
	}
	notify.Send(ctx, t.Events, endedEvent(run), t.Log)
	return nil
}

// fail ends a run that could not go on: FAILED with why, its restored
// bucket deleted. A run another writer ended meanwhile (the sweeper, a
// step run twice) stays as that writer ended it, bucket included.
func (t *Tester) fail(ctx context.Context, v *vault.Vault, run *Run, why string) {
	wrote, err := update(ctx, v, run, func() (bool, error) {
		if ended(run.stored) {
			return false, nil
		}
		run.problem("%s", why)
		if run.DeleteAfter.IsZero() {
			run.DeleteAfter = time.Now().UTC()
		}
		run.end(time.Now())
		return true, nil
	})
	if err != nil {
		if t.Log != nil {
			t.Log.Error("record a failed restore test", "run", run.ID, "error", err)
		}
		return
	}
	if !wrote {
		return
	}
	notify.Send(ctx, t.Events, endedEvent(run), t.Log)
	t.deleteTarget(ctx, v, run)
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
	now := time.Now().UTC()
	if run.ID == "" || run.CompletedAt.IsZero() {
		run.DeletedAt = &now
		return
	}
	if err := markDeleted(ctx, v, run, now); err != nil && t.Log != nil {
		t.Log.Error("record that a restore test's bucket was deleted", "run", run.ID, "error", err)
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
			r, err := readRun(ctx, v, aws.ToString(o.Key))
			if err != nil {
				return nil, err
			}
			runs = append(runs, *r)
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

// due says whether a run's restored bucket may go at now: its window
// ended, or, still RUNNING, past its deadline.
func (r *Run) due(now time.Time) bool {
	switch {
	case r.Status == StatusRunning:
		return !r.Deadline.IsZero() && !now.Before(r.Deadline)
	case r.Status == StatusValidating && r.UserValidation != nil:
		return !now.Before(r.UserValidation.Deadline) && !now.Before(r.Deadline)
	}
	return !now.Before(r.DeleteAfter)
}

// Sweep deletes the restore-test-* buckets (those of the tester's
// Prefix) whose time is up: a run's
// restored bucket past its DeleteAfter (the run records when it went),
// and any restore-test-* bucket older than OrphanAfter that no run of the
// vault names (a crashed run's). It deletes nothing else. A run still
// going past its deadline is ended first (sweepRun).
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
			var deleted bool
			if run, named := byTarget[name]; named {
				if deleted, err = t.sweepRun(ctx, v, run, now); err != nil {
					return out, err
				}
			} else if b.CreationDate != nil && now.Sub(*b.CreationDate) >= OrphanAfter {
				if _, err := s3x.DeleteBucket(ctx, t.S3, name); err != nil {
					return out, err
				}
				deleted = true
			}
			if deleted {
				out.Deleted = append(out.Deleted, name)
			} else {
				out.Kept = append(out.Kept, name)
			}
		}
	}
	return out, nil
}

// sweepRun deletes a run's restored bucket if its time is up at now and
// reports whether it did. A run still RUNNING past its deadline, or
// VALIDATING past its deadline and its validation window, is ended first,
// before its bucket goes: with the verdict a validation reported through
// PutValidationResult when there is one, else FAILED (it stopped before
// its verdict). That write goes over the version of the record the sweep
// read: when the run's own steps or a reported verdict wrote meanwhile,
// the sweep reads the record again and decides on what it holds now, so
// it never writes its stale copy over a verdict, nor deletes a bucket
// that the run now keeps.
func (t *Tester) sweepRun(ctx context.Context, v *vault.Vault, run *Run, now time.Time) (bool, error) {
	settled := false
	_, err := update(ctx, v, run, func() (bool, error) {
		settled = false
		if ended(run.Status) || !run.due(now) {
			return false, nil
		}
		verdict, ok := Verdict{}, false
		if run.Status == StatusValidating && run.UserValidation != nil {
			var err error
			if verdict, ok, err = reportedVerdict(ctx, v, run); err != nil {
				return false, err
			}
		}
		if ok {
			t.verdict(run, verdict)
		} else {
			run.problem("the run stopped before its verdict (its process was killed, or its workflow ended without one); the sweeper deleted its bucket")
		}
		run.end(now)
		if run.DeleteAfter.IsZero() || run.DeleteAfter.After(now) {
			run.DeleteAfter = now.UTC()
		}
		settled = true
		return true, nil
	})
	if err != nil {
		return false, err
	}
	if settled {
		notify.Send(ctx, t.Events, endedEvent(run), t.Log)
	}
	if !run.due(now) {
		return false, nil
	}
	if _, err := s3x.DeleteBucket(ctx, t.S3, run.TargetBucket); err != nil {
		return false, err
	}
	return true, markDeleted(ctx, v, run, now)
}

// MarshalJSON writes Keep and RTO as Go durations ("24h0m0s").
func (r RunRequest) MarshalJSON() ([]byte, error) {
	type plain RunRequest
	text := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(struct {
		plain
		Keep string `json:"keep,omitempty"`
		RTO  string `json:"rto,omitempty"`
	}{plain(r), text(r.Keep), text(r.RTO)})
}

// UnmarshalJSON reads Keep and RTO as Go durations ("4h", "90m") or
// nanoseconds, and refuses unknown fields.
func (r *RunRequest) UnmarshalJSON(b []byte) error {
	type plain RunRequest
	var in struct {
		plain
		Keep json.RawMessage `json:"keep,omitempty"`
		RTO  json.RawMessage `json:"rto,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("a restore test request: %w", err)
	}
	*r = RunRequest(in.plain)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Duration
	}{{"keep", in.Keep, &r.Keep}, {"rto", in.RTO, &r.RTO}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(f.raw, &s) == nil {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return fmt.Errorf("%s %q: want a duration such as \"4h\"", f.name, s)
			}
			*f.dst = d
			continue
		}
		var n int64
		if err := json.Unmarshal(f.raw, &n); err != nil || n < 0 {
			return fmt.Errorf("%s %s: want a duration such as \"4h\"", f.name, f.raw)
		}
		*f.dst = time.Duration(n)
	}
	return nil
}
