package main

import (
	"context"
	"encoding/json"
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
