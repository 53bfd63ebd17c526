package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// cli runs the CLI in-process against the local server.
func cli(t *testing.T, srv *locals3.Server, args ...string) (int, string, string) {
	t.Helper()
	for _, e := range srv.Env() {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"--endpoint-url", srv.Endpoint}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIEndToEnd(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for _, k := range []string{"a.txt", "dir/b c+d.txt", "dir/é.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("v1 " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %d %s", code, e)
	}
	if code, out, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket); code != 0 || !strings.Contains(out, "3 records added") {
		t.Fatalf("protect: %d %q %s", code, out, e)
	}
	at := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt")}); err != nil {
		t.Fatal(err)
	}
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %d %s", code, e)
	}
	target := srv.BucketName(t)
	code, out, e := cli(t, srv, "--json", "restore", "--vault", vaultName, "--bucket", bucket, "--at", at.Format(time.RFC3339),
		"--target-bucket", target, "--create-bucket", "--prefix", "dir/", "--key", "a.txt")
	if code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, e)
	}
	var rep restore.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("restore --json printed %q: %v", out, err)
	}
	if rep.State != restore.StateCompleted || rep.Restored != 3 || len(rep.Mapping) != 3 {
		t.Errorf("report %+v: want COMPLETED with 3 restored and mapped", rep)
	}
	if code, out, _ := cli(t, srv, "job", "show", "--vault", vaultName, rep.JobID); code != 0 || !strings.Contains(out, "COMPLETED") {
		t.Errorf("job show: %d %q", code, out)
	}
	if code, out, _ := cli(t, srv, "recovery-points", "--vault", vaultName); code != 0 || !strings.Contains(out, "CONTINUOUS  AVAILABLE") {
		t.Errorf("recovery-points: %d %q", code, out)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify: %d %q", code, out)
	}
	// Events from a file, JSON lines.
	f := t.TempDir() + "/events.jsonl"
	line := `{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3","account":"1","time":"2026-11-23T08:00:00Z","region":"us-east-1","resources":[],"detail":{"version":"0","bucket":{"name":"` + bucket + `"},"object":{"key":"dir/b+c%2Bd.txt","size":9},"request-id":"r","requester":"x","reason":"PutObject"}}`
	if err := os.WriteFile(f, []byte(line+"\n"+line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, e := cli(t, srv, "journal", "ingest", "--vault", vaultName, f); code != 0 || !strings.Contains(out, "journaled 2 changes") {
		t.Errorf("journal ingest: %d %q %s", code, out, e)
	}
}

func TestCLIErrors(t *testing.T) {
	srv := locals3.ForTest(t)
	plain := srv.NewBucket(t, false)
	full := srv.NewBucket(t, true)
	if _, err := srv.Client(context.Background()).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(full), Key: aws.String("user-data"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	vaultName := srv.BucketName(t)
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	tests := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"unknown flag", []string{"restore", "--nope"}, exitUsage, "unknown flag"},
		{"missing vault", []string{"reconcile", "--bucket", "photos"}, exitUsage, "--vault is required"},
		{"bad time", []string{"restore", "--vault", vaultName, "--bucket", "photos", "--at", "yesterday", "--target-bucket", "tgt"}, exitUsage, "RFC 3339"},
		{"future time", []string{"restore", "--vault", vaultName, "--bucket", "photos", "--at", "2999-01-01T00:00:00Z", "--target-bucket", "tgt"}, exitUsage, "in the future"},
		{"bad mode", []string{"restore", "--vault", vaultName, "--bucket", "photos", "--at", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--target-bucket", "tgt", "--mode", "nuke"}, exitUsage, "mode"},
		{"unversioned", []string{"protect", "--vault", vaultName, "--bucket", plain}, exitFailed, "versioning"},
		{"not a vault", []string{"verify", "--vault", plain}, exitFailed, "not a bucketvault vault"},
		{"vault name", []string{"verify", "--vault", "v"}, exitUsage, "3 to 63"},
		{"bucket name", []string{"reconcile", "--vault", vaultName, "--bucket", "UPPER"}, exitUsage, "upper-case"},
		{"target name", []string{"restore", "--vault", vaultName, "--bucket", "photos", "--at", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--target-bucket", "has space"}, exitUsage, "--target-bucket"},
		{"vault over a user's bucket", []string{"vault", "create", "--vault", full}, exitUsage, "holds objects and is not a vault"},
		{"vault window changed", []string{"vault", "create", "--vault", vaultName, "--retention-days", "7"}, exitUsage, "35-day point-in-time window"},
		{"vault window changed: how to change a bucket's", []string{"vault", "create", "--vault", vaultName, "--retention-days", "7"}, exitUsage,
			"`bucketvault protect --vault " + vaultName + " --bucket B --window-days 7` sets bucket B's to 7 days"},
		{"never protected", []string{"restore", "--vault", vaultName, "--bucket", "never-protected", "--at", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--target-bucket", "tgt-new", "--create-bucket"}, exitUsage, "holds nothing of s3://never-protected"},
		{"missing target", []string{"restore", "--vault", vaultName, "--bucket", "photos", "--at", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--target-bucket", "no-such-bucket-here"}, exitUsage, "--create-bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, e := cli(t, srv, tc.args...)
			if code != tc.code || !strings.Contains(e, tc.say) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", code, e, tc.code, tc.say)
			}
		})
	}
	// The refused restore of a never-protected bucket created no target.
	if _, err := srv.Client(context.Background()).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("tgt-new")}); err == nil {
		t.Errorf("a refused restore created its target bucket")
	}
}
