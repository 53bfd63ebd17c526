package s3x

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// MaxCopySize is the largest object one CopyObject may copy; larger objects
// are copied part by part with UploadPartCopy.
const MaxCopySize = 5 << 30

// CopyOptions tune Copy.
type CopyOptions struct {
	// Threshold above which the copy is multipart; 0 means MaxCopySize.
	Threshold int64
	// PartSize of a multipart copy; 0 means 512 MiB (at most 10,000 parts,
	// raised as the object needs).
	PartSize int64
	// Concurrency of UploadPartCopy calls of one object; 0 means 8.
	Concurrency int
	// Multipart forces a multipart copy of PartSize parts whatever the
	// size (to rebuild a multipart object with its original ETag).
	Multipart bool
}

// CopyResult is what a copy produced.
type CopyResult struct {
	VersionID string
	ETag      string // without quotes
}

// Copy copies size bytes of the object named by in.CopySource to
// in.Bucket/in.Key, server-side: one CopyObject up to the threshold, else a
// multipart upload whose parts are copied in parallel. The input's metadata,
// tagging, storage class and encryption fields apply either way (for a
// multipart copy with MetadataDirective COPY the caller must give the
// metadata explicitly: S3 does not carry it into a multipart upload).
//
// A multipart copy does not apply in.IfNoneMatch or in.IfMatch (S3 takes no
// condition on starting an upload); see SingleCall. It applies the source
// conditions (CopySourceIfMatch) to every part, so no part is copied from
// another object than the one the condition names.
func Copy(ctx context.Context, c Client, in *s3.CopyObjectInput, size int64, o CopyOptions) (CopyResult, error) {
	if o.SingleCall(size) {
		out, err := c.CopyObject(ctx, in)
		if err != nil {
			return CopyResult{}, err
		}
		res := CopyResult{VersionID: aws.ToString(out.VersionId)}
		if out.CopyObjectResult != nil {
			res.ETag = TrimETag(aws.ToString(out.CopyObjectResult.ETag))
		}
		return res, nil
	}
	return multipartCopy(ctx, c, in, size, o)
}

// SingleCall reports whether Copy copies size bytes with one CopyObject,
// which takes every field of its input, conditions on the destination
// included.
func (o CopyOptions) SingleCall(size int64) bool {
	threshold := o.Threshold
	if threshold <= 0 {
		threshold = MaxCopySize
	}
	return size <= threshold && !(o.Multipart && o.PartSize > 0 && size > 0)
}

// ProbeConditionalCopy reports whether the server honours If-None-Match: *
// on CopyObject, the create-only copy: Amazon S3 does (it answers 412
// Precondition Failed when the key exists, 409 to a concurrent conditional
// write), MinIO ignores the header and writes a new version.
//
// It copies bucket/source to bucket/probe with the condition until the
// server refuses (honoured) or writes over the probe object (ignored). The
// write that proves the header ignored marks the probe object (metadata
// bv-conditional-copy: ignored), and a later probe that finds the mark
// answers without writing: a server that honours the condition gets the
// probe object once, one that ignores it two versions of it. A server
// that starts to honour the condition later is still taken not to, which
// is safe. metadata goes on the probe object.
func ProbeConditionalCopy(ctx context.Context, c Client, bucket, source, probe string, metadata map[string]string) (bool, error) {
	writes := 2
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(probe)})
	switch {
	case err == nil && probeMark(head.Metadata) == probeIgnored:
		return false, nil
	case err == nil:
		writes = 1
	case !IsNotFound(err):
		return false, fmt.Errorf("probe conditional copy: %w", err)
	}
	for i := range writes {
		meta := map[string]string{}
		for k, v := range metadata {
			meta[k] = v
		}
		if i == writes-1 {
			meta[probeMetaKey] = probeIgnored // read only if this write succeeds
		}
		_, err := c.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(probe), CopySource: aws.String(CopySource(bucket, source, "")),
			IfNoneMatch:       aws.String("*"),
			MetadataDirective: types.MetadataDirectiveReplace, Metadata: meta,
			ContentType: aws.String("application/octet-stream"),
		})
		switch {
		case err == nil:
			// Written: the probe did not exist yet, or the condition was ignored.
		case IsPreconditionFailed(err) || IsConflict(err):
			return true, nil
		default:
			return false, fmt.Errorf("probe conditional copy: %w", err)
		}
	}
	return false, nil
}

const (
	probeMetaKey = "bv-conditional-copy"
	probeIgnored = "ignored"
)

func probeMark(meta map[string]string) string {
	for k, v := range meta {
		if strings.EqualFold(k, probeMetaKey) {
			return v
		}
	}
	return ""
}

func multipartCopy(ctx context.Context, c Client, in *s3.CopyObjectInput, size int64, o CopyOptions) (CopyResult, error) {
	partSize := o.PartSize
	if partSize <= 0 {
		partSize = 512 << 20
	}
	for size/partSize >= 10000 {
		partSize *= 2
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = 8
	}
	create := &s3.CreateMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, CacheControl: in.CacheControl, ContentDisposition: in.ContentDisposition,
		ContentEncoding: in.ContentEncoding, ContentLanguage: in.ContentLanguage, ContentType: in.ContentType,
		Expires: in.Expires, Metadata: in.Metadata, StorageClass: in.StorageClass, Tagging: in.Tagging,
		ServerSideEncryption: in.ServerSideEncryption, SSEKMSKeyId: in.SSEKMSKeyId, BucketKeyEnabled: in.BucketKeyEnabled,
		WebsiteRedirectLocation: in.WebsiteRedirectLocation, ExpectedBucketOwner: in.ExpectedBucketOwner,
		ObjectLockMode: in.ObjectLockMode, ObjectLockRetainUntilDate: in.ObjectLockRetainUntilDate,
		ObjectLockLegalHoldStatus: in.ObjectLockLegalHoldStatus, ChecksumAlgorithm: in.ChecksumAlgorithm,
	}
	up, err := c.CreateMultipartUpload(ctx, create)
	if err != nil {
		return CopyResult{}, fmt.Errorf("start multipart copy: %w", err)
	}
	abort := func(cause error) (CopyResult, error) {
		_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId})
		return CopyResult{}, cause
	}
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		first := int64(i) * partSize
		last := min(first+partSize, size) - 1
		g.Go(func() error {
			out, err := c.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
				CopySource: in.CopySource, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
				CopySourceIfMatch: in.CopySourceIfMatch, CopySourceIfNoneMatch: in.CopySourceIfNoneMatch,
				CopySourceIfModifiedSince: in.CopySourceIfModifiedSince, CopySourceIfUnmodifiedSince: in.CopySourceIfUnmodifiedSince,
				ExpectedBucketOwner: in.ExpectedBucketOwner, ExpectedSourceBucketOwner: in.ExpectedSourceBucketOwner,
			})
			if err != nil {
				return fmt.Errorf("copy part %d: %w", i+1, err)
			}
			mu.Lock()
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.CopyPartResult.ETag,
				ChecksumCRC32: out.CopyPartResult.ChecksumCRC32, ChecksumCRC32C: out.CopyPartResult.ChecksumCRC32C,
				ChecksumSHA1: out.CopyPartResult.ChecksumSHA1, ChecksumSHA256: out.CopyPartResult.ChecksumSHA256,
				ChecksumCRC64NVME: out.CopyPartResult.ChecksumCRC64NVME}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return abort(err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(fmt.Errorf("complete multipart copy: %w", err))
	}
	return CopyResult{VersionID: aws.ToString(done.VersionId), ETag: TrimETag(aws.ToString(done.ETag))}, nil
}
