package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// The vault lock (AWS Backup's vault lock, on S3 Object Lock):
//
//   - lock.json records the mode, the minimum and maximum retention of a
//     recovery point, and, for a compliance lock, the day it becomes
//     immutable (LockDate: ChangeableForDays, at least 3, after it was
//     set). Until then it can be changed or removed; after, never.
//   - The engine enforces it: a backup whose retention falls outside
//     [MinRetentionDays, MaxRetentionDays] is refused, naming the field;
//     expiry never deletes a recovery point before its minimum retention.
//   - S3 enforces it for everyone else: the vault bucket's Object Lock
//     default retention (the lock's mode, MinRetentionDays) locks every
//     version written, and retention follows references: a snapshot's
//     seal extends the retention of every data object it references to
//     its DeleteAt, and expiry extends that of data the journal still
//     references before it ends (RetentionPeriods), so no one, this code
//     and an administrator of the account included, deletes a referenced
//     object early.

// VaultLock is the vault's lock.
type VaultLock struct {
	// Mode is GOVERNANCE or COMPLIANCE.
	Mode             string `json:"mode"`
	MinRetentionDays int    `json:"minRetentionDays"`
	MaxRetentionDays int    `json:"maxRetentionDays,omitempty"`
	// ChangeableForDays is the cool-off of a compliance lock: it can be
	// changed or removed until LockDate, never after.
	ChangeableForDays int        `json:"changeableForDays,omitempty"`
	LockedAt          time.Time  `json:"lockedAt"`
	LockDate          *time.Time `json:"lockDate,omitempty"`
}

// Lock modes.
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// Limits of a vault lock (AWS Backup's).
const (
	MaxLockRetentionDays = 36500
	MinChangeableForDays = 3
)

// LockKey is the vault key of the vault lock record.
const LockKey = "lock.json"

// loadLock reads the vault lock record, if there is one.
func (v *Vault) loadLock(ctx context.Context) error {
	var l VaultLock
	err := v.GetJSON(ctx, LockKey, &l)
	switch {
	case err == nil:
		v.Lock = &l
	case s3x.IsNotFound(err):
		v.Lock = nil
	default:
		return err
	}
	return nil
}

// LockOptions ask for a vault lock.
type LockOptions struct {
	Mode                               string
	MinRetentionDays, MaxRetentionDays int
	ChangeableForDays                  int // compliance: 0 means MinChangeableForDays
}

// LockInputError refuses a lock or a retention that breaks the lock's
// rules, naming the field: bad input, not a failure.
type LockInputError struct {
	Field  string
	Reason string
}

func (e *LockInputError) Error() string { return e.Field + ": " + e.Reason }

// LockImmutableError refuses to change a compliance lock past its
// LockDate.
type LockImmutableError struct {
	Vault    string
	LockDate time.Time
}

func (e *LockImmutableError) Error() string {
	return fmt.Sprintf("vault s3://%s has a compliance lock, immutable since %s: it can be neither changed nor removed", e.Vault, e.LockDate.Format(time.RFC3339))
}

// NoObjectLockError says the vault bucket has no S3 Object Lock, which a
// vault lock needs (S3 can turn it on only when a bucket is created).
type NoObjectLockError struct{ Vault string }

func (e *NoObjectLockError) Error() string {
	return fmt.Sprintf("vault s3://%s has no S3 Object Lock, which a vault lock stands on; S3 enables it only when a bucket is created: "+
		"create a vault with `bucketvault vault create --object-lock` (the CDK stack's vault has it) and protect the buckets there", e.Vault)
}

