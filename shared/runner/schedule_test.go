package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/runner"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// fakeClock is a clock that sleeping advances.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// TestSchedulerRunsRulesOnTheirSchedule: a plan's daily rule fires at its
// time, resolves its selection on the server and snapshots each selected
// bucket with the rule's lifecycle; a matching bucket without versioning
// is left out (and logged), the continuous rule is not snapshotted.
func TestSchedulerRunsRulesOnTheirSchedule(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	versioned, plain := srv.NewBucket(t, true), srv.NewBucket(t, false)
	for _, b := range []string{versioned, plain} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
			t.Fatal(err)
		}
	}
	doc := fmt.Sprintf(`{
	  "BackupPlan": {"BackupPlanName": "nightly", "Rules": [
	    {"RuleName": "Daily", "TargetBackupVaultName": %q, "ScheduleExpression": "cron(0 5 ? * * *)",
	     "StartWindowMinutes": 60, "CompletionWindowMinutes": 120, "Lifecycle": {"DeleteAfterDays": 35}},
	    {"RuleName": "Continuous", "TargetBackupVaultName": %q, "EnableContinuousBackup": true, "Lifecycle": {"DeleteAfterDays": 35}}
	  ]},
	  "BackupSelections": [{"SelectionName": "these", "IamRoleArn": "arn:aws:iam::123456789012:role/backup",
	    "Resources": ["arn:aws:s3:::%s", "arn:aws:s3:::%s"]}]
	}`, v.Bucket, v.Bucket, versioned, plain)
	p, sels, err := plan.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	// Just before 05:00 UTC tomorrow.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	clk := &fakeClock{t: day.Add(5*time.Hour - time.Second)}
	var jobs []snapshot.Job
	s := &runner.Scheduler{Plan: p, Selections: sels, S3: c, Now: clk.now, Sleep: clk.sleep,
		Engine: &snapshot.Engine{S3: c, Now: clk.now},
		Done: func(j snapshot.Job) {
			jobs = append(jobs, j)
			cancel()
		},
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	ctx = context.Background() // Done cancelled the scheduler's
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v: want one, of %s", jobs, versioned)
	}
	j := jobs[0]
	if j.Bucket != versioned || j.State != snapshot.StateCompleted || !j.ScheduledAt.Equal(day.Add(5*time.Hour)) || j.CompletionWindowMinutes != 120 {
		t.Fatalf("job %+v", j)
	}
	sp, err := v.Snapshot(ctx, versioned, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if sp.CreatedBy.BackupRuleName != "Daily" || sp.CreatedBy.BackupPlanName != "nightly" || sp.CalculatedLifecycle == nil || sp.ObjectCount != 1 {
		t.Fatalf("recovery point %+v", sp)
	}
	if pts, err := v.Snapshots(ctx, plain); err != nil || len(pts) != 0 {
		t.Fatalf("unversioned bucket got snapshots %v %v", pts, err)
	}
}

// TestSchedulerNeverSnapshotsAVault: a selection of every bucket of this
// test (a wildcard) takes the rule's vault and another vault too; the
// scheduler snapshots neither (plan.ResolveBackups, as the dispatch
// function), only the plain bucket.
func TestSchedulerNeverSnapshotsAVault(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	target, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain := srv.NewBucket(t, true)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(plain), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	every := "arn:aws:s3:::" + plain[:strings.LastIndex(plain, "-")+1] + "*" // this test's buckets
	doc := fmt.Sprintf(`{
	  "BackupPlan": {"BackupPlanName": "nightly", "Rules": [
	    {"RuleName": "Daily", "TargetBackupVaultName": %q, "ScheduleExpression": "cron(0 5 ? * * *)"}]},
	  "BackupSelections": [{"SelectionName": "every", "IamRoleArn": "arn:aws:iam::123456789012:role/backup", "Resources": [%q]}]
	}`, target.Bucket, every)
	p, sels, err := plan.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := &runner.Scheduler{Plan: p, Selections: sels, S3: c, Engine: &snapshot.Engine{S3: c}}
	jobs, err := s.Fire(ctx, &p.Rules[0], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Bucket != plain || jobs[0].State != snapshot.StateCompleted {
		t.Fatalf("jobs %+v: want one, of %s", jobs, plain)
	}
	for _, b := range []string{target.Bucket, other.Bucket} {
		if pts, err := target.Snapshots(ctx, b); err != nil || len(pts) != 0 {
			t.Errorf("vault %s snapshotted into %s: %v %v", b, target.Bucket, pts, err)
		}
	}
}
