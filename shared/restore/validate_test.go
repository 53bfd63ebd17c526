package restore_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/restore"
)

func TestSampleSize(t *testing.T) {
	for _, c := range []struct {
		n                    int64
		fraction, confidence float64
		want                 int64
	}{
		{1 << 40, 0.001, 0.99, 4603}, // 0.1% corrupt found with 99%
		{1 << 40, 0.01, 0.95, 299},
		{1000, 0.001, 0.99, 1000}, // smaller than the sample: all
		{1 << 40, 0, 0, 1 << 40},  // no fraction: all
	} {
		if got := restore.SampleSize(c.n, c.fraction, c.confidence); got != c.want {
			t.Errorf("SampleSize(%d, %v, %v) = %d, want %d", c.n, c.fraction, c.confidence, got, c.want)
		}
	}
}

// TestValidateRestoredBucket: a restored bucket as the vault recorded it
// validates SUCCESSFUL, every object read whole; then a key with other
// bytes, one with other tags, one removed and one added are each named
// FAILED with why; a sample sized for 50% at 90% reads 4 of 6 objects,
// with the seed it was drawn with.
func TestValidateRestoredBucket(t *testing.T) {
	f := newJournalFixture(t)
	if _, err := f.c.PutObjectTagging(f.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(f.bucket), Key: aws.String("b/2"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("photos")}}}}); err == nil {
		t.Log("b/2 tagged after the time restored: the restore takes it as it was")
	}
	target := f.srv.BucketName(t)
	r := &restore.Restorer{S3: f.c}
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true}
	if rep, err := r.Run(f.ctx, req); err != nil || rep.Restored != 6 {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	val, err := r.Validate(f.ctx, restore.ValidateRequest{Restore: req, Target: target})
	if err != nil || val.Verdict != restore.ValidationSuccessful || val.Expected != 6 || val.Listed != 6 || !val.Whole || val.BytesChecked != 6 || val.Failed != 0 {
		t.Fatalf("validation of an exact restore: %+v %v", val, err)
	}
	// Damage the restored bucket four ways.
	f.put(t, target, "a/1", "BYTES OF a/1") // the same size, other bytes
	if _, err := f.c.PutObjectTagging(f.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(target), Key: aws.String("a/2"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(target), Key: aws.String("b/1")}); err != nil {
		t.Fatal(err)
	}
	f.put(t, target, "b/9", "never in the source")
	val, err = r.Validate(f.ctx, restore.ValidateRequest{Restore: req, Target: target})
	if err != nil || val.Verdict != restore.ValidationFailed {
		t.Fatalf("validation of a damaged restore: %+v %v", val, err)
	}
	why := map[string]string{}
	for _, fl := range val.Failures {
		why[fl.Key] = fl.Why
	}
	for key, want := range map[string]string{"a/1": "ETag", "a/2": "tags", "b/1": "missing", "b/9": "not in the restore"} {
		if !strings.Contains(why[key], want) {
			t.Errorf("%s: %q, want it to say %q", key, why[key], want)
		}
	}
	if val.Missing != 1 || val.Unexpected != 1 || val.ETagDiffers != 1 || val.Failed != 4 {
		t.Errorf("counts: %+v", val)
	}
	// A sample: for 50% corrupt at 90%, 4 objects of 6, drawn by seed.
	val, err = r.Validate(f.ctx, restore.ValidateRequest{Restore: req, Target: target, Fraction: 0.5, Confidence: 0.9, Seed: 7})
	if err != nil || val.SampleSize != 4 || val.Whole || val.Seed != 7 || val.Expected != 6 {
		t.Fatalf("sampled validation: %+v %v", val, err)
	}
}
