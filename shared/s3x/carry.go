package s3x

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// CarryMetadata makes a copy keep the system and user metadata and the
// tags of the object bucket/key@versionID although the copy cannot carry
// them itself (a multipart copy: S3 starts a multipart upload empty). It
// reads them (HeadObject, and GetObjectTagging when there are tags) into
// in with REPLACE directives.
func CarryMetadata(ctx context.Context, c Client, bucket, key, versionID string, in *s3.CopyObjectInput) error {
	hin := &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		hin.VersionId = aws.String(versionID)
	}
	h, err := c.HeadObject(ctx, hin)
	if err != nil {
		return fmt.Errorf("metadata of s3://%s/%s: %w", bucket, key, err)
	}
	return CarryFromHead(ctx, c, bucket, key, h, in)
}

// CarryFromHead is CarryMetadata from a HEAD of the object already made
// (its version id names the version whose tags are read).
func CarryFromHead(ctx context.Context, c Client, bucket, key string, h *s3.HeadObjectOutput, in *s3.CopyObjectInput) error {
	in.MetadataDirective, in.TaggingDirective = types.MetadataDirectiveReplace, types.TaggingDirectiveReplace
	in.ContentType, in.ContentEncoding, in.ContentDisposition = h.ContentType, h.ContentEncoding, h.ContentDisposition
	in.ContentLanguage, in.CacheControl, in.WebsiteRedirectLocation = h.ContentLanguage, h.CacheControl, h.WebsiteRedirectLocation
	in.Expires = nil
	if h.ExpiresString != nil {
		if t, err := http.ParseTime(*h.ExpiresString); err == nil {
			in.Expires = &t
		}
	}
	in.Metadata = h.Metadata
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	in.Tagging = nil
	if aws.ToInt32(h.TagCount) > 0 {
		tin := &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: h.VersionId}
		out, err := c.GetObjectTagging(ctx, tin)
		if err != nil {
			return fmt.Errorf("tags of s3://%s/%s: %w", bucket, key, err)
		}
		tags := make(map[string]string, len(out.TagSet))
		for _, t := range out.TagSet {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		in.Tagging = aws.String(EncodeTags(tags))
	}
	return nil
}

// EncodeTags renders a tag set as the URL query string the Tagging fields
// of PutObject, CopyObject and CreateMultipartUpload take, keys sorted.
func EncodeTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(queryEscape(k))
		b.WriteByte('=')
		b.WriteString(queryEscape(tags[k]))
	}
	return b.String()
}

// queryEscape escapes like url.QueryEscape but spaces as %20, which S3
// decodes the same everywhere.
func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
