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
