package restoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The restore test state machine (infra/restoretest.go) runs a restore
// testing plan's schedule as steps of the restore test function, each one
// invocation with a StepRequest, in the order LocalExecution runs them:
//
//	EventBridge Scheduler, one schedule per plan: {"scheduled": {...}}
//	  └▶ Resolve: the buckets each selection takes (protected in the
//	     vault, ARNs or tag conditions), one Test each
//	     └▶ Tests (a Map, each Test on its own; one failing fails no other):
//	        Start: pick, name the bucket, record the run RUNNING
//	        ─▶ Restore: the restore state machine, as a nested execution
//	           (its failure caught: Validate records it)
//	        ─▶ Validate: the restore's record read back, the bucket
//	           validated against the vault; settled, or VALIDATING
//	        ─▶ HookWanted? ─yes─▶ Hook: the validation function invoked
//	           ─▶ Awaiting? ─yes─▶ Wait AwaitEvery ─▶ Await ─┐ (until a
//	                 ▲──────────────────────────────────────┘  verdict or
//	                                                   the window's end)
//	        ─▶ WaitWindow (until the run's DeleteAfter) ─▶ Cleanup: the
//	           restored bucket deleted, the run records when
//	        any step failing after its retries ─▶ Fail: the run FAILED
//	        with why, its bucket deleted
//
// Every step is idempotent: the run's record in the vault holds what it
// learnt, and a step run again does the same again.

// Steps of the restore test state machine.
const (
	StepResolve  = "resolve"
	StepStart    = "start"
	StepValidate = "validate"
	StepHook     = "hook"
	StepAwait    = "await"
	StepCleanup  = "cleanup"
	StepFail     = "fail"
)

// Scheduled is a schedule's input: one restore testing plan with its
// selections, as the CDK app reads them from the plan's files.
type Scheduled struct {
	Vault    string `json:"vault,omitempty"`
	PlanName string `json:"planName"`
	// RecoveryPointSelection is the plan's.
	RecoveryPointSelection *RecoveryPointSelection `json:"recoveryPointSelection"`
	Selections             []Selection             `json:"selections"`
	// RTOSeconds is the plan's recovery time objective (0: none), and
	// ValidationFunction its validation function ("": none).
	RTOSeconds         int64  `json:"rtoSeconds,omitempty"`
	ValidationFunction string `json:"validationFunction,omitempty"`
}

// Test is one bucket's restore test as it goes from step to step. It
// stays small: the run's record in the vault holds the rest.
type Test struct {
	Request RunRequest `json:"request"`
	// RunID names the run once Start recorded it.
	RunID string `json:"runId,omitempty"`
	// Restore is the restore state machine's input: {"request": ...}.
	Restore *struct {
		Request restore.Request `json:"request"`
	} `json:"restore,omitempty"`
	// Status is the run's after the step; Hook says a validation function
	// is to be invoked, Awaiting that its verdict is awaited.
	Status   string `json:"status,omitempty"`
	Hook     bool   `json:"hook"`
	Awaiting bool   `json:"awaiting"`
	// DeleteAfter is when the restored bucket goes (WaitWindow's time).
	DeleteAfter time.Time `json:"deleteAfter,omitzero"`
	// Unresolved says why Resolve could not tell whether the selection
	// takes the bucket: Start fails, and the run is recorded FAILED.
	Unresolved string `json:"unresolved,omitempty"`
}

// StepRequest is the restore test function's input from the state machine.
type StepRequest struct {
	Step      string     `json:"step"`
	Scheduled *Scheduled `json:"scheduled,omitempty"`
	Test      *Test      `json:"test,omitempty"`
	// StartTime and TimeoutSeconds (Start): the execution's start and the
	// state machine's timeout, which make the run's deadline.
	StartTime      string `json:"startTime,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
	// Error is what a Catch caught: the restore's failure (Validate), or
	// the step's that failed (Fail).
	Error *struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error,omitempty"`
}

// Resolved is Resolve's output: the tests the Map runs.
type Resolved struct {
	Tests []Test `json:"tests"`
}

// IsStep says whether the function's input is a step of the state
// machine (it names one).
func IsStep(raw json.RawMessage) bool {
	var probe struct {
		Step string `json:"step"`
	}
	return json.Unmarshal(raw, &probe) == nil && probe.Step != ""
}

