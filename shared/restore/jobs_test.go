package restore_test

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestKilledRestoreIsRecognisedAsInterrupted: a restore whose process
// died leaves its record RUNNING. Its heartbeat stops, so `job show`
// reads it as ABORTED (interrupted) once StaleAfter passes; while it is
// fresh, a second run of the same request is refused; once stale, the
// next run marks it and finishes the work.
func TestKilledRestoreIsRecognisedAsInterrupted(t *testing.T) {
	f := newJournalFixture(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true}
	now := time.Now()
	clock := now
	r := &restore.Restorer{S3: f.c, Now: func() time.Time { return clock }}
	first, err := r.Run(f.ctx, req)
	if err != nil || first.State != restore.StateCompleted {
		t.Fatalf("first restore: %v\n%v", err, first)
	}
	// Make the first job look killed mid-run: RUNNING, heartbeat now.
	first.State, first.UpdatedAt, first.CompletedAt = restore.StateRunning, now, time.Time{}
	if err := f.v.PutJSON(f.ctx, vault.JobKey(first.JobID), first); err != nil {
		t.Fatal(err)
	}
	again := req
	again.CreateBucket = false
	if _, err := r.Run(f.ctx, again); err == nil || !strings.Contains(err.Error(), "is running as job "+first.JobID) {
		t.Errorf("a second run while the first's heartbeat is fresh: %v; want it refused naming the job", err)
	}
	if rep, err := restore.LoadJob(f.ctx, f.v, first.JobID, now.Add(time.Minute)); err != nil || rep.State != restore.StateRunning {
		t.Errorf("job show with a fresh heartbeat: %v, %v; want RUNNING", rep, err)
	}
	later := now.Add(restore.StaleAfter + time.Minute)
	rep, err := restore.LoadJob(f.ctx, f.v, first.JobID, later)
	if err != nil || rep.State != restore.StateAborted || !strings.Contains(rep.StatusMessage, "interrupted") {
		t.Fatalf("job show after the heartbeat stopped: %+v, %v; want ABORTED, interrupted", rep, err)
	}
	clock = later
	second, err := r.Run(f.ctx, again)
	if err != nil || second.State != restore.StateCompleted {
		t.Fatalf("the next run of the same request: %v\n%v", err, second)
	}
	if w := strings.Join(second.Warnings, "\n"); !strings.Contains(w, "finishes job "+first.JobID) || second.Identical != 6 {
		t.Errorf("next run: identical %d, warnings %q; want it to finish job %s (all 6 identical)", second.Identical, w, first.JobID)
	}
	var stored restore.Report
	if err := f.v.GetJSON(f.ctx, vault.JobKey(first.JobID), &stored); err != nil || stored.State != restore.StateAborted {
		t.Errorf("the interrupted job's record: %s, %v; want ABORTED", stored.State, err)
	}
}

// TestRunningRestoreBeats: a running restore rewrites its record with a
// fresh UpdatedAt (its heartbeat), so it never reads as interrupted.
func TestRunningRestoreBeats(t *testing.T) {
	f := newJournalFixture(t)
	defer func(d time.Duration) { restore.HeartbeatEvery = d }(restore.HeartbeatEvery)
	restore.HeartbeatEvery = 5 * time.Millisecond
	beats := 0
	var job string
	r := &restore.Restorer{S3: f.c, Progress: func(restore.Progress) {
		if job == "" {
			return
		}
		time.Sleep(20 * time.Millisecond) // slow objects: beats happen
		var rep restore.Report
		if err := f.v.GetJSON(f.ctx, vault.JobKey(job), &rep); err == nil && rep.State == restore.StateRunning && !rep.UpdatedAt.Equal(rep.StartedAt) {
			beats++
		}
	}}
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true, JobID: "restore-beating", Concurrency: 1}
	job = req.JobID
	rep, err := r.Run(f.ctx, req)
	if err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("restore: %v\n%v", err, rep)
	}
	if beats == 0 {
		t.Errorf("no heartbeat was seen in the running job's record")
	}
}

// TestRefusedRestoreCreatesNothing: a restore refused because the same
// request is running leaves no target bucket behind.
func TestRefusedRestoreCreatesNothing(t *testing.T) {
	f := newJournalFixture(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true}
	r := &restore.Restorer{S3: f.c}
	first, err := r.Run(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The first job looks alive again, and its target is gone.
	first.State, first.UpdatedAt, first.CompletedAt = restore.StateRunning, time.Now(), time.Time{}
	if err := f.v.PutJSON(f.ctx, vault.JobKey(first.JobID), first); err != nil {
		t.Fatal(err)
	}
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(req.TargetBucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range vs.Versions {
		if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(req.TargetBucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.c.DeleteBucket(f.ctx, &s3.DeleteBucketInput{Bucket: aws.String(req.TargetBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(f.ctx, req); err == nil || !strings.Contains(err.Error(), "is running as job "+first.JobID) {
		t.Fatalf("the same restore while the first is alive: %v; want it refused", err)
	}
	if _, err := f.c.HeadBucket(f.ctx, &s3.HeadBucketInput{Bucket: aws.String(req.TargetBucket)}); err == nil {
		t.Errorf("the refused restore created its target %s", req.TargetBucket)
	}
}
