// Package protect puts a bucket under continuous backup: it checks the
// bucket can be protected, turns on delivery of its change events, records
// it in the vault and runs the initial full backup.
package protect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// NotVersionedError refuses a bucket whose versioning is not Enabled:
// without versions there is no history to back up continuously.
type NotVersionedError struct {
	Bucket string
	Status string
}

func (e *NotVersionedError) Error() string {
	status := e.Status
	if status == "" {
		status = "never enabled"
	}
	return fmt.Sprintf("bucket %s has versioning %s: continuous backup needs versioning Enabled "+
		"(aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled)", e.Bucket, status, e.Bucket)
}

// WindowError refuses a point-in-time window out of range.
type WindowError struct{ Days int }

func (e *WindowError) Error() string {
	return fmt.Sprintf("window of %d days: want 1 to %d", e.Days, vault.MaxWindowDays)
}

// Options say how events reach the journal.
type Options struct {
	// QueueARN, when set, adds a notification queue configuration with this
	// ARN (a local server's webhook target, or an SQS queue) for the object
	// events the journal consumes.
	QueueARN string
	// EventBridge turns on the bucket's EventBridge delivery (on AWS).
	EventBridge bool
	// KeepEvents, for a bucket protected before, keeps the event delivery
	// its record names (turning it on again where it is gone) instead of
	// QueueARN and EventBridge, which then apply only to a bucket
	// protected for the first time: protect run again to change a window
	// leaves delivery as it is.
	KeepEvents bool
	// ACLs says whether the bucket uses object ACLs, so backups capture
	// them; nil keeps what the bucket has (no ACLs for a bucket protected
	// for the first time).
	ACLs *bool
	// WindowDays is the bucket's point-in-time window (1 to
	// vault.MaxWindowDays); 0 keeps what the bucket has (the vault's
	// default for a bucket protected for the first time).
	WindowDays int
	// SkipInitialBackup leaves the first full backup to a later reconcile.
	SkipInitialBackup bool
	Reconcile         journal.ReconcileOptions
}

// QueueEvents are the notification event types the journal consumes.
var QueueEvents = []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}

// Protect protects bucket in the journal's vault.
func Protect(ctx context.Context, j *journal.Journal, bucket string, o Options) (vault.ProtectedBucket, *journal.Progress, error) {
	c := j.S3
	ver, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
	if err != nil {
		return vault.ProtectedBucket{}, nil, fmt.Errorf("versioning of bucket %s: %w", bucket, err)
	}
	if ver.Status != types.BucketVersioningStatusEnabled {
		return vault.ProtectedBucket{}, nil, &NotVersionedError{Bucket: bucket, Status: string(ver.Status)}
	}
	if bucket == j.Vault.Bucket {
		return vault.ProtectedBucket{}, nil, fmt.Errorf("bucket %s is the vault itself", bucket)
	}
	if o.WindowDays < 0 || o.WindowDays > vault.MaxWindowDays {
		return vault.ProtectedBucket{}, nil, &WindowError{Days: o.WindowDays}
	}
	pb := vault.ProtectedBucket{Bucket: bucket, ProtectedAt: time.Now().UTC(), ACLs: o.ACLs != nil && *o.ACLs, Events: vault.EventsNone, WindowDays: o.WindowDays}
	// The record is written over the version read here, and each write
	// after over the one before (rec.put): another protect of the bucket
	// in between makes this one fail, never overwrites what it recorded.
	rec := &record{v: j.Vault, key: vault.BucketKey(bucket)}
	var old vault.ProtectedBucket
	if etag, err := j.Vault.GetJSONETag(ctx, rec.key, &old); err == nil {
		rec.etag = etag
		pb.ProtectedAt, pb.FirstFullBackupAt = old.ProtectedAt, old.FirstFullBackupAt
		if pb.WindowDays == 0 {
			pb.WindowDays = old.WindowDays
		}
		if o.ACLs == nil {
			pb.ACLs = old.ACLs
		}
		if o.KeepEvents {
			o.EventBridge, o.QueueARN = old.Events == vault.EventsEventBridge, vault.EventsQueueARN(old.Events)
			if old.Events == vault.EventsServerWide {
				pb.Events = old.Events
			}
		}
	} else if !s3x.IsNotFound(err) {
		return pb, nil, err
	}
	// The window is the continuous recovery point's retention: the vault
	// lock bounds it as it bounds a snapshot's.
	if err := j.Vault.CheckRetention("window-days", j.Vault.Window(pb)); err != nil {
		return pb, nil, err
	}
	if o.QueueARN != "" || o.EventBridge {
		// The record first: the journal refuses events of a bucket it
		// has no record of, and the first ones may come at once.
		if err := rec.put(ctx, pb); err != nil {
			return pb, nil, err
		}
		err := enableEvents(ctx, c, bucket, o)
		switch {
		case err == nil && o.EventBridge:
			pb.Events = vault.EventsEventBridge
		case err == nil:
			pb.Events = vault.EventsQueue(o.QueueARN)
		case s3x.IsNotImplemented(err):
			// The server has no per-bucket notification configuration
			// (versitygw sends every bucket's events to its webhook).
			pb.Events = vault.EventsServerWide
		default:
			return pb, nil, err
		}
	}
	// Delivery moved off the queue bucketvault had the bucket send to:
	// its configuration there goes, or events would keep coming.
	if was := vault.EventsQueueARN(old.Events); was != "" && was != o.QueueARN {
		if err := disableQueue(ctx, c, bucket, was); err != nil {
			return pb, nil, err
		}
	}
	if err := rec.put(ctx, pb); err != nil {
		return pb, nil, err
	}
	if o.SkipInitialBackup {
		return pb, nil, nil
	}
	p, err := j.Reconcile(ctx, bucket, o.Reconcile)
	if err != nil {
		return pb, &p, fmt.Errorf("initial full backup of %s: %w", bucket, err)
	}
	if pb.FirstFullBackupAt == nil {
		// The initial backup takes a while: a protect of the bucket in the
		// meantime (another window, say) stands, and only the time of the
		// first full backup is added to what it recorded.
		if pb, err = rec.firstFullBackup(ctx, pb, p.CompletedAt); err != nil {
			return pb, &p, err
		}
	}
	return pb, &p, nil
}

