package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The end-to-end test of the synthesized restore test state machine (see
// sfn_test.go for how aws-local-stepfunctions runs it): its Lambda tasks
// answered by the restore test function's step handler,
// restoretest.Tester.Handle, on the local S3 server; its Restore state
// (the nested execution of the restore state machine) by the restore
// state machine's steps in this process, restore.LocalExecution (the
// restore state machine itself runs synthesized in
// TestRestoreStateMachineRuns); the validation function by a hook in
// this process; the Wait states shortened where a test says so.

// The made-up ARNs the definition's substitutions become.
const (
	testRestoreTestFunctionARN = "arn:aws:lambda:us-east-1:123456789012:function:bucketvault-restoretest"
	testRestoreMachineARN      = "arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-restore"
	testValidationFunction     = "arn:aws:lambda:us-east-1:123456789012:function:validate-restores"
)

// restoreTestDefinitionFor is the restore test state machine's definition
// as CloudFormation would deploy it: the template's DefinitionString with
// its substitutions (the restore test function, the restore state
// machine) applied.
func restoreTestDefinitionFor(t *testing.T, s *stackUnderTest) map[string]any {
	t.Helper()
	const id = "RestoreTestStateMachine"
	p := s.props(t, id)
	def, ok := p["DefinitionString"].(string)
	if !ok {
		t.Fatalf("%s DefinitionString is %s, want a string", id, render(p["DefinitionString"]))
	}
	got := map[string]string{}
	for k, v := range p["DefinitionSubstitutions"].(map[string]any) {
		got[k] = render(v)
	}
	want := map[string]string{substRestoreTestFunction: "GetAtt:RestoretestFunction.Arn", substRestoreMachine: "Ref:RestoreStateMachine"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s definition substitutions (-want +got):\n%s", id, diff)
	}
	def = strings.NewReplacer("${"+substRestoreTestFunction+"}", testRestoreTestFunctionARN, "${"+substRestoreMachine+"}", testRestoreMachineARN).Replace(def)
	if strings.Contains(def, "${") {
		t.Fatalf("%s: a substitution is left in the definition: %s", id, def)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// hookFunc is a validation function in this process.
type hookFunc func(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error)

func (f hookFunc) Invoke(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error) {
	return f(ctx, function, e)
}

// nestedFailed is the Restore state's failure as Step Functions reports a
// nested execution that failed: States.TaskFailed.
type nestedFailed struct{ cause string }

func (e *nestedFailed) Error() string     { return e.cause }
func (e *nestedFailed) ErrorName() string { return "States.TaskFailed" }

// restoreTestOutcome is what a restore test run's record says, less what
// differs from run to run.
type restoreTestOutcome struct {
	Bucket, Status, RestoreState, UserValidation string
	Objects                                      int64
	RTOMet, Deleted                              bool
}

func restoreTestOutcomeOf(r restoretest.Run) restoreTestOutcome {
	o := restoreTestOutcome{Bucket: r.Bucket, Status: r.Status, RestoreState: r.RestoreState, Objects: r.Objects, Deleted: r.DeletedAt != nil}
	if r.UserValidation != nil {
		o.UserValidation = r.UserValidation.Status
	}
	if r.RTOMet != nil {
		o.RTOMet = *r.RTOMet
	}
	return o
}

// addProtectedBucket protects one more bucket in f's vault (two objects),
// journaled up to a second before the reconcile.
func addProtectedBucket(t *testing.T, f *restoreFixture) string {
	t.Helper()
	b := f.srv.NewBucket(t, true)
	start := time.Now().UTC().Add(-time.Minute)
	if err := f.v.PutJSON(f.ctx, vault.BucketKey(b), vault.ProtectedBucket{Bucket: b, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	f.put(t, b, "x/1", "one")
	f.put(t, b, "x/2", "two")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := (&journal.Journal{Vault: f.v, S3: f.c}).Reconcile(f.ctx, b, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestoreTestStateMachineRuns runs the synthesized restore test state
// machine (the main stack's) on a plan's schedule input and holds each
// test's run to restoretest.LocalExecution's on the same schedule: the
// same statuses, the restored buckets deleted.
func TestRestoreTestStateMachineRuns(t *testing.T) {
	requireLocalStepFunctions(t)
	s := synth(t).main
	def := restoreTestDefinitionFor(t, s)
	f := newRestoreFixture(t)
	second := addProtectedBucket(t, f)
	r := &restore.Restorer{S3: f.c}

	// scheduled tests the newest second of buckets, validated by the
	// validation function, kept window hours.
	scheduled := func(window int64, buckets ...string) restoretest.Scheduled {
		var arns []string
		for _, b := range buckets {
			arns = append(arns, "arn:aws:s3:::"+b)
		}
		return restoretest.Scheduled{
			Vault: f.v.Bucket, PlanName: "sfn_daily", RTOSeconds: 3600, ValidationFunction: testValidationFunction,
			RecoveryPointSelection: &restoretest.RecoveryPointSelection{Algorithm: restoretest.LatestWithinWindow, IncludeVaults: []string{"*"},
				RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Continuous}},
			Selections: []restoretest.Selection{{RestoreTestingSelectionName: "sfn", ProtectedResourceType: "S3", ProtectedResourceArns: arns,
				IamRoleArn: "arn:aws:iam::123456789012:role/r", ValidationWindowHours: &window}},
		}
	}
	// nested runs a test's restore as the restore state machine would:
	// its steps in this process, as the execution child; failBatches
	// makes every batch fail, so the execution fails (after its fail step
	// recorded the job FAILED).
	nested := func(ctx context.Context, req restore.Request, child string, failBatches bool) (*restore.Job, error) {
		e := &restore.LocalExecution{Restorer: r, Execution: child}
		if failBatches {
			e.Invoke = func(ctx context.Context, raw json.RawMessage) (any, error) {
				if restore.IsStep(raw) {
					var st restore.StepRequest
					if json.Unmarshal(raw, &st) == nil && st.Step == restore.StepBatch {
						return nil, errors.New("the batch's copies were refused")
					}
				}
				return r.Handle(ctx, raw)
			}
		}
		return e.Run(ctx, req)
	}
	type harnessOpts struct {
		hook        hookFunc
		failBatches bool
		// inject fails a Lambda step of a bucket's test (state, bucket, the
		// state's call number).
		inject func(state, bucket string, n int) (string, bool)
		waitMs map[string]int
	}
	run := func(t *testing.T, name string, sch restoretest.Scheduled, o harnessOpts) (*sfnResult, *sfnHarness, *restoretest.Tester) {
		t.Helper()
		exec := "arn:aws:states:us-east-1:123456789012:execution:BucketVault-restoretest:" + name
		tester := &restoretest.Tester{S3: f.c, Restorer: r, Prefix: restoretest.TargetPrefix + "sfn-", Hook: o.hook}
		var mu sync.Mutex
		children := 0
		handle := func(ctx context.Context, raw json.RawMessage) (any, error) {
			var in struct {
				StateMachineArn string `json:"StateMachineArn"`
				Input           *struct {
					Request   restore.Request `json:"request"`
					StartedBy string          `json:"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"`
				} `json:"Input"`
			}
			if json.Unmarshal(raw, &in) != nil || in.StateMachineArn == "" {
				return tester.Handle(ctx, raw)
			}
			// The Restore state: a nested execution of the restore state
			// machine, with the Test's restore request, linked to this
			// execution.
			if in.StateMachineArn != testRestoreMachineARN || in.Input == nil || in.Input.StartedBy != exec || !strings.HasPrefix(in.Input.Request.TargetBucket, restoretest.TargetPrefix) {
				return nil, fmt.Errorf("unexpected nested execution %s", raw)
			}
			mu.Lock()
			children++
			child := fmt.Sprintf("arn:aws:states:us-east-1:123456789012:execution:BucketVault-restore:%s-%d", name, children)
			mu.Unlock()
			job, err := nested(ctx, in.Input.Request, child, o.failBatches)
			if err != nil {
				// The bucket the restore made is there for Cleanup.
				if _, herr := f.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(in.Input.Request.TargetBucket)}); herr != nil {
					t.Errorf("the failed restore left no bucket %s to clean up: %v", in.Input.Request.TargetBucket, herr)
				}
				cause, _ := json.Marshal(map[string]string{"ExecutionArn": child, "Status": "FAILED", "Error": "States.TaskFailed", "Cause": err.Error()})
				return nil, &nestedFailed{cause: string(cause)}
			}
			return map[string]any{"ExecutionArn": child, "Status": "SUCCEEDED", "Output": job}, nil
		}
		h := &sfnHarness{t: t, handle: handle, s3: f.c, waitMs: o.waitMs,
			context: map[string]any{"Execution": map[string]any{"Id": exec, "Name": name}}}
		if o.inject != nil {
			h.inject = func(state string, input json.RawMessage, n int) (string, bool) {
				var st restoretest.StepRequest
				if json.Unmarshal(input, &st) != nil || st.Test == nil {
					return "", false
				}
				return o.inject(state, st.Test.Request.Bucket, n)
			}
		}
		return h.run(def, map[string]any{"scheduled": sch}), h, tester
	}
	// local runs the same schedule through restoretest.LocalExecution,
	// its restores the same nested steps.
	local := func(t *testing.T, sch restoretest.Scheduled, o harnessOpts) []restoretest.Test {
		t.Helper()
		tester := &restoretest.Tester{S3: f.c, Restorer: r, Prefix: restoretest.TargetPrefix + "local-", Hook: o.hook}
		e := &restoretest.LocalExecution{Tester: tester, TimeoutSeconds: 97 * 3600, MaxConcurrency: 2, AwaitEvery: 10 * time.Millisecond,
			Restore: func(ctx context.Context, req restore.Request) error {
				_, err := nested(ctx, req, "local", o.failBatches)
				return err
			}}
		if o.waitMs != nil {
			e.Sleep = func(context.Context, time.Time) error { return nil }
		}
		if o.inject != nil {
			var mu sync.Mutex
			calls := map[string]int{}
			e.Invoke = func(ctx context.Context, raw json.RawMessage) (any, error) {
				var st restoretest.StepRequest
				_ = json.Unmarshal(raw, &st)
				if st.Test != nil {
					state := strings.ToUpper(st.Step[:1]) + st.Step[1:] // the step's state
					mu.Lock()
					n := calls[state+st.Test.Request.Bucket]
					calls[state+st.Test.Request.Bucket]++
					mu.Unlock()
					if typ, fail := o.inject(state, st.Test.Request.Bucket, n); fail && typ == restoretest.ErrorNames.Retryable[0] {
						return nil, &restoretest.RetryableError{Err: errors.New("injected by the test")}
					}
				}
				return tester.Handle(ctx, raw)
			}
		}
		tests, err := e.Run(f.ctx, sch)
		if err != nil {
			t.Fatal(err)
		}
		return tests
	}
	// outcomes are the records of tests' runs, by bucket.
	outcomes := func(t *testing.T, tests []restoretest.Test) []restoreTestOutcome {
		t.Helper()
		var out []restoreTestOutcome
		for _, test := range tests {
			hist, err := restoretest.History(f.ctx, f.v, test.Request.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(hist, func(r restoretest.Run) bool { return r.ID == test.RunID })
			if i < 0 {
				t.Fatalf("no run %s of %s", test.RunID, test.Request.Bucket)
			}
			out = append(out, restoreTestOutcomeOf(hist[i]))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
		return out
	}
	// finished checks the execution SUCCEEDED and returns its tests.
	finished := func(t *testing.T, res *sfnResult, h *sfnHarness) []restoretest.Test {
		t.Helper()
		if res.Status != "SUCCEEDED" {
			t.Fatalf("execution %s: %s: %s (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		var out restoretest.Resolved
		if err := json.Unmarshal(res.Output, &out); err != nil {
			t.Fatalf("output %s: %v", res.Output, err)
		}
		return out.Tests
	}
	gone := func(t *testing.T, tests []restoretest.Test) {
		t.Helper()
		for _, test := range tests {
			hist, _ := restoretest.History(f.ctx, f.v, test.Request.Bucket)
			for _, run := range hist {
				if run.ID != test.RunID {
					continue
				}
				if !strings.HasPrefix(run.TargetBucket, restoretest.TargetPrefix) {
					t.Errorf("run %s restored into %q", run.ID, run.TargetBucket)
				}
				if _, err := f.c.HeadBucket(f.ctx, &s3.HeadBucketInput{Bucket: aws.String(run.TargetBucket)}); !s3x.IsNotFound(err) {
					t.Errorf("the restored bucket %s is still there: %v", run.TargetBucket, err)
				}
			}
		}
	}
	successful := hookFunc(func(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error) {
		if function != testValidationFunction {
			return restoretest.Verdict{}, fmt.Errorf("invoked %s", function)
		}
		// The restored bucket is there for the function to look at.
		if _, err := f.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(e.Detail.TargetBucket)}); err != nil {
			return restoretest.Verdict{}, err
		}
		return restoretest.Verdict{ValidationStatus: restoretest.ValidationSuccessful, ValidationStatusMessage: "looks right"}, nil
	})

	t.Run("a test validated by its function: SUCCESSFUL, as LocalExecution", func(t *testing.T) {
		sch := scheduled(0, f.bucket)
		res, h, _ := run(t, "rt-successful", sch, harnessOpts{hook: successful})
		tests := finished(t, res, h)
		if len(tests) != 1 || tests[0].Status != restoretest.StatusSuccessful || tests[0].RunID == "" {
			t.Fatalf("tests %+v: want one, SUCCESSFUL", tests)
		}
		got := outcomes(t, tests)
		want := []restoreTestOutcome{{Bucket: f.bucket, Status: restoretest.StatusSuccessful, RestoreState: restore.StateCompleted,
			UserValidation: restoretest.ValidationSuccessful, Objects: 8, RTOMet: true, Deleted: true}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the run (-want +got):\n%s", diff)
		}
		gone(t, tests)
		// The steps, in LocalExecution's order; the WaitWindow waited as
		// synthesized, until the deleteAfter the step gave.
		if diff := cmp.Diff([]string{stateResolve, stateTestStart, stateTestRunsIt, stateValidate, stateHook, stateCleanup}, h.steps()); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if c := h.calls[3]; c.Step != restoretest.StepValidate || c.Caught != "" {
			t.Errorf("Validate got %+v: want nothing caught", c)
		}
		if diff := cmp.Diff(got, outcomes(t, local(t, sch, harnessOpts{hook: successful}))); diff != "" {
			t.Errorf("the state machine's run differs from LocalExecution's (-state machine +LocalExecution):\n%s", diff)
		}
	})

	t.Run("a verdict put later is awaited", func(t *testing.T) {
		later := hookFunc(func(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error) {
			if err := restoretest.PutValidationResult(ctx, f.v, e.Detail.Bucket, e.Detail.RunID, restoretest.Verdict{ValidationStatus: "SUCCESSFUL"}); err != nil {
				return restoretest.Verdict{}, err
			}
			return restoretest.Verdict{ValidationStatus: restoretest.ValidationValidating}, nil
		})
		// An hour's window: the waits are cut short.
		o := harnessOpts{hook: later, waitMs: map[string]int{stateAwaitEvery: 10, stateWaitWindow: 0}}
		sch := scheduled(1, f.bucket)
		res, h, _ := run(t, "rt-later", sch, o)
		tests := finished(t, res, h)
		got := outcomes(t, tests)
		if len(got) != 1 || got[0].Status != restoretest.StatusSuccessful || got[0].UserValidation != restoretest.ValidationSuccessful || !got[0].Deleted {
			t.Errorf("runs %+v: want SUCCESSFUL from the verdict put later, the bucket deleted", got)
		}
		gone(t, tests)
		if diff := cmp.Diff([]string{stateResolve, stateTestStart, stateTestRunsIt, stateValidate, stateHook, stateAwait, stateCleanup}, h.steps()); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(got, outcomes(t, local(t, sch, o))); diff != "" {
			t.Errorf("the state machine's run differs from LocalExecution's (-state machine +LocalExecution):\n%s", diff)
		}
	})

	t.Run("the nested restore fails: the run FAILED, its bucket gone", func(t *testing.T) {
		o := harnessOpts{hook: successful, failBatches: true}
		sch := scheduled(0, f.bucket)
		res, h, _ := run(t, "rt-restore-fails", sch, o)
		// A failed test fails no execution.
		tests := finished(t, res, h)
		got := outcomes(t, tests)
		if len(got) != 1 || got[0].Status != restoretest.StatusFailed || got[0].RestoreState != restore.StateFailed || got[0].UserValidation != "" || !got[0].Deleted {
			t.Errorf("runs %+v: want FAILED with the restore FAILED, no validation function, the bucket deleted", got)
		}
		gone(t, tests)
		// The Restore state's failure is caught into Validate, which
		// records it; no hook for a failed restore.
		if diff := cmp.Diff([]string{stateResolve, stateTestStart, stateTestRunsIt + "!States.TaskFailed", stateValidate, stateCleanup}, h.steps()); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if c := h.calls[3]; c.Step != restoretest.StepValidate || c.Caught != "States.TaskFailed" {
			t.Errorf("Validate got %+v: want the restore's States.TaskFailed", c)
		}
		hist, _ := restoretest.History(f.ctx, f.v, f.bucket)
		for _, run := range hist {
			if run.ID == tests[0].RunID && !strings.Contains(run.StatusMessage, "the restore ended FAILED") {
				t.Errorf("the run says %q: want why (the restore ended FAILED)", run.StatusMessage)
			}
		}
		if diff := cmp.Diff(got, outcomes(t, local(t, sch, o))); diff != "" {
			t.Errorf("the state machine's run differs from LocalExecution's (-state machine +LocalExecution):\n%s", diff)
		}
	})

	t.Run("a step failing after its retries fails its test only", func(t *testing.T) {
		// The first bucket's Hook fails every attempt as the engine's
		// transient error: retried, then caught into Fail. The second
		// bucket's test goes on.
		o := harnessOpts{hook: successful, inject: func(state, bucket string, _ int) (string, bool) {
			return restoretest.ErrorNames.Retryable[0], state == stateHook && bucket == f.bucket
		}}
		sch := scheduled(0, f.bucket, second)
		res, h, _ := run(t, "rt-step-fails", sch, o)
		tests := finished(t, res, h)
		got := outcomes(t, tests)
		want := []restoreTestOutcome{
			{Bucket: f.bucket, Status: restoretest.StatusFailed, RestoreState: restore.StateCompleted, UserValidation: restoretest.ValidationValidating, Objects: 8, RTOMet: true, Deleted: true},
			{Bucket: second, Status: restoretest.StatusSuccessful, RestoreState: restore.StateCompleted, UserValidation: restoretest.ValidationSuccessful, Objects: 2, RTOMet: true, Deleted: true},
		}
		sort.Slice(want, func(i, j int) bool { return want[i].Bucket < want[j].Bucket })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}
		gone(t, tests)
		var fails []taskCall
		for _, c := range h.calls {
			if c.State == stateTestFail {
				fails = append(fails, c)
			}
		}
		if len(fails) != 1 || fails[0].Caught != restoretest.ErrorNames.Retryable[0] || h.counts[stateHook] != 7+1 {
			t.Errorf("Fail calls %+v, %d Hook calls: want one Fail with %s after the failing Hook's 7 attempts, and the other test's Hook",
				fails, h.counts[stateHook], restoretest.ErrorNames.Retryable[0])
		}
		for _, run := range tests {
			if run.Request.Bucket == f.bucket {
				hist, _ := restoretest.History(f.ctx, f.v, f.bucket)
				for _, r := range hist {
					if r.ID == run.RunID && !strings.Contains(r.StatusMessage, "the restore test stopped: RetryableError") {
						t.Errorf("the failed test's run says %q", r.StatusMessage)
					}
				}
			}
		}
		if diff := cmp.Diff(got, outcomes(t, local(t, sch, o))); diff != "" {
			t.Errorf("the state machine's runs differ from LocalExecution's (-state machine +LocalExecution):\n%s", diff)
		}
	})
}
