package vault

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestRetainPointLocksTheRecordedBytes: a data object rewritten after it
// was written (other bytes over it, by the vault owner's raw PutObject)
// keeps its good version as an older one. A point's seal extends the
// retention of the version bearing the recorded ETag, not of the current
// one: the lock stays on the bytes a restore will read.
func TestRetainPointLocksTheRecordedBytes(t *testing.T) {
	ctx, c, v, now := lockedVault(t)
	d := DataKey("src", "k", "v1", "", time.Time{})
	good, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader("the good bytes")})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader("other bytes")})
	if err != nil {
		t.Fatal(err)
	}
	f := &expireFixture{ctx: ctx, v: v, t0: now}
	deleteAt := now.Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	f.snapshot(t, "p", deleteAt, []Record{{Op: OpVersion, Key: "k", VersionID: "v1", Time: now, Data: d, DataETag: s3x.TrimETag(aws.ToString(good.ETag))}})
	sp, err := v.Snapshot(ctx, "src", "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RetainPoint(ctx, sp, now, 4); err != nil {
		t.Fatal(err)
	}
	until := func(version *string) time.Time {
		r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), VersionId: version})
		if err != nil || r.Retention == nil || r.Retention.RetainUntilDate == nil {
			t.Fatalf("retention of %s@%s: %+v %v", d, aws.ToString(version), r, err)
		}
		return *r.Retention.RetainUntilDate
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), VersionId: good.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	if got := until(good.VersionId); got.Before(deleteAt) || got.Sub(aws.ToTime(h.LastModified))%(24*time.Hour) != 0 {
		t.Errorf("the good version's retention is %s; want it extended past the point's DeleteAt %s, to a whole number of the lock's 1-day periods from its write (%s)",
			got, deleteAt, aws.ToTime(h.LastModified))
	}
	if got := until(bad.VersionId); !got.Before(deleteAt) {
		t.Errorf("the rewritten current version's retention was extended to %s: the lock moved off the recorded bytes", got)
	}
}

// lockedVault is a vault on an Object Lock bucket under a governance lock
// of 1 to 30 days set now.
func lockedVault(t *testing.T) (context.Context, *s3.Client, *Vault, time.Time) {
	t.Helper()
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := Create(ctx, c, srv.NewObjectLockBucket(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := v.SetLock(ctx, LockOptions{Mode: "governance", MinRetentionDays: 1, MaxRetentionDays: 30}, now); err != nil {
		t.Fatal(err)
	}
	return ctx, c, v, now
}
