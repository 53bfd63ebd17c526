package restore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestSnapshotRestoreSurvivesAGarbledShard: a snapshot recovery point
// whose manifest shard was garbled in the vault (other bytes put over it).
// With its good version still there (the vault is versioned), a restore
// of the point reads the shard from it, restores every object exactly,
// and warns naming the shard. With no good version left, the restore
// restores every key of the other shards exactly, writes none of the lost
// shard's (which only that shard named), and ends PARTIAL naming the
// shard and its key range; it says the snapshot cannot vouch for them,
// and names no key uncertain, since it knows none of them.
func TestSnapshotRestoreSurvivesAGarbledShard(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(map[bool]string{false: "damaged", true: "lost"}[lose], func(t *testing.T) {
			srv := locals3.ForTest(t)
			ctx := context.Background()
			c := srv.Client(ctx)
			v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bucket := srv.NewBucket(t, true)
			for i := range 6 {
				k := fmt.Sprintf("k%d.txt", i)
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("the bytes of " + k),
					Metadata: map[string]string{"n": fmt.Sprint(i)}, Tagging: aws.String("k=" + k)}); err != nil {
					t.Fatal(err)
				}
			}
			before, err := inspect.Capture(ctx, c, bucket, "")
			if err != nil {
				t.Fatal(err)
			}
			job, err := (&snapshot.Engine{S3: c, ChunkSize: 2}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: bucket})
			if err != nil || job.State != snapshot.StateCompleted {
				t.Fatalf("snapshot: %+v %v", job, err)
			}
			sp, err := v.Snapshot(ctx, bucket, job.RecoveryPointID)
			if err != nil || len(sp.Shards) < 3 {
				t.Fatalf("snapshot point: %+v %v; want at least 3 shards", sp, err)
			}
			shard := sp.Shards[1]
			vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(shard.Key)})
			if err != nil || len(vs.Versions) != 1 {
				t.Fatalf("versions of %s: %+v %v", shard.Key, vs, err)
			}
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(shard.Key), Body: strings.NewReader("garbled")}); err != nil {
				t.Fatal(err)
			}
			if lose {
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(shard.Key), VersionId: vs.Versions[0].VersionId}); err != nil {
					t.Fatal(err)
				}
			}
			inShard := func(k string) bool { return k >= shard.FirstKey && k <= shard.LastKey }

			target := srv.BucketName(t)
			rep, err := (&restore.Restorer{S3: c}).Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, RecoveryPointID: sp.RecoveryPointID,
				TargetBucket: target, CreateBucket: true})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			after, err := inspect.Capture(ctx, c, target, "")
			if err != nil {
				t.Fatal(err)
			}
			warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, shard.Key) })
			if !lose {
				if rep.State != restore.StateCompleted || rep.Restored != 6 || !warned || len(rep.Unvouched) != 0 {
					t.Fatalf("want COMPLETED, 6 restored, a warning naming %s:\n%s", shard.Key, rep.Text())
				}
				for k, want := range before {
					if !inspect.Equal(want, after[k]) {
						t.Errorf("%s: %+v, want %+v", k, after[k], want)
					}
				}
				return
			}
			lost := 0
			for k, want := range before {
				got, ok := after[k]
				switch {
				case inShard(k):
					lost++
					if ok {
						t.Errorf("%s, which only the lost shard named, was written: %+v", k, got)
					}
				case !inspect.Equal(want, got):
					t.Errorf("%s: %+v, want %+v", k, got, want)
				}
			}
			if lost == 0 || rep.State != restore.StatePartial || rep.Restored != int64(6-lost) {
				t.Fatalf("want PARTIAL with %d restored:\n%s", 6-lost, rep.Text())
			}
			if len(rep.Unvouched) != 1 || rep.Unvouched[0].Object != shard.Key || rep.Unvouched[0].FirstKey != shard.FirstKey || rep.Unvouched[0].LastKey != shard.LastKey {
				t.Errorf("unvouched %+v; want shard %s with its keys %q to %q", rep.Unvouched, shard.Key, shard.FirstKey, shard.LastKey)
			}
			keys := fmt.Sprintf("keys %q to %q", shard.FirstKey, shard.LastKey)
			if !strings.Contains(rep.StatusMessage, "the snapshot cannot vouch for "+keys) {
				t.Errorf("status message %q; want it to say the snapshot cannot vouch for %s", rep.StatusMessage, keys)
			}
			if rep.Uncertain != 0 || len(rep.UncertainKeys) != 0 {
				t.Errorf("uncertain %d %v; want none (the restore knows no key of the lost shard)", rep.Uncertain, rep.UncertainKeys)
			}
			for _, w := range append(rep.Warnings, rep.StatusMessage) {
				if strings.Contains(w, "journal") || strings.Contains(w, "named uncertain") || strings.Contains(w, "--include-uncertain") {
					t.Errorf("the restore of a snapshot says %q", w)
				}
			}
			if !warned {
				t.Errorf("no warning names the lost shard %s:\n%s", shard.Key, rep.Text())
			}
		})
	}
}
