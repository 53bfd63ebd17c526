package restore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestRestoreSaysHowEachObjectWasChecked: into a bucket encrypted with
// SSE-KMS (whose ETags are not MD5s), an object the source wrote with a
// checksum is checked by it, and one written without any is restored and
// said to be checked by size only, never called verified; the report
// counts each method and warns of the second.
func TestRestoreSaysHowEachObjectWasChecked(t *testing.T) {
	srv := locals3.ForTest(t)
	if srv.KMSKeyID == "" {
		t.Skip("the server has no KMS (versitygw): SSE-KMS targets are MinIO's")
	}
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("summed"), Body: strings.NewReader("with a checksum"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); err != nil {
		t.Fatal(err)
	}
	plain := srv.Client(ctx, func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
	if _, err := plain.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("bare"), Body: strings.NewReader("without one")}); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitNextSecond()
	at := time.Now().Add(-20 * time.Millisecond).Truncate(time.Second)
	j := &journal.Journal{Vault: v, S3: c}
	if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	target := srv.NewBucket(t, true)
	if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(target), ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
		Rules: []types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(srv.KMSKeyID)}}},
	}}); err != nil {
		t.Fatal(err)
	}
	rep, err := (&restore.Restorer{S3: c}).Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: target, AllowIncomplete: true})
	if err != nil || rep.Restored != 2 {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	how := map[string]string{}
	for _, m := range rep.Mapping {
		how[m.Key] = m.Verified
	}
	if how["summed"] != "checksum" || how["bare"] != restore.VerifiedSizeOnly {
		t.Fatalf("checked %v: want summed by checksum, bare by size only", how)
	}
	if rep.VerifiedBy["checksum"] != 1 || rep.VerifiedBy[restore.VerifiedSizeOnly] != 1 {
		t.Fatalf("counts %v", rep.VerifiedBy)
	}
	warned := false
	for _, w := range rep.Warnings {
		warned = warned || strings.Contains(w, "could not be checked")
	}
	if !warned || !strings.Contains(rep.Text(), "size only 1") {
		t.Fatalf("warnings %q; text:\n%s", rep.Warnings, rep.Text())
	}
}

// alterAfterWrite changes what a restore wrote before its check reads it
// back (a writer racing the restore, a server that drops a field): the
// tags of one key (after the write), the Content-Type of another (in it).
type alterAfterWrite struct {
	s3x.Client
	target string
}

func (a *alterAfterWrite) alter(ctx context.Context, bucket, key string) {
	if bucket != a.target {
		return
	}
	var err error
	switch key {
	case "tagged":
		_, err = a.Client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("someone else")}}}})
	}
	if err != nil {
		panic(err)
	}
}

func (a *alterAfterWrite) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if aws.ToString(in.Bucket) == a.target && aws.ToString(in.Key) == "typed" {
		// A server that writes another Content-Type than asked.
		c := *in
		c.ContentType = aws.String("application/x-other")
		in = &c
	}
	out, err := a.Client.CopyObject(ctx, in, opts...)
	if err == nil {
		a.alter(ctx, aws.ToString(in.Bucket), aws.ToString(in.Key))
	}
	return out, err
}

// TestRestoreChecksEveryFieldAfterTheWrite: a restored object whose tags
// or metadata are not what the restore wrote when read back is FAILED,
// saying which field, and removed from the target; the others say which
// fields were checked.
func TestRestoreChecksEveryFieldAfterTheWrite(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	for _, o := range []struct{ key, tags, ctype string }{{"tagged", "team=photos", "text/plain"}, {"typed", "", "image/png"}, {"fine", "a=b", "text/html"}} {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key), Body: strings.NewReader("bytes of " + o.key), ContentType: aws.String(o.ctype)}
		if o.tags != "" {
			in.Tagging = aws.String(o.tags)
		}
		if _, err := c.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitNextSecond()
	at := time.Now().Add(-20 * time.Millisecond).Truncate(time.Second)
	if _, err := (&journal.Journal{Vault: v, S3: c}).Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	target := srv.BucketName(t)
	r := &restore.Restorer{S3: &alterAfterWrite{Client: c, target: target}}
	rep, err := r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: target, CreateBucket: true, AllowIncomplete: true})
	if err != nil || rep.State != restore.StatePartial || rep.Restored != 1 || rep.Failed != 2 || rep.FieldsChecked != 1 {
		t.Fatalf("restore: %+v %v; want 1 restored, 2 failed", rep, err)
	}
	why := map[string]string{}
	for _, f := range rep.Failures {
		why[f.Key] = f.Error
	}
	if !strings.Contains(why["tagged"], "tags") || !strings.Contains(why["typed"], "Content-Type") {
		t.Errorf("failures %v; want the tags and the Content-Type named", why)
	}
	for _, m := range rep.Mapping {
		if m.Key == "fine" && strings.Join(m.Checked, ",") != "metadata,tags,storage-class" {
			t.Errorf("fine: checked %v", m.Checked)
		}
	}
	for _, k := range []string{"tagged", "typed"} {
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(target), Key: aws.String(k)}); err == nil {
			t.Errorf("%s: the object that failed its check is still in the target", k)
		}
	}
	// --verify bytes reads back only what proves the bytes: the same
	// faults pass, and the mappings say nothing of fields.
	bytesOnly := srv.BucketName(t)
	r = &restore.Restorer{S3: &alterAfterWrite{Client: c, target: bytesOnly}}
	rep, err = r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: bytesOnly, CreateBucket: true, AllowIncomplete: true, Verify: restore.VerifyBytes})
	if err != nil || rep.Restored != 3 || rep.Failed != 0 || rep.FieldsChecked != 0 || rep.VerifiedBy["etag"] != 3 {
		t.Fatalf("--verify bytes: %+v %v", rep, err)
	}
	if _, err := (&restore.Restorer{S3: c}).Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: srv.BucketName(t), Verify: "some"}); err == nil || !strings.Contains(err.Error(), "verify") {
		t.Errorf("verify some: %v", err)
	}
}
