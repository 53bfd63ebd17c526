package restore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestModesIntoTheOriginalBucket restores into the bucket itself:
// non-destructive leaves a key created after T; rollback puts a delete
// marker on it and keeps its version.
func TestModesIntoTheOriginalBucket(t *testing.T) {
	for _, mode := range []string{restore.NonDestructive, restore.Rollback} {
		t.Run(mode, func(t *testing.T) {
			srv := locals3.ForTest(t)
			srv.RequireExactHistory(t)
			ctx := context.Background()
			c := srv.Client(ctx)
			bucket := srv.NewBucket(t, true)
			v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			put := func(k, body string) {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(body)}); err != nil {
					t.Fatal(err)
				}
			}
			put("keep", "same")
			put("a", "old a")
			put("b", "old b")
			put("other/x", "outside the selection")
			before, err := inspect.Capture(ctx, c, bucket, "")
			if err != nil {
				t.Fatal(err)
			}
			// The initial backup, as protect runs it: versions are journaled
			// while they are current (versitygw reports a noncurrent
			// version's LastModified as the time it was superseded).
			j := &journal.Journal{Vault: v, S3: c}
			if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
				t.Fatal(err)
			}
			at := time.Now().UTC().Truncate(time.Second)
			time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
			put("a", "new a")
			put("c", "created after")
			put("other/x", "changed, outside the selection")
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("b")}); err != nil {
				t.Fatal(err)
			}
			if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
				t.Fatal(err)
			}
			r := &restore.Restorer{S3: c}
			rep, err := r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: bucket, Mode: mode,
				Keys: []string{"keep", "a", "b", "c", "never-written"}})
			if err != nil || rep.State != restore.StateCompleted {
				t.Fatalf("restore: %v\n%s", err, rep.Text())
			}
			if len(rep.Unknown) != 1 || rep.Unknown[0] != "never-written" {
				t.Errorf("unknown keys %v, want [never-written]", rep.Unknown)
			}
			if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "not protected") {
				t.Errorf("warnings %v, want one saying the bucket is not protected", rep.Warnings)
			}
			if rep.Restored != 2 || rep.Identical != 1 {
				t.Errorf("restored %d, identical %d; want 2 (a, b) and 1 (keep)", rep.Restored, rep.Identical)
			}
			after, err := inspect.Capture(ctx, c, bucket, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"keep", "a", "b"} {
				if !inspect.Equal(before[k], after[k]) {
					t.Errorf("%s: %+v, want %+v", k, after[k], before[k])
				}
			}
			if after["other/x"].Size != int64(len("changed, outside the selection")) {
				t.Errorf("a key outside the selection was touched")
			}
			_, hasC := after["c"]
			if mode == restore.Rollback {
				if hasC || rep.DeleteMarkers != 1 {
					t.Errorf("rollback: c present %v, delete markers %d; want absent and 1", hasC, rep.DeleteMarkers)
				}
				vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String("c")})
				if err != nil || len(vs.Versions) != 1 {
					t.Errorf("rollback deleted a version of c: %v %v", vs, err)
				}
			} else if !hasC {
				t.Errorf("non-destructive restore removed c")
			}
		})
	}
}
