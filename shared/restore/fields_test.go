package restore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestRestoreRewritesKeysThatDifferOnlyInTheirFields: after a restore into
// an existing bucket, keys changed there only in their tags, their
// metadata or their storage class (same bytes, same ETag) are not
// identical to the state at T: a second non-destructive restore writes
// exactly those, and the bucket is as it was at T again.
func TestRestoreRewritesKeysThatDifferOnlyInTheirFields(t *testing.T) {
	f := newJournalFixture(t)
	target := f.srv.NewBucket(t, true)
	r := &restore.Restorer{S3: f.c}
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target}
	if rep, err := r.Run(f.ctx, req); err != nil || rep.Restored != 6 {
		t.Fatalf("first restore: %+v %v", rep, err)
	}
	want, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	self := func(key string, edit func(*s3.CopyObjectInput)) error {
		in := &s3.CopyObjectInput{Bucket: aws.String(target), Key: aws.String(key), CopySource: aws.String(s3x.CopySource(target, key, "")),
			MetadataDirective: types.MetadataDirectiveCopy, TaggingDirective: types.TaggingDirectiveCopy}
		edit(in)
		_, err := f.c.CopyObject(f.ctx, in)
		return err
	}
	changed := 0
	if _, err := f.c.PutObjectTagging(f.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(target), Key: aws.String("a/1"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("added"), Value: aws.String("later")}}}}); err != nil {
		t.Fatal(err)
	}
	changed++
	if err := self("a/2", func(in *s3.CopyObjectInput) {
		in.MetadataDirective, in.Metadata = types.MetadataDirectiveReplace, map[string]string{"changed": "yes"}
	}); err != nil {
		t.Fatal(err)
	}
	changed++
	switch err := self("b/1", func(in *s3.CopyObjectInput) { in.StorageClass = types.StorageClassReducedRedundancy }); {
	case err == nil:
		changed++
	default:
		t.Logf("the server keeps one storage class (%v): the storage class is not checked", err)
	}
	rep, err := r.Run(f.ctx, req)
	if err != nil || rep.Restored != int64(changed) || rep.Identical != int64(6-changed) {
		t.Fatalf("second restore: restored %d, identical %d (%v); want %d and %d", rep.Restored, rep.Identical, err, changed, 6-changed)
	}
	got, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the second restore:\n%v\nwant\n%v", got, want)
	}
	h, err := f.c.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(target), Key: aws.String("b/1")})
	if err != nil || strings.Contains(string(h.StorageClass), "REDUCED") {
		t.Fatalf("b/1's storage class after the restore: %v %v", h.StorageClass, err)
	}
}
