package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// TestVaultLock: a compliance lock can be changed during its cool-off
// (which starts again) and never after; it bounds retentions (CheckRetention names the field);
// a recovery point's seal retains its manifest and data until DeleteAt;
// expiry does not delete a point before the lock's minimum, whatever its
// DeleteAt says.
func TestVaultLock(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := Create(ctx, c, srv.NewObjectLockBucket(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l, err := v.SetLock(ctx, LockOptions{Mode: "compliance", MinRetentionDays: 2, MaxRetentionDays: 30}, now)
	if err != nil || l.ChangeableForDays != MinChangeableForDays || l.LockDate == nil {
		t.Fatalf("lock: %+v %v", l, err)
	}
	if _, err := v.SetLock(ctx, LockOptions{Mode: "compliance", MinRetentionDays: 2, MaxRetentionDays: 40}, now.Add(48*time.Hour)); err != nil {
		t.Fatalf("a change during the cool-off: %v", err)
	}
	var immutable *LockImmutableError
	// A change sets the cool-off again from when it is made (AWS Backup's
	// PutBackupVaultLockConfiguration does likewise).
	if _, err := v.SetLock(ctx, LockOptions{Mode: "governance", MinRetentionDays: 1}, now.Add(48*time.Hour+4*24*time.Hour)); !errors.As(err, &immutable) {
		t.Fatalf("a change after the cool-off: %v, want LockImmutableError", err)
	}
	var input *LockInputError
	for _, days := range []int{0, 1, 41} {
		if err := v.CheckRetention("Lifecycle.DeleteAfterDays", days); !errors.As(err, &input) || input.Field != "Lifecycle.DeleteAfterDays" {
			t.Errorf("retention %d days: %v, want a LockInputError naming the field", days, err)
		}
	}
	if err := v.CheckRetention("Lifecycle.DeleteAfterDays", 7); err != nil {
		t.Errorf("retention 7 days: %v", err)
	}

	// A point referencing a data object, DeleteAt in 7 days.
	d := DataKey("src", "k", "v1", "", time.Time{})
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader("bytes")}); err != nil {
		t.Fatal(err)
	}
	f := &expireFixture{ctx: ctx, v: v, t0: now}
	deleteAt := now.Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	f.snapshot(t, "p", deleteAt, []Record{{Op: OpVersion, Key: "k", VersionID: "v1", Time: now, Data: d}})
	sp, err := v.Snapshot(ctx, "src", "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RetainPoint(ctx, sp, now, 4); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{d, sp.Shards[0].Key, SnapshotKey("src", "p")} {
		r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(k)})
		if err != nil || r.Retention == nil || r.Retention.RetainUntilDate.Before(deleteAt) || string(r.Retention.Mode) != LockCompliance {
			t.Errorf("retention of %s: %+v %v; want COMPLIANCE until %s", k, r, err, deleteAt)
		}
	}
	// Expiry as of after DeleteAt, but before the lock's minimum from the
	// point's creation, keeps it.
	sp.CreationDate = now
	sp.CalculatedLifecycle.DeleteAt = aws.Time(now.Add(time.Hour))
	if err := v.PutJSON(ctx, SnapshotKey("src", "p"), sp); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Expire(ctx, ExpireOptions{Now: now.Add(24 * time.Hour), DryRun: true})
	if err != nil || len(rep.Expired) != 0 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "minimum retention") {
		t.Fatalf("expiry before the lock's minimum: %+v %v", rep, err)
	}
}
