package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
