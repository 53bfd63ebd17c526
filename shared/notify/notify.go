// Package notify publishes job events: a job's start and end, and objects a
// backup could not copy. They go to an EventBridge bus, to an SNS topic, or
// both, with AWS Backup's event names (BACKUP_JOB_STARTED, ...) and
// detail-types ("Backup Job State Change", "Restore Job State Change"), so
// rules and subscriptions written for AWS Backup's notifications carry over
// with the source changed to "bucketvault".
//
// Every publisher sends the same JSON document, the Event: EventBridge as
// the event's detail, SNS as the message, with the event type, job type
// and state as message attributes for subscription filter policies.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/bucketvault/bucketvault/shared/config"
)

// Event types: AWS Backup's notification event names.
const (
	BackupJobStarted     = "BACKUP_JOB_STARTED"
	BackupJobCompleted   = "BACKUP_JOB_COMPLETED"
	BackupJobFailed      = "BACKUP_JOB_FAILED"
	RestoreJobStarted    = "RESTORE_JOB_STARTED"
	RestoreJobCompleted  = "RESTORE_JOB_COMPLETED"
	RestoreJobFailed     = "RESTORE_JOB_FAILED"
	S3BackupObjectFailed = "S3_BACKUP_OBJECT_FAILED"
	// A restore test's start, and its end once its verdict is known.
	RestoreTestingJobStarted   = "RESTORE_TESTING_JOB_STARTED"
	RestoreTestingJobCompleted = "RESTORE_TESTING_JOB_COMPLETED"
	RestoreTestingJobFailed    = "RESTORE_TESTING_JOB_FAILED"
)

// Job types.
const (
	JobTypeBackup  = "BACKUP"
	JobTypeRestore = "RESTORE"
	// JobTypeRestoreTesting: a restore test (its restore is a RESTORE job
	// of its own, with events of its own).
	JobTypeRestoreTesting = "RESTORE_TESTING"
)

// Source is the EventBridge source of every event (the functions' roles may
// put events with this source only).
const Source = "bucketvault"

// EventBridge detail-types, AWS Backup's.
const (
	DetailTypeBackup  = "Backup Job State Change"
	DetailTypeRestore = "Restore Job State Change"
)

// eventJobTypes is each event type's job type.
var eventJobTypes = map[string]string{
	BackupJobStarted: JobTypeBackup, BackupJobCompleted: JobTypeBackup, BackupJobFailed: JobTypeBackup,
	S3BackupObjectFailed: JobTypeBackup,
	RestoreJobStarted:    JobTypeRestore, RestoreJobCompleted: JobTypeRestore, RestoreJobFailed: JobTypeRestore,
	RestoreTestingJobStarted: JobTypeRestoreTesting, RestoreTestingJobCompleted: JobTypeRestoreTesting, RestoreTestingJobFailed: JobTypeRestoreTesting,
}

// Event is one job event, and the JSON document every publisher sends.
type Event struct {
	// Type is one of the event type constants (BACKUP_JOB_STARTED, ...).
	Type string `json:"eventType"`
	// JobID is the job's id (its record in the vault is jobs/<JobID>.json);
	// empty when the job failed before it had one.
	JobID string `json:"jobId,omitempty"`
	// JobType is BACKUP, RESTORE or RESTORE_TESTING; empty: the Type's.
	JobType string `json:"jobType"`
	// State is the job's state (RUNNING, COMPLETED, PARTIAL, FAILED, ...).
	State string `json:"state,omitempty"`
	// Vault is the vault bucket.
	Vault string `json:"vault,omitempty"`
	// Bucket is the protected (source) bucket.
	Bucket          string `json:"bucket,omitempty"`
	RecoveryPointID string `json:"recoveryPointId,omitempty"`
	StatusMessage   string `json:"statusMessage,omitempty"`
	// Time is when it happened; zero: when it is published.
	Time time.Time `json:"time"`
	// Detail holds what else the job reports (counts, the target, ...).
	// It is sent as "details", so an EventBridge pattern reads
	// detail.details.<name>.
	Detail map[string]any `json:"details,omitempty"`
}

