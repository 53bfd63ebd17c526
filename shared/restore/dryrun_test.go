package restore_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestDryRunWritesNothingAndSaysWhatARestoreWould: after changes to the
// bucket since T (one key overwritten, one deleted, one added), a dry run
// into the bucket itself, non-destructive and rollback, and into a new
// bucket, writes nothing (no object, no delete marker, no bucket, no job
// record) and counts exactly what the real restore then does.
func TestDryRunWritesNothingAndSaysWhatARestoreWould(t *testing.T) {
	f := newJournalFixture(t)
	f.put(t, f.bucket, "a/1", "changed since T")
	if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("b/2")}); err != nil {
		t.Fatal(err)
	}
	f.put(t, f.bucket, "new/1", "added since T")
	versions := func(bucket string) int {
		out, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Versions) + len(out.DeleteMarkers)
	}
	jobs := func() int {
		out, err := f.c.ListObjectsV2(f.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.v.Bucket), Prefix: aws.String("jobs/")})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents)
	}
	r := &restore.Restorer{S3: f.c}
	for _, c := range []struct {
		mode                         string
		restored, identical, markers int64
	}{
		{restore.NonDestructive, 2, 4, 0}, // a/1 and b/2 written; a/2, a/3, b/1, c/1 identical
		{restore.Rollback, 2, 4, 1},       // and new/1 gets a delete marker
	} {
		t.Run(c.mode, func(t *testing.T) {
			before, jobsBefore := versions(f.bucket), jobs()
			req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.bucket, Mode: c.mode, DryRun: true}
			dry, err := r.Run(f.ctx, req)
			if err != nil || dry.State != restore.StateCompleted || !strings.Contains(dry.StatusMessage, "dry run") {
				t.Fatalf("dry run: %+v %v", dry, err)
			}
			if versions(f.bucket) != before || jobs() != jobsBefore {
				t.Fatalf("a dry run wrote: %d versions in the bucket (was %d), %d job objects (was %d)", versions(f.bucket), before, jobs(), jobsBefore)
			}
			if dry.Restored != c.restored || dry.Identical != c.identical || dry.DeleteMarkers != c.markers || dry.Bytes != int64(len("bytes of a/1")+len("bytes of b/2")) {
				t.Fatalf("dry run says restored %d (%d bytes), identical %d, markers %d; want %d, %d, %d", dry.Restored, dry.Bytes, dry.Identical, dry.DeleteMarkers, c.restored, c.identical, c.markers)
			}
			for _, m := range dry.Mapping {
				if m.Action == restore.ActionRestored || m.Action == restore.ActionDeleteMarker || m.RestoredVersion != "" && m.Action != restore.ActionIdentical {
					t.Fatalf("a dry run's mapping says it wrote: %+v", m)
				}
			}
			if !strings.Contains(dry.Text(), "would restore 2 objects") {
				t.Fatalf("text:\n%s", dry.Text())
			}
			// The real one does what the dry run said; then the dry run
			// finds everything identical.
			req.DryRun = false
			real, err := r.Run(f.ctx, req)
			if err != nil || real.Restored != dry.Restored || real.Identical != dry.Identical || real.DeleteMarkers != dry.DeleteMarkers || real.Bytes != dry.Bytes {
				t.Fatalf("the restore did %+v (%v); the dry run said %+v", real, err, dry)
			}
			req.DryRun = true
			again, err := r.Run(f.ctx, req)
			if err != nil || again.Restored != 0 || again.DeleteMarkers != 0 {
				t.Fatalf("a dry run after the restore: %+v %v", again, err)
			}
			// Put the bucket back as it was for the next mode.
			f.put(t, f.bucket, "a/1", "changed since T")
			if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("b/2")}); err != nil {
				t.Fatal(err)
			}
			f.put(t, f.bucket, "new/1", "added since T")
		})
	}
	// Into a new bucket: every key would be written, and no bucket is made.
	target := f.srv.BucketName(t)
	dry, err := r.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true, DryRun: true, Mode: restore.Rollback})
	if err != nil || dry.Restored != 6 || dry.DeleteMarkers != 0 {
		t.Fatalf("dry run into a new bucket: %+v %v", dry, err)
	}
	if _, err := f.c.HeadBucket(f.ctx, &s3.HeadBucketInput{Bucket: aws.String(target)}); !s3x.IsNotFound(err) && !s3x.IsNoSuchBucket(err) {
		t.Fatalf("a dry run made the target bucket: %v", err)
	}
	if got, _ := inspect.Capture(f.ctx, f.c, f.bucket, "new/"); len(got) != 1 {
		t.Fatalf("the bucket changed: %v", got)
	}
}
