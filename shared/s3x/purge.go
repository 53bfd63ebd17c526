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
// versions and markers it deleted.
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
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil && !IsNotFound(err) {
		return n, fmt.Errorf("delete bucket %s: %w", bucket, err)
	}
	return n, nil
}
