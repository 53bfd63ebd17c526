package vault

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MetaOf is the system and user metadata a HeadObject (or GetObject)
// reported for a version.
func MetaOf(h *s3.HeadObjectOutput) *Meta {
	m := &Meta{
		ContentType: aws.ToString(h.ContentType), ContentEncoding: aws.ToString(h.ContentEncoding),
		ContentDisposition: aws.ToString(h.ContentDisposition), ContentLanguage: aws.ToString(h.ContentLanguage),
		CacheControl: aws.ToString(h.CacheControl), Expires: aws.ToString(h.ExpiresString),
		WebsiteRedirect: aws.ToString(h.WebsiteRedirectLocation),
	}
	if len(h.Metadata) > 0 {
		m.User = h.Metadata
	}
	return m
}

// ChecksumOf is the additional checksum a HeadObject (or GetObject) with
// checksum mode enabled reported for a version, nil when it has none.
func ChecksumOf(h *s3.HeadObjectOutput) *Checksum {
	for _, c := range []struct {
		algo string
		v    *string
	}{{"CRC64NVME", h.ChecksumCRC64NVME}, {"CRC32C", h.ChecksumCRC32C}, {"CRC32", h.ChecksumCRC32}, {"SHA256", h.ChecksumSHA256}, {"SHA1", h.ChecksumSHA1}} {
		if aws.ToString(c.v) != "" {
			return &Checksum{Algorithm: c.algo, Value: *c.v, Type: string(h.ChecksumType)}
		}
	}
	return nil
}

// HeadOfGet is the part of a GetObject's answer that a HeadObject of the
// same version answers too: the headers, without the body.
func HeadOfGet(g *s3.GetObjectOutput) *s3.HeadObjectOutput {
	return &s3.HeadObjectOutput{
		AcceptRanges: g.AcceptRanges, BucketKeyEnabled: g.BucketKeyEnabled, CacheControl: g.CacheControl,
		ChecksumCRC32: g.ChecksumCRC32, ChecksumCRC32C: g.ChecksumCRC32C, ChecksumCRC64NVME: g.ChecksumCRC64NVME,
		ChecksumSHA1: g.ChecksumSHA1, ChecksumSHA256: g.ChecksumSHA256, ChecksumType: g.ChecksumType,
		ContentDisposition: g.ContentDisposition, ContentEncoding: g.ContentEncoding, ContentLanguage: g.ContentLanguage,
		ContentLength: g.ContentLength, ContentRange: g.ContentRange, ContentType: g.ContentType,
		DeleteMarker: g.DeleteMarker, ETag: g.ETag, Expiration: g.Expiration, Expires: g.Expires, ExpiresString: g.ExpiresString,
		LastModified: g.LastModified, Metadata: g.Metadata, MissingMeta: g.MissingMeta,
		ObjectLockLegalHoldStatus: g.ObjectLockLegalHoldStatus, ObjectLockMode: g.ObjectLockMode,
		ObjectLockRetainUntilDate: g.ObjectLockRetainUntilDate, PartsCount: g.PartsCount,
		ReplicationStatus: g.ReplicationStatus, RequestCharged: g.RequestCharged, Restore: g.Restore,
		SSECustomerAlgorithm: g.SSECustomerAlgorithm, SSECustomerKeyMD5: g.SSECustomerKeyMD5,
		SSEKMSKeyId: g.SSEKMSKeyId, ServerSideEncryption: g.ServerSideEncryption, StorageClass: g.StorageClass,
		TagCount: g.TagCount, VersionId: g.VersionId, WebsiteRedirectLocation: g.WebsiteRedirectLocation,
		ResultMetadata: g.ResultMetadata,
	}
}
