package vault

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
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

// ReadACL reads a version's ACL (versionID "" reads the current one). A
// server without object ACLs (NotImplemented) has none: nil, no error.
func ReadACL(ctx context.Context, c s3x.Client, bucket, key, versionID string) (*ACL, error) {
	in := &s3.GetObjectAclInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := c.GetObjectAcl(ctx, in)
	if err != nil {
		if s3x.IsNotImplemented(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("acl of s3://%s/%s@%s: %w", bucket, key, versionID, err)
	}
	acl := &ACL{}
	if out.Owner != nil {
		acl.Owner = aws.ToString(out.Owner.ID)
	}
	for _, g := range out.Grants {
		if g.Grantee == nil {
			continue
		}
		acl.Grants = append(acl.Grants, Grant{
			Type: string(g.Grantee.Type), ID: aws.ToString(g.Grantee.ID), URI: aws.ToString(g.Grantee.URI),
			Email: aws.ToString(g.Grantee.EmailAddress), Permission: string(g.Permission),
		})
	}
	return acl, nil
}