// ErrorNames are the error type names the state machine retries and
// catches as fatal: the restore state machine's, since the steps fail
// with the same types (RetryableError is restore's; InvalidRequestError
// has the same name).
var ErrorNames = restore.ErrorNames

// RetryableError is a step that did not finish for a reason a retry may
// cure (throttling, a 5xx, a lost race): restore's.
type RetryableError = restore.RetryableError

// InvalidRequestError is a step that can never succeed as asked.
type InvalidRequestError struct{ Reason string }

func (e *InvalidRequestError) Error() string { return e.Reason }

func classify(err error) error {
	var rt *RetryableError
	var inv *InvalidRequestError
	var nav *vault.NotAVaultError
	var unk *vault.UnknownFormatError
	var run *InvalidRunError
	var tr *RunTransitionError
	switch {
	case err == nil, errors.As(err, &rt), errors.As(err, &inv):
		return err
	case errors.Is(err, ErrNothingToPick), errors.As(err, &nav), errors.As(err, &unk), errors.As(err, &run), errors.As(err, &tr):
		return &InvalidRequestError{Reason: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), vault.IsConflict(err), s3x.IsRetryable(err):
		return &RetryableError{Err: err}
	}
	return err
}

// Handle runs one step (raw JSON, a StepRequest) and returns its output:
// Resolved for resolve, the Test for every other step. Errors are the
// typed errors the state machine's Retry and Catch name.
func (t *Tester) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var req StepRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("decode step: %v", err)}
	}
	var out any
	var err error
	switch {
	case req.Step == StepResolve && req.Scheduled == nil:
		err = &InvalidRequestError{Reason: "resolve: scheduled is required"}
	case req.Step == StepResolve:
		out, err = t.Resolve(ctx, *req.Scheduled)
	case req.Test == nil:
		err = &InvalidRequestError{Reason: req.Step + ": test is required"}
	case req.Step == StepStart:
		out, err = t.StartStep(ctx, *req.Test, req.StartTime, req.TimeoutSeconds)
	case req.Step == StepValidate:
		var caught string
		if req.Error != nil {
			caught = causeMessage(req.Error.Error, req.Error.Cause)
		}
		out, err = t.ValidateStep(ctx, *req.Test, caught)
	case req.Step == StepHook:
		out, err = t.HookStep(ctx, *req.Test)
	case req.Step == StepAwait:
		out, err = t.AwaitStep(ctx, *req.Test, time.Now())
	case req.Step == StepCleanup:
		out, err = t.CleanupStep(ctx, *req.Test)
	case req.Step == StepFail:
		caught := "the state machine caught an error"
		if req.Error != nil {
			caught = causeMessage(req.Error.Error, req.Error.Cause)
		}
		out, err = t.FailStep(ctx, *req.Test, caught)
	default:
		err = &InvalidRequestError{Reason: fmt.Sprintf("unknown step %q (want %s)", req.Step,
			strings.Join([]string{StepResolve, StepStart, StepValidate, StepHook, StepAwait, StepCleanup, StepFail}, ", "))}
	}
	return out, classify(err)
}

// causeMessage is what a Catch caught, for people: a Lambda error's
// message, else the cause as it is.
func causeMessage(name, cause string) string {
	var c struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(cause), &c) == nil && c.ErrorMessage != "" {
		cause = c.ErrorMessage
	}
	if cause == "" {
		return name
	}
	return name + ": " + cause
}

