package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIJobShowByType: a job record says its type, and `job show`
// prints a backup job as a backup job (its recovery point, its totals),
// not as a restore.
func TestCLIJobShowByType(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt"), Body: strings.NewReader("a")}); err != nil {
		t.Fatal(err)
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	code, out, e := cli(t, srv, "--json", "backup", "--vault", vaultName, "--bucket", bucket)
	var job struct {
		Type            string `json:"type"`
		JobID           string `json:"jobId"`
		RecoveryPointID string `json:"recoveryPointId"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil || job.JobID == "" || job.Type != vault.JobTypeBackup {
		t.Fatalf("backup: %d %s %s", code, out, e)
	}
	code, out, e = cli(t, srv, "job", "show", "--vault", vaultName, job.JobID)
	if code != 0 || !strings.Contains(out, "backup job "+job.JobID+": COMPLETED") || !strings.Contains(out, job.RecoveryPointID) {
		t.Fatalf("job show of a backup job: %d\n%s%s", code, out, e)
	}
}
