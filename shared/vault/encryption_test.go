package vault

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// TestRecoveryPointEncryption: isEncrypted says how the vault stores what
// it is written, read from the bucket's default encryption, never a
// constant: false on a bucket without one, true (with the algorithm)
// where the server keeps one.
func TestRecoveryPointEncryption(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := Create(ctx, c, srv.BucketName(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := v.PutJSON(ctx, BucketKey("src"), ProtectedBucket{Bucket: "src", ProtectedAt: now, FirstFullBackupAt: &now}); err != nil {
		t.Fatal(err)
	}
	points := func() RecoveryPoint {
		t.Helper()
		rps, err := v.RecoveryPoints(ctx, "src", time.Now())
		if err != nil || len(rps) != 1 {
			t.Fatalf("recovery points: %+v %v", rps, err)
		}
		return rps[0]
	}
	if rp := points(); rp.IsEncrypted {
		t.Fatalf("a vault without default encryption: isEncrypted %v", rp.IsEncrypted)
	}
	_, err = c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(v.Bucket),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256}}}}})
	if err != nil {
		t.Skipf("the local server keeps no default encryption without a KMS (%v): the encrypted case is covered on AWS only", err)
	}
	if rp := points(); !rp.IsEncrypted {
		t.Fatalf("a vault with default encryption AES256: isEncrypted %v", rp.IsEncrypted)
	}
}
