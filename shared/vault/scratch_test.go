package vault

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestScratchIsNotPinned: in a vault with a compliance lock, a scratch
// file (a compaction's progress, a job's working file) carries its own
// governance retention of ScratchRetention, not the lock's minimum, while
// the vault's own records keep the minimum; in a vault without Object
// Lock scratch files are written as they are.
func TestScratchIsNotPinned(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	locked, err := Create(ctx, c, srv.NewObjectLockBucket(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := locked.SetLock(ctx, LockOptions{Mode: "compliance", MinRetentionDays: 30}, now); err != nil {
		t.Fatal(err)
	}
	plain, err := Create(ctx, c, srv.BucketName(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*Vault{locked, plain} {
		for _, k := range []string{JobScratchKey("job-1", "items.json"), compactProgressKey("src"), BucketKey("src")} {
			if err := v.PutJSON(ctx, k, map[string]string{"k": k}); err != nil {
				t.Fatalf("%s: write %s: %v", v.Bucket, k, err)
			}
		}
		if err := v.WriteRecords(ctx, "src", JobFragmentKey("job-1", 1), []Record{{Op: OpVersion, Key: "a", VersionID: "v1", Time: now}}, map[string]string{"a": "b"}); err != nil {
			t.Fatalf("%s: write a fragment: %v", v.Bucket, err)
		}
	}
	retention := func(k string) (string, time.Time) {
		r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(locked.Bucket), Key: aws.String(k)})
		if err != nil || r.Retention == nil {
			t.Fatalf("retention of %s: %+v %v", k, r, err)
		}
		return string(r.Retention.Mode), aws.ToTime(r.Retention.RetainUntilDate)
	}
	for _, k := range []string{JobScratchKey("job-1", "items.json"), compactProgressKey("src"), JobFragmentKey("job-1", 1)} {
		mode, until := retention(k)
		if mode != LockGovernance || until.After(now.Add(ScratchRetention+time.Minute)) || until.Before(now.Add(ScratchRetention-time.Minute)) {
			t.Errorf("scratch %s retained %s until %s, want GOVERNANCE for %s", k, mode, until, ScratchRetention)
		}
	}
	// The bucket's default retention holds the vault's records (a server
	// that applies none, as versitygw, cannot show it).
	if _, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(locked.Bucket), Key: aws.String(BucketKey("src"))}); s3x.Code(err) == "NoSuchObjectLockConfiguration" {
		t.Log("the server applies no default retention: the records' retention is not checked")
	} else if mode, until := retention(BucketKey("src")); mode != LockCompliance || until.Before(now.Add(29*24*time.Hour)) {
		t.Errorf("a vault record retained %s until %s, want the lock's COMPLIANCE 30 days", mode, until)
	}
	if got := plain.scratchState(); got != scratchPlain {
		t.Errorf("a vault without Object Lock: scratch state %d, want plain after the first write", got)
	}
}
