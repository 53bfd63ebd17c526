package vault_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCheckDataChecksums: CheckData computes each checksum S3 reports as
// S3 does (the server's own figures, for every algorithm it supports) and
// refuses other bytes.
func TestCheckDataChecksums(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.BucketName(t)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	const body = "the bytes a record names\n"
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256} {
		t.Run(string(alg), func(t *testing.T) {
			key := "k-" + string(alg)
			put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body), ChecksumAlgorithm: alg})
			if err != nil {
				t.Skipf("the server does not take %s: %v", alg, err)
			}
			h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			value := map[types.ChecksumAlgorithm]*string{
				types.ChecksumAlgorithmCrc32: h.ChecksumCRC32, types.ChecksumAlgorithmCrc32c: h.ChecksumCRC32C,
				types.ChecksumAlgorithmCrc64nvme: h.ChecksumCRC64NVME, types.ChecksumAlgorithmSha1: h.ChecksumSHA1,
				types.ChecksumAlgorithmSha256: h.ChecksumSHA256,
			}[alg]
			if aws.ToString(value) == "" {
				t.Skipf("the server reports no %s", alg)
			}
			rec := vault.Record{Key: key, ETag: s3x.TrimETag(aws.ToString(put.ETag)), Size: int64(len(body)),
				Checksum: &vault.Checksum{Algorithm: string(alg), Value: aws.ToString(value), Type: "FULL_OBJECT"}}
			if err := vault.CheckData(rec, strings.NewReader(body), ""); err != nil {
				t.Errorf("the server's own bytes: %v", err)
			}
			// Other bytes, with the MD5 out of the way: the checksum alone
			// must catch them.
			rec.ETag = ""
			if err := vault.CheckData(rec, strings.NewReader(strings.ToUpper(body)), ""); err == nil || !strings.Contains(err.Error(), string(alg)) {
				t.Errorf("other bytes: %v, want a %s mismatch", err, alg)
			}
		})
	}
	// CRC-64/NVME's check value (the CRC of "123456789"), whatever the
	// server supports.
	want := make([]byte, 8)
	binary.BigEndian.PutUint64(want, 0xAE8B14860A799888)
	rec := vault.Record{Key: "check", Size: 9, Checksum: &vault.Checksum{Algorithm: "CRC64NVME", Value: base64.StdEncoding.EncodeToString(want), Type: "FULL_OBJECT"}}
	if err := vault.CheckData(rec, strings.NewReader("123456789"), ""); err != nil {
		t.Errorf("CRC-64/NVME check value: %v", err)
	}
	// A single-part ETag is the MD5 of the bytes.
	rec = vault.Record{Key: "md5", ETag: "25f9e794323b453885f5181f1b624d0b", Size: 9}
	if err := vault.CheckData(rec, strings.NewReader("123456789"), ""); err != nil {
		t.Errorf("MD5: %v", err)
	}
	if err := vault.CheckData(rec, strings.NewReader("123456780"), ""); err == nil || !strings.Contains(err.Error(), "MD5") {
		t.Errorf("MD5 of other bytes: %v", err)
	}
}
