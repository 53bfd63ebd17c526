package restore_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// smallItems cuts plans into items of 2 keys (delete markers: 1), in
// rounds of 3 keys, for the length of a test.
func smallItems(t *testing.T) {
	keys, markers, round := restore.WorkItemKeys, restore.MarkerItemKeys, restore.PlanRoundKeys
	restore.WorkItemKeys, restore.MarkerItemKeys, restore.PlanRoundKeys = 2, 1, 3
	t.Cleanup(func() { restore.WorkItemKeys, restore.MarkerItemKeys, restore.PlanRoundKeys = keys, markers, round })
}

// outcome is what a restore's report says, less what differs from run to
// run (ids, times, versions the target gave).
type outcome struct {
	State                                                 string
	Restored, Identical, DeleteMarkers, Absent, Failed, B int64
	VerifiedBy                                            map[string]int64
	Mapping                                               []string
}

func outcomeOf(rep *restore.Report) outcome {
	o := outcome{State: rep.State, Restored: rep.Restored, Identical: rep.Identical, DeleteMarkers: rep.DeleteMarkers,
		Absent: rep.Absent, Failed: rep.Failed, B: rep.Bytes, VerifiedBy: rep.VerifiedBy}
	for _, m := range rep.Mapping {
		o.Mapping = append(o.Mapping, m.Key+" "+m.Action+" "+m.SourceVersionID+" "+m.Verified)
	}
	sort.Strings(o.Mapping)
	return o
}

// seedTarget makes a target bucket holding a key the source never had
// and a key of the source with other bytes.
func seedTarget(t *testing.T, f *journalFixture) string {
	t.Helper()
	b := f.srv.NewBucket(t, true)
	f.put(t, b, "x/extra", "never in the source")
	f.put(t, b, "a/1", "other bytes")
	return b
}

// TestWorkflowMatchesInProcess: the state machine's steps (plan in
// rounds, batches of work items, the rollback, the report), run as an
// execution runs them, restore what the in-process restore does and say
// the same: for a rollback into existing buckets and into a new bucket.
func TestWorkflowMatchesInProcess(t *testing.T) {
	smallItems(t)
	f := newJournalFixture(t)
	r := &restore.Restorer{S3: f.c}
	for _, tc := range []struct {
		name   string
		mode   string
		create bool
	}{{"rollback into existing buckets", restore.Rollback, false}, {"into new buckets", restore.NonDestructive, true}} {
		t.Run(tc.name, func(t *testing.T) {
			targets := [2]string{}
			for i := range targets {
				if tc.create {
					targets[i] = f.srv.BucketName(t)
				} else {
					targets[i] = seedTarget(t, f)
				}
			}
			req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, Mode: tc.mode, CreateBucket: tc.create, TargetBucket: targets[0]}
			inproc, err := r.Run(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			req.TargetBucket = targets[1]
			e := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:wf-" + strings.ReplaceAll(tc.name, " ", "-")}
			job, err := e.Run(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if job.Plan.Rounds < 2 || job.Plan.Items < 3 {
				t.Errorf("plan: %+v; want several rounds and items", job.Plan)
			}
			rep, err := restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
			if err != nil {
				t.Fatal(err)
			}
			if rep.State != job.State || rep.Runner == nil || rep.Runner.Execution != e.Execution {
				t.Errorf("record %s runner %+v; job %s", rep.State, rep.Runner, job.State)
			}
			if d := cmp.Diff(outcomeOf(inproc), outcomeOf(rep)); d != "" {
				t.Errorf("the workflow's report differs from the in-process one (-in-process +workflow):\n%s", d)
			}
			a, errA := inspect.Capture(f.ctx, f.c, targets[0], "")
			b, errB := inspect.Capture(f.ctx, f.c, targets[1], "")
			if err := errors.Join(errA, errB); err != nil {
				t.Fatal(err)
			}
			if len(a) != 6 || len(a) != len(b) {
				t.Fatalf("targets hold %d and %d keys; want 6", len(a), len(b))
			}
			for k, o := range a {
				if b[k].SHA256 != o.SHA256 {
					t.Errorf("%s differs between the targets", k)
				}
			}
		})
	}
}

// stopAfterWrites cancels a context after n writes into bucket: a batch
// whose Lambda stopped mid-way.
type stopAfterWrites struct {
	s3x.Client
	bucket string
	n      int64
	writes atomic.Int64
	cancel context.CancelFunc
}

func (s *stopAfterWrites) wrote(bucket *string) {
	if aws.ToString(bucket) == s.bucket && s.writes.Add(1) == s.n && s.cancel != nil {
		s.cancel()
	}
}

func (s *stopAfterWrites) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	out, err := s.Client.CopyObject(ctx, in, opts...)
	if err == nil {
		s.wrote(in.Bucket)
	}
	return out, err
}