// Resolve turns a schedule's plan into tests: for each selection, every
// bucket protected in the vault that the selection takes (its ARNs, or
// its conditions on the bucket's tags), tested as the plan's
// RecoveryPointSelection says, kept for the selection's validation
// window. A plan that excludes the vault tests nothing. A bucket whose
// tags cannot be read (access denied) fails its test for the selections
// whose conditions need them (Unresolved), not the whole plan.
func (t *Tester) Resolve(ctx context.Context, s Scheduled) (*Resolved, error) {
	if s.RecoveryPointSelection == nil {
		return nil, &InvalidRequestError{Reason: "resolve: the plan has no RecoveryPointSelection"}
	}
	v, err := vault.Open(ctx, t.S3, s.Vault)
	if err != nil {
		return nil, err
	}
	out := &Resolved{Tests: []Test{}}
	if !s.RecoveryPointSelection.TakesVault(v.Bucket) {
		return out, nil
	}
	protected, err := v.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	var buckets []Bucket
	unreadable := map[string]error{}
	for _, pb := range protected {
		tags, err := bucketTags(ctx, t.S3, pb.Bucket)
		if s3x.IsAccessDenied(err) {
			unreadable[pb.Bucket] = err
		} else if err != nil {
			return nil, err
		}
		buckets = append(buckets, Bucket{Name: pb.Bucket, Tags: tags})
	}
	for _, sel := range s.Selections {
		sel := sel.WithDefaults()
		var decided []Bucket
		for _, b := range buckets {
			if err, ok := unreadable[b.Name]; ok && sel.ProtectedResourceConditions != nil &&
				len(sel.ProtectedResourceConditions.StringEquals)+len(sel.ProtectedResourceConditions.StringNotEquals) > 0 {
				// Not guessed: a test that fails at its start says so in
				// the bucket's history, and the other buckets are tested.
				out.Tests = append(out.Tests, Test{Request: RunRequest{Vault: v.Bucket, Bucket: b.Name, Selection: s.RecoveryPointSelection,
					PlanName: s.PlanName, SelectionName: sel.RestoreTestingSelectionName},
					Unresolved: fmt.Sprintf("selection %s's tag conditions need the tags of s3://%s, which could not be read: %v", sel.RestoreTestingSelectionName, b.Name, err)})
				continue
			}
			decided = append(decided, b)
		}
		for _, b := range sel.Resolve(decided) {
			out.Tests = append(out.Tests, Test{Request: RunRequest{
				Vault: v.Bucket, Bucket: b, Selection: s.RecoveryPointSelection, PlanName: s.PlanName, SelectionName: sel.RestoreTestingSelectionName,
				Keep: sel.ValidationWindow(), RTO: time.Duration(s.RTOSeconds) * time.Second, ValidationFunction: s.ValidationFunction,
				MetadataOverrides: sel.RestoreMetadataOverrides,
			}})
		}
	}
	return out, nil
}

// bucketTags reads a bucket's tags; a bucket without tags, or gone, has
// none (a deleted source bucket is still tested from its vault).
func bucketTags(ctx context.Context, c s3x.Client, bucket string) (map[string]string, error) {
	out, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(bucket)})
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read the tags of s3://%s: %w", bucket, err)
	}
	tags := map[string]string{}
	for _, tg := range out.TagSet {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return tags, nil
}

// StartStep picks what the test restores and records the run RUNNING; its
// deadline is the execution's start plus the state machine's timeout.
// The Test it returns carries the restore state machine's input.
func (t *Tester) StartStep(ctx context.Context, test Test, startTime string, timeoutSeconds int) (*Test, error) {
	if test.Unresolved != "" {
		return nil, &InvalidRequestError{Reason: test.Unresolved}
	}
	if test.RunID != "" { // started before: a retry after the record was written
		run, _, err := t.load(ctx, test)
		if err != nil {
			return nil, err
		}
		return testOf(test, run), nil
	}
	deadline := time.Now().Add(OrphanAfter)
	if st, err := time.Parse(time.RFC3339, startTime); err == nil && timeoutSeconds > 0 {
		deadline = st.Add(time.Duration(timeoutSeconds) * time.Second)
	}
	_, run, err := t.begin(ctx, test.Request, deadline)
	if err != nil {
		return nil, err
	}
	return testOf(test, run), nil
}

// testOf is the Test after a step left run so.
func testOf(test Test, run *Run) *Test {
	test.RunID, test.Status = run.ID, run.Status
	rreq := run.restoreRequest()
	test.Restore = &struct {
		Request restore.Request `json:"request"`
	}{rreq}
	test.Hook = run.Status == StatusValidating && run.UserValidation != nil && run.UserValidation.InvokedAt.IsZero()
	test.Awaiting = run.Status == StatusValidating && run.UserValidation != nil && !run.UserValidation.InvokedAt.IsZero()
	test.DeleteAfter = run.DeleteAfter
	return &test
}

// load reads a test's run record.
func (t *Tester) load(ctx context.Context, test Test) (*Run, *vault.Vault, error) {
	v, err := vault.Open(ctx, t.S3, test.Request.Vault)
	if err != nil {
		return nil, nil, err
	}
	run, err := loadRun(ctx, v, test.Request.Bucket, test.RunID)
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, nil, &InvalidRequestError{Reason: fmt.Sprintf("vault %s has no restore test %s of s3://%s", v.Bucket, test.RunID, test.Request.Bucket)}
		}
		return nil, nil, err
	}
	return run, v, nil
}

