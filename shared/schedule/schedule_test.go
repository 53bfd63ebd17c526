package schedule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// fakeSFN records StartExecution calls and, as Step Functions does,
// refuses a second execution of one name; failFor fails the calls for one
// bucket. There is no local Step Functions service to call.
type fakeSFN struct {
	mu      sync.Mutex
	started map[string]*sfn.StartExecutionInput
	failFor string
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFor != "" && strings.Contains(aws.ToString(in.Input), `"bucket":"`+f.failFor+`"`) {
		return nil, errors.New("injected: throttled")
	}
	name := aws.ToString(in.Name)
	if _, dup := f.started[name]; dup {
		return nil, &sfntypes.ExecutionAlreadyExists{Message: aws.String("Execution Already Exists: " + name)}
	}
	if f.started == nil {
		f.started = map[string]*sfn.StartExecutionInput{}
	}
	f.started[name] = in
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(aws.ToString(in.StateMachineArn) + ":" + name)}, nil
}

func TestDispatch(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	tag := srv.BucketName(t) // a tag value unique to this test
	mk := func(versioned bool, tagged bool) string {
		t.Helper()
		b := srv.NewBucket(t, versioned)
		if tagged {
			if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(b), Tagging: &types.Tagging{
				TagSet: []types.Tag{{Key: aws.String("Backup"), Value: aws.String(tag)}}}}); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	a, b, unversioned, untagged := mk(true, true), mk(true, true), mk(false, true), mk(true, false)
	vaultBucket := mk(true, true) // the tag selection takes the vault too
	_ = untagged
	// Another vault the selection takes: never backed up into this one.
	other, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(other.Bucket), Tagging: &types.Tagging{
		TagSet: []types.Tag{{Key: aws.String("Backup"), Value: aws.String(tag)}}}}); err != nil {
		t.Fatal(err)
	}

	p := &plan.Plan{BackupPlanName: "p", Rules: []plan.Rule{{RuleName: "daily", TargetBackupVaultName: "v", StartWindowMinutes: aws.Int64(60)}}}
	req := schedule.Request{
		ScheduledAt:     time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC),
		StateMachineARN: "arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-daily",
		Job:             snapshot.JobForRule(p, &p.Rules[0], vaultBucket, "", time.Time{}),
		Selections: []plan.Selection{{SelectionName: "tagged", IamRoleArn: "arn:aws:iam::123456789012:role/r",
			ListOfTags: []plan.Condition{{ConditionType: "STRINGEQUALS", ConditionKey: "Backup", ConditionValue: tag}}}},
	}
	f := &fakeSFN{failFor: b}
	d := &schedule.Dispatcher{S3: c, SFN: f}
	res, err := d.Dispatch(ctx, req)
	if err == nil || !strings.Contains(err.Error(), b) {
		t.Fatalf("error %v: want the failed start of %s", err, b)
	}
	if len(res.Started) != 1 || res.Started[0].Bucket != a || res.Started[0].AlreadyStarted {
		t.Errorf("started %+v, want %s only", res.Started, a)
	}
	notBackedUp := map[string]string{}
	for _, nb := range res.NotBackedUp {
		notBackedUp[nb.Name] = nb.Reason
	}
	wantWhy := map[string]string{
		unversioned:  "versioning was never enabled",
		vaultBucket:  "the vault itself",
		other.Bucket: "a bucketvault vault (it holds " + vault.DescriptorKey + ")",
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(wantWhy)), slices.Sorted(maps.Keys(notBackedUp))); diff != "" {
		t.Errorf("not backed up (-want +got):\n%s", diff)
	}
	for b, why := range wantWhy {
		if !strings.Contains(notBackedUp[b], why) {
			t.Errorf("%s not backed up because %q, want %q", b, notBackedUp[b], why)
		}
	}

	// The retry starts what is missing; what the first attempt started is
	// found started.
	f.failFor = ""
	res, err = d.Dispatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range res.Started {
		got[s.Bucket] = s.AlreadyStarted
	}
	if diff := cmp.Diff(map[string]bool{a: true, b: false}, got); diff != "" {
		t.Errorf("second attempt started (bucket: already) (-want +got):\n%s", diff)
	}
	if len(f.started) != 2 {
		t.Fatalf("executions %v, want 2", f.started)
	}
	// Each execution's input is the rule's job for its bucket.
	for name, in := range f.started {
		var job snapshot.Job
		if err := json.Unmarshal([]byte(aws.ToString(in.Input)), &job); err != nil {
			t.Fatal(err)
		}
		want := snapshot.JobForRule(p, &p.Rules[0], vaultBucket, job.Bucket, req.ScheduledAt)
		if diff := cmp.Diff(want, job); diff != "" {
			t.Errorf("%s input (-want +got):\n%s", name, diff)
		}
		if name != schedule.ExecutionName(job.Bucket, req.ScheduledAt) || aws.ToString(in.StateMachineArn) != req.StateMachineARN {
			t.Errorf("execution %s of %s", name, aws.ToString(in.StateMachineArn))
		}
	}
}

func TestDispatchInvalid(t *testing.T) {
	d := &schedule.Dispatcher{SFN: &fakeSFN{}}
	for _, req := range []schedule.Request{
		{Job: snapshot.Job{Vault: "v"}, Selections: []plan.Selection{{}}},
		{StateMachineARN: "arn", Selections: []plan.Selection{{}}},
		{StateMachineARN: "arn", Job: snapshot.Job{Vault: "v"}},
	} {
		var inv *schedule.InvalidRequestError
		if _, err := d.Dispatch(context.Background(), req); !errors.As(err, &inv) {
			t.Errorf("%+v: error %v, want InvalidRequestError", req, err)
		}
	}
}

func TestExecutionName(t *testing.T) {
	at := time.Date(2026, 11, 23, 5, 0, 0, 0, time.FixedZone("CET", 3600))
	long := strings.Repeat("a", 60) + ".example"
	for bucket, want := range map[string]string{
		"photos":         "20261123T040000Z-" + "" + "photos",
		"logs.acme.corp": "20261123T040000Z-" + "" + "logs-acme-corp",
	} {
		got := schedule.ExecutionName(bucket, at)
		if !strings.HasPrefix(got, "20261123T040000Z-") || !strings.HasSuffix(got, strings.TrimPrefix(want, "20261123T040000Z-")) || len(got) != len(want)+9 {
			t.Errorf("ExecutionName(%q) = %q", bucket, got)
		}
	}
	a, b := schedule.ExecutionName(long+"1", at), schedule.ExecutionName(long+"2", at)
	if len(a) != 80 || a == b {
		t.Errorf("long names %q and %q: want 80 characters, distinct", a, b)
	}
}

// The sample request in events/ decodes with no unknown field.
func TestRequestSample(t *testing.T) {
	body, err := os.ReadFile("../../events/dispatch.request.json")
	if err != nil {
		t.Fatal(err)
	}
	var req schedule.Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		t.Fatal(err)
	}
	if req.StateMachineARN == "" || req.Job.Vault == "" || len(req.Selections) == 0 || req.ScheduledAt.IsZero() {
		t.Errorf("sample %+v", req)
	}
}
