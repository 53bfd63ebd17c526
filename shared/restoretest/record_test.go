package restoretest_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// interleaved is the local server, with another writer's work run once
// at a chosen point: before the first ListBuckets (the sweeper's, after
// it read the runs), or before the first PutObject of one key.
type interleaved struct {
	*s3.Client
	once       sync.Once
	beforeList func()
	putKey     string
	beforePut  func()
}

func (c *interleaved) ListBuckets(ctx context.Context, in *s3.ListBucketsInput, opts ...func(*s3.Options)) (*s3.ListBucketsOutput, error) {
	if c.beforeList != nil {
		c.once.Do(c.beforeList)
	}
	return c.Client.ListBuckets(ctx, in, opts...)
}

func (c *interleaved) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if c.beforePut != nil && aws.ToString(in.Key) == c.putKey {
		c.once.Do(c.beforePut)
	}
	return c.Client.PutObject(ctx, in, opts...)
}

// step runs one step of the restore test state machine through the
// function's handler.
func step(t *testing.T, tester *restoretest.Tester, req restoretest.StepRequest) restoretest.Test {
	t.Helper()
	raw, _ := json.Marshal(req)
	out, err := tester.Handle(context.Background(), raw)
	if err != nil {
		t.Fatalf("step %s: %v", req.Step, err)
	}
	return *out.(*restoretest.Test)
}

// restored is the plan's test of the tagged bucket after Start (a
// state machine with a timeout of an hour) and its restore.
func restored(t *testing.T, c *s3.Client, tester *restoretest.Tester, s restoretest.Scheduled) restoretest.Test {
	t.Helper()
	ctx := context.Background()
	raw, _ := json.Marshal(restoretest.StepRequest{Step: restoretest.StepResolve, Scheduled: &s})
	out, err := tester.Handle(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	test := out.(*restoretest.Resolved).Tests[0]
	test = step(t, tester, restoretest.StepRequest{Step: restoretest.StepStart, Test: &test, StartTime: time.Now().UTC().Format(time.RFC3339), TimeoutSeconds: 3600})
	if rep, err := (&restore.Restorer{S3: c}).Run(ctx, test.Restore.Request); err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	return test
}

// TestSweeperNeverOverwritesARunThatEnded: the sweeper reads a run
// RUNNING past its deadline; before it acts, the run's Validate step
// settles it SUCCESSFUL, keeping its bucket for its validation window.
// The sweeper's write of its stale copy loses (If-Match): it reads the
// run again, leaves it SUCCESSFUL and keeps its bucket.
func TestSweeperNeverOverwritesARunThatEnded(t *testing.T) {
	_, c, v, _, _ := workflowVault(t)
	ctx := context.Background()
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "rse-"}
	test := restored(t, c, tester, scheduled(v, 24, ""))
	running := runOf(t, v, test)
	if running.Status != restoretest.StatusRunning {
		t.Fatalf("run before the sweep: %+v", running)
	}
	var validated restoretest.Test
	sweeper := &restoretest.Tester{S3: &interleaved{Client: c, beforeList: func() {
		validated = step(t, tester, restoretest.StepRequest{Step: restoretest.StepValidate, Test: &test})
	}}, Prefix: tester.Prefix}
	sw, err := sweeper.Sweep(ctx, v, running.Deadline.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if validated.Status != restoretest.StatusSuccessful {
		t.Fatalf("the Validate step in between: %+v", validated)
	}
	run := runOf(t, v, test)
	if run.Status != restoretest.StatusSuccessful || run.DeletedAt != nil || run.Validation == nil {
		t.Fatalf("run after the sweep: %s %q (deleted %v); want the Validate step's SUCCESSFUL, its bucket kept", run.Status, run.StatusMessage, run.DeletedAt)
	}
	if !slices.Contains(sw.Kept, run.TargetBucket) || len(sw.Deleted) != 0 {
		t.Errorf("sweep: %+v; want %s kept", sw, run.TargetBucket)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(run.TargetBucket)}); err != nil {
		t.Errorf("the run's bucket, kept for its window, was deleted: %v", err)
	}
	if _, err := s3x.DeleteBucket(ctx, c, run.TargetBucket); err != nil {
		t.Error(err)
	}
}