func (o *LockOptions) validate() error {
	o.Mode = strings.ToUpper(o.Mode)
	switch {
	case o.Mode != LockGovernance && o.Mode != LockCompliance:
		return &LockInputError{"mode", fmt.Sprintf("%q: want governance or compliance", o.Mode)}
	case o.MinRetentionDays < 1 || o.MinRetentionDays > MaxLockRetentionDays:
		return &LockInputError{"min-retention-days", fmt.Sprintf("%d: want 1 to %d", o.MinRetentionDays, MaxLockRetentionDays)}
	case o.MaxRetentionDays != 0 && (o.MaxRetentionDays < o.MinRetentionDays || o.MaxRetentionDays > MaxLockRetentionDays):
		return &LockInputError{"max-retention-days", fmt.Sprintf("%d: want %d (the minimum) to %d", o.MaxRetentionDays, o.MinRetentionDays, MaxLockRetentionDays)}
	case o.Mode == LockGovernance && o.ChangeableForDays != 0:
		return &LockInputError{"changeable-for-days", "applies to a compliance lock only"}
	case o.Mode == LockCompliance && o.ChangeableForDays == 0:
		o.ChangeableForDays = MinChangeableForDays
	case o.Mode == LockCompliance && (o.ChangeableForDays < MinChangeableForDays || o.ChangeableForDays > MaxLockRetentionDays):
		return &LockInputError{"changeable-for-days", fmt.Sprintf("%d: want %d to %d", o.ChangeableForDays, MinChangeableForDays, MaxLockRetentionDays)}
	}
	return nil
}

// SetLock locks the vault (or changes its lock, while it may be
// changed): S3 Object Lock's default retention on the bucket first, then
// lock.json (If-Match on the record read, If-None-Match when there was
// none). now is when the lock is set.
func (v *Vault) SetLock(ctx context.Context, o LockOptions, now time.Time) (*VaultLock, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	var cur VaultLock
	etag, err := v.getJSONETag(ctx, LockKey, &cur)
	switch {
	case s3x.IsNotFound(err):
		etag = ""
	case err != nil:
		return nil, err
	case cur.LockDate != nil && !now.Before(*cur.LockDate):
		return nil, &LockImmutableError{Vault: v.Bucket, LockDate: *cur.LockDate}
	}
	conf, err := v.S3.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(v.Bucket)})
	switch {
	case err != nil && (s3x.IsNotFound(err) || strings.Contains(err.Error(), "ObjectLockConfigurationNotFound")):
		return nil, &NoObjectLockError{Vault: v.Bucket}
	case err != nil:
		return nil, fmt.Errorf("object lock of vault s3://%s: %w", v.Bucket, err)
	case conf.ObjectLockConfiguration == nil || conf.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled:
		return nil, &NoObjectLockError{Vault: v.Bucket}
	}
	if _, err := v.S3.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{
		Bucket: aws.String(v.Bucket),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{
			ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{
				Mode: types.ObjectLockRetentionMode(o.Mode), Days: aws.Int32(int32(o.MinRetentionDays)),
			}},
		},
	}); err != nil {
		return nil, fmt.Errorf("set the object lock of vault s3://%s: %w", v.Bucket, err)
	}
	l := &VaultLock{Mode: o.Mode, MinRetentionDays: o.MinRetentionDays, MaxRetentionDays: o.MaxRetentionDays,
		ChangeableForDays: o.ChangeableForDays, LockedAt: now.UTC().Truncate(time.Second)}
	if o.Mode == LockCompliance {
		d := l.LockedAt.AddDate(0, 0, o.ChangeableForDays)
		l.LockDate = &d
	}
	if _, err := v.putJSONIf(ctx, LockKey, l, etag); err != nil {
		return nil, err
	}
	v.Lock = l
	// The lock holds for what the vault holds already too (the bucket's
	// default retention only locks what is written from now on).
	if _, err := v.RetainReferenced(ctx); err != nil {
		return l, fmt.Errorf("the lock is set; extending the retention of what the vault held before it: %w (run `vault lock` again to finish)", err)
	}
	return l, nil
}

