package s3x

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ProbeConditionalPut reports whether the server honours If-None-Match: *
// on PutObject, the create-only write: Amazon S3 and MinIO do (412
// Precondition Failed when the key exists; Amazon S3 answers 409 to a
// concurrent conditional write).
//
// It puts body to bucket/probe with the condition until the server
// refuses (honoured) or writes over the probe object (ignored), as
// ProbeConditionalCopy does with a copy, and may share its probe object:
// the write that proves the header ignored marks the object (metadata
// bv-conditional-put: ignored), keeping the metadata the object had (so
// the mark of a copy probe survives), and a later probe that finds the
// mark answers without writing. On a server that honours the condition a
// probe writes the object at most once, and nothing once it exists; on one
// that ignores it, two versions at most, then nothing. A server that
// starts to honour the condition later is still taken not to, which is
// safe. metadata goes on every write.
func ProbeConditionalPut(ctx context.Context, c Client, bucket, probe string, body []byte, metadata map[string]string) (bool, error) {
	writes := 2
	var had map[string]string
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(probe)})
	switch {
	case err == nil && metaValue(head.Metadata, putProbeMetaKey) == probeIgnored:
		return false, nil
	case err == nil:
		writes, had = 1, head.Metadata
	case !IsNotFound(err):
		return false, fmt.Errorf("probe conditional put: %w", err)
	}
	for i := range writes {
		meta := map[string]string{}
		for k, v := range had {
			meta[strings.ToLower(k)] = v
		}
		for k, v := range metadata {
			meta[k] = v
		}
		if i == writes-1 {
			meta[putProbeMetaKey] = probeIgnored // read only if this write succeeds
		}
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(probe), Body: bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))), IfNoneMatch: aws.String("*"),
			Metadata: meta, ContentType: aws.String("application/octet-stream"),
		})
		switch {
		case err == nil:
			// Written: the probe did not exist yet, or the condition was ignored.
		case IsPreconditionFailed(err) || IsConflict(err):
			return true, nil
		default:
			return false, fmt.Errorf("probe conditional put: %w", err)
		}
	}
	return false, nil
}

const putProbeMetaKey = "bv-conditional-put"

// metaValue returns the value of user metadata key, whatever the case in
// which the server returned its name.
func metaValue(meta map[string]string, key string) string {
	for k, v := range meta {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}
