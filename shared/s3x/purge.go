package s3x

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DeleteBucket deletes a bucket and everything in it: every version and
// delete marker (DeleteObjects, 1,000 a request, as ListObjectVersions
// pages them), then the bucket. It is for buckets bucketvault made to be
// thrown away (a restore test's): it refuses none, so callers name only
// those. A bucket already gone is not an error. It returns how many
// versions and markers it deleted. Incomplete multipart uploads (a
// restore stopped inside a multipart copy) are aborted first: they hold
// storage, and some servers (S3 directory buckets among them) refuse to
// delete a bucket that has any.
func DeleteBucket(ctx context.Context, c Client, bucket string) (int64, error) {
	var n int64
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if IsNotFound(err) {
				return n, nil
			}
			return n, fmt.Errorf("list s3://%s: %w", bucket, err)
		}
		var ids []types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return n, fmt.Errorf("delete the versions of s3://%s: %w", bucket, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return n, fmt.Errorf("delete s3://%s/%s version %s: %s: %s (%d versions not deleted)", bucket, aws.ToString(e.Key), aws.ToString(e.VersionId),
				aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors))
		}
		n += int64(len(ids))
	}
	if err := abortUploads(ctx, c, bucket); err != nil {
		return n, err
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil && !IsNotFound(err) {
		return n, fmt.Errorf("delete bucket %s: %w", bucket, err)
	}
	return n, nil
}

// abortUploads aborts every incomplete multipart upload of bucket (a
// client that cannot list them is taken to have none).
func abortUploads(ctx context.Context, c Client, bucket string) error {
	lc, ok := c.(interface {
		ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	})
	if !ok {
		return nil
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)}
	for {
		out, err := lc.ListMultipartUploads(ctx, in)
		if err != nil {
			if IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("list the multipart uploads of s3://%s: %w", bucket, err)
		}
		for _, u := range out.Uploads {
			_, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId})
			if err != nil && !IsNotFound(err) && Code(err) != "NoSuchUpload" {
				return fmt.Errorf("abort the upload of s3://%s/%s: %w", bucket, aws.ToString(u.Key), err)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
