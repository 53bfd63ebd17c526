// Package schedule starts a backup plan rule's snapshot jobs when its
// EventBridge Scheduler schedule fires: the dispatch function (functions/
// dispatch) resolves the rule's selections against the account's buckets
// (plan.ResolveBackups, the local scheduler's resolver too: ListBuckets,
// tags, whether a bucket is a vault, versioning) and starts one execution
// of the rule's snapshot state machine per selected bucket, with the job
// snapshot.JobForRule made for it at synth time and the bucket and
// scheduled time filled in.
//
// Starting is idempotent: each execution is named after the scheduled time
// and the bucket, so a dispatch retried by Scheduler or Lambda starts
// nothing twice (Step Functions refuses a second execution of one name;
// that refusal counts as started).
package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// ScheduledTimePlaceholder is EventBridge Scheduler's context attribute for
// the time a schedule was set to invoke its target; Scheduler substitutes it
// in the target's input.
const ScheduledTimePlaceholder = "<aws.scheduler.scheduled-time>"

// Request is what a rule's schedule sends the dispatch function (its
// target input, written by infra/ at synth time).
type Request struct {
	// ScheduledAt is when the schedule fired (ScheduledTimePlaceholder in
	// the schedule's input); zero means now.
	ScheduledAt time.Time `json:"scheduledAt"`
	// StateMachineARN is the rule's snapshot state machine.
	StateMachineARN string `json:"stateMachineArn"`
	// Job is snapshot.JobForRule's job for the rule, without a bucket: the
	// vault, windows, lifecycle, tags and CreatedBy of every job started.
	Job snapshot.Job `json:"job"`
	// Selections say which buckets the rule backs up; a bucket any of
	// them takes is backed up once.
	Selections []plan.Selection `json:"selections"`
}

// StartExecutionAPI is the Step Functions operation the dispatcher calls
// (*sfn.Client has it).
type StartExecutionAPI interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

var _ StartExecutionAPI = (*sfn.Client)(nil)

// Dispatcher starts a rule's snapshot executions.
type Dispatcher struct {
	// S3 resolves the selections.
	S3  s3x.Client
	SFN StartExecutionAPI
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result says what a dispatch did.
type Result struct {
	ScheduledAt time.Time `json:"scheduledAt"`
	// Started are the executions started (or found started by an earlier
	// attempt), one per bucket, sorted by bucket.
	Started []Started `json:"started"`
	// NotBackedUp are the buckets a selection takes but that cannot be
	// backed up (versioning not Enabled, unreadable, a vault, the vault
	// itself), with the reason, sorted by bucket.
	NotBackedUp []plan.Bucket `json:"notBackedUp"`
}

// Started is one execution.
type Started struct {
	Bucket       string `json:"bucket"`
	Name         string `json:"name"`
	ExecutionARN string `json:"executionArn,omitempty"`
	// AlreadyStarted: an earlier attempt of this dispatch started it.
	AlreadyStarted bool `json:"alreadyStarted,omitempty"`
}

// InvalidRequestError is a request that cannot be dispatched (retrying it
// changes nothing).
type InvalidRequestError struct{ Reason string }

func (e *InvalidRequestError) Error() string { return "invalid dispatch request: " + e.Reason }

func (d *Dispatcher) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// Dispatch resolves the request's selections and starts one execution per
// selected bucket. Buckets that cannot be backed up are reported in the
// result (and logged), never dropped silently. A failure to resolve or to
// start some execution is returned after every other bucket was tried, so
// a retry (the schedule's or Lambda's) starts only what is missing.
func (d *Dispatcher) Dispatch(ctx context.Context, req Request) (*Result, error) {
	switch {
	case req.StateMachineARN == "":
		return nil, &InvalidRequestError{Reason: "stateMachineArn is required"}
	case req.Job.Vault == "":
		return nil, &InvalidRequestError{Reason: "job.vault is required"}
	case len(req.Selections) == 0:
		return nil, &InvalidRequestError{Reason: "selections: at least one selection is required"}
	}
	at := req.ScheduledAt
	if at.IsZero() {
		at = time.Now()
		if d.Now != nil {
			at = d.Now()
		}
	}
	at = at.UTC()
	res := &Result{ScheduledAt: at, Started: []Started{}, NotBackedUp: []plan.Bucket{}}
	r, err := plan.ResolveBackups(ctx, d.S3, req.Selections, req.Job.Vault)
	if err != nil {
		return nil, err
	}
	res.NotBackedUp = r.NotBackedUp
	for _, b := range r.NotBackedUp {
		d.log().WarnContext(ctx, "selected bucket not backed up", "bucket", b.Name, "reason", b.Reason)
	}
	var errs []error
	for _, b := range r.Buckets {
		s, err := d.start(ctx, req, b.Name, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Started = append(res.Started, s)
	}
	d.log().InfoContext(ctx, "snapshot jobs dispatched", "scheduledAt", at, "started", len(res.Started), "notBackedUp", len(res.NotBackedUp), "failed", len(errs))
	return res, errors.Join(errs...)
}

func (d *Dispatcher) start(ctx context.Context, req Request, bucket string, at time.Time) (Started, error) {
	job := req.Job
	job.Bucket, job.ScheduledAt = bucket, at
	input, err := json.Marshal(job)
	if err != nil {
		return Started{}, err
	}
	s := Started{Bucket: bucket, Name: ExecutionName(bucket, at)}
	out, err := d.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(req.StateMachineARN), Name: aws.String(s.Name), Input: aws.String(string(input)),
	})
	var exists *sfntypes.ExecutionAlreadyExists
	switch {
	case errors.As(err, &exists):
		// An earlier attempt of this dispatch started it (the name is the
		// bucket and the scheduled time).
		s.AlreadyStarted = true
		d.log().InfoContext(ctx, "snapshot job already started", "bucket", bucket, "execution", s.Name)
		return s, nil
	case err != nil:
		return Started{}, fmt.Errorf("start the snapshot of %s (%s): %w", bucket, s.Name, err)
	}
	s.ExecutionARN = aws.ToString(out.ExecutionArn)
	d.log().InfoContext(ctx, "snapshot job started", "bucket", bucket, "execution", s.ExecutionARN)
	return s, nil
}

// maxExecutionName is Step Functions' limit on an execution's name.
const maxExecutionName = 80

// ExecutionName is the name of the execution that snapshots bucket for the
// schedule's firing at: the scheduled time (UTC, to the second), a hash of
// the bucket's name (names differ even where the readable part is cut) and
// as much of the bucket's name as fits in Step Functions' 80 characters,
// dots made dashes.
func ExecutionName(bucket string, at time.Time) string {
	sum := sha256.Sum256([]byte(bucket))
	name := at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:4]) + "-" + strings.ReplaceAll(bucket, ".", "-")
	if len(name) > maxExecutionName {
		name = name[:maxExecutionName]
	}
	return name
}
