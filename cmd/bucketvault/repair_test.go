package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIVaultRepair: `vault repair` puts back a damaged data object's
// good version, sets aside a run one of whose shards is lost (its
// segments are all there), lists nothing as lost, and leaves a vault that
// verifies and restores exactly; --dry-run changes nothing.
func TestCLIVaultRepair(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for i := range 6 {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(string(rune('a'+i)) + ".txt"), Body: strings.NewReader("bytes " + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	defer func(lag time.Duration, n int) { vault.CompactionLag, vault.RunShardRecords = lag, n }(vault.CompactionLag, vault.RunShardRecords)
	vault.CompactionLag, vault.RunShardRecords = 0, 2
	time.Sleep(5 * time.Millisecond)
	if st, err := v.Compact(ctx, bucket, time.Now()); err != nil || st.Shards != 3 {
		t.Fatalf("compact: %+v %v", st, err)
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil || len(idx.Runs) != 1 {
		t.Fatalf("index: %+v %v", idx, err)
	}
	run := idx.Runs[0]
	// Damage: a shard lost for good, a data object overwritten.
	shard := run.Shards[1].Key
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vaultName), Prefix: aws.String(shard)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(vaultName), Key: aws.String(shard), Body: strings.NewReader("truncated")}); err != nil {
		t.Fatal(err)
	}
	for _, o := range vs.Versions {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(vaultName), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	// The data of a.txt, whose shard (the first) is intact: verify reads
	// the run, so the data of keys in the lost shard is not reached.
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt")})
	if err != nil {
		t.Fatal(err)
	}
	dataKey := vault.DataKey(bucket, "a.txt", aws.ToString(head.VersionId), "", time.Time{})
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey)}); err != nil {
		t.Fatalf("the data of a.txt: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey), Body: strings.NewReader("other bytes")}); err != nil {
		t.Fatal(err)
	}

	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 || !strings.Contains(out, "lost") || !strings.Contains(out, "repairable") {
		t.Fatalf("verify of the damaged vault: %d\n%s", code, out)
	}
	code, out, e := cli(t, srv, "vault", "repair", "--vault", vaultName, "--dry-run")
	if code != 0 || !strings.Contains(out, "would repair") || !strings.Contains(out, "1 runs to read from their segments, 0 lost") {
		t.Fatalf("repair --dry-run: %d\n%s%s", code, out, e)
	}
	if code, _, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 {
		t.Fatalf("a dry run repaired the vault")
	}
	if code, out, e := cli(t, srv, "vault", "repair", "--vault", vaultName); code != 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("repair: %d\n%s%s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName, "--deep", "--against-source"); code != 0 {
		t.Fatalf("verify after repair: %d\n%s", code, out)
	}
	target := srv.BucketName(t)
	at := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
	if code, out, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %d %s %s", code, out, e)
	}
	if code, out, e := cli(t, srv, "restore", "--vault", vaultName, "--bucket", bucket, "--at", at.Format(time.RFC3339), "--target-bucket", target, "--create-bucket"); code != 0 || !strings.Contains(out, "restored 6 objects") {
		t.Fatalf("restore after repair: %d\n%s%s", code, out, e)
	}
	// The next compaction writes the run again, from the segments.
	if st, err := v.Compact(ctx, bucket, time.Now()); err != nil || st.Run == "" {
		t.Fatalf("compact after repair: %+v %v", st, err)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 0 {
		t.Fatalf("verify after the new compaction: %d\n%s", code, out)
	}
}