// InvalidEventError refuses an event no subscriber could classify.
type InvalidEventError struct {
	Type, Reason string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("job event %q: %s", e.Type, e.Reason)
}

// normalize checks e and fills JobType and Time.
func normalize(e Event, now func() time.Time) (Event, error) {
	jt, ok := eventJobTypes[e.Type]
	if !ok {
		return e, &InvalidEventError{Type: e.Type, Reason: "not a known event type"}
	}
	switch e.JobType {
	case "":
		e.JobType = jt
	case jt:
	default:
		return e, &InvalidEventError{Type: e.Type, Reason: fmt.Sprintf("job type %q, want %q", e.JobType, jt)}
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	return e, nil
}

// DetailType is the EventBridge detail-type of an event of job type jobType.
func DetailType(jobType string) string {
	if jobType == JobTypeRestore || jobType == JobTypeRestoreTesting {
		return DetailTypeRestore
	}
	return DetailTypeBackup
}

// Publisher publishes job events.
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// Multi publishes to every publisher, all of them even when one fails,
// and returns their errors joined.
type Multi []Publisher

// Publish implements Publisher.
func (m Multi) Publish(ctx context.Context, e Event) error {
	var errs []error
	for _, p := range m {
		if err := p.Publish(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Log writes events to a logger: the publisher of local runs, and of
// functions with no topic or bus configured.
type Log struct {
	Logger *slog.Logger // nil: slog.Default()
	Now    func() time.Time
}

// Publish implements Publisher.
func (l Log) Publish(ctx context.Context, e Event) error {
	e, err := normalize(e, nowOr(l.Now))
	if err != nil {
		return err
	}
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{"eventType", e.Type, "jobType", e.JobType, "job", e.JobID, "state", e.State,
		"vault", e.Vault, "bucket", e.Bucket, "time", e.Time}
	if e.RecoveryPointID != "" {
		attrs = append(attrs, "recoveryPoint", e.RecoveryPointID)
	}
	if e.StatusMessage != "" {
		attrs = append(attrs, "statusMessage", e.StatusMessage)
	}
	if len(e.Detail) > 0 {
		attrs = append(attrs, "details", e.Detail)
	}
	log.InfoContext(ctx, "job event", attrs...)
	return nil
}

func nowOr(now func() time.Time) func() time.Time {
	if now != nil {
		return now
	}
	return time.Now
}

// FromEnv is the publisher configured by the environment: EventBridge when
// config.EnvEventBus names a bus, SNS when config.EnvEventsTopic names a
// topic, both when both are set, and the Log publisher (slog.Default) when
// neither is. Clients are made from cfg (traced, on Lambda).
func FromEnv(cfg aws.Config, getenv func(string) string) Publisher {
	var ps Multi
	if bus := getenv(config.EnvEventBus); bus != "" {
		ps = append(ps, &EventBridge{Client: eventbridge.NewFromConfig(cfg), Bus: bus})
	}
	if topic := getenv(config.EnvEventsTopic); topic != "" {
		ps = append(ps, &SNS{Client: sns.NewFromConfig(cfg), TopicARN: topic})
	}
	switch len(ps) {
	case 0:
		return Log{}
	case 1:
		return ps[0]
	}
	return ps
}

// Send publishes e and logs, rather than returns, a failure: a job's
// outcome never depends on its notification. It publishes even when ctx
// is done (the end of a job that ran out of time is the event that
// matters), within timeout. A nil p publishes nothing.
func Send(ctx context.Context, p Publisher, e Event, log *slog.Logger) {
	if p == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if err := p.Publish(ctx, e); err != nil {
		log.ErrorContext(ctx, "job event not published", "eventType", e.Type, "job", e.JobID, "error", err)
	}
}

// sendTimeout bounds Send.
const sendTimeout = 10 * time.Second
