package s3x_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