// record is one protect's hold on a bucket's record (vault.BucketKey):
// each write goes over the version read or last written (If-Match), or
// creates the record (If-None-Match) when there was none, so a protect
// that raced another gets a vault.ConflictError instead of overwriting
// it.
type record struct {
	v    *vault.Vault
	key  string
	etag string
}

func (r *record) put(ctx context.Context, pb vault.ProtectedBucket) error {
	etag, err := r.v.PutJSONIf(ctx, r.key, pb, r.etag)
	if err != nil {
		if vault.IsConflict(err) {
			return fmt.Errorf("protect %s: another protect of the bucket changed its record meanwhile, and nothing of this one was written over it: run protect again: %w", pb.Bucket, err)
		}
		return err
	}
	r.etag = etag
	return nil
}

// firstFullBackup records when the first full backup of the bucket
// finished, at, unless its record has a time already: over the version
// this protect wrote, or, when another protect wrote since, over that
// one (read again), keeping everything else it recorded. It returns the
// record as written.
func (r *record) firstFullBackup(ctx context.Context, pb vault.ProtectedBucket, at *time.Time) (vault.ProtectedBucket, error) {
	for attempt := 1; ; attempt++ {
		if pb.FirstFullBackupAt != nil {
			return pb, nil
		}
		pb.FirstFullBackupAt = at
		err := r.put(ctx, pb)
		if err == nil || !vault.IsConflict(err) || attempt == 3 {
			return pb, err
		}
		var cur vault.ProtectedBucket
		etag, err := r.v.GetJSONETag(ctx, r.key, &cur)
		if err != nil {
			return pb, err
		}
		pb, r.etag = cur, etag
	}
}

// enableEvents adds our delivery to the bucket's notification
// configuration, keeping everything already there.
func enableEvents(ctx context.Context, c s3x.Client, bucket string, o Options) error {
	cur, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("notification configuration of %s: %w", bucket, err)
	}
	next := &types.NotificationConfiguration{
		EventBridgeConfiguration:     cur.EventBridgeConfiguration,
		LambdaFunctionConfigurations: cur.LambdaFunctionConfigurations,
		QueueConfigurations:          cur.QueueConfigurations,
		TopicConfigurations:          cur.TopicConfigurations,
	}
	changed := false
	if o.EventBridge && next.EventBridgeConfiguration == nil {
		next.EventBridgeConfiguration = &types.EventBridgeConfiguration{}
		changed = true
	}
	if o.QueueARN != "" {
		have := false
		for _, q := range next.QueueConfigurations {
			if aws.ToString(q.QueueArn) == o.QueueARN {
				have = true
			}
		}
		if !have {
			next.QueueConfigurations = append(next.QueueConfigurations, types.QueueConfiguration{
				Id: aws.String(vault.NotificationID), QueueArn: aws.String(o.QueueARN), Events: QueueEvents,
			})
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket), NotificationConfiguration: next,
	}); err != nil {
		if o.QueueARN != "" && s3x.Code(err) == "InvalidArgument" && strings.Contains(strings.ToLower(err.Error()), "arn") {
			return &EventTargetMissingError{Bucket: bucket, ARN: o.QueueARN, Err: err}
		}
		return fmt.Errorf("turn on event delivery for %s: %w", bucket, err)
	}
	return nil
}

// disableQueue removes from bucket's notification configuration the
// queue configuration protect added for arn (vault.NotificationID),
// keeping every other.
func disableQueue(ctx context.Context, c s3x.Client, bucket, arn string) error {
	cur, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("notification configuration of %s: %w", bucket, err)
	}
	keep := slices.DeleteFunc(slices.Clone(cur.QueueConfigurations), func(q types.QueueConfiguration) bool {
		return aws.ToString(q.Id) == vault.NotificationID && aws.ToString(q.QueueArn) == arn
	})
	if len(keep) == len(cur.QueueConfigurations) {
		return nil
	}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket), NotificationConfiguration: &types.NotificationConfiguration{
			EventBridgeConfiguration:     cur.EventBridgeConfiguration,
			LambdaFunctionConfigurations: cur.LambdaFunctionConfigurations,
			QueueConfigurations:          keep,
			TopicConfigurations:          cur.TopicConfigurations,
		},
	}); err != nil {
		return fmt.Errorf("turn off event delivery to %s for %s: %w", arn, bucket, err)
	}
	return nil
}

// EventTargetMissingError: the server has no notification target with
// the queue ARN protect would deliver events to.
type EventTargetMissingError struct {
	Bucket, ARN string
	Err         error
}

func (e *EventTargetMissingError) Error() string {
	return fmt.Sprintf("turn on event delivery for %s: the server has no notification target %s, so it cannot send the bucket's events anywhere. "+
		"On the local server, start it with bucketvault's webhook (`bucketvault local-server --webhook URL`, which sets MinIO's "+
		"MINIO_NOTIFY_WEBHOOK_ENABLE_bucketvault=on and MINIO_NOTIFY_WEBHOOK_ENDPOINT_bucketvault=URL); or pass --queue-arn with a target the server has; "+
		"or --events none to protect by reconcile only. (The server said: %v)", e.Bucket, e.ARN, e.Err)
}

func (e *EventTargetMissingError) Unwrap() error { return e.Err }
