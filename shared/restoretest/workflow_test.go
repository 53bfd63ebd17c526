package restoretest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// events records the events a tester sends.
type events struct {
	mu  sync.Mutex
	got []notify.Event
}

func (e *events) Publish(_ context.Context, ev notify.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
	return nil
}

func (e *events) types(runID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		if ev.JobID == runID {
			out = append(out, ev.Type)
		}
	}
	return out
}

// hookFunc is a validation function in this process.
type hookFunc func(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error)

func (f hookFunc) Invoke(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error) {
	return f(ctx, function, e)
}

// workflowVault is a vault with two protected buckets, both journaled up
// to a second ago: tagged ("team=photos", three objects) and untagged.
func workflowVault(t *testing.T) (*locals3.Server, *s3.Client, *vault.Vault, string, string) {
	t.Helper()
	srv, c, v := newVault(t)
	ctx := context.Background()
	tagged, untagged := protectedBucket(t, srv, v), protectedBucket(t, srv, v)
	if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(tagged), Tagging: &types.Tagging{
		TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("photos")}}}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(tagged), Key: aws.String(k), Body: strings.NewReader("bytes of " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(untagged), Key: aws.String("x"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	reconciled(t, c, v, tagged, untagged)
	return srv, c, v, tagged, untagged
}

// scheduled is a plan testing the newest second of buckets tagged
// team=photos, kept for window hours, validated by a function.
func scheduled(v *vault.Vault, window int64, function string) restoretest.Scheduled {
	return restoretest.Scheduled{
		Vault: v.Bucket, PlanName: "daily", RTOSeconds: 3600, ValidationFunction: function,
		RecoveryPointSelection: &restoretest.RecoveryPointSelection{Algorithm: restoretest.LatestWithinWindow, IncludeVaults: []string{"*"},
			RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Continuous}},
		Selections: []restoretest.Selection{{RestoreTestingSelectionName: "photos", ProtectedResourceType: "S3", ProtectedResourceArns: []string{"*"},
			ProtectedResourceConditions: &restoretest.Conditions{StringEquals: []restoretest.KeyValue{{Key: "aws:ResourceTag/team", Value: "photos"}}},
			ValidationWindowHours:       &window}},
	}
}

func runOf(t *testing.T, v *vault.Vault, test restoretest.Test) restoretest.Run {
	t.Helper()
	hist, err := restoretest.History(context.Background(), v, test.Request.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range hist {
		if r.ID == test.RunID {
			return r
		}
	}
	t.Fatalf("no run %s of %s in %+v", test.RunID, test.Request.Bucket, hist)
	return restoretest.Run{}
}

func gone(t *testing.T, c *s3.Client, bucket string) {
	t.Helper()
	if bucket == "" {
		return
	}
	if _, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(bucket)}); !s3x.IsNotFound(err) {
		t.Errorf("the restored bucket %s is still there: %v", bucket, err)
	}
}

