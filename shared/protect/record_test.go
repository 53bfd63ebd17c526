package protect_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// interleaved is the local server, with another writer's work run once
// before the first PutObject of putKey, or before the first
// ListObjectVersions of listBucket.
type interleaved struct {
	*s3.Client
	once       sync.Once
	putKey     string
	listBucket string
	before     func()
}

func (c *interleaved) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if c.putKey != "" && aws.ToString(in.Key) == c.putKey {
		c.once.Do(c.before)
	}
	return c.Client.PutObject(ctx, in, opts...)
}

func (c *interleaved) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	if c.listBucket != "" && aws.ToString(in.Bucket) == c.listBucket {
		c.once.Do(c.before)
	}
	return c.Client.ListObjectVersions(ctx, in, opts...)
}

// TestProtectNeverOverwritesAnotherProtect: two protects of one bucket
// with different windows, interleaved. One that read the bucket's record
// before the other wrote it fails with a conflict, and the other's
// record stands. One whose initial backup ran while the other protected
// the bucket records when that backup finished on the other's record,
// not its own stale copy.
func TestProtectNeverOverwritesAnotherProtect(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := func(bucket string) func() {
		return func() {
			if _, _, err := protect.Protect(ctx, &journal.Journal{Vault: v, S3: c}, bucket, protect.Options{WindowDays: 7, SkipInitialBackup: true}); err != nil {
				t.Errorf("the other protect: %v", err)
			}
		}
	}
	recorded := func(bucket string) vault.ProtectedBucket {
		t.Helper()
		pb, err := v.Protected(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		return pb
	}

	t.Run("between the read and the write", func(t *testing.T) {
		bucket := srv.NewBucket(t, true)
		hooked, err := vault.Open(ctx, &interleaved{Client: c, putKey: vault.BucketKey(bucket), before: other(bucket)}, v.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = protect.Protect(ctx, &journal.Journal{Vault: hooked, S3: c}, bucket, protect.Options{WindowDays: 3, SkipInitialBackup: true})
		if !vault.IsConflict(err) {
			t.Errorf("a protect that raced another: %v; want a conflict", err)
		}
		if pb := recorded(bucket); pb.WindowDays != 7 {
			t.Errorf("the bucket's record: %+v; want the other protect's window, 7 days", pb)
		}
	})

	t.Run("during the initial backup", func(t *testing.T) {
		bucket := srv.NewBucket(t, true)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("k")}); err != nil {
			t.Fatal(err)
		}
		pb, p, err := protect.Protect(ctx, &journal.Journal{Vault: v, S3: &interleaved{Client: c, listBucket: bucket, before: other(bucket)}}, bucket, protect.Options{WindowDays: 3})
		if err != nil || p == nil || p.CompletedAt == nil {
			t.Fatalf("protect: %+v %v", p, err)
		}
		got := recorded(bucket)
		if got.WindowDays != 7 || got.FirstFullBackupAt == nil || !got.FirstFullBackupAt.Equal(*p.CompletedAt) || pb.WindowDays != 7 {
			t.Errorf("the bucket's record: %+v (protect returned %+v); want the other protect's window, 7 days, and the first full backup at %s", got, pb, p.CompletedAt)
		}
	})
}