func (s *stopAfterWrites) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := s.Client.PutObject(ctx, in, opts...)
	if err == nil {
		s.wrote(in.Bucket)
	}
	return out, err
}

// TestWorkflowBatchStoppedResumesWithoutCopyingTwice: a batch stopped
// after its first write (a Lambda at its deadline) fails retryable; its
// retry compares and finishes the item, the job completes exactly, and
// every key of the new bucket is written once. A batch that fails on
// every attempt, tolerated, leaves the job PARTIAL with each of its keys
// named failed; not tolerated, the execution fails and the job is FAILED.
func TestWorkflowBatchStoppedResumesWithoutCopyingTwice(t *testing.T) {
	smallItems(t)
	f := newJournalFixture(t)
	target := f.srv.BucketName(t)
	stopper := &stopAfterWrites{Client: f.c, bucket: target, n: 1}
	r := &restore.Restorer{S3: stopper}
	var mu sync.Mutex
	batches := 0
	e := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:resume-1", MaxConcurrency: 1,
		Invoke: func(ctx context.Context, raw json.RawMessage) (any, error) {
			if !strings.Contains(string(raw), `"step":"batch"`) {
				return r.Handle(ctx, raw)
			}
			mu.Lock()
			batches++
			first := batches == 1
			mu.Unlock()
			if !first {
				return r.Handle(ctx, raw)
			}
			bctx, cancel := context.WithCancelCause(ctx)
			stopper.cancel = func() { cancel(context.DeadlineExceeded) }
			out, err := r.Handle(bctx, raw)
			stopper.cancel = nil
			if err == nil {
				t.Errorf("the stopped batch returned %v, want an error", out)
			}
			return out, err
		}}
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true}
	job, err := e.Run(f.ctx, req)
	if err != nil || job.State != restore.StateCompleted {
		t.Fatalf("execution: %+v %v", job, err)
	}
	rep, err := restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
	// The stopped batch's writes in flight may have reached the server:
	// at least its first is identical.
	if err != nil || rep.Restored+rep.Identical != 6 || rep.Identical < 1 || rep.Failed != 0 {
		t.Fatalf("report: %+v %v; want 6 keys, those the stopped batch wrote identical", rep, err)
	}
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
	if err != nil || len(vs.Versions) != 6 {
		t.Fatalf("the target holds %d versions (%v): each key must be written once", len(vs.Versions), err)
	}

	// A batch that always fails: tolerated, its keys are failed.
	broken := func(ctx context.Context, raw json.RawMessage) (any, error) {
		if strings.Contains(string(raw), `"Items":[{"item":1}]`) {
			return nil, &restore.RetryableError{Err: errors.New("injected: the batch's Lambda is throttled")}
		}
		return r.Handle(ctx, raw)
	}
	tolerant := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:tolerant", Invoke: broken, ToleratedFailurePercentage: 50, Attempts: 2}
	job, err = tolerant.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true})
	if err != nil || job.State != restore.StatePartial {
		t.Fatalf("tolerated failure: %+v %v; want PARTIAL", job, err)
	}
	rep, err = restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
	if err != nil || rep.Failed < 1 || rep.Restored+rep.Failed != 6 || len(rep.Failures) != int(rep.Failed) || !strings.Contains(rep.Failures[0].Error, "did not finish") {
		t.Fatalf("tolerated failure's report: %+v %v", rep, err)
	}
	// Not tolerated: the execution fails, the job with it.
	strict := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:strict", Invoke: broken, Attempts: 2}
	job, err = strict.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true})
	var se *restore.StepError
	if !errors.As(err, &se) || se.Name != "States.ExceedToleratedFailureThreshold" || job.State != restore.StateFailed {
		t.Fatalf("strict: %+v %v", job, err)
	}
	rep, err = restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
	if err != nil || rep.State != restore.StateFailed || !strings.Contains(rep.StatusMessage, "ExceedToleratedFailureThreshold") {
		t.Fatalf("strict's record: %+v %v", rep, err)
	}
}

