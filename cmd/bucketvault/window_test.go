package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIWindowAndFloor: a bucket's point-in-time window comes from
// protect --window-days or a plan's continuous rule, out-of-range windows
// are usage errors, a restore before the window is refused naming it, and
// once the journal is folded a restore before the floor is refused too,
// while one at the floor restores exactly.
func TestCLIWindowAndFloor(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	put := func(key, body string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("a.txt", "a1")
	put("b.txt", "b1")
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	for _, bad := range [][]string{
		{"--window-days", "0"},
		{"--window-days", "3651"},
		{"--window-days", "3", "--plan", "../../testdata/plans/continuous-daily-35d.json"},
		{"--rule", "x"},
		{"--plan", "../../testdata/plans/guide-daily-cold30-delete35.json"},
		{"--plan", "../../testdata/plans/continuous-daily-35d.json", "--rule", "nope"},
	} {
		args := append([]string{"protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"}, bad...)
		if code, _, e := cli(t, srv, args...); code != exitUsage {
			t.Errorf("protect %v: exit %d (%s), want %d", bad, code, e, exitUsage)
		}
	}
	code, out, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none", "--plan", "../../testdata/plans/continuous-daily-35d.json")
	if code != 0 || !strings.Contains(out, "window: 35 days") {
		t.Fatalf("protect --plan: %d %s %s", code, out, e)
	}
	code, out, e = cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none", "--window-days", "3")
	if code != 0 || !strings.Contains(out, "window: 3 days") {
		t.Fatalf("protect --window-days 3: %d %s %s", code, out, e)
	}
	// Protecting again without a window keeps the bucket's.
	if code, out, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 || !strings.Contains(out, "window: 3 days") {
		t.Fatalf("protect again: %d %s %s", code, out, e)
	}
	restoreAt := func(at time.Time) (int, string, string) {
		return cli(t, srv, "restore", "--vault", vaultName, "--bucket", bucket, "--at", at.UTC().Format(time.RFC3339),
			"--target-bucket", srv.BucketName(t), "--create-bucket")
	}
	if code, out, e := restoreAt(time.Now().AddDate(0, 0, -4)); code != exitUsage || !strings.Contains(out+e, "3 days") {
		t.Fatalf("restore before the window: %d %s %s", code, out, e)
	}

	// Fold the journal at a floor after the first writes, then change a
	// key: a restore before the floor is refused, one at it is exact.
	time.Sleep(1100 * time.Millisecond)
	floor := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	put("a.txt", "a2")
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %s", e)
	}
	defer func(lag time.Duration) { vault.CompactionLag = lag }(vault.CompactionLag)
	vault.CompactionLag = 0
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Fold(ctx, bucket, time.Now(), floor)
	if err != nil || st.Floor == nil || !st.Floor.Equal(floor) {
		t.Fatalf("fold: %+v %v", st, err)
	}
	if code, out, e := restoreAt(floor.Add(-time.Second)); code != exitUsage || !strings.Contains(out+e, "folded at "+floor.Format(time.RFC3339)) {
		t.Fatalf("restore before the floor: %d %s %s", code, out, e)
	}
	target := srv.BucketName(t)
	if code, out, e := cli(t, srv, "restore", "--vault", vaultName, "--bucket", bucket, "--at", floor.Format(time.RFC3339),
		"--target-bucket", target, "--create-bucket"); code != 0 || !strings.Contains(out, "restored 2 objects") {
		t.Fatalf("restore at the floor: %d %s %s", code, out, e)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(target), Key: aws.String("a.txt")})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	if b, err := io.ReadAll(got.Body); err != nil || string(b) != "a1" {
		t.Fatalf("a.txt at the floor: %q %v", b, err)
	}
	if code, out, _ := cli(t, srv, "--json", "recovery-points", "--vault", vaultName, "--bucket", bucket); code != 0 || !strings.Contains(out, `"earliestRestorableTime": "`+floor.Format(time.RFC3339)) {
		t.Fatalf("recovery-points after the fold:\n%s", out)
	}
}
