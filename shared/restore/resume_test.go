package restore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestRestoreRunAgainWithItsJobIDFinishesIt: a restore into a bucket it
// creates, stopped after two objects, run again with the same job id,
// finishes into the bucket its first run created: every key exactly as at
// T, each written once. Run a third time it does nothing and returns the
// job's report; a job id of another restore is refused.
func TestRestoreRunAgainWithItsJobIDFinishesIt(t *testing.T) {
	f := newJournalFixture(t)
	target := f.srv.BucketName(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true, JobID: "restore-resume-1", Concurrency: 1}
	ctx, cancel := context.WithCancel(f.ctx)
	var seen atomic.Int64
	stopping := &restore.Restorer{S3: f.c, Progress: func(p restore.Progress) {
		if p.Restored >= 2 && seen.Add(1) == 1 {
			cancel() // a kill: the run stops where it is
		}
	}}
	first, err := stopping.Run(ctx, req)
	if !errors.Is(err, context.Canceled) || first == nil || first.State != restore.StateFailed || first.Restored >= 6 {
		t.Fatalf("the stopped run: %+v %v", first, err)
	}
	r := &restore.Restorer{S3: f.c}
	second, err := r.Run(f.ctx, req)
	if err != nil || second.State != restore.StateCompleted || second.JobID != req.JobID || second.Restored+second.Identical != 6 || second.Identical < 2 {
		t.Fatalf("the run again: %+v %v", second, err)
	}
	got, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := inspect.Capture(f.ctx, f.c, f.bucket, "")
	if err != nil || len(got) != 6 || len(want) != 6 {
		t.Fatalf("target %d keys, source %d (%v)", len(got), len(want), err)
	}
	for k, o := range want {
		if got[k].SHA256 != o.SHA256 {
			t.Errorf("%s differs", k)
		}
	}
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
	if err != nil || len(vs.Versions) != 6 || len(vs.DeleteMarkers) != 0 {
		t.Fatalf("the target holds %d versions and %d delete markers (%v): each key must be written once", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	// Done: the same job again writes nothing and says what it did.
	third, err := r.Run(f.ctx, req)
	if err != nil || third.State != restore.StateCompleted || third.Restored != second.Restored {
		t.Fatalf("a third run: %+v %v", third, err)
	}
	if vs, _ := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)}); len(vs.Versions) != 6 {
		t.Fatalf("a third run wrote: %d versions", len(vs.Versions))
	}
	// Another restore under that job id is refused.
	other := req
	other.Prefixes = []string{"a/"}
	var invalid *restore.InvalidRequestError
	if _, err := r.Run(f.ctx, other); !errors.As(err, &invalid) {
		t.Fatalf("another restore under the same job id: %v, want it refused", err)
	}
}

// slowCopies makes every CopyObject take a while, as a large one would.
type slowCopies struct {
	s3x.Client
	wait time.Duration
}

func (s slowCopies) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	select {
	case <-time.After(s.wait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Client.CopyObject(ctx, in, opts...)
}

// TestRestoreStopsBeforeItsDeadline: a restore whose context has a
// deadline (a Lambda's) stops taking work DeadlineMargin before it, ends
// FAILED saying so (its record too), and returns before the deadline; run
// again with its job id it finishes, each key written once.
func TestRestoreStopsBeforeItsDeadline(t *testing.T) {
	f := newJournalFixture(t)
	defer func(m time.Duration) { restore.DeadlineMargin = m }(restore.DeadlineMargin)
	restore.DeadlineMargin = 400 * time.Millisecond
	target := f.srv.BucketName(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true, JobID: "restore-deadline-1", Concurrency: 1}
	deadline := time.Now().Add(1500 * time.Millisecond)
	ctx, cancel := context.WithDeadline(f.ctx, deadline)
	defer cancel()
	rep, err := (&restore.Restorer{S3: slowCopies{f.c, 300 * time.Millisecond}}).Run(ctx, req)
	if err == nil || rep == nil || rep.State != restore.StateFailed || !strings.Contains(rep.StatusMessage, "deadline is near") || rep.Restored == 0 || rep.Restored >= 6 {
		t.Fatalf("the run under a deadline: %+v %v", rep, err)
	}
	if time.Now().After(deadline) {
		t.Fatalf("returned after its deadline")
	}
	job, err := restore.LoadJob(f.ctx, f.v, req.JobID, time.Now())
	if err != nil || job.State != restore.StateFailed {
		t.Fatalf("the job's record: %+v %v", job, err)
	}
	again, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, req)
	if err != nil || again.State != restore.StateCompleted || again.Restored+again.Identical != 6 {
		t.Fatalf("run again: %+v %v", again, err)
	}
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
	if err != nil || len(vs.Versions) != 6 {
		t.Fatalf("%d versions in the target (%v): each key must be written once", len(vs.Versions), err)
	}
}