// TestReportedVerdictAndTheSweeper: a run whose workflow stopped while it
// awaited its validation function's verdict, and a verdict reported
// through PutValidationResult, interleaved both ways. Reported after the
// sweeper read the run, the verdict is taken (the sweeper's FAILED loses
// and it reads the run again); reported while the sweeper ends the run,
// PutValidationResult is refused instead of told it counted.
func TestReportedVerdictAndTheSweeper(t *testing.T) {
	_, c, v, _, _ := workflowVault(t)
	ctx := context.Background()
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "rsv-",
		Hook: hookFunc(func(context.Context, string, restoretest.HookEvent) (restoretest.Verdict, error) {
			return restoretest.Verdict{}, nil // VALIDATING: the verdict comes later
		})}
	awaitingRun := func(t *testing.T) (restoretest.Test, restoretest.Run) {
		t.Helper()
		test := restored(t, c, tester, scheduled(v, 0, "validate-photos"))
		test = step(t, tester, restoretest.StepRequest{Step: restoretest.StepValidate, Test: &test})
		test = step(t, tester, restoretest.StepRequest{Step: restoretest.StepHook, Test: &test})
		run := runOf(t, v, test)
		if run.Status != restoretest.StatusValidating || !test.Awaiting {
			t.Fatalf("run: %+v; want it awaiting a verdict", run)
		}
		return test, run
	}

	t.Run("reported after the sweeper read the run", func(t *testing.T) {
		test, run := awaitingRun(t)
		var reported error
		sweeper := &restoretest.Tester{S3: &interleaved{Client: c, beforeList: func() {
			reported = restoretest.PutValidationResult(ctx, v, run.Bucket, run.ID, restoretest.Verdict{ValidationStatus: "SUCCESSFUL", ValidationStatusMessage: "row counts match"})
		}}, Prefix: tester.Prefix}
		sw, err := sweeper.Sweep(ctx, v, run.Deadline.Add(time.Second))
		if err != nil || reported != nil {
			t.Fatalf("sweep %v, verdict reported: %v", err, reported)
		}
		got := runOf(t, v, test)
		if got.Status != restoretest.StatusSuccessful || got.UserValidation.Status != restoretest.ValidationSuccessful || got.UserValidation.Message != "row counts match" || got.DeletedAt == nil {
			t.Fatalf("run after the sweep: %s %q, user validation %+v; want the reported SUCCESSFUL taken", got.Status, got.StatusMessage, got.UserValidation)
		}
		if !slices.Equal(sw.Deleted, []string{got.TargetBucket}) {
			t.Errorf("sweep: %+v; want %s deleted", sw, got.TargetBucket)
		}
		gone(t, c, got.TargetBucket)
	})

	t.Run("reported while the sweeper ends the run", func(t *testing.T) {
		test, run := awaitingRun(t)
		sweeper := &restoretest.Tester{S3: c, Prefix: tester.Prefix}
		var swept *restoretest.Swept
		var swErr error
		hooked, err := vault.Open(ctx, &interleaved{Client: c, putKey: vault.RestoreTestVerdictKey(run.Bucket, run.ID), beforePut: func() {
			swept, swErr = sweeper.Sweep(ctx, v, run.Deadline.Add(time.Second))
		}}, v.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		err = restoretest.PutValidationResult(ctx, hooked, run.Bucket, run.ID, restoretest.Verdict{ValidationStatus: "SUCCESSFUL"})
		if swErr != nil || swept == nil || !slices.Equal(swept.Deleted, []string{run.TargetBucket}) {
			t.Fatalf("sweep in between: %+v %v", swept, swErr)
		}
		var invalid *restoretest.InvalidRunError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "ended FAILED") {
			t.Errorf("a verdict reported as the sweeper ended the run: %v; want it refused, saying the run ended FAILED", err)
		}
		got := runOf(t, v, test)
		if got.Status != restoretest.StatusFailed || !strings.Contains(got.StatusMessage, "stopped before its verdict") || got.DeletedAt == nil {
			t.Errorf("run: %s %q; want the sweeper's FAILED", got.Status, got.StatusMessage)
		}
		// And a verdict once given is not given again.
		if err := restoretest.PutValidationResult(ctx, v, run.Bucket, run.ID, restoretest.Verdict{ValidationStatus: "FAILED"}); !errors.As(err, &invalid) {
			t.Errorf("a verdict for an ended run: %v; want it refused", err)
		}
	})
}