// TestWorkflowRunsAPlan: a scheduled plan's selection takes the bucket its
// tag condition names (not the other); its test restores, validates,
// invokes the validation function with AWS Backup's event shape, takes
// its verdict, records the RTO, deletes the bucket and sends
// RESTORE_TESTING events; a verdict reported later through
// PutValidationResult is taken; none by the window's end is TIMED_OUT
// and fails the run.
func TestWorkflowRunsAPlan(t *testing.T) {
	_, c, v, tagged, _ := workflowVault(t)
	ctx := context.Background()
	cases := []struct {
		name       string
		hook       func(ctx context.Context, e restoretest.HookEvent) (restoretest.Verdict, error)
		wantStatus string
		wantUser   string
	}{
		{"verdict returned", func(ctx context.Context, e restoretest.HookEvent) (restoretest.Verdict, error) {
			if e.Detail.CreatedResourceArn != "arn:aws:s3:::"+e.Detail.TargetBucket || e.Detail.ResourceType != "S3" || e.DetailType != "Restore Job State Change" ||
				e.Detail.Objects != 3 || e.Detail.BucketvaultVerdict != "SUCCESSFUL" {
				return restoretest.Verdict{}, errors.New("unexpected event")
			}
			// The restored bucket is there for the function to look at.
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Detail.TargetBucket), Key: aws.String("a/2")}); err != nil {
				return restoretest.Verdict{}, err
			}
			return restoretest.Verdict{ValidationStatus: "SUCCESSFUL", ValidationStatusMessage: "row counts match"}, nil
		}, restoretest.StatusSuccessful, restoretest.ValidationSuccessful},
		{"verdict put later", func(ctx context.Context, e restoretest.HookEvent) (restoretest.Verdict, error) {
			if err := restoretest.PutValidationResult(ctx, v, e.Detail.Bucket, e.Detail.RunID, restoretest.Verdict{ValidationStatus: "FAILED", ValidationStatusMessage: "checksum of b/1 wrong"}); err != nil {
				return restoretest.Verdict{}, err
			}
			return restoretest.Verdict{ValidationStatus: "VALIDATING"}, nil
		}, restoretest.StatusFailed, restoretest.ValidationFailed},
		{"no verdict", func(ctx context.Context, e restoretest.HookEvent) (restoretest.Verdict, error) {
			return restoretest.Verdict{}, nil // VALIDATING, and nothing comes
		}, restoretest.StatusFailed, restoretest.ValidationTimedOut},
		{"function fails", func(ctx context.Context, e restoretest.HookEvent) (restoretest.Verdict, error) {
			return restoretest.Verdict{}, errors.New("the validation function crashed")
		}, restoretest.StatusFailed, restoretest.ValidationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			invoked := 0
			tester := &restoretest.Tester{S3: c, Events: ev, Prefix: restoretest.TargetPrefix + "wf-",
				Hook: hookFunc(func(ctx context.Context, function string, e restoretest.HookEvent) (restoretest.Verdict, error) {
					invoked++
					if function != "validate-photos" {
						return restoretest.Verdict{}, errors.New("wrong function " + function)
					}
					return tc.hook(ctx, e)
				})}
			e := &restoretest.LocalExecution{Tester: tester, AwaitEvery: 10 * time.Millisecond}
			tests, err := e.Run(ctx, scheduled(v, 0, "validate-photos"))
			if err != nil {
				t.Fatal(err)
			}
			if len(tests) != 1 || tests[0].Request.Bucket != tagged || tests[0].Request.SelectionName != "photos" {
				t.Fatalf("tests: %+v; want one of %s", tests, tagged)
			}
			run := runOf(t, v, tests[0])
			if run.Status != tc.wantStatus || run.UserValidation == nil || run.UserValidation.Status != tc.wantUser || invoked != 1 ||
				run.Objects != 3 || run.PlanName != "daily" || run.RTOMet == nil || !*run.RTOMet || run.RTOTargetSeconds != 3600 || run.DeletedAt == nil {
				t.Fatalf("run: %+v (user validation %+v, invoked %d)", run, run.UserValidation, invoked)
			}
			if tc.wantStatus == restoretest.StatusFailed && !strings.Contains(run.StatusMessage, "validate-photos said "+tc.wantUser) {
				t.Errorf("status message %q does not say what the function said", run.StatusMessage)
			}
			gone(t, c, run.TargetBucket)
			want := []string{notify.RestoreTestingJobStarted, notify.RestoreTestingJobCompleted}
			if tc.wantStatus == restoretest.StatusFailed {
				want[1] = notify.RestoreTestingJobFailed
			}
			if got := ev.types(run.ID); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}

