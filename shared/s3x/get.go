package s3x

import "github.com/aws/aws-sdk-go-v2/service/s3"

// HeadOfGet returns what a HeadObject of the same object would have
// answered, from the headers of a GetObject response (the body is not
// touched): code that reads an object's metadata from a HEAD reads it the
// same way from a GET. Every header field of GetObjectOutput has its
// HeadObjectOutput twin; ArchiveStatus, which only HEAD answers, stays
// empty (a GET of an object in an archive tier fails with
// InvalidObjectState, IsArchived). For a whole-object GET, ContentLength is
// the object's size.
func HeadOfGet(g *s3.GetObjectOutput) *s3.HeadObjectOutput {
	return &s3.HeadObjectOutput{
		AcceptRanges:       g.AcceptRanges,
		BucketKeyEnabled:   g.BucketKeyEnabled,
		CacheControl:       g.CacheControl,
		ChecksumCRC32:      g.ChecksumCRC32,
		ChecksumCRC32C:     g.ChecksumCRC32C,
		ChecksumCRC64NVME:  g.ChecksumCRC64NVME,
		ChecksumMD5:        g.ChecksumMD5,
		ChecksumSHA1:       g.ChecksumSHA1,
		ChecksumSHA256:     g.ChecksumSHA256,
		ChecksumSHA512:     g.ChecksumSHA512,
		ChecksumType:       g.ChecksumType,
		ChecksumXXHASH128:  g.ChecksumXXHASH128,
		ChecksumXXHASH3:    g.ChecksumXXHASH3,
		ChecksumXXHASH64:   g.ChecksumXXHASH64,
		ContentDisposition: g.ContentDisposition,
		ContentEncoding:    g.ContentEncoding,
		ContentLanguage:    g.ContentLanguage,
		ContentLength:      g.ContentLength,
		ContentRange:       g.ContentRange,
		ContentType:        g.ContentType,
		DeleteMarker:       g.DeleteMarker,
		ETag:               g.ETag,
		Expiration:         g.Expiration,
		//lint:ignore SA1019 carried as the SDK answered it (readers use ExpiresString)
		Expires:                          g.Expires,
		ExpiresString:                    g.ExpiresString,
		LastModified:                     g.LastModified,
		Metadata:                         g.Metadata,
		MissingMeta:                      g.MissingMeta,
		ObjectLockEventHold:              g.ObjectLockEventHold,
		ObjectLockEventHoldDurationDays:  g.ObjectLockEventHoldDurationDays,
		ObjectLockEventHoldDurationYears: g.ObjectLockEventHoldDurationYears,
		ObjectLockLegalHoldStatus:        g.ObjectLockLegalHoldStatus,
		ObjectLockMode:                   g.ObjectLockMode,
		ObjectLockRetainUntilDate:        g.ObjectLockRetainUntilDate,
		PartsCount:                       g.PartsCount,
		ReplicationStatus:                g.ReplicationStatus,
		RequestCharged:                   g.RequestCharged,
		Restore:                          g.Restore,
		SSECustomerAlgorithm:             g.SSECustomerAlgorithm,
		SSECustomerKeyMD5:                g.SSECustomerKeyMD5,
		SSEKMSKeyId:                      g.SSEKMSKeyId,
		ServerSideEncryption:             g.ServerSideEncryption,
		StorageClass:                     g.StorageClass,
		TagCount:                         g.TagCount,
		VersionId:                        g.VersionId,
		WebsiteRedirectLocation:          g.WebsiteRedirectLocation,
		ResultMetadata:                   g.ResultMetadata,
	}
}
