// Package snapshot takes scheduled and on-demand snapshots of protected
// buckets into a vault: a SNAPSHOT recovery point is a sorted, sharded
// manifest of every object current when the bucket was scanned.
//
// A snapshot job runs as steps, each a plain function with JSON in and out
// that the Step Functions state machine (infra/) and the local runner (Run)
// call alike:
//
//	start   open the job and name its base; EXPIRED if its start window
//	        has passed
//	scan    list the bucket (resumable, in rounds), diff it against the
//	        snapshot's base (the point start named, vault.BaseOf) and the
//	        journal, write work-item files for the Distributed Map and the
//	        items list its ItemReader reads
//	copy    for a batch of item files: copy the versions the vault lacks
//	        (one server-side CopyObject each, metadata and tags carried by
//	        the copy) and write one manifest fragment per file
//	seal    make the fragments the manifest (adopting each fragment without
//	        failures as a shard by one server-side copy, re-encoding the
//	        rest) and write the recovery point record (AVAILABLE, or
//	        PARTIAL listing every object not backed up)
//	notify  publish the job's state change
//	fail    record a job that failed outright (the state machine's Catch)
//
// Every step can be retried: files and fragments are rewritten whole, and
// a copy step that finds its file started before checks the vault before
// each copy, so nothing is copied twice.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Job states, the vault's (vault.JobRunning...): a backup job's record
// holds RUNNING, then COMPLETED, PARTIAL, ABORTED or FAILED; or EXPIRED
// from the start.
const (
	StateRunning   = vault.JobRunning
	StateCompleted = vault.JobCompleted
	StatePartial   = vault.JobPartial
	StateAborted   = vault.JobAborted
	StateExpired   = vault.JobExpired
	StateFailed    = vault.JobFailed
)

// Steps, as the state machine names them in each task's payload.
const (
	StepStart  = "start"
	StepScan   = "scan"
	StepCopy   = "copy"
	StepSeal   = "seal"
	StepNotify = "notify"
	StepFail   = "fail"
)

// Job is a snapshot job: the payload every step takes and returns (the
// copy step takes it inside its batch input).
type Job struct {
	// Type is vault.JobTypeBackup (set by start): the job record's schema.
	Type   string `json:"type,omitempty"`
	Vault  string `json:"vault"`
	Bucket string `json:"bucket"`
	// JobID and RecoveryPointID are set by start.
	JobID           string `json:"jobId,omitempty"`
	RecoveryPointID string `json:"recoveryPointId,omitempty"`
	State           string `json:"state,omitempty"`
	StatusMessage   string `json:"statusMessage,omitempty"`

	// The rule that made the job (empty for an on-demand backup).
	CreatedBy         *vault.CreatedBy  `json:"createdBy,omitempty"`
	Lifecycle         *vault.Lifecycle  `json:"lifecycle,omitempty"`
	RecoveryPointTags map[string]string `json:"recoveryPointTags,omitempty"`
	// ScheduledAt is when the schedule fired (EventBridge Scheduler's
	// <aws.scheduler.scheduled-time>); zero: when the job starts.
	ScheduledAt time.Time `json:"scheduledAt,omitzero"`
	// StartWindowMinutes and CompletionWindowMinutes are the rule's
	// windows (0: AWS Backup's defaults, 480 and 10080).
	StartWindowMinutes      int64 `json:"startWindowMinutes,omitempty"`
	CompletionWindowMinutes int64 `json:"completionWindowMinutes,omitempty"`

	// ACLs says whether the copy step reads each new version's ACL
	// (GetObjectAcl), as a restore needs to put it back. Unset, start
	// decides: on when the vault protects the bucket with ACLs, or when
	// the bucket's Object Ownership leaves ACLs enabled (s3x.ObjectACLs).
	ACLs *bool `json:"acls,omitempty"`

	// Inventory, when set, makes the scan read an S3 Inventory report
	// instead of listing the bucket (very large buckets).
	Inventory *InventorySource `json:"inventory,omitempty"`

	StartedAt  time.Time `json:"startedAt,omitzero"`
	CompleteBy time.Time `json:"completeBy,omitzero"` // the completion window's end
	Scan       ScanState `json:"scan"`
	Totals     *Totals   `json:"totals,omitempty"` // set by seal
}

