package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// fakeLambda stands in for the Lambda service (there is none locally): it
// accepts asynchronous invocations of one function and runs the restore
// function's handler on them, against the local server, as Lambda would.
type fakeLambda struct {
	t        *testing.T
	function string
	run      func(restore.Request)
	mu       sync.Mutex
	got      []restore.Request
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/2015-03-31/functions/"+f.function+"/invocations" {
		http.Error(w, `{"Type":"User","message":"Function not found"}`, http.StatusNotFound)
		return
	}
	if it := r.Header.Get("X-Amz-Invocation-Type"); it != "Event" {
		f.t.Errorf("invocation type %q, want Event", it)
	}
	var req restore.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, req)
	f.mu.Unlock()
	go f.run(req)
	w.WriteHeader(http.StatusAccepted)
}

// TestRestoreThroughTheFunction: restore --function starts the deployed
// restore function asynchronously with a job id it chose, follows the
// job's record in the vault and prints the report when it ends.
func TestRestoreThroughTheFunction(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b/c"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	j, err := (&snapshot.Engine{S3: c}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLambda{t: t, function: "bv-restore", run: func(req restore.Request) {
		time.Sleep(100 * time.Millisecond) // the job is RUNNING a while
		if _, err := (&restore.Restorer{S3: c}).Run(ctx, req); err != nil {
			t.Errorf("restore function: %v", err)
		}
	}}
	lambdaSrv := httptest.NewServer(fl)
	defer lambdaSrv.Close()
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", lambdaSrv.URL)
	defer func(d time.Duration) { followEvery = d }(followEvery)
	followEvery = 20 * time.Millisecond

	target := srv.BucketName(t)
	code, out, e := cli(t, srv, "--json", "restore", "--function", "bv-restore", "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", target, "--create-bucket")
	var rep restore.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("restore --function: %d %q %s", code, out, e)
	}
	if len(fl.got) != 1 || rep.JobID != fl.got[0].JobID || rep.State != restore.StateCompleted || rep.Restored != 2 {
		t.Fatalf("report %+v; the function got %+v", rep, fl.got)
	}
	// A bad request fails before anything is started; an unknown function
	// fails with Lambda's answer.
	if code, _, e := cli(t, srv, "restore", "--function", "bv-restore", "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", target, "--mode", "sideways"); code != 2 || !strings.Contains(e, "mode") {
		t.Errorf("bad mode: %d %s", code, e)
	}
	if code, _, e := cli(t, srv, "restore", "--function", "nope", "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", srv.BucketName(t), "--create-bucket"); code != 1 || !strings.Contains(e, "nope") {
		t.Errorf("unknown function: %d %s", code, e)
	}
	if len(fl.got) != 1 {
		t.Errorf("the function was started %d times, want once", len(fl.got))
	}
}

// fakeStepFunctions stands in for Step Functions (there is none locally):
// StartExecution runs the restore state machine's steps as an execution
// runs them (restore.LocalExecution) against the local server, and
// DescribeExecution says where it is.
type fakeStepFunctions struct {
	t       *testing.T
	machine string
	r       *restore.Restorer
	mu      sync.Mutex
	execs   map[string]*fakeExecution
	polls   int
}

type fakeExecution struct {
	status, errName, cause string
	started                time.Time
}

