package s3x

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ObjectACLs reports whether bucket's objects carry ACLs that mean
// something: its Object Ownership is not BucketOwnerEnforced (the default
// of buckets made since April 2023, which disables ACLs), or it has no
// ownership controls at all (older buckets: ACLs enabled). A server
// without object ACLs (MinIO answers NotImplemented) has none to keep.
func ObjectACLs(ctx context.Context, c Client, bucket string) (bool, error) {
	out, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(bucket)})
	switch {
	case err == nil:
		if out.OwnershipControls == nil {
			return true, nil
		}
		for _, r := range out.OwnershipControls.Rules {
			if r.ObjectOwnership == types.ObjectOwnershipBucketOwnerEnforced {
				return false, nil
			}
		}
		return true, nil
	case Code(err) == "OwnershipControlsNotFoundError":
		return true, nil
	case IsNotImplemented(err):
		return false, nil
	default:
		return false, fmt.Errorf("object ownership of s3://%s (does the bucket use ACLs?): %w", bucket, err)
	}
}