// readACLs reports whether the job captures object ACLs (decided by start).
func (j Job) readACLs() bool { return j.ACLs != nil && *j.ACLs }

// ScanState is the scan's progress, kept in the job and in the vault.
type ScanState struct {
	Done bool `json:"done"`
	// Stopped says the completion window ended before the listing did:
	// keys after KeyMarker are not in the snapshot.
	Stopped bool `json:"stopped,omitempty"`
	// ItemsKey is the vault key of the items list (a JSON array of
	// ItemRef) the Distributed Map's ItemReader reads; written when Done.
	ItemsKey string `json:"itemsKey,omitempty"`
	// Files is how many chunks were written (fragments 1..Files make the
	// manifest); ItemFiles how many of them need copying.
	Files     int   `json:"files"`
	ItemFiles int   `json:"itemFiles"`
	Current   int64 `json:"current"` // current objects listed
	ToCopy    int64 `json:"toCopy"`  // of which the vault lacks the data
	Rounds    int   `json:"rounds"`
	// EndedAt is when the listing ended: the snapshot holds the objects
	// current between the job's start and then.
	EndedAt time.Time `json:"endedAt,omitzero"`
	// InventoryFiles is how many of the inventory's data files are sorted
	// into Runs (vault keys of sorted record files).
	InventoryFiles int      `json:"inventoryFiles,omitempty"`
	Runs           []string `json:"runs,omitempty"`
	// Warnings name damaged vault objects (the previous snapshot's shards,
	// the journal's) the scan read around: keys they held are copied
	// again where the vault no longer vouches for their data.
	Warnings []string `json:"warnings,omitempty"`
	// KeyMarker and VersionIDMarker resume the listing.
	KeyMarker       string `json:"keyMarker,omitempty"`
	VersionIDMarker string `json:"versionIdMarker,omitempty"`
}

// ItemRef is one item of the Distributed Map: a work-item file.
type ItemRef struct {
	N   int    `json:"n"`
	Key string `json:"key"`
}

// CopyRequest is the copy step's input: the Distributed Map's batch
// (ItemBatcher's Items and BatchInput).
type CopyRequest struct {
	Items      []ItemRef `json:"Items"`
	BatchInput struct {
		Job Job `json:"job"`
	} `json:"BatchInput"`
}

// CopyResult is the copy step's output.
type CopyResult struct {
	Files        int   `json:"files"`
	FilesSkipped int   `json:"filesSkipped"` // already done by an earlier attempt
	Copied       int64 `json:"copied"`
	CopiedBytes  int64 `json:"copiedBytes"`
	Carried      int64 `json:"carried"` // the vault had the data already
	Failed       int64 `json:"failed"`
}

// Totals are a finished job's counts.
type Totals struct {
	Objects     int64 `json:"objects"`
	Bytes       int64 `json:"bytes"`
	Copied      int64 `json:"copied"`
	CopiedBytes int64 `json:"copiedBytes"`
	Failed      int64 `json:"failed"`
}

// Engine runs the steps.
type Engine struct {
	S3 s3x.Client
	// DefaultVault is the vault of requests that name none (the
	// function's configured vault).
	DefaultVault string
	// Concurrency is how many copies run at once (default 32).
	Concurrency int
	CopyOptions s3x.CopyOptions
	Log         *slog.Logger
	// Events receives the job's state change events; nil logs them.
	Events notify.Publisher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ChunkSize is how many current objects one work-item file holds
	// (default 1000; a chunk ends at a listing page's end).
	ChunkSize int
	// ScanBudget bounds one scan call; it returns Done=false to be called
	// again (default: until 90 s before the context's deadline, or 10 min).
	ScanBudget time.Duration
	// ScanPages, when positive, bounds the listing pages of one scan call.
	ScanPages int
	// PackMax is the largest version stored in a pack (see vault.PackKey):
	// 0 means DefaultPackMax, a negative value packs nothing (every
	// version is copied server-side). PackBytes is the size at which a
	// pack closes (0: DefaultPackBytes).
	PackMax, PackBytes int64
	// Progress, when set, is called as objects finish (local runs).
	Progress func(Progress)
}

