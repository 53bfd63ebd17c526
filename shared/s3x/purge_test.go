package s3x_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestDeleteBucket: a versioned bucket with more versions and delete
// markers than one listing page holds is emptied and deleted; deleting it
// again is no error.
func TestDeleteBucket(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	b := srv.NewBucket(t, true)
	for i := range 600 {
		k := fmt.Sprintf("k/%04d", i)
		for range 2 {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 0 {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := s3x.DeleteBucket(ctx, c, b)
	if err != nil || n != 1400 {
		t.Fatalf("DeleteBucket: %d deleted, %v; want 1,400 versions and markers", n, err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); !s3x.IsNotFound(err) {
		t.Fatalf("the bucket is still there: %v", err)
	}
	if n, err := s3x.DeleteBucket(ctx, c, b); err != nil || n != 0 {
		t.Fatalf("DeleteBucket of a bucket gone: %d, %v", n, err)
	}
}

// refusesWithUploads is the local server, but refusing to delete a
// bucket that holds an incomplete multipart upload, as S3 directory
// buckets and some S3-compatible servers do (MinIO deletes it).
type refusesWithUploads struct{ *s3.Client }

func (r refusesWithUploads) DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, opts ...func(*s3.Options)) (*s3.DeleteBucketOutput, error) {
	out, err := r.Client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: in.Bucket})
	if err != nil {
		return nil, err
	}
	if len(out.Uploads) > 0 {
		return nil, &smithy.GenericAPIError{Code: "BucketNotEmpty", Message: "The bucket you tried to delete is not empty"}
	}
	return r.Client.DeleteBucket(ctx, in, opts...)
}

// TestDeleteBucketAbortsUploads: a bucket holding an incomplete multipart
// upload (a restore stopped inside a multipart copy) is deleted: the
// upload is aborted first.
func TestDeleteBucketAbortsUploads(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	b := srv.NewBucket(t, true)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String("big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(b), Key: aws.String("big.bin"), UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: strings.NewReader(strings.Repeat("x", 1<<20))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3x.DeleteBucket(ctx, refusesWithUploads{c}, b); err != nil {
		t.Fatalf("DeleteBucket with an upload in it: %v", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); !s3x.IsNotFound(err) {
		t.Fatalf("the bucket is still there: %v", err)
	}
}
