package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIExpire: `bucketvault expire` refuses a bad --now (usage), a dry
// run deletes nothing and says what a run deletes, the run folds the
// journal and collects the superseded version's data, `vault show` shows
// the floor and nothing awaiting collection, and a second run does
// nothing.
func TestCLIExpire(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	defer func(g, l time.Duration) { vault.GCGrace, vault.CompactionLag = g, l }(vault.GCGrace, vault.CompactionLag)
	vault.GCGrace, vault.CompactionLag = 0, 0
	put := func(key, body string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("a.txt", "first a")
	put("b.txt", "b")
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none", "--window-days", "1"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	time.Sleep(1100 * time.Millisecond)
	put("a.txt", "second a") // supersedes the first
	time.Sleep(1100 * time.Millisecond)
	floor := time.Now().UTC().Truncate(time.Second)
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %s", e)
	}
	if code, _, e := cli(t, srv, "compact", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("compact: %s", e)
	}
	now := floor.Add(24 * time.Hour).Format(time.RFC3339)
	if code, _, e := cli(t, srv, "expire", "--vault", vaultName, "--now", "tomorrow"); code != exitUsage || !strings.Contains(e, "RFC 3339") {
		t.Fatalf("expire --now tomorrow: %d %s", code, e)
	}
	var dry, run vault.ExpireReport
	code, out, e := cli(t, srv, "--json", "expire", "--vault", vaultName, "--now", now, "--dry-run")
	if code != 0 || json.Unmarshal([]byte(out), &dry) != nil {
		t.Fatalf("expire --dry-run: %d %s %s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "expire", "--vault", vaultName, "--now", now, "--dry-run"); code != 0 || !strings.Contains(out, "would fold at "+floor.Format(time.RFC3339)) || !strings.Contains(out, "data objects: would delete 1") {
		t.Fatalf("expire --dry-run text:\n%s", out)
	}
	code, out, e = cli(t, srv, "--json", "expire", "--vault", vaultName, "--now", now)
	if code != 0 || json.Unmarshal([]byte(out), &run) != nil {
		t.Fatalf("expire: %d %s %s", code, out, e)
	}
	if run.Data.Objects != 1 || dry.Data != run.Data || len(run.Folds) != 1 || !run.Folds[0].Floor.Equal(floor) {
		t.Fatalf("expire deleted %+v, folds %+v; the dry run said %+v", run.Data, run.Folds, dry.Data)
	}
	var s vaultShow
	code, out, e = cli(t, srv, "--json", "vault", "show", "--vault", vaultName)
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("vault show: %d %s %s", code, out, e)
	}
	if len(s.Buckets) != 1 || !s.Buckets[0].Window.Floor.Equal(floor) || s.Buckets[0].WindowDays != 1 || s.Usage == nil ||
		s.Usage.Live != 2 || s.Usage.AwaitingData.Objects != 0 {
		t.Fatalf("vault show after expire: %s", out)
	}
	if code, out, _ := cli(t, srv, "expire", "--vault", vaultName, "--now", now); code != 0 || !strings.Contains(out, "data objects: deleted 0") {
		t.Fatalf("a second expire:\n%s", out)
	}
	// The function, as Lambda runs it, with the sample event (a dry run).
	var fn vault.ExpireReport
	code, out, e = cli(t, srv, "invoke", "--function", "expire", "--event", "../../events/expire.request.json", "--vault", vaultName)
	if code != 0 || json.Unmarshal([]byte(out), &fn) != nil || !fn.DryRun || fn.Vault != vaultName {
		t.Fatalf("invoke expire: %d %s %s", code, out, e)
	}
}

// TestCLIColdTier: a backup with the plan's cold rule is listed as cold
// from its MoveToColdStorageAt; `expire --now` past it moves the point to
// COLD (recovery-points says so) and, a day later, tags its data for the
// vault's cold lifecycle rule; `vault show` counts it; a restore from the
// COLD point gives back the source's tags; a bad --archive-tier or
// --archive-wait is a usage error.
func TestCLIColdTier(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	defer func(g time.Duration) { vault.GCGrace = g }(vault.GCGrace)
	vault.GCGrace = 0
	for i, tags := range []string{"team=a", ""} {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("k%d", i)), Body: strings.NewReader(strings.Repeat("x", 300<<10))}
		if tags != "" {
			in.Tagging = aws.String(tags)
		}
		if _, err := c.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	var job struct {
		RecoveryPointID string `json:"recoveryPointId"`
	}
	code, out, e := cli(t, srv, "--json", "backup", "--vault", vaultName, "--bucket", bucket, "--plan", "../../testdata/plans/hourly-rate-cold-storage.json", "--rule", "hourly")
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil || job.RecoveryPointID == "" {
		t.Fatalf("backup: %d %s %s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "recovery-points", "--vault", vaultName); code != 0 || !strings.Contains(out, "cold from ") {
		t.Fatalf("recovery-points before:\n%s", out)
	}
	day := func(n int) string { return time.Now().UTC().AddDate(0, 0, n).Format(time.RFC3339) }
	if code, out, e := cli(t, srv, "expire", "--vault", vaultName, "--now", day(31)); code != 0 || !strings.Contains(out, "moved to cold storage") {
		t.Fatalf("expire day 31: %d\n%s%s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "recovery-points", "--vault", vaultName); code != 0 || !strings.Contains(out, "COLD since ") {
		t.Fatalf("recovery-points after:\n%s", out)
	}
	var rep vault.ExpireReport
	code, out, e = cli(t, srv, "--json", "expire", "--vault", vaultName, "--now", day(32))
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Cold.Tagged != 2 {
		t.Fatalf("expire day 32: %d %s %s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "vault", "show", "--vault", vaultName); code != 0 || !strings.Contains(out, "1 snapshot recovery points, 1 of them COLD") {
		t.Fatalf("vault show:\n%s", out)
	}
	target := srv.BucketName(t)
	for _, bad := range [][]string{{"--archive-tier", "Expedited"}, {"--archive-wait", "-1h"}} {
		args := append([]string{"restore", "--vault", vaultName, "--bucket", bucket, "--recovery-point", job.RecoveryPointID, "--target-bucket", target, "--create-bucket"}, bad...)
		if code, _, e := cli(t, srv, args...); code != exitUsage {
			t.Fatalf("restore %v: exit %d, want %d: %s", bad, code, exitUsage, e)
		}
	}
	if code, out, e := cli(t, srv, "restore", "--vault", vaultName, "--bucket", bucket, "--recovery-point", job.RecoveryPointID, "--target-bucket", target, "--create-bucket"); code != 0 {
		t.Fatalf("restore: %d\n%s%s", code, out, e)
	}
	tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(target), Key: aws.String("k0")})
	if err != nil || len(tg.TagSet) != 1 || aws.ToString(tg.TagSet[0].Key) != "team" {
		t.Fatalf("restored k0's tags: %v %v", tg, err)
	}
}