// Progress counts a running job.
type Progress struct {
	Listed, Copied, Carried, Failed, Bytes int64
}

// Typed errors: aws-lambda-go reports an error's type name as the Lambda
// errorType, which the state machine's Retry and Catch match. Handlers
// return these unwrapped.
type (
	// RetryableError is a transient failure (throttling, a 5xx, a timeout):
	// retry the step.
	RetryableError struct{ Err error }
	// InvalidJobError is a payload that cannot run: do not retry.
	InvalidJobError struct{ Reason string }
)

func (e *RetryableError) Error() string  { return e.Err.Error() }
func (e *RetryableError) Unwrap() error  { return e.Err }
func (e *InvalidJobError) Error() string { return "invalid snapshot job: " + e.Reason }
func invalid(f string, a ...any) error   { return &InvalidJobError{Reason: fmt.Sprintf(f, a...)} }
func (e *Engine) log() *slog.Logger      { return orDefault(e.Log) }
func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// ErrorNames are the error type names the state machine retries on
// (Retryable) and catches as fatal (Fatal); infra/ builds Retry and Catch
// from them and its tests check they match these types.
var ErrorNames = struct{ Retryable, Fatal []string }{
	Retryable: []string{"RetryableError"},
	Fatal:     []string{"InvalidJobError"},
}

// classify turns an error into the typed error the state machine acts on.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var r *RetryableError
	var inv *InvalidJobError
	var nav *vault.NotAVaultError
	var unk *vault.UnknownFormatError
	switch {
	case errors.As(err, &r), errors.As(err, &inv):
		return err
	case errors.As(err, &nav), errors.As(err, &unk):
		return &InvalidJobError{Reason: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), s3x.IsRetryable(err), vault.IsConflict(err):
		// A lost conditional write is retried: the step reads the record
		// again and goes on from what the other writer left.
		return &RetryableError{Err: err}
	}
	return err
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) concurrency() int {
	if e.Concurrency > 0 {
		return e.Concurrency
	}
	return 32
}

func (e *Engine) chunkSize() int {
	if e.ChunkSize > 0 {
		return e.ChunkSize
	}
	return 1000
}

// Default windows (AWS Backup's).
const (
	DefaultStartWindowMinutes      = 480
	DefaultCompletionWindowMinutes = 10080
)

// sealMargin is how long before the completion window's end scans and
// copies stop, so the seal can record what they finished in time.
func sealMargin(window time.Duration) time.Duration {
	return min(5*time.Minute, window/10)
}

// stopAt is when scan and copy stop working for job.
func (j *Job) stopAt() time.Time {
	if j.CompleteBy.IsZero() {
		return time.Time{}
	}
	return j.CompleteBy.Add(-sealMargin(j.CompleteBy.Sub(j.StartedAt)))
}

func (j *Job) validate() error {
	switch {
	case j.Vault == "":
		return invalid("vault is required")
	case j.Bucket == "":
		return invalid("bucket is required")
	case j.StartWindowMinutes < 0:
		return invalid("startWindowMinutes %d is negative", j.StartWindowMinutes)
	case j.CompletionWindowMinutes < 0:
		return invalid("completionWindowMinutes %d is negative", j.CompletionWindowMinutes)
	}
	if err := j.Lifecycle.Validate(); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func (j *Job) started() error {
	if err := j.validate(); err != nil {
		return err
	}
	if j.JobID == "" || j.RecoveryPointID == "" {
		return invalid("jobId and recoveryPointId are required (run the start step first)")
	}
	return nil
}
