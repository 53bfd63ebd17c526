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