// TestWorkflowRunAgainFinishes: an execution that failed, run again as
// another execution with the same job id, takes the job over and
// finishes it, copying nothing twice; a third execution returns the
// COMPLETED job without planning.
func TestWorkflowRunAgainFinishes(t *testing.T) {
	smallItems(t)
	f := newJournalFixture(t)
	target := f.srv.BucketName(t)
	r := &restore.Restorer{S3: f.c}
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true, JobID: "restore-again-1"}
	n := 0
	first := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:again-a", MaxConcurrency: 1, Attempts: 1,
		Invoke: func(ctx context.Context, raw json.RawMessage) (any, error) {
			if strings.Contains(string(raw), `"step":"batch"`) {
				if n++; n > 1 {
					return nil, errors.New("injected: the Lambda service failed")
				}
			}
			return r.Handle(ctx, raw)
		}}
	job, err := first.Run(f.ctx, req)
	if err == nil || job.State != restore.StateFailed {
		t.Fatalf("first execution: %+v %v; want it FAILED", job, err)
	}
	second := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:again-b"}
	job, err = second.Run(f.ctx, req)
	if err != nil || job.State != restore.StateCompleted || job.JobID != req.JobID {
		t.Fatalf("second execution: %+v %v", job, err)
	}
	rep, err := restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
	if err != nil || rep.Restored+rep.Identical != 6 || rep.Identical != 2 {
		t.Fatalf("second's report: %+v %v; want the 2 keys of the first execution's batch identical", rep, err)
	}
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
	if err != nil || len(vs.Versions) != 6 {
		t.Fatalf("the target holds %d versions (%v): each key must be written once", len(vs.Versions), err)
	}
	third := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:again-c"}
	job, err = third.Run(f.ctx, req)
	if err != nil || job.State != restore.StateCompleted || job.Plan.Items != 0 {
		t.Fatalf("third execution: %+v %v", job, err)
	}
}

// TestWorkflowPlanRetriedAfterItsFirstRound: the first plan round began
// the job and planned, but its answer was lost (a Lambda retried): the
// retry, with the execution's first payload again, resumes the job
// (ours: the same execution) from its record and the restore is exact.
func TestWorkflowPlanRetriedAfterItsFirstRound(t *testing.T) {
	smallItems(t)
	f := newJournalFixture(t)
	target := f.srv.BucketName(t)
	r := &restore.Restorer{S3: f.c}
	lost := false
	e := &restore.LocalExecution{Restorer: r, Execution: "arn:aws:states:us-east-1:111122223333:execution:bv-restore:lost-answer",
		Invoke: func(ctx context.Context, raw json.RawMessage) (any, error) {
			out, err := r.Handle(ctx, raw)
			if strings.Contains(string(raw), `"step":"plan"`) && !lost {
				lost = true
				return nil, &restore.RetryableError{Err: errors.New("injected: the invocation's answer was lost")}
			}
			return out, err
		}}
	job, err := e.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true})
	if err != nil || job.State != restore.StateCompleted || !lost {
		t.Fatalf("execution: %+v %v", job, err)
	}
	rep, err := restore.LoadJob(f.ctx, f.v, job.JobID, f.at)
	if err != nil || rep.Restored != 6 || rep.Failed != 0 {
		t.Fatalf("report: %+v %v", rep, err)
	}
	got, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil || len(got) != 6 {
		t.Fatalf("target: %d keys (%v)", len(got), err)
	}
}
