package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// TestCLIBackupAndRestoreSnapshot: backup with a plan's rule prints the
// recovery point, recovery-points lists it, a restore of it brings the
// bucket back, and bad flags are usage errors.
func TestCLIBackupAndRestoreSnapshot(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for _, k := range []string{"a.txt", "dir/b c+d.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("v1 " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %d %s", code, e)
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, []byte(`{"BackupPlanName": "p", "Rules": [{"RuleName": "Daily", "TargetBackupVaultName": "`+vaultName+`",
		"ScheduleExpression": "cron(0 5 ? * * *)", "Lifecycle": {"DeleteAfterDays": 35}, "RecoveryPointTags": {"k": "v"}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, e := cli(t, srv, "--json", "backup", "--bucket", bucket, "--plan", planFile, "--rule", "Daily")
	if code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, e)
	}
	var j snapshot.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("backup --json printed %q: %v", out, err)
	}
	if j.State != snapshot.StateCompleted || j.Vault != vaultName || j.Totals.Objects != 2 || j.CreatedBy.BackupRuleName != "Daily" {
		t.Fatalf("job %+v", j)
	}
	if j.ACLs == nil || *j.ACLs {
		t.Errorf("job ACLs %v: want decided, and off (the local server has no object ACLs)", j.ACLs)
	}
	// --acls asks for them whatever the bucket says; the text says so.
	if code, out, e := cli(t, srv, "backup", "--bucket", bucket, "--vault", vaultName, "--acls"); code != 0 ||
		!strings.Contains(out, "object ACLs: read with each new object") {
		t.Errorf("backup --acls: %d %q %s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "recovery-points", "--vault", vaultName, "--bucket", bucket); code != 0 ||
		!strings.Contains(out, j.RecoveryPointID+"  SNAPSHOT  AVAILABLE") || !strings.Contains(out, "2 objects") || !strings.Contains(out, "expires") {
		t.Errorf("recovery-points: %d %q", code, out)
	}
	target := srv.BucketName(t)
	// A dry run says what the restore would write, and writes nothing.
	if code, out, e := cli(t, srv, "restore", "--dry-run", "--vault", vaultName, "--bucket", bucket, "--recovery-point", j.RecoveryPointID,
		"--target-bucket", target, "--create-bucket"); code != 0 || !strings.Contains(out, "would restore 2 objects") || !strings.Contains(out, "dry run: nothing was written") {
		t.Fatalf("restore --dry-run: %d\n%s%s", code, out, e)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(target)}); err == nil {
		t.Fatal("restore --dry-run created the target bucket")
	}
	code, out, e = cli(t, srv, "--json", "restore", "--vault", vaultName, "--bucket", bucket, "--recovery-point", j.RecoveryPointID,
		"--target-bucket", target, "--create-bucket")
	var rep restore.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Restored != 2 {
		t.Fatalf("restore: %d %s %s", code, out, e)
	}
	for _, bad := range [][]string{
		{"backup", "--vault", vaultName},
		{"backup", "--vault", vaultName, "--bucket", bucket, "--plan", planFile},
		{"backup", "--bucket", bucket, "--plan", planFile, "--rule", "Weekly"},
		{"restore", "--vault", vaultName, "--bucket", bucket, "--target-bucket", target},
		{"restore", "--vault", vaultName, "--bucket", bucket, "--target-bucket", target, "--at", "2026-11-23T10:00:00Z", "--recovery-point", j.RecoveryPointID},
		{"restore", "--vault", vaultName, "--bucket", bucket, "--target-bucket", srv.BucketName(t), "--create-bucket", "--recovery-point", "snapshot-nope"},
		{"restore", "--dry-run", "--function", "restore", "--vault", vaultName, "--bucket", bucket, "--target-bucket", target, "--recovery-point", j.RecoveryPointID},
	} {
		if code, _, e := cli(t, srv, bad...); code != 2 || e == "" {
			t.Errorf("%v: exit %d %q; want 2 with a message", bad, code, e)
		}
	}
}

// TestInvokeSnapshotStep: invoke runs one step of the snapshot function on
// the events/ sample (bucket renamed), as the state machine would.
func TestInvokeSnapshotStep(t *testing.T) {
	srv := locals3.ForTest(t)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %d %s", code, e)
	}
	sample, err := os.ReadFile("../../events/snapshot-start.request.json")
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(sample, &req); err != nil {
		t.Fatal(err)
	}
	job := req["job"].(map[string]any)
	job["bucket"] = bucket
	job["scheduledAt"] = time.Now().UTC().Format(time.RFC3339)
	raw, _ := json.Marshal(req)
	file := filepath.Join(t.TempDir(), "start.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, e := cli(t, srv, "invoke", "--function", "snapshot", "--event", file, "--vault", vaultName)
	var got snapshot.Job
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.State != snapshot.StateRunning || got.JobID == "" || got.Vault != vaultName {
		t.Fatalf("invoke: %d %q %s", code, out, e)
	}
	if code, _, e := cli(t, srv, "invoke", "--function", "snapshot", "--event", "../../events/restore.request.json", "--vault", vaultName); code != 2 {
		t.Errorf("a restore request to the snapshot function: exit %d %s; want 2", code, e)
	}
}
