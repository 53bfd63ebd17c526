package protect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// RetentionMismatchError refuses a vault whose descriptor says another
// point-in-time window than the one asked for: the descriptor is never
// rewritten, so the request (the stack's configuration) has to change.
type RetentionMismatchError struct {
	Bucket     string
	Have, Want int
	CreatedAt  time.Time
}

func (e *RetentionMismatchError) Error() string {
	return fmt.Sprintf("vault s3://%s has a %d-day point-in-time window (its %s, written %s, is never rewritten); %d days were asked for: ask for %d (vault.retentionDays)",
		e.Bucket, e.Have, vault.DescriptorKey, e.CreatedAt.UTC().Format(time.RFC3339), e.Want, e.Have)
}

// Descriptor makes the existing bucket a vault by writing its descriptor,
// with vault.Create's semantics: an existing descriptor is never
// overwritten (the write is conditional, If-None-Match), one of an
// unknown format fails with vault's *UnknownFormatError, and running it
// again changes nothing. Unlike vault.Create it neither creates the bucket
// nor sets its versioning: the stack made the bucket (versioned, Object
// Lock on), and the role that calls this needs only s3:GetObject and a
// conditional s3:PutObject on the descriptor, plus s3:ListBucket.
//
// retentionDays is the point-in-time window of a new vault (0: vault's
// default); an existing vault whose window differs fails with a
// *RetentionMismatchError. created reports whether this call wrote the
// descriptor.
func Descriptor(ctx context.Context, c s3x.Client, bucket string, retentionDays int) (d vault.Descriptor, created bool, err error) {
	if retentionDays == 0 {
		retentionDays = vault.DefaultRetentionDays
	}
	if retentionDays < 1 {
		return d, false, fmt.Errorf("vault s3://%s: retention %d days: want at least 1", bucket, retentionDays)
	}
	for attempt := 0; ; attempt++ {
		v, err := vault.Open(ctx, c, bucket)
		if err == nil {
			d := v.Descriptor
			if d.RetentionDays != retentionDays {
				return d, false, &RetentionMismatchError{Bucket: bucket, Have: d.RetentionDays, Want: retentionDays, CreatedAt: d.CreatedAt}
			}
			return d, false, nil
		}
		if !errors.As(err, new(*vault.NotAVaultError)) || attempt > 0 {
			return d, false, err
		}
		d = vault.Descriptor{
			Format: vault.FormatName, FormatVersion: vault.FormatVersion, Name: bucket,
			CreatedAt: time.Now().UTC().Truncate(time.Second), RetentionDays: retentionDays,
		}
		w := &vault.Vault{S3: c, Bucket: bucket}
		ok, err := w.PutJSONOnce(ctx, vault.DescriptorKey, d)
		if err != nil {
			return d, false, err
		}
		if ok {
			return d, true, nil
		}
		// Written concurrently by someone else: read and check theirs.
	}
}
