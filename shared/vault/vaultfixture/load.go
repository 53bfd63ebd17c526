package vaultfixture

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// SourceNameError refuses a source bucket name other than the one the
// vault's records name.
type SourceNameError struct {
	Given, Recorded string
}

func (e *SourceNameError) Error() string {
	return fmt.Sprintf("vault fixture: the source bucket must be %q, the name the vault's records give it (its journal keys, segment headers and data keys' hashes), not %q; "+
		"pass \"\" to load the vault alone", e.Recorded, e.Given)
}

// Load reads the fixture (Dir) and loads it with client: the vault into
// vaultBucket (any name) and, unless sourceBucket is "", the source into
// sourceBucket, which must be the recorded SourceName (SourceNameError).
// It creates each bucket, with versioning enabled (it fails if one
// exists), and uploads every version and delete marker of each key
// oldest first, so each key's current version, or delete marker, is the
// recorded one. Each uploaded version is checked to have the recorded
// ETag. It sets the versions' LoadedVersionID.
func Load(ctx context.Context, client s3x.Client, vaultBucket, sourceBucket string) (*Fixture, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	return LoadDir(ctx, client, dir, vaultBucket, sourceBucket)
}

// LoadDir is Load of the fixture in dir.
func LoadDir(ctx context.Context, client s3x.Client, dir, vaultBucket, sourceBucket string) (*Fixture, error) {
	f, err := Read(dir)
	if err != nil {
		return nil, err
	}
	if sourceBucket != "" && sourceBucket != f.SourceName {
		return nil, &SourceNameError{Given: sourceBucket, Recorded: f.SourceName}
	}
	if err := f.load(ctx, client, vaultBucket, &f.Vault); err != nil {
		return nil, err
	}
	f.VaultBucket = vaultBucket
	if sourceBucket != "" {
		if err := f.load(ctx, client, sourceBucket, &f.Source); err != nil {
			return nil, err
		}
		f.SourceBucket = sourceBucket
	}
	return f, nil
}

func (f *Fixture) load(ctx context.Context, c s3x.Client, bucket string, b *Bucket) error {
	if err := s3x.ValidateBucketName(bucket); err != nil {
		return fmt.Errorf("vault fixture: %w", err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("vault fixture: create bucket %s: %w", bucket, err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("vault fixture: enable versioning on %s: %w", bucket, err)
	}
	for i := range b.Keys {
		k := &b.Keys[i]
		for j := range k.Versions {
			v := &k.Versions[j]
			id, err := f.upload(ctx, c, bucket, k.Key, v)
			if err != nil {
				return fmt.Errorf("vault fixture: s3://%s/%s (version %d of %s): %w", bucket, k.Key, v.N, b.Name, err)
			}
			v.LoadedVersionID = id
		}
	}
	return nil
}

// upload recreates one version or delete marker and returns its new id.
func (f *Fixture) upload(ctx context.Context, c s3x.Client, bucket, key string, v *Version) (string, error) {
	if v.DeleteMarker {
		out, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return "", err
		}
		if !aws.ToBool(out.DeleteMarker) {
			return "", fmt.Errorf("the delete made no delete marker")
		}
		return aws.ToString(out.VersionId), nil
	}
	body, err := f.Body(v.File)
	if err != nil {
		return "", err
	}
	if int64(len(body)) != v.Size {
		return "", fmt.Errorf("%s holds %d bytes, the version %d", v.File, len(body), v.Size)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(v.Size), Metadata: v.Metadata,
		ContentType:        nonEmpty(v.ContentType),
		CacheControl:       nonEmpty(v.CacheControl),
		ContentDisposition: nonEmpty(v.ContentDisposition),
		ContentEncoding:    nonEmpty(v.ContentEncoding),
		ContentLanguage:    nonEmpty(v.ContentLanguage),
	}
	if len(v.Tags) > 0 {
		in.Tagging = aws.String(s3x.EncodeTags(v.Tags))
	}
	var opts []func(*s3.Options)
	switch v.ChecksumAlgorithm {
	case "":
		// No checksum recorded: send none, whatever the client's default.
		opts = append(opts, func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
	case "CRC32":
		in.ChecksumCRC32 = aws.String(v.Checksum)
	case "CRC32C":
		in.ChecksumCRC32C = aws.String(v.Checksum)
	case "CRC64NVME":
		in.ChecksumCRC64NVME = aws.String(v.Checksum)
	case "SHA1":
		in.ChecksumSHA1 = aws.String(v.Checksum)
	case "SHA256":
		in.ChecksumSHA256 = aws.String(v.Checksum)
	default:
		return "", fmt.Errorf("unknown checksum algorithm %q", v.ChecksumAlgorithm)
	}
	out, err := c.PutObject(ctx, in, opts...)
	if err != nil {
		return "", err
	}
	if got := s3x.TrimETag(aws.ToString(out.ETag)); got != v.ETag {
		return "", fmt.Errorf("uploaded with ETag %s, recorded %s", got, v.ETag)
	}
	return aws.ToString(out.VersionId), nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
