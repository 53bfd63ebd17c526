package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Sealed JSON: a job's working record (a restore batch's result) written
// with the SHA-256 of its body in the object's metadata, and checked
// against it when read back. A body that does not match is damage
// (ErrSealBroken), never a result to use.

const sealMeta = "sha256"

// ErrSealBroken is a sealed record whose bytes are not the ones written.
var ErrSealBroken = fmt.Errorf("sealed record does not match its SHA-256")

// PutSealedJSON writes src as JSON at key, sealed.
func (v *Vault) PutSealedJSON(ctx context.Context, key string, src any) error {
	body, err := json.Marshal(src)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	sum := sha256.Sum256(body)
	_, err = v.putObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), Metadata: map[string]string{sealMeta: hex.EncodeToString(sum[:])},
	})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
	return nil
}

// GetSealedJSON reads a sealed record into dst, checked: a missing key is
// an error satisfying s3x.IsNotFound, a body that fails its seal wraps
// ErrSealBroken.
func (v *Vault) GetSealedJSON(ctx context.Context, key string, dst any) error {
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	sum := sha256.Sum256(body)
	if want := out.Metadata[sealMeta]; want != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("s3://%s/%s: %w (sha256 %s, sealed %q)", v.Bucket, key, ErrSealBroken, hex.EncodeToString(sum[:8]), want)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("decode s3://%s/%s: %w", v.Bucket, key, err)
	}
	return nil
}
