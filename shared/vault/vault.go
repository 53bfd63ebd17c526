// Package vault implements bucketvault's vault format version 1: an S3
// bucket that alone holds everything needed to restore the buckets it
// protects. Data objects are written once per source version by server-side
// copy; journal segments are immutable, sorted, compressed record files; job
// and bucket records are small JSON objects. docs/vault-format.md documents
// the format; this package is its only reader and writer.
package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// FormatName and FormatVersion identify the format this code writes; it
// reads versions MinFormatVersion to FormatVersion (a format 1 vault as
// format 1 reads it, until `vault upgrade`).
const (
	FormatName       = "bucketvault"
	FormatVersion    = 2
	MinFormatVersion = 1
)

// Descriptor is the vault's bucketvault.json.
type Descriptor struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"formatVersion"`
	Name          string    `json:"name"`
	CreatedAt     time.Time `json:"createdAt"`
	// RetentionDays is how far back point-in-time restore reaches: the
	// default of a protected bucket's window (ProtectedBucket.WindowDays).
	RetentionDays int `json:"retentionDays"`
	// UpgradedAt and UpgradedFrom: when `vault upgrade` brought the vault
	// to its formatVersion, from which.
	UpgradedAt   *time.Time `json:"upgradedAt,omitempty"`
	UpgradedFrom int        `json:"upgradedFrom,omitempty"`
}

// DefaultRetentionDays is AWS Backup's continuous-backup window.
const DefaultRetentionDays = 35

// UnknownFormatError says a bucket holds a vault this code cannot read.
type UnknownFormatError struct {
	Bucket  string
	Format  string
	Version int
}

func (e *UnknownFormatError) Error() string {
	return fmt.Sprintf("vault s3://%s has format %q version %d; this bucketvault reads %q versions %d to %d: upgrade bucketvault",
		e.Bucket, e.Format, e.Version, FormatName, MinFormatVersion, FormatVersion)
}

// NotAVaultError says a bucket has no vault descriptor.
type NotAVaultError struct{ Bucket string }

func (e *NotAVaultError) Error() string {
	return fmt.Sprintf("s3://%s is not a bucketvault vault (no %s): create it with `bucketvault vault create`", e.Bucket, DescriptorKey)
}

// Vault is an open vault.
type Vault struct {
	S3         s3x.Client
	Bucket     string
	Descriptor Descriptor
	// Lock is the vault lock (nil: none), read when the vault is opened.
	Lock *VaultLock

	probe *probes // what the server honours (store.go)
	// scratchLock is whether scratch writes carry their own retention
	// (scratchRetained; nil: find out at each write).
	scratchLock *atomic.Int32
}

// CreateOptions shape a new vault.
type CreateOptions struct {
	// RetentionDays is the point-in-time window; 0 means
	// DefaultRetentionDays for a new vault, and whatever an existing
	// vault keeps.
	RetentionDays int
	// ObjectLock creates the bucket with Object Lock enabled (it can only be
	// turned on at creation).
	ObjectLock bool
}

// CreateRefusedError says why Create will not make a bucket a vault, or
// will not take an option on an existing one: bad input, not a failure.
type CreateRefusedError struct {
	Bucket string
	Reason string
}

func (e *CreateRefusedError) Error() string {
	return fmt.Sprintf("vault s3://%s: %s", e.Bucket, e.Reason)
}

// Create makes bucket a vault: creates the bucket if needed, with versioning
// on, and writes the descriptor. On an existing vault it changes nothing and
// returns it. It refuses (CreateRefusedError) an invalid bucket name, a
// bucket that exists and holds anything (any object version or delete
// marker: a vault is a bucket of its own, never a user's bucket taken
// over, whose versioning it would turn on for good), an empty bucket that
// carries protect's notification configuration (NotificationID: a source
// bucket), and, on an existing vault, a RetentionDays other than the one
// it keeps.
func Create(ctx context.Context, client s3x.Client, bucket string, opts CreateOptions) (*Vault, error) {
	if err := s3x.ValidateBucketName(bucket); err != nil {
		return nil, &CreateRefusedError{Bucket: bucket, Reason: err.Error()}
	}
	if v, err := Open(ctx, client, bucket); err == nil {
		if opts.RetentionDays != 0 && opts.RetentionDays != v.Descriptor.RetentionDays {
			return nil, &CreateRefusedError{Bucket: bucket, Reason: fmt.Sprintf(
				"is a vault already, with a %d-day point-in-time window by default; --retention-days %d would change that default, and create never changes an existing vault "+
					"(its descriptor is written once). A protected bucket's window is its own: `bucketvault protect --vault %s --bucket B --window-days %d` "+
					"sets bucket B's to %d days (run it for each bucket to change; `bucketvault vault show --vault %s` lists their windows), "+
					"and buckets protected without --window-days keep the vault's %d",
				v.Descriptor.RetentionDays, opts.RetentionDays, bucket, opts.RetentionDays, opts.RetentionDays, bucket, v.Descriptor.RetentionDays)}
		}
		return v, nil
	} else if !errors.As(err, new(*NotAVaultError)) {
		return nil, err
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		if !s3x.IsNotFound(err) {
			return nil, fmt.Errorf("vault s3://%s: %w", bucket, err)
		}
		in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
		if opts.ObjectLock {
			in.ObjectLockEnabledForBucket = aws.Bool(true)
		}
		if _, err := client.CreateBucket(ctx, in); err != nil {
			return nil, fmt.Errorf("create vault bucket s3://%s: %w", bucket, err)
		}
	} else {
		// An existing bucket becomes a vault only when it holds nothing.
		out, err := client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
		if err != nil {
			return nil, fmt.Errorf("vault s3://%s: is it empty: %w", bucket, err)
		}
		if len(out.Versions) > 0 || len(out.DeleteMarkers) > 0 {
			return nil, &CreateRefusedError{Bucket: bucket, Reason: "the bucket exists, holds objects and is not a vault (no " + DescriptorKey + "): " +
				"a vault must be a bucket of its own. Choose a new name (create makes the bucket), or an existing empty bucket"}
		}
		if arn, err := protectedQueue(ctx, client, bucket); err != nil {
			return nil, err
		} else if arn != "" {
			return nil, &CreateRefusedError{Bucket: bucket, Reason: "the bucket is empty but protected: its notification configuration " + strconv.Quote(NotificationID) +
				" (written by `bucketvault protect`) sends its events to " + arn + ", so it is a source bucket of a vault, and a vault must be a bucket of its own. " +
				"Choose a new name (create makes the bucket)"}
		}
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		return nil, fmt.Errorf("enable versioning on vault s3://%s: %w", bucket, err)
	}
	if opts.RetentionDays == 0 {
		opts.RetentionDays = DefaultRetentionDays
	}
	v := &Vault{S3: client, Bucket: bucket, scratchLock: new(atomic.Int32), Descriptor: Descriptor{
		Format: FormatName, FormatVersion: FormatVersion, Name: bucket,
		CreatedAt: time.Now().UTC().Truncate(time.Second), RetentionDays: opts.RetentionDays,
	}}
	created, err := v.PutJSONOnce(ctx, DescriptorKey, v.Descriptor)
	if err != nil {
		return nil, err
	}
	if !created { // someone else created it concurrently
		return Open(ctx, client, bucket)
	}
	return v, nil
}

// NotificationID is the id of the queue notification configuration
// `bucketvault protect` adds to a bucket it protects with queue or
// webhook delivery: the one mark a protected bucket carries itself.
// (EventBridge delivery is a switch any user may have turned on, and
// `--events none` leaves no mark: such a bucket is told from a user's by
// the vault that protects it, which create does not know.)
const NotificationID = "bucketvault"

// protectedQueue returns the queue ARN of bucket's notification
// configuration NotificationID ("" when it has none, or the server keeps
// no per-bucket notification configuration).
func protectedQueue(ctx context.Context, client s3x.Client, bucket string) (string, error) {
	out, err := client.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	switch {
	case s3x.IsNotImplemented(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("vault s3://%s: is it a protected bucket: %w", bucket, err)
	}
	for _, q := range out.QueueConfigurations {
		if aws.ToString(q.Id) == NotificationID {
			return aws.ToString(q.QueueArn), nil
		}
	}
	return "", nil
}

// Open reads and checks the descriptor of the vault in bucket.
func Open(ctx context.Context, client s3x.Client, bucket string) (*Vault, error) {
	v := &Vault{S3: client, Bucket: bucket, scratchLock: new(atomic.Int32)}
	err := v.GetJSON(ctx, DescriptorKey, &v.Descriptor)
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, &NotAVaultError{Bucket: bucket}
		}
		return nil, fmt.Errorf("open vault s3://%s: %w", bucket, err)
	}
	d := v.Descriptor
	if d.Format != FormatName || d.FormatVersion < MinFormatVersion || d.FormatVersion > FormatVersion {
		return nil, &UnknownFormatError{Bucket: bucket, Format: d.Format, Version: d.FormatVersion}
	}
	if v.Descriptor.RetentionDays == 0 {
		v.Descriptor.RetentionDays = DefaultRetentionDays
	}
	if err := v.loadLock(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// GetJSON reads a JSON record of the vault into dst.
func (v *Vault) GetJSON(ctx context.Context, key string, dst any) error {
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("decode s3://%s/%s: %w", v.Bucket, key, err)
	}
	return nil
}

// PutJSON writes a JSON record (a new version of it if it exists).
func (v *Vault) PutJSON(ctx context.Context, key string, src any) error {
	body, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = v.putObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
	return nil
}

// PutBytes writes an object of the vault (a new version if it exists).
func (v *Vault) PutBytes(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := v.putBytes(ctx, key, body, contentType)
	return err
}

// putBytes is PutBytes that returns the ETag written.
func (v *Vault) putBytes(ctx context.Context, key string, body []byte, contentType string) (string, error) {
	out, err := v.putObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String(contentType),
	})
	if err != nil {
		return "", fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
	return s3x.TrimETag(aws.ToString(out.ETag)), nil
}

// PutJSONOnce writes a JSON record only if the key does not exist yet
// (If-None-Match: *) and reports whether it wrote it.
func (v *Vault) PutJSONOnce(ctx context.Context, key string, src any) (bool, error) {
	body, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", key, err)
	}
	return v.putOnce(ctx, key, body, "application/json")
}

func (v *Vault) putOnce(ctx context.Context, key string, body []byte, contentType string) (bool, error) {
	_, created, err := v.putOnceETag(ctx, key, body, contentType)
	return created, err
}

// putOnceETag is putOnce that also returns the ETag of what the key holds
// (its own write's, or the earlier one's, read back).
func (v *Vault) putOnceETag(ctx context.Context, key string, body []byte, contentType string) (string, bool, error) {
	out, err := v.putObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String(contentType), IfNoneMatch: aws.String("*"),
	})
	switch {
	case err == nil:
		return s3x.TrimETag(aws.ToString(out.ETag)), true, nil
	case s3x.IsPreconditionFailed(err) || s3x.IsConflict(err):
		h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
		if err != nil {
			return "", false, fmt.Errorf("read s3://%s/%s back: %w", v.Bucket, key, err)
		}
		return s3x.TrimETag(aws.ToString(h.ETag)), false, nil
	default:
		return "", false, fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
}

// ProtectedBucket is the vault's record of a bucket it protects.
type ProtectedBucket struct {
	Bucket      string    `json:"bucket"`
	ProtectedAt time.Time `json:"protectedAt"`
	// Events says how change events reach the journal: EventsEventBridge,
	// EventsQueue(arn), EventsServerWide, or EventsNone (reconcile only).
	Events string `json:"events"`
	// ACLs says whether the bucket uses object ACLs (ObjectOwnership is not
	// BucketOwnerEnforced), so backups read and restores write them.
	ACLs bool `json:"acls"`
	// FirstFullBackupAt is when the initial reconcile finished.
	FirstFullBackupAt *time.Time `json:"firstFullBackupAt,omitempty"`
	// WindowDays is how far back point-in-time restore of this bucket
	// reaches (1 to MaxWindowDays); 0 takes the vault's RetentionDays.
	WindowDays int `json:"windowDays,omitempty"`
}

// MaxWindowDays bounds a bucket's point-in-time window: ten years. (AWS
// Backup keeps continuous backups at most 35 days; bucketvault's journal
// folds as it ages, so a longer window costs the changes it keeps, not a
// copy per day.)
const MaxWindowDays = 3650

// Window is the point-in-time window of a protected bucket, in days.
func (v *Vault) Window(pb ProtectedBucket) int {
	if pb.WindowDays > 0 {
		return pb.WindowDays
	}
	return v.Descriptor.RetentionDays
}

// RestoreWindow is how far back a restore of bucket as of a point in time
// may reach at now: the later of now minus its window and the floor its
// journal was folded at (which holds whatever clock now comes from).
// Window is 0 for a bucket the vault does not protect continuously (its
// snapshots keep their own lifecycle); the floor applies all the same.
type RestoreWindow struct {
	Days     int       `json:"windowDays,omitempty"`
	Floor    time.Time `json:"floor,omitzero"`
	Earliest time.Time `json:"earliest,omitzero"`
}

// WindowAt says how far back a point-in-time restore of bucket reaches
// at now.
func (v *Vault) WindowAt(ctx context.Context, bucket string, now time.Time) (RestoreWindow, error) {
	var w RestoreWindow
	pb, err := v.Protected(ctx, bucket)
	switch {
	case err == nil:
		w.Days = v.Window(pb)
		w.Earliest = now.UTC().AddDate(0, 0, -w.Days).Truncate(time.Second)
	case !s3x.IsNotFound(err):
		return w, err
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil {
		return w, err
	}
	w.Floor = idx.Floor
	if w.Floor.After(w.Earliest) {
		w.Earliest = w.Floor
	}
	return w, nil
}

// Refuses says why a restore as of at is outside the window ("" when it
// is inside).
func (w RestoreWindow) Refuses(bucket string, at time.Time) string {
	if w.Earliest.IsZero() || !at.Before(w.Earliest) {
		return ""
	}
	msg := fmt.Sprintf("%s is before the earliest restorable time of s3://%s, %s", at.UTC().Format(time.RFC3339), bucket, w.Earliest.Format(time.RFC3339))
	if w.Days > 0 {
		msg += fmt.Sprintf(" (its point-in-time window is %d days", w.Days)
		if !w.Floor.IsZero() {
			msg += fmt.Sprintf("; the journal was folded at %s and holds nothing older", w.Floor.Format(time.RFC3339))
		}
		msg += ")"
	} else if !w.Floor.IsZero() {
		msg += fmt.Sprintf(" (the journal was folded at %s and holds nothing older)", w.Floor.Format(time.RFC3339))
	}
	return msg + ": restore a snapshot recovery point from before it instead, if one is kept (`bucketvault recovery-points`)"
}

// Buckets lists the buckets the vault protects.
func (v *Vault) Buckets(ctx context.Context) ([]ProtectedBucket, error) {
	var out []ProtectedBucket
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(bucketsPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list protected buckets of vault s3://%s: %w", v.Bucket, err)
		}
		for _, o := range page.Contents {
			var b ProtectedBucket
			if err := v.GetJSON(ctx, aws.ToString(o.Key), &b); err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// Protected reads the record of one protected bucket.
func (v *Vault) Protected(ctx context.Context, bucket string) (ProtectedBucket, error) {
	var b ProtectedBucket
	err := v.GetJSON(ctx, BucketKey(bucket), &b)
	return b, err
}
