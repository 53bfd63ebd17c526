package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLILockedVault: `vault lock` refuses bad settings (usage, naming
// the flag) and a vault without S3 Object Lock; a locked vault refuses a
// window or a backup whose retention falls outside the lock, naming the
// field; expiry as of a later day cannot delete what the lock retains
// (the engine reports it retained), nor can the vault owner's raw S3
// calls, bypass included; and a compliance retention cannot be
// shortened.
func TestCLILockedVault(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName, plainVault := srv.BucketName(t), srv.BucketName(t)
	defer func(g, l time.Duration) { vault.GCGrace, vault.CompactionLag = g, l }(vault.GCGrace, vault.CompactionLag)
	vault.GCGrace, vault.CompactionLag = 0, 0
	put := func(key, body string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("a.txt", "first a")
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName, "--object-lock"); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", plainVault); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none", "--window-days", "1"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	lock := func(v string, args ...string) (int, string, string) {
		return cli(t, srv, append([]string{"vault", "lock", "--vault", v}, args...)...)
	}
	for _, bad := range [][]string{
		{"--mode", "forever", "--min-retention-days", "1"},
		{"--mode", "compliance", "--min-retention-days", "0"},
		{"--mode", "compliance", "--min-retention-days", "6", "--max-retention-days", "5"},
		{"--mode", "governance", "--min-retention-days", "1", "--changeable-for-days", "3"},
		{"--mode", "compliance", "--min-retention-days", "1", "--changeable-for-days", "2"},
	} {
		if code, _, e := lock(vaultName, bad...); code != exitUsage || !strings.Contains(e, "--") {
			t.Errorf("vault lock %v: exit %d (%s), want %d naming the flag", bad, code, e, exitUsage)
		}
	}
	if code, _, e := lock(plainVault, "--mode", "compliance", "--min-retention-days", "1"); code != exitFailed || !strings.Contains(e, "--object-lock") {
		t.Errorf("vault lock without S3 Object Lock: exit %d (%s)", code, e)
	}
	code, out, e := lock(vaultName, "--mode", "compliance", "--min-retention-days", "1", "--max-retention-days", "10")
	if code != 0 || !strings.Contains(out, "can be changed or removed until") {
		t.Fatalf("vault lock: %d %s %s", code, out, e)
	}
	other := srv.NewBucket(t, true)
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", other, "--events", "none", "--window-days", "20"); code != exitUsage || !strings.Contains(e, "window-days") {
		t.Errorf("protect with a 20-day window in a vault locked to 10: exit %d (%s)", code, e)
	}
	if code, _, e := cli(t, srv, "backup", "--vault", vaultName, "--bucket", bucket); code == 0 || !strings.Contains(e, "Lifecycle.DeleteAfterDays") {
		t.Errorf("a backup kept forever in a vault locked to at most 10 days: exit %d (%s)", code, e)
	}
	// plan validate --check-vaults checks each rule against its vault's lock.
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, []byte(`{"BackupPlanName":"locked","Rules":[
		{"RuleName":"ok","TargetBackupVaultName":"`+vaultName+`","ScheduleExpression":"cron(0 5 ? * * *)","Lifecycle":{"DeleteAfterDays":7}},
		{"RuleName":"long","TargetBackupVaultName":"`+vaultName+`","ScheduleExpression":"cron(0 6 ? * * *)","Lifecycle":{"DeleteAfterDays":35}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, e := cli(t, srv, "plan", "validate", planFile, "--check-vaults"); code != exitUsage || !strings.Contains(e, "Rules[1].Lifecycle.DeleteAfterDays") || strings.Contains(e, "Rules[0]") {
		t.Errorf("plan validate against the lock: exit %d (%s), want Rules[1].Lifecycle.DeleteAfterDays named, Rules[0] not", code, e)
	}

	// A version superseded before the floor: expiry drops it from the
	// journal, but the lock retains its data.
	time.Sleep(1100 * time.Millisecond)
	put("a.txt", "second a")
	time.Sleep(1100 * time.Millisecond)
	floor := time.Now().UTC().Truncate(time.Second)
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %s", e)
	}
	if code, _, e := cli(t, srv, "compact", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("compact: %s", e)
	}
	code, out, e = cli(t, srv, "expire", "--vault", vaultName, "--now", floor.Add(24*time.Hour).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "kept by S3 Object Lock") {
		t.Fatalf("expire in a locked vault: %d\n%s%s", code, out, e)
	}
	versions, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vaultName), Prefix: aws.String("data/")})
	if err != nil {
		t.Fatal(err)
	}
	var data []types.ObjectVersion
	for _, o := range versions.Versions {
		if aws.ToString(o.Key) != vault.ProbeKey(vaultName) {
			data = append(data, o)
		}
	}
	if len(data) != 2 {
		t.Fatalf("data versions after expiry: %d, want both versions of a.txt kept", len(data))
	}
	// The vault owner's raw calls cannot delete or shorten either.
	for _, o := range data {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(vaultName), Key: o.Key, VersionId: o.VersionId, BypassGovernanceRetention: aws.Bool(true)})
		if err == nil {
			t.Errorf("raw DeleteObject of %s@%s in a compliance-locked vault succeeded", aws.ToString(o.Key), aws.ToString(o.VersionId))
		}
		_, err = c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(vaultName), Key: o.Key, VersionId: o.VersionId,
			BypassGovernanceRetention: aws.Bool(true),
			Retention:                 &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(time.Now().Add(time.Minute))}})
		if err == nil {
			t.Errorf("shortening the compliance retention of %s@%s succeeded", aws.ToString(o.Key), aws.ToString(o.VersionId))
		}
	}
	if code, out, _ := cli(t, srv, "vault", "show", "--vault", vaultName, "--no-usage"); code != 0 || !strings.Contains(out, "lock: COMPLIANCE, retention 1 to 10 days") {
		t.Errorf("vault show of a locked vault:\n%s", out)
	}
}
