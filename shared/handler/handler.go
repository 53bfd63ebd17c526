// Package handler builds each Lambda function's handler from its start-up
// state (wiring.Function), in one place: the functions' mains (on Lambda
// and under the Runtime Interface Emulator) and the CLI's in-process
// `bucketvault invoke` run the same code with the same settings. It also
// names the variables the stack puts in each function's environment, so a
// local run gives a function the environment Lambda gives it.
package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/notify/restorejob"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

// Journal is the journal function's handler: SQS batches of S3 events in,
// vault data and journal segments out, with partial batch failures. The
// vault is opened on the first batch and kept.
func Journal(f *wiring.Function) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	var j *journal.Journal
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if j == nil {
			v, err := f.Vault(ctx)
			if err != nil {
				return events.SQSEventResponse{}, err
			}
			j = &journal.Journal{Vault: v, S3: f.S3, Concurrency: f.Config.Concurrency, RelayMax: f.Config.RelayMax, Log: f.Log}
		}
		return j.HandleSQS(ctx, ev)
	}
}

// Reconcile is the reconcile function's handler: a request naming no
// buckets covers the configured ones (every protected bucket when none
// are configured), and the work stops before the invocation's deadline.
func Reconcile(f *wiring.Function) func(context.Context, journal.ReconcileRequest) (*journal.ReconcileResponse, error) {
	return func(ctx context.Context, req journal.ReconcileRequest) (*journal.ReconcileResponse, error) {
		v, err := f.Vault(ctx)
		if err != nil {
			return nil, err
		}
		j := &journal.Journal{Vault: v, S3: f.S3, Concurrency: f.Config.Concurrency, RelayMax: f.Config.RelayMax, Log: f.Log}
		if len(req.Buckets) == 0 {
			req.Buckets = f.Config.Buckets
		}
		return j.HandleReconcile(ctx, req)
	}
}

// Protect is the protect function's handler: a scheduled request, or a
// CloudFormation custom resource event (the vault's descriptor, the
// protected buckets). The vault is opened when buckets are protected, not
// before: the vault resource writes its descriptor first, and a vault
// that cannot be opened is an answer to CloudFormation, not a crash.
func Protect(f *wiring.Function) func(context.Context, json.RawMessage) (any, error) {
	h := &protect.Handler{
		S3: f.S3, Vault: f.Config.Vault, Log: f.Log, Buckets: f.Config.Buckets,
		OpenJournal: func(ctx context.Context) (*journal.Journal, error) {
			v, err := f.Vault(ctx)
			if err != nil {
				return nil, err
			}
			return &journal.Journal{Vault: v, S3: f.S3, Concurrency: f.Config.Concurrency, RelayMax: f.Config.RelayMax, Log: f.Log}, nil
		},
	}
	return h.Handle
}

// Restore is the restore function's handler. Its input is a restore
// request (the CLI's --function, small restores), run in this one
// invocation, its report out (also kept in the vault); or a step of the
// restore state machine (restore.StepRequest: it names a "step"), run by
// restore.Restorer.Handle. It publishes RESTORE_JOB_STARTED when a job
// starts (a request; a state machine's first plan round) and
// RESTORE_JOB_COMPLETED or RESTORE_JOB_FAILED when it ends (a request's
// report; the state machine's report or fail step). A dry run is no job:
// it sends none. A request naming no vault or concurrency takes the
// configured ones; on Lambda, targets must be buckets of the function's
// own account.
func Restore(f *wiring.Function) func(context.Context, json.RawMessage) (any, error) {
	base := &restore.Restorer{S3: f.S3, AllowedTargets: f.Config.RestoreTargets, Log: f.Log}
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var invocation string
		r := *base
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			invocation = lc.AwsRequestID
			// arn:aws:lambda:<region>:<account>:function:<name>: targets
			// must be this account's buckets.
			if parts := strings.Split(lc.InvokedFunctionArn, ":"); len(parts) > 4 {
				r.ExpectedOwner = parts[4]
			}
		}
		if restore.IsStep(raw) {
			return restoreStep(ctx, f, &r, raw)
		}
		var req restore.Request
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, &restore.InvalidRequestError{Reason: fmt.Sprintf("decode the restore request: %v", err)}
		}
		if req.Vault == "" {
			req.Vault = f.Config.Vault
		}
		if req.Concurrency == 0 {
			req.Concurrency = f.Config.Concurrency
		}
		if req.DryRun {
			return r.Run(ctx, req) // no job: no job events
		}
		notify.Send(ctx, f.Events, restorejob.Started(req, invocation, time.Now()), f.Log)
		rep, err := r.Run(ctx, req)
		notify.Send(ctx, f.Events, restorejob.Ended(req, rep, err, invocation, time.Now()), f.Log)
		return rep, err
	}
}