// ValidateStep reads the restore's record (the restore state machine
// keeps its job there), validates the restored bucket and records the
// run. caught is the restore execution's failure, if it failed.
func (t *Tester) ValidateStep(ctx context.Context, test Test, caught string) (*Test, error) {
	run, v, err := t.load(ctx, test)
	if err != nil {
		return nil, err
	}
	if run.Status != StatusRunning { // validated before: a retry
		return testOf(test, run), nil
	}
	var rep restore.Report
	var rerr error
	switch err := v.GetJSON(ctx, vault.JobKey(run.RestoreJobID), &rep); {
	case s3x.IsNotFound(err):
		why := "the restore left no job record"
		if caught != "" {
			why += ": " + caught
		}
		rerr = errors.New(why)
	case err != nil:
		return nil, err
	case rep.State == restore.StateRunning || rep.State == "":
		// The execution ended (failed, timed out, aborted) with the job
		// unfinished.
		rep.State, rep.StatusMessage = restore.StateFailed, "the restore execution ended before its job did"
		if caught != "" {
			rep.StatusMessage += ": " + caught
		}
	}
	var repp *restore.Report
	if rerr == nil {
		repp = &rep
	}
	if err := t.conclude(ctx, v, run, test.Request, repp, rerr); err != nil {
		return nil, err
	}
	return testOf(test, run), nil
}

// HookStep invokes the run's validation function.
func (t *Tester) HookStep(ctx context.Context, test Test) (*Test, error) {
	run, v, err := t.load(ctx, test)
	if err != nil {
		return nil, err
	}
	if run.Status == StatusValidating && run.UserValidation != nil && run.UserValidation.InvokedAt.IsZero() {
		if err := t.userValidate(ctx, v, run); err != nil {
			return nil, err
		}
	}
	return testOf(test, run), nil
}

// AwaitStep looks for the verdict reported for the run (until its window
// ends: then TIMED_OUT).
func (t *Tester) AwaitStep(ctx context.Context, test Test, now time.Time) (*Test, error) {
	run, v, err := t.load(ctx, test)
	if err != nil {
		return nil, err
	}
	if run.Status == StatusValidating && run.UserValidation != nil {
		if err := t.await(ctx, v, run, now); err != nil {
			return nil, err
		}
	}
	return testOf(test, run), nil
}

// CleanupStep deletes the run's restored bucket once its window ended.
func (t *Tester) CleanupStep(ctx context.Context, test Test) (*Test, error) {
	run, v, err := t.load(ctx, test)
	if err != nil {
		return nil, err
	}
	if run.DeletedAt == nil {
		if _, err := s3x.DeleteBucket(ctx, t.S3, run.TargetBucket); err != nil {
			return nil, fmt.Errorf("delete the restored bucket %s: %w", run.TargetBucket, err)
		}
		if err := markDeleted(ctx, v, run, time.Now()); err != nil {
			return nil, err
		}
	}
	return testOf(test, run), nil
}

// FailStep ends a test whose step failed after its retries: its run
// FAILED with why (a run recorded even when Start failed, so a plan that
// could not test a bucket shows in its history), its bucket deleted.
func (t *Tester) FailStep(ctx context.Context, test Test, caught string) (*Test, error) {
	if test.RunID == "" {
		v, err := vault.Open(ctx, t.S3, test.Request.Vault)
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		id, _, err := newNames(now, t.prefix())
		if err != nil {
			return nil, err
		}
		run := &Run{ID: id, PlanName: test.Request.PlanName, SelectionName: test.Request.SelectionName, Vault: v.Bucket, Bucket: test.Request.Bucket,
			StartedAt: now, Deadline: now, DeleteAfter: now}
		if sel := test.Request.Selection; sel != nil {
			run.Algorithm = sel.Algorithm
			run.WindowStart, run.WindowEnd = sel.Window(now)
		}
		run.problem("the restore test could not start: %s", caught)
		if err := t.settle(ctx, v, run); err != nil {
			return nil, err
		}
		test.RunID, test.Status = run.ID, run.Status
		return &test, nil
	}
	run, v, err := t.load(ctx, test)
	if err != nil {
		return nil, err
	}
	if run.Status == StatusRunning || run.Status == StatusValidating {
		t.fail(ctx, v, run, "the restore test stopped: "+caught)
	} else if run.DeletedAt == nil {
		t.deleteTarget(ctx, v, run)
	}
	return testOf(test, run), nil
}