// CheckRetention checks a recovery point's retention (days; 0: kept
// until deleted by hand) against the vault lock, naming field.
func (v *Vault) CheckRetention(field string, days int) error {
	l := v.Lock
	if l == nil {
		return nil
	}
	switch {
	case days == 0 && l.MaxRetentionDays > 0:
		return &LockInputError{field, fmt.Sprintf("unset (kept forever), but vault %s's lock keeps recovery points at most %d days", v.Bucket, l.MaxRetentionDays)}
	case days != 0 && days < l.MinRetentionDays:
		return &LockInputError{field, fmt.Sprintf("%d days, but vault %s's lock keeps recovery points at least %d days", days, v.Bucket, l.MinRetentionDays)}
	case l.MaxRetentionDays > 0 && days > l.MaxRetentionDays:
		return &LockInputError{field, fmt.Sprintf("%d days, but vault %s's lock keeps recovery points at most %d days", days, v.Bucket, l.MaxRetentionDays)}
	}
	return nil
}

// Retain extends the S3 Object Lock retention of the current version of
// each key to until (at least), in the lock's mode: what a recovery point
// references stays locked as long as the point lives. A version retained
// longer already is left so (S3 refuses to shorten a compliance
// retention, and bucketvault never asks to shorten any). Without a lock it
// does nothing.
func (v *Vault) Retain(ctx context.Context, keys []string, until time.Time, concurrency int) error {
	if v.Lock == nil || len(keys) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for _, k := range keys {
		g.Go(func() error {
			cur, err := v.S3.GetObjectRetention(gctx, &s3.GetObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(k)})
			if err == nil && cur.Retention != nil && cur.Retention.RetainUntilDate != nil && !cur.Retention.RetainUntilDate.Before(until) {
				return nil
			}
			if err != nil && !s3x.IsNotFound(err) && !strings.Contains(err.Error(), "NoSuchObjectLockConfiguration") {
				return fmt.Errorf("retention of s3://%s/%s: %w", v.Bucket, k, err)
			}
			_, err = v.S3.PutObjectRetention(gctx, &s3.PutObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(k),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(v.Lock.Mode), RetainUntilDate: aws.Time(until.UTC())}})
			if err != nil {
				return fmt.Errorf("extend the retention of s3://%s/%s to %s: %w", v.Bucket, k, until.UTC().Format(time.RFC3339), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// RetainData is Retain for data objects, by the records that reference
// them: the version extended is the one bearing the recorded DataETag
// (HeadData: the current version, else the newest older one that has it,
// else the version a repair record vouches for, whose record is retained
// with it), so a data object rewritten or damaged after it was written
// never moves the lock off the good bytes onto the bad ones. The HEAD that checks the
// ETag also answers the retention (it replaces Retain's
// GetObjectRetention), so an intact object costs what Retain costs. A
// data object with no good version is left to verify and repair.
func (v *Vault) RetainData(ctx context.Context, recs []Record, until time.Time, concurrency int) error {
	if v.Lock == nil || len(recs) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for _, rec := range recs {
		g.Go(func() error {
			h, dv, err := v.HeadData(gctx, rec)
			var damaged *DamagedDataError
			switch {
			case errors.As(err, &damaged) || s3x.IsNotFound(err):
				return nil
			case err != nil:
				return fmt.Errorf("retention of %s: %w", rec.Data, err)
			}
			to := v.retainStep(aws.ToTime(h.LastModified), until)
			if dv.Rebuilt != "" {
				// The repair record that vouches for the version lives as
				// long as it does.
				if err := v.retainVersion(gctx, dv.Rebuilt, "", to); err != nil {
					return err
				}
			}
			if h.ObjectLockRetainUntilDate != nil && !h.ObjectLockRetainUntilDate.Before(until) {
				return nil
			}
			_, err = v.S3.PutObjectRetention(gctx, &s3.PutObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data), VersionId: nonEmpty(dv.VersionID),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(v.Lock.Mode), RetainUntilDate: aws.Time(to.UTC())}})
			if err != nil {
				return fmt.Errorf("extend the retention of s3://%s/%s@%s to %s: %w", v.Bucket, rec.Data, dv.VersionID, to.UTC().Format(time.RFC3339), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// retainStep rounds until up to the end of a whole period of the lock's
// minimum retention from written (the grid expiry's extensions use): a
// data object that daily recovery points keep referencing is extended
// once a period, not at every seal (at 10⁹ objects, a PutObjectRetention
// each a day is $5,000 a day; once a 35-day period, about $140 a day).
// Data that stops
// being referenced stays locked at most one period longer than needed.
func (v *Vault) retainStep(written, until time.Time) time.Time {
	period := time.Duration(v.Lock.MinRetentionDays) * 24 * time.Hour
	if period <= 0 || written.IsZero() || !until.After(written) {
		return until
	}
	n := (until.Sub(written) + period - 1) / period
	return written.Add(n * period)
}

// PointRetainUntil is how long what a recovery point references stays
// locked: until its DeleteAt, at least the lock's minimum from now.
func (v *Vault) PointRetainUntil(sp *SnapshotPoint, now time.Time) time.Time {
	until := now.AddDate(0, 0, v.Lock.MinRetentionDays)
	if cl := sp.CalculatedLifecycle; cl != nil && cl.DeleteAt != nil && cl.DeleteAt.After(until) {
		until = *cl.DeleteAt
	}
	return until
}

// RetainPoint extends the retention of every data object a snapshot
// recovery point references to its DeleteAt (a point kept until deleted
// by hand: the lock's minimum from now, which expiry extends while it
// lives), reading its manifest in batches: memory does not grow with the
// point. Without a lock it does nothing.
func (v *Vault) RetainPoint(ctx context.Context, sp *SnapshotPoint, now time.Time, concurrency int) error {
	if v.Lock == nil {
		return nil
	}
	until := v.PointRetainUntil(sp, now)
	// The point's own objects: its record and manifest.
	own := []string{SnapshotKey(sp.ResourceName, sp.RecoveryPointID)}
	for _, sh := range append(slices.Clone(sp.Shards), sp.FailureShards...) {
		own = append(own, sh.Key)
	}
	if err := v.Retain(ctx, own, until, concurrency); err != nil && !s3x.IsNotFound(err) {
		return err
	}
	m, err := NewMerger([]RecordSource{v.OpenShards(ctx, sp.Shards, nil)})
	if err != nil {
		return err
	}
	defer m.Close()
	var batch []Record
	seen := map[string]bool{} // packs repeat: one batch's worth
	err = readAll(m, func(_ string, recs []Observed) error {
		for _, r := range recs {
			if r.Data == "" || seen[r.Data] {
				continue
			}
			seen[r.Data] = true
			batch = append(batch, r.Record)
			if len(batch) == 1000 {
				if err := v.RetainData(ctx, batch, until, concurrency); err != nil {
					return err
				}
				batch = batch[:0]
				clear(seen)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return v.RetainData(ctx, batch, until, concurrency)
}

// Encryption is how the vault bucket encrypts what is written to it: its
// default encryption (S3 applies it to every object written without
// encryption headers, as bucketvault writes them).
type Encryption struct {
	Encrypted bool   `json:"encrypted"`
	Algorithm string `json:"algorithm,omitempty"` // AES256, aws:kms, aws:kms:dsse
	KMSKeyARN string `json:"kmsKeyArn,omitempty"`
}

// Encryption reads the vault bucket's default encryption. A bucket with
// none stores objects unencrypted (a local server without KMS; Amazon S3
// encrypts every bucket with SSE-S3 at least).
func (v *Vault) Encryption(ctx context.Context) (Encryption, error) {
	out, err := v.S3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(v.Bucket)})
	if err != nil {
		if s3x.IsNotFound(err) || strings.Contains(err.Error(), "ServerSideEncryptionConfigurationNotFound") || s3x.IsNotImplemented(err) {
			return Encryption{}, nil
		}
		return Encryption{}, fmt.Errorf("encryption of vault s3://%s: %w", v.Bucket, err)
	}
	if out.ServerSideEncryptionConfiguration == nil {
		return Encryption{}, nil
	}
	for _, r := range out.ServerSideEncryptionConfiguration.Rules {
		if d := r.ApplyServerSideEncryptionByDefault; d != nil && d.SSEAlgorithm != "" {
			return Encryption{Encrypted: true, Algorithm: string(d.SSEAlgorithm), KMSKeyARN: aws.ToString(d.KMSMasterKeyID)}, nil
		}
	}
	return Encryption{}, nil
}