// restoreStep runs one step of the restore state machine and sends the
// job's events where the job starts and ends. The events name the
// execution as their invocation.
func restoreStep(ctx context.Context, f *wiring.Function, r *restore.Restorer, raw json.RawMessage) (any, error) {
	var step restore.StepRequest
	if err := json.Unmarshal(raw, &step); err != nil {
		return nil, &restore.InvalidRequestError{Reason: fmt.Sprintf("decode the step: %v", err)}
	}
	for _, j := range []*restore.Job{step.Job, batchJob(step)} {
		if j != nil && j.Request.Vault == "" {
			j.Request.Vault = f.Config.Vault
		}
		if j != nil && j.Request.Concurrency == 0 {
			j.Request.Concurrency = f.Config.Concurrency
		}
	}
	raw, err := json.Marshal(step)
	if err != nil {
		return nil, err
	}
	first := step.Step == restore.StepPlan && step.Job != nil && step.Job.JobID == ""
	if first {
		notify.Send(ctx, f.Events, restorejob.Started(step.Job.Request, step.Execution, time.Now()), f.Log)
	}
	out, err := r.Handle(ctx, raw)
	job, _ := out.(*restore.Job)
	ended := step.Step == restore.StepFail ||
		step.Step == restore.StepReport && job != nil && job.Report.Done ||
		first && job != nil && job.State != "" // a job COMPLETED already
	if !ended || step.Job == nil {
		return out, err
	}
	var rep *restore.Report
	if job != nil && job.JobID != "" {
		if v, verr := vault.Open(ctx, f.S3, step.Job.Request.Vault); verr == nil {
			rep, _ = restore.LoadJob(ctx, v, job.JobID, time.Now())
		}
	}
	execution := ""
	if rep != nil && rep.Runner != nil {
		execution = rep.Runner.Execution
	}
	if rep == nil && err == nil && job != nil && job.StatusMessage != "" {
		err = errors.New(job.StatusMessage) // failed before the job had a record
	}
	notify.Send(ctx, f.Events, restorejob.Ended(step.Job.Request, rep, err, execution, time.Now()), f.Log)
	return out, err
}

// batchJob is a batch step's job (nil for other steps).
func batchJob(step restore.StepRequest) *restore.Job {
	if step.BatchInput == nil {
		return nil
	}
	return &step.BatchInput.Job
}

// Snapshot is the snapshot function's handler: one step of the snapshot
// state machine (start, scan, copy, seal, notify, fail) per invocation.
func Snapshot(f *wiring.Function) func(context.Context, json.RawMessage) (any, error) {
	e := &snapshot.Engine{
		S3: f.S3, DefaultVault: f.Config.Vault, Concurrency: f.Config.Concurrency, PackMax: f.Config.PackMax, Log: f.Log,
		Events: f.Events,
	}
	return e.Handle
}

// Dispatch is the dispatch function's handler: a backup rule fired, and
// one execution of its snapshot state machine starts per bucket its
// selections take.
func Dispatch(f *wiring.Function) func(context.Context, schedule.Request) (*schedule.Result, error) {
	d := &schedule.Dispatcher{S3: f.S3, SFN: sfn.NewFromConfig(f.AWS), Log: f.Log}
	return d.Dispatch
}

// expireMargin is what an expiry invocation keeps after its folds for
// the recovery points and its report.
const expireMargin = 2 * time.Minute