// TestWorkflowFailuresLeaveNoBucket: a validation that crashes (a step
// failing after its retries) ends the run FAILED with why and deletes its
// bucket; a process killed after the restore leaves its bucket and a
// RUNNING run, which the sweeper deletes and fails once the run's
// deadline passed; a bucket with nothing to pick is recorded FAILED.
func TestWorkflowFailuresLeaveNoBucket(t *testing.T) {
	_, c, v, tagged, _ := workflowVault(t)
	ctx := context.Background()
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "wff-"}

	// The validation crashes.
	crash := &restoretest.LocalExecution{Tester: tester, Attempts: 2, Invoke: func(ctx context.Context, raw json.RawMessage) (any, error) {
		var s restoretest.StepRequest
		_ = json.Unmarshal(raw, &s)
		if s.Step == restoretest.StepValidate {
			return nil, errors.New("validation ran out of memory")
		}
		return tester.Handle(ctx, raw)
	}}
	tests, err := crash.Run(ctx, scheduled(v, 24, ""))
	if err != nil || len(tests) != 1 {
		t.Fatalf("%+v %v", tests, err)
	}
	run := runOf(t, v, tests[0])
	if run.Status != restoretest.StatusFailed || !strings.Contains(run.StatusMessage, "validation ran out of memory") || run.DeletedAt == nil {
		t.Fatalf("crashed validation: %+v", run)
	}
	gone(t, c, run.TargetBucket)

	// The process is killed after the restore: Start and the restore ran,
	// nothing else.
	raw, _ := json.Marshal(restoretest.StepRequest{Step: restoretest.StepResolve, Scheduled: ptr(scheduled(v, 0, ""))})
	out, err := tester.Handle(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	test := out.(*restoretest.Resolved).Tests[0]
	raw, _ = json.Marshal(restoretest.StepRequest{Step: restoretest.StepStart, Test: &test, StartTime: time.Now().UTC().Format(time.RFC3339), TimeoutSeconds: 3600})
	out, err = tester.Handle(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	test = *out.(*restoretest.Test)
	if rep, err := (&restore.Restorer{S3: c}).Run(ctx, test.Restore.Request); err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	killed := runOf(t, v, test)
	if killed.Status != restoretest.StatusRunning {
		t.Fatalf("killed run: %+v", killed)
	}
	sw, err := tester.Sweep(ctx, v, time.Now())
	if err != nil || len(sw.Deleted) != 0 {
		t.Fatalf("sweep before the deadline: %+v %v", sw, err)
	}
	sw, err = tester.Sweep(ctx, v, killed.Deadline.Add(time.Second))
	if err != nil || len(sw.Deleted) != 1 || sw.Deleted[0] != killed.TargetBucket {
		t.Fatalf("sweep after the deadline: %+v %v", sw, err)
	}
	gone(t, c, killed.TargetBucket)
	if r := runOf(t, v, test); r.Status != restoretest.StatusFailed || r.DeletedAt == nil || !strings.Contains(r.StatusMessage, "stopped before its verdict") {
		t.Fatalf("swept run: %+v", r)
	}

	// Nothing to pick (snapshots only; there are none): recorded FAILED.
	s := scheduled(v, 0, "")
	s.RecoveryPointSelection.RecoveryPointTypes = []restoretest.RecoveryPointType{restoretest.Snapshot}
	tests, err = (&restoretest.LocalExecution{Tester: tester}).Run(ctx, s)
	if err != nil || len(tests) != 1 {
		t.Fatalf("%+v %v", tests, err)
	}
	if r := runOf(t, v, tests[0]); r.Status != restoretest.StatusFailed || !strings.Contains(r.StatusMessage, "could not start") || r.Bucket != tagged {
		t.Fatalf("nothing to pick: %+v", r)
	}
	out2, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range out2.Buckets {
		if strings.HasPrefix(aws.ToString(b.Name), tester.Prefix) {
			t.Errorf("bucket %s left behind", aws.ToString(b.Name))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// deniesTags is the local server, but denying GetBucketTagging on one
// bucket (a role without it there).
type deniesTags struct {
	*s3.Client
	bucket string
}

func (d deniesTags) GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error) {
	if aws.ToString(in.Bucket) == d.bucket {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	}
	return d.Client.GetBucketTagging(ctx, in, opts...)
}

// TestWorkflowUnreadableTags: a bucket whose tags cannot be read is not
// guessed in or out of a selection with tag conditions: its test is
// recorded FAILED saying why, and the other bucket is tested.
func TestWorkflowUnreadableTags(t *testing.T) {
	_, c, v, tagged, untagged := workflowVault(t)
	ctx := context.Background()
	tester := &restoretest.Tester{S3: deniesTags{c, untagged}, Prefix: restoretest.TargetPrefix + "wfu-"}
	tests, err := (&restoretest.LocalExecution{Tester: tester}).Run(ctx, scheduled(v, 0, ""))
	if err != nil || len(tests) != 2 {
		t.Fatalf("%+v %v", tests, err)
	}
	for _, test := range tests {
		r := runOf(t, v, test)
		switch test.Request.Bucket {
		case tagged:
			if r.Status != restoretest.StatusSuccessful {
				t.Errorf("tagged: %+v", r)
			}
		case untagged:
			if r.Status != restoretest.StatusFailed || !strings.Contains(r.StatusMessage, "could not be read") {
				t.Errorf("untagged: %+v", r)
			}
		}
	}
}