func (f *fakeStepFunctions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Header.Get("X-Amz-Target") {
	case "AWSStepFunctions.StartExecution":
		if body["stateMachineArn"] != f.machine {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"StateMachineDoesNotExist","message":"State Machine Does Not Exist: '` + body["stateMachineArn"] + `'"}`))
			return
		}
		var job restore.Job
		if err := json.Unmarshal([]byte(body["input"]), &job); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		arn := strings.Replace(f.machine, ":stateMachine:", ":execution:", 1) + ":" + body["name"]
		ex := &fakeExecution{status: "RUNNING", started: time.Now()}
		f.execs[arn] = ex
		go func() {
			le := &restore.LocalExecution{Restorer: f.r, Execution: arn}
			_, err := le.Run(context.Background(), job.Request)
			f.mu.Lock()
			defer f.mu.Unlock()
			ex.status = "SUCCEEDED"
			var se *restore.StepError
			if errors.As(err, &se) {
				ex.status, ex.errName, ex.cause = "FAILED", se.Name, `{"errorType":"`+se.Name+`","errorMessage":`+strconv.Quote(se.Message)+`}`
			}
		}()
		_ = json.NewEncoder(w).Encode(map[string]any{"executionArn": arn, "startDate": float64(ex.started.Unix())})
	case "AWSStepFunctions.DescribeExecution":
		f.polls++
		ex, ok := f.execs[body["executionArn"]]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"ExecutionDoesNotExist","message":"Execution Does Not Exist"}`))
			return
		}
		out := map[string]any{"executionArn": body["executionArn"], "stateMachineArn": f.machine, "status": ex.status, "startDate": float64(ex.started.Unix())}
		if ex.errName != "" {
			out["error"], out["cause"] = ex.errName, ex.cause
		}
		_ = json.NewEncoder(w).Encode(out)
	default:
		http.Error(w, "unexpected "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
	}
}

// TestRestoreThroughTheStateMachine: restore --state-machine starts the
// restore state machine with the request as its input, follows the
// execution (polling less often as it goes) and prints the job's report;
// a request the plan refuses is a usage error naming why; a job run again
// by its id is a new execution that finds it done.
func TestRestoreThroughTheStateMachine(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b/c", "b/d"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	j, err := (&snapshot.Engine{S3: c}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	machine := "arn:aws:states:us-east-1:123456789012:stateMachine:bucketvault-restore"
	fs := &fakeStepFunctions{t: t, machine: machine, r: &restore.Restorer{S3: c}, execs: map[string]*fakeExecution{}}
	sfnSrv := httptest.NewServer(fs)
	defer sfnSrv.Close()
	t.Setenv("AWS_ENDPOINT_URL_SFN", sfnSrv.URL)
	defer func(a, b time.Duration) { pollFirst, pollMost = a, b }(pollFirst, pollMost)
	pollFirst, pollMost = 10*time.Millisecond, 40*time.Millisecond

	target := srv.BucketName(t)
	args := []string{"--json", "restore", "--state-machine", machine, "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", target, "--create-bucket", "--job-id", "restore-through-sfn"}
	code, out, e := cli(t, srv, args...)
	var rep restore.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("restore --state-machine: %d %q %s", code, out, e)
	}
	if rep.JobID != "restore-through-sfn" || rep.State != restore.StateCompleted || rep.Restored != 3 || rep.Plan == nil || !rep.Plan.Done || rep.Runner == nil || rep.Runner.Execution == "" {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(e, "execution arn:aws:states:us-east-1:123456789012:execution:bucketvault-restore:restore-through-sfn-") {
		t.Errorf("stderr does not name the execution: %s", e)
	}
	// Run again: a new execution, which finds the job COMPLETED.
	if code, out, e := cli(t, srv, args...); code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Restored != 3 || len(fs.execs) != 2 {
		t.Fatalf("run again: %d %q %s (%d executions)", code, out, e, len(fs.execs))
	}
	// What the plan refuses comes back as a usage error, with the reason.
	code, _, e = cli(t, srv, "restore", "--state-machine", machine, "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", "no-such-point", "--target-bucket", srv.BucketName(t), "--create-bucket")
	if code != 2 || !strings.Contains(e, "no snapshot recovery point") {
		t.Errorf("refused plan: %d %s", code, e)
	}
	// Flags that cannot go together, and an unknown state machine.
	if code, _, e := cli(t, srv, "restore", "--state-machine", machine, "--dry-run", "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", target); code != 2 || !strings.Contains(e, "--state-machine") {
		t.Errorf("--dry-run with --state-machine: %d %s", code, e)
	}
	if code, _, e := cli(t, srv, "restore", "--state-machine", machine+"-nope", "--vault", v.Bucket, "--bucket", bucket,
		"--recovery-point", j.RecoveryPointID, "--target-bucket", srv.BucketName(t), "--create-bucket"); code != 1 || !strings.Contains(e, "StateMachineDoesNotExist") {
		t.Errorf("unknown state machine: %d %s", code, e)
	}
}
