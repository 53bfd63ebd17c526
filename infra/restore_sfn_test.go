package main

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The end-to-end test of the synthesized restore state machine (see
// sfn_test.go for how aws-local-stepfunctions runs it and what it does
// not run as AWS would): every Task answered by the restore function's
// own step handler, restore.Restorer.Handle, on the local S3 server.

// restoreFixture is a protected, versioned bucket journaled into a vault
// up to its completeness watermark, At.
type restoreFixture struct {
	ctx    context.Context
	srv    *locals3.Server
	c      *s3.Client
	v      *vault.Vault
	bucket string
	at     time.Time
}

// newRestoreFixture protects a bucket of 8 current objects (an overwrite,
// metadata and tags, an odd key) and one deleted, and reconciles it twice,
// a second apart, so the completeness watermark covers every put.
func newRestoreFixture(t *testing.T) *restoreFixture {
	t.Helper()
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &restoreFixture{ctx: ctx, srv: srv, c: c, v: v, bucket: srv.NewBucket(t, true)}
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(ctx, vault.BucketKey(f.bucket), vault.ProtectedBucket{Bucket: f.bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "b/2", "c/1", "gone.txt"} {
		f.put(t, f.bucket, k, "bytes of "+k)
	}
	f.put(t, f.bucket, "a/2", "a/2 overwritten")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("d/tagged.txt"), Body: strings.NewReader("tagged"),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"owner": "test"}, Tagging: aws.String("Backup=daily")}); err != nil {
		t.Fatal(err)
	}
	f.put(t, f.bucket, "keys/with space+plus%percent/ünïcödé.txt", "odd")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("gone.txt")}); err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: v, S3: c}
	for i := range 2 {
		if i == 1 { // the second reconcile vouches for a second after every put
			time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		}
		if _, err := j.Reconcile(ctx, f.bucket, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wm, err := v.CompleteThrough(ctx, f.bucket)
	if err != nil || wm == nil {
		t.Fatalf("completeness watermark %v, %v", wm, err)
	}
	f.at = *wm
	return f
}

func (f *restoreFixture) put(t *testing.T, bucket, key, body string) {
	t.Helper()
	if _, err := f.c.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// restoreOutcome is what a restore's report says, less what differs from
// run to run (ids, times, the versions the target gave).
type restoreOutcome struct {
	State                                                     string
	Restored, Identical, DeleteMarkers, Absent, Failed, Bytes int64
	VerifiedBy                                                map[string]int64
	Mapping                                                   []string
}

func restoreOutcomeOf(rep *restore.Report) restoreOutcome {
	o := restoreOutcome{State: rep.State, Restored: rep.Restored, Identical: rep.Identical, DeleteMarkers: rep.DeleteMarkers,
		Absent: rep.Absent, Failed: rep.Failed, Bytes: rep.Bytes, VerifiedBy: rep.VerifiedBy}
	for _, m := range rep.Mapping {
		o.Mapping = append(o.Mapping, m.Key+" "+m.Action+" "+m.SourceVersionID+" "+m.Verified)
	}
	sort.Strings(o.Mapping)
	return o
}

// restoreExecution is the Context Object of an execution of the main
// stack's restore state machine named name.
func restoreExecution(name string) (arn string, contextObject map[string]any) {
	arn = "arn:aws:states:us-east-1:123456789012:execution:BucketVault-restore:" + name
	return arn, map[string]any{"Execution": map[string]any{"Id": arn, "Name": name}}
}

// order is the states of the calls in order, repeats and failed calls
// left out.
func order(steps []string) []string {
	var out []string
	for _, st := range steps {
		if !strings.Contains(st, "!") && (len(out) == 0 || out[len(out)-1] != st) {
			out = append(out, st)
		}
	}
	return out
}

// TestRestoreStateMachineRuns runs the synthesized restore state machine
// (the main stack's: batches of 2 work items, none tolerated to fail) in
// aws-local-stepfunctions, every Task answered by restore.Restorer.Handle
// on the local S3 server, with plans cut into items of 2 keys in rounds of
// 3 keys, and holds it to the in-process restore (Restorer.Run) and to
// restore.LocalExecution's order of steps.
func TestRestoreStateMachineRuns(t *testing.T) {
	requireLocalStepFunctions(t)
	s := synth(t).main
	f := newRestoreFixture(t)
	keys, round := restore.WorkItemKeys, restore.PlanRoundKeys
	restore.WorkItemKeys, restore.PlanRoundKeys = 2, 3
	t.Cleanup(func() { restore.WorkItemKeys, restore.PlanRoundKeys = keys, round })
	def := deployedDefinition(t, s, "RestoreStateMachine", substRestoreFunction, "RestoreFunction",
		"arn:aws:lambda:us-east-1:123456789012:function:bucketvault-restore", f.v.Bucket)
	r := &restore.Restorer{S3: f.c}
	const perBatch = 2 // testdata/config.json's restore.itemsPerBatch

	// capture is a bucket's current objects.
	capture := func(t *testing.T, bucket string) map[string]inspect.Object {
		t.Helper()
		got, err := inspect.Capture(f.ctx, f.c, bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// same holds the state machine's job to the in-process restore: its
	// record says the same, and the targets hold the same objects.
	same := func(t *testing.T, want *restore.Report, wantTarget string, res *sfnResult, jobID, execution, gotTarget string) *restore.Report {
		t.Helper()
		var job restore.Job
		if err := json.Unmarshal(res.Output, &job); err != nil {
			t.Fatal(err)
		}
		if job.JobID != jobID || job.State != restore.StateCompleted {
			t.Errorf("output job %s %s, want %s COMPLETED", job.JobID, job.State, jobID)
		}
		rep, err := restore.LoadJob(f.ctx, f.v, jobID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Runner == nil || rep.Runner.Execution != execution {
			t.Errorf("the job's runner %+v, want the execution %s", rep.Runner, execution)
		}
		if rep.Plan == nil || rep.Plan.Rounds < 2 || rep.Plan.Items < 3 || !rep.Plan.Done {
			t.Fatalf("plan %+v: want it done, in several rounds and items", rep.Plan)
		}
		if diff := cmp.Diff(restoreOutcomeOf(want), restoreOutcomeOf(rep)); diff != "" {
			t.Errorf("the state machine's job differs from the in-process restore (-in-process +state machine):\n%s", diff)
		}
		wantObjects, gotObjects := capture(t, wantTarget), capture(t, gotTarget)
		if diff := cmp.Diff(wantObjects, gotObjects); diff != "" {
			t.Errorf("the targets differ (-in-process +state machine):\n%s", diff)
		}
		return rep
	}

	t.Run("the same restore as in-process, into a new bucket", func(t *testing.T) {
		req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, CreateBucket: true, TargetBucket: f.srv.BucketName(t)}
		want, err := r.Run(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		wantTarget := req.TargetBucket
		req.TargetBucket = f.srv.BucketName(t)
		// No job id: the job takes the execution's name.
		const name = "restore-sfn-new"
		exec, ctxObj := restoreExecution(name)
		h := &sfnHarness{t: t, handle: r.Handle, s3: f.c, context: ctxObj}
		res := h.run(def, map[string]any{"request": req})
		if res.Status != "SUCCEEDED" {
			t.Fatalf("execution %s: %s: %s (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		rep := same(t, want, wantTarget, res, name, exec, req.TargetBucket)
		if got := capture(t, req.TargetBucket); len(got) != 8 {
			t.Errorf("the target holds %d keys, want the 8 current at T", len(got))
		}
		if diff := cmp.Diff([]string{stateRestorePlan, stateBatch, stateReport}, order(h.steps())); diff != "" {
			t.Errorf("steps %v (-want +got):\n%s", h.steps(), diff)
		}
		wantBatches := (rep.Plan.Items + perBatch - 1) / perBatch
		if h.counts[stateRestorePlan] != rep.Plan.Rounds || h.batches != wantBatches || h.counts[stateBatch] != wantBatches {
			t.Errorf("%d Plan calls for %d rounds, %d batches and %d Batch calls for %d items: want a call per round and per batch of %d",
				h.counts[stateRestorePlan], rep.Plan.Rounds, h.batches, h.counts[stateBatch], rep.Plan.Items, perBatch)
		}
	})

	t.Run("a rollback into an existing bucket, a batch retried", func(t *testing.T) {
		seeded := func() string {
			b := f.srv.NewBucket(t, true)
			f.put(t, b, "x/extra", "never in the source")
			f.put(t, b, "a/1", "other bytes")
			return b
		}
		wantTarget, target := seeded(), seeded()
		req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, Mode: restore.Rollback, TargetBucket: wantTarget}
		want, err := r.Run(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		req.TargetBucket, req.JobID = target, "restore-sfn-rollback"
		exec, ctxObj := restoreExecution("restore-sfn-rollback-1")
		h := &sfnHarness{t: t, handle: r.Handle, s3: f.c, context: ctxObj}
		// The first batch's Lambda fails as the engine's transient error:
		// the Batch task's retrier runs it again.
		h.inject = func(state string, _ json.RawMessage, n int) (string, bool) {
			return restore.ErrorNames.Retryable[0], state == stateBatch && n == 0
		}
		res := h.run(def, map[string]any{"request": req})
		if res.Status != "SUCCEEDED" {
			t.Fatalf("execution %s: %s: %s (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		rep := same(t, want, wantTarget, res, req.JobID, exec, target)
		if rep.DeleteMarkers != 1 {
			t.Errorf("%d delete markers, want 1 (x/extra)", rep.DeleteMarkers)
		}
		if diff := cmp.Diff([]string{stateRestorePlan, stateBatch, stateRollback, stateReport}, order(h.steps())); diff != "" {
			t.Errorf("steps %v (-want +got):\n%s", h.steps(), diff)
		}
		if !res.has("StateRetried", stateBatch, "") || h.counts[stateBatch] != h.batches+1 {
			t.Errorf("%d Batch calls for %d batches, events %+v: want the injected failure retried once", h.counts[stateBatch], h.batches, res.Events)
		}
		vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
		if err != nil {
			t.Fatal(err)
		}
		var markers []string
		for _, m := range vs.DeleteMarkers {
			if aws.ToBool(m.IsLatest) {
				markers = append(markers, aws.ToString(m.Key))
			}
		}
		if diff := cmp.Diff([]string{"x/extra"}, markers); diff != "" {
			t.Errorf("delete markers (-want +got):\n%s", diff)
		}
		versions := len(vs.Versions) + len(vs.DeleteMarkers)

		// Run again with the same job id, as another execution: the job is
		// COMPLETED already, so the plan says so and nothing else runs
		// (LocalExecution's loops skip a done rollback and report).
		_, ctxObj = restoreExecution("restore-sfn-rollback-2")
		again := &sfnHarness{t: t, handle: r.Handle, s3: f.c, context: ctxObj}
		res = again.run(def, map[string]any{"request": req})
		var job restore.Job
		if res.Status != "SUCCEEDED" || json.Unmarshal(res.Output, &job) != nil || job.State != restore.StateCompleted {
			t.Fatalf("run again: execution %s (%s: %s), job %+v: want SUCCEEDED with the job COMPLETED", res.Status, res.Error, res.Cause, job)
		}
		if diff := cmp.Diff([]string{stateRestorePlan}, again.steps()); diff != "" {
			t.Errorf("run again: steps (-want +got):\n%s", diff)
		}
		vs, err = f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
		if err != nil || len(vs.Versions)+len(vs.DeleteMarkers) != versions {
			t.Errorf("run again: the target has %d versions and markers (%v), want %d: nothing written twice", len(vs.Versions)+len(vs.DeleteMarkers), err, versions)
		}
	})

	t.Run("a batch failing every attempt fails the execution and the job", func(t *testing.T) {
		req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, CreateBucket: true, TargetBucket: f.srv.BucketName(t), JobID: "restore-sfn-fail"}
		_, ctxObj := restoreExecution("restore-sfn-fail-1")
		h := &sfnHarness{t: t, handle: r.Handle, s3: f.c, context: ctxObj}
		var mu sync.Mutex
		failing := 0
		// The batch holding work item 1 fails as the engine's transient
		// error on every attempt: its retries run out.
		h.inject = func(state string, input json.RawMessage, _ int) (string, bool) {
			var step restore.StepRequest
			_ = json.Unmarshal(input, &step)
			if state != stateBatch || !slices.Contains(step.Items, restore.ItemRef{Item: 1}) {
				return "", false
			}
			mu.Lock()
			defer mu.Unlock()
			failing++
			return restore.ErrorNames.Retryable[0], true
		}
		res := h.run(def, map[string]any{"request": req})
		if res.Status != "FAILED" || res.Error != "States.ExceedToleratedFailureThreshold" {
			t.Fatalf("execution %s with error %q (%s), want FAILED with States.ExceedToleratedFailureThreshold (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		if failing != 7 {
			t.Errorf("the failing batch ran %d times, want 7 (the Batch task's 6 retries)", failing)
		}
		if !res.has("StateCaught", stateBatches, "") {
			t.Errorf("Batches was not caught: %+v", res.Events)
		}
		last := h.calls[len(h.calls)-1]
		if last.State != stateRecordFailure || last.Step != restore.StepFail || last.Caught != "States.ExceedToleratedFailureThreshold" {
			t.Errorf("the last call %+v: want the fail step, with what Batches failed with", last)
		}
		if got := order(h.steps()); slices.Contains(got, stateRollback) || slices.Contains(got, stateReport) {
			t.Errorf("steps %v: nothing after the failed Batches but RecordFailure", got)
		}
		rep, err := restore.LoadJob(f.ctx, f.v, req.JobID, time.Now())
		if err != nil || rep.State != restore.StateFailed || !strings.Contains(rep.StatusMessage, "ExceedToleratedFailureThreshold") {
			t.Fatalf("the job's record %+v (%v): want FAILED saying why", rep, err)
		}
	})

	t.Run("an invalid request fails at Plan, not retried", func(t *testing.T) {
		// The source bucket is no vault: the plan cannot begin.
		req := restore.Request{Vault: f.bucket, Bucket: f.bucket, At: f.at, CreateBucket: true, TargetBucket: f.srv.BucketName(t)}
		_, ctxObj := restoreExecution("restore-sfn-invalid")
		h := &sfnHarness{t: t, handle: r.Handle, s3: f.c, context: ctxObj}
		res := h.run(def, map[string]any{"request": req})
		if res.Status != "FAILED" || res.Error != restore.ErrorNames.Fatal[0] {
			t.Fatalf("execution %s with error %q, want FAILED with %s", res.Status, res.Error, restore.ErrorNames.Fatal[0])
		}
		// (The fail step opens the vault too, and fails the same way:
		// the execution fails with what Plan failed with either way.)
		if len(h.calls) != 2 || h.calls[0].State != stateRestorePlan || h.calls[0].ErrorType != restore.ErrorNames.Fatal[0] ||
			h.calls[1].State != stateRecordFailure || h.calls[1].Caught != restore.ErrorNames.Fatal[0] {
			t.Errorf("calls %+v: want Plan failing with %s, then the fail step with it", h.calls, restore.ErrorNames.Fatal[0])
		}
		if !res.has("StateCaught", stateRestorePlan, "") || res.has("StateRetried", stateRestorePlan, "") {
			t.Errorf("want Plan caught, not retried: %+v", res.Events)
		}
	})
}