// Expire is the expire function's handler: it folds each protected
// bucket's journal past its window, deletes snapshot recovery points at
// their DeleteAt and collects the data nothing references (vault.Expire);
// a dry run deletes nothing and says what it would.
func Expire(f *wiring.Function) func(context.Context, vault.ExpireRequest) (*vault.ExpireReport, error) {
	return func(ctx context.Context, req vault.ExpireRequest) (*vault.ExpireReport, error) {
		v, err := f.Vault(ctx)
		if err != nil {
			return nil, err
		}
		o := vault.ExpireOptions{Now: time.Now(), DryRun: req.DryRun, Concurrency: f.Config.Concurrency,
			CollectEvery: time.Duration(req.CollectEveryHours) * time.Hour}
		if d, ok := ctx.Deadline(); ok {
			// Folds stop in time for the rest of the run; the next resumes.
			o.StopAt = d.Add(-expireMargin)
		}
		rep, err := v.Expire(ctx, o)
		if rep != nil {
			f.Log.InfoContext(ctx, "expiry", "folds", len(rep.Folds), "recoveryPoints", len(rep.Expired),
				"journalObjects", rep.Journal.Objects, "dataObjects", rep.Data.Objects, "bytesFreed", rep.Data.Bytes+rep.Journal.Bytes,
				"retained", rep.Data.Retained+rep.Journal.Retained, "warnings", len(rep.Warnings), "incomplete", rep.Incomplete,
				"collectionSkipped", rep.Collected.SkippedBecause)
		}
		return rep, err
	}
}

// RestoreTestRequest is the restore test function's input other than a
// state machine's step: one restore test run in the function (its restore
// in-process, so within the function's time), or the sweeper's schedule,
// {"sweep": true} (with the vault, optionally).
type RestoreTestRequest struct {
	// Sweep: delete the restore-test-* buckets whose time is up, end dead
	// runs FAILED (restoretest.Tester.Sweep), and nothing else.
	Sweep bool
	Vault string
	// Run is the restore test to run (not a sweep).
	Run restoretest.RunRequest
}

// DecodeRestoreTestRequest reads a RestoreTestRequest, refusing unknown
// fields.
func DecodeRestoreTestRequest(raw []byte) (*RestoreTestRequest, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, &restoretest.InvalidRequestError{Reason: fmt.Sprintf("decode the request: %v", err)}
	}
	if _, ok := probe["sweep"]; ok {
		var sw struct {
			Sweep bool   `json:"sweep"`
			Vault string `json:"vault"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sw); err != nil || !sw.Sweep {
			return nil, &restoretest.InvalidRequestError{Reason: fmt.Sprintf("a sweep is {\"sweep\": true, \"vault\": V}: %v", err)}
		}
		return &RestoreTestRequest{Sweep: true, Vault: sw.Vault}, nil
	}
	var req RestoreTestRequest
	if err := json.Unmarshal(raw, &req.Run); err != nil {
		return nil, &restoretest.InvalidRequestError{Reason: fmt.Sprintf("decode the request: %v", err)}
	}
	if req.Run.Bucket == "" {
		return nil, &restoretest.InvalidRequestError{Reason: "a restore test needs a bucket (or sweep: true)"}
	}
	req.Vault = req.Run.Vault
	return &req, nil
}

// RestoreTest is the restore test function's handler: a step of the
// restore test state machine (restoretest.IsStep), a sweep, or one
// restore test. Validation functions are invoked with Lambda's Invoke;
// job events go to the stack's topic and bus.
func RestoreTest(f *wiring.Function) func(context.Context, json.RawMessage) (any, error) {
	t := &restoretest.Tester{S3: f.S3, Restorer: &restore.Restorer{S3: f.S3, Log: f.Log}, Lambda: lambda.NewFromConfig(f.AWS), Events: f.Events, Log: f.Log}
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		if restoretest.IsStep(raw) {
			var step restoretest.StepRequest
			if err := json.Unmarshal(raw, &step); err != nil {
				return nil, &restoretest.InvalidRequestError{Reason: fmt.Sprintf("decode the step: %v", err)}
			}
			if step.Scheduled != nil && step.Scheduled.Vault == "" {
				step.Scheduled.Vault = f.Config.Vault
			}
			if step.Test != nil && step.Test.Request.Vault == "" {
				step.Test.Request.Vault = f.Config.Vault
			}
			raw, err := json.Marshal(step)
			if err != nil {
				return nil, err
			}
			return t.Handle(ctx, raw)
		}
		req, err := DecodeRestoreTestRequest(raw)
		if err != nil {
			return nil, err
		}
		if req.Vault == "" {
			req.Vault, req.Run.Vault = f.Config.Vault, f.Config.Vault
		}
		if req.Sweep {
			v, err := vault.Open(ctx, f.S3, req.Vault)
			if err != nil {
				return nil, err
			}
			return t.Sweep(ctx, v, time.Now())
		}
		return t.Run(ctx, req.Run)
	}
}
