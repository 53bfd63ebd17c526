package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The restore state machine (infra/restore.go) runs a restore as steps,
// each one invocation of the restore function with a StepRequest:
//
//	Plan ◀─┐  the plan in rounds, each bounded by the invocation's
//	PlanDone? ─no─┘  deadline: work items of up to WorkItemKeys keys to
//	   └yes─▶ Batches  write, in key order, and the rollback's delete
//	                   markers, in the vault under the job's scratch
//	          (Distributed Map over the items list: one Batch task per
//	          work item, resumable: a batch run again compares with what
//	          its first run wrote and copies nothing twice)
//	   ─▶ Rollback? ─▶ Rollback ◀─┐ (delete markers, by key range, in rounds)
//	                   RollbackDone? ─no─┘
//	   ─▶ Report ◀─┐ (the batches' results merged into the job record, in rounds)
//	      ReportDone? ─no─┘ ─▶ Succeeded
//	any step failing after its retries ─▶ Fail (the job FAILED, with why)
//
// Every step is idempotent: its progress is in the job's record (the
// plan's cursor) and in the vault's scratch (a batch's result), so a
// retried, re-driven or re-run step resumes. The in-process restore (Run)
// streams the same plan into the same restore code without the work
// items.

// Steps of the restore state machine.
const (
	StepPlan     = "plan"
	StepBatch    = "batch"
	StepRollback = "rollback"
	StepReport   = "report"
	StepFail     = "fail"
)

// WorkItemKeys bounds the keys of one work item (a batch's work), and
// MarkerItemKeys those of one item of delete markers.
var (
	WorkItemKeys   = 1000
	MarkerItemKeys = 10000
	// WorkItemBytes bounds the bytes of one work item: a batch copies at
	// most about this much (more only for a single larger object).
	WorkItemBytes int64 = 8 << 30
	// PlanRoundKeys bounds the keys one plan round takes (0: as many as
	// its deadline allows).
	PlanRoundKeys = 0
)

// Job is the state the restore state machine passes from step to step.
// It stays small (a state's payload is at most 256 KiB): what the steps
// learn is in the job's record and its scratch files in the vault.
type Job struct {
	Request  Request   `json:"request"`
	JobID    string    `json:"jobId,omitempty"`
	Plan     PlanState `json:"plan"`
	Rollback Cursor    `json:"rollback"`
	Report   Cursor    `json:"report"`
	// State and StatusMessage are the job's end, once reported.
	State         string `json:"state,omitempty"`
	StatusMessage string `json:"statusMessage,omitempty"`
}

// PlanState is how far a job's plan has gone; the job's record holds it
// (Report.Plan), and the state machine's payload a copy.
type PlanState struct {
	// Run names the execution's working files (vault.RestoreScratch.Run).
	Run  string `json:"run"`
	Done bool   `json:"done"`
	// EarlierTarget says the target was created by an earlier run of the
	// job: every key is compared with it before it is written.
	EarlierTarget bool `json:"earlierTarget,omitempty"`
	// After is the last key planned ("" before the first round).
	After string `json:"after,omitempty"`
	// Items and Markers count the work items written, Keys and Bytes
	// what they hold; MarkerKeys the delete markers.
	Items      int   `json:"items"`
	Markers    int   `json:"markers"`
	Keys       int64 `json:"keys"`
	Bytes      int64 `json:"bytes"`
	MarkerKeys int64 `json:"markerKeys"`
	Rounds     int   `json:"rounds"`
	// ItemsKey is the vault key of the list of work items the Distributed
	// Map's ItemReader reads (a JSON array of ItemRef), once done.
	ItemsKey string `json:"itemsKey,omitempty"`
}

// Cursor is how far a step that runs in rounds has gone.
type Cursor struct {
	Done bool `json:"done"`
	Next int  `json:"next"`
}

// ItemRef names one work item in the items list.
type ItemRef struct {
	Item int `json:"item"`
}

// StepRequest is the restore function's input from the state machine:
// the step and its payload.
type StepRequest struct {
	Step string `json:"step"`
	Job  *Job   `json:"job,omitempty"`
	// Execution, StartTime and TimeoutSeconds (the plan step): the
	// execution's ARN ($$.Execution.Id), its start ($$.Execution.StartTime)
	// and the state machine's timeout, which make the job's deadline.
	Execution      string `json:"execution,omitempty"`
	StartTime      string `json:"startTime,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
	// Items and BatchInput: one Distributed Map batch.
	Items      []ItemRef `json:"Items,omitempty"`
	BatchInput *struct {
		Job Job `json:"job"`
	} `json:"BatchInput,omitempty"`
	// Error is what the fail step's Catch caught.
	Error *struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error,omitempty"`
}

// IsStep says whether a restore function's input is a state machine's
// step (it names one) rather than a restore request.
func IsStep(raw json.RawMessage) bool {
	var probe struct {
		Step string `json:"step"`
	}
	return json.Unmarshal(raw, &probe) == nil && probe.Step != ""
}

// BatchResult is what a batch returns to the Distributed Map (the map
// keeps none of it: the result the report merges is in the vault).
type BatchResult struct {
	Items    []int `json:"items"`
	Restored int64 `json:"restored"`
	Failed   int64 `json:"failed"`
}

// RetryableError is a step that did not finish for a reason a retry may
// cure (throttling, a 5xx, its deadline): every step resumes, so the
// state machine runs it again.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return "retryable: " + e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// ErrorNames are the error type names the restore state machine retries
// (Retryable) and catches as fatal (Fatal); infra/ builds Retry and
// Catch from them.
var ErrorNames = struct{ Retryable, Fatal []string }{
	Retryable: []string{"RetryableError"},
	Fatal:     []string{"InvalidRequestError"},
}

// classify turns an error into the typed error the state machine acts on.
func classify(err error) error {
	var rt *RetryableError
	var inv *InvalidRequestError
	var nav *vault.NotAVaultError
	var unk *vault.UnknownFormatError
	switch {
	case err == nil, errors.As(err, &rt), errors.As(err, &inv):
		return err
	case errors.As(err, &nav), errors.As(err, &unk):
		return &InvalidRequestError{Reason: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errDeadlineNear), vault.IsConflict(err), s3x.IsRetryable(err):
		return &RetryableError{Err: err}
	}
	return err
}

// Handle runs one step (raw JSON, a StepRequest) and returns its output:
// the Job for every step but batch, which returns a BatchResult. Errors
// are the typed errors the state machine's Retry and Catch name.
func (r *Restorer) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var req StepRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("decode step: %v", err)}
	}
	var out any
	var err error
	switch {
	case req.Step == StepBatch && req.BatchInput == nil:
		err = &InvalidRequestError{Reason: "batch: BatchInput.job is required"}
	case req.Step == StepBatch:
		out, err = r.Batch(ctx, req.BatchInput.Job, req.Items)
	case req.Job == nil:
		err = &InvalidRequestError{Reason: req.Step + ": job is required"}
	case req.Step == StepPlan:
		out, err = r.Plan(ctx, req)
	case req.Step == StepRollback:
		out, err = r.RollbackStep(ctx, *req.Job)
	case req.Step == StepReport:
		out, err = r.ReportStep(ctx, *req.Job)
	case req.Step == StepFail:
		caught := "States.ALL"
		cause := "the state machine caught an error"
		if req.Error != nil {
			caught, cause = req.Error.Error, req.Error.Cause
		}
		out, err = r.FailStep(ctx, *req.Job, caught, cause)
	default:
		err = &InvalidRequestError{Reason: fmt.Sprintf("unknown step %q (want %s, %s, %s, %s or %s)", req.Step, StepPlan, StepBatch, StepRollback, StepReport, StepFail)}
	}
	return out, classify(err)
}

// stepDeadline is when a step stops taking work: DeadlineMargin before
// its context's deadline, or never.
func stepDeadline(ctx context.Context) (time.Time, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}, false
	}
	return d.Add(-min(DeadlineMargin, time.Until(d)/4)), true
}

// jobIDOf is the job id a state machine's restore takes when its request
// names none: its execution's name (the CLI names executions by job id).
func jobIDOf(execution string, now time.Time) string {
	name := execution[strings.LastIndexByte(execution, ':')+1:]
	if jobIDPattern.MatchString(name) {
		return name
	}
	return vault.NewJobID("restore", now)
}

// Plan runs one round of the plan (the first one begins the job: its
// checks, target and record). The job it returns says whether the plan
// is done; the state machine runs it again until it is.
func (r *Restorer) Plan(ctx context.Context, step StepRequest) (*Job, error) {
	job := *step.Job
	if job.Request.DryRun {
		return nil, &InvalidRequestError{Reason: "a dry run reads and writes nothing: run it in-process (`bucketvault restore --dry-run` without --state-machine)"}
	}
	if job.JobID == "" {
		if job.Request.JobID == "" {
			job.Request.JobID = jobIDOf(step.Execution, r.now())
		}
		job.JobID = job.Request.JobID
	}
	v, err := vault.Open(ctx, r.S3, job.Request.Vault)
	if err != nil {
		return nil, err
	}
	var cur Report
	switch err := v.GetJSON(ctx, vault.JobKey(job.JobID), &cur); {
	case err != nil && !s3x.IsNotFound(err):
		return nil, err
	case err != nil || cur.Runner.execution() != step.Execution || step.Execution == "":
		// Not this execution's job yet: begin it (a job id an earlier
		// run left unfinished is taken over; one running is refused).
		var deadline *time.Time
		if t, err := time.Parse(time.RFC3339, step.StartTime); err == nil && step.TimeoutSeconds > 0 {
			d := t.Add(time.Duration(step.TimeoutSeconds) * time.Second)
			deadline = &d
		}
		b, err := r.begin(ctx, job.Request, &Runner{Execution: step.Execution}, deadline)
		if err != nil {
			return nil, err
		}
		if b.finished != nil {
			// COMPLETED already: nothing to plan, nothing to report.
			sc := vault.RestoreScratch{Job: job.JobID, Run: vault.RestoreRun(step.Execution)}
			job.Plan = PlanState{Run: sc.Run, Done: true, ItemsKey: sc.ItemsList()}
			job.Rollback.Done, job.Report.Done = true, true
			job.State, job.StatusMessage = b.finished.State, b.finished.StatusMessage
			return &job, writeItemsList(ctx, v, sc, 0)
		}
		b.rep.Plan = &PlanState{Run: vault.RestoreRun(step.Execution), EarlierTarget: b.rep.Request.CreateBucket && !b.req.CreateBucket}
		if err := b.record.Put(ctx, b.rep); err != nil {
			return nil, err
		}
		cur = *b.rep
	}
	if cur.Plan == nil {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("job %s's record has no plan: it is not a state machine's restore", job.JobID)}
	}
	ps := *cur.Plan
	// The request as the record holds it (its time set, a snapshot's
	// too); into a target an earlier run created, it compares before it
	// writes.
	job.Request = cur.Request
	if ps.EarlierTarget {
		job.Request.CreateBucket = false
	}
	if ps.Done {
		job.Plan = ps
		return &job, nil
	}
	base, err := planBase(ctx, v, job.Request)
	if err != nil {
		return nil, err
	}
	// The round: work items and marker items numbered on from where the
	// record says the plan is; a round run twice writes the same items.
	part := &Report{mu: &sync.Mutex{}}
	sc := vault.RestoreScratch{Job: job.JobID, Run: ps.Run}
	items := &itemWriter{v: v, key: sc.Item, n: ps.Items, maxKeys: WorkItemKeys, maxBytes: WorkItemBytes}
	markers := &itemWriter{v: v, key: sc.Marker, n: ps.Markers, maxKeys: MarkerItemKeys}
	until, bounded := stepDeadline(ctx)
	keys := 0
	res, err := r.plan(ctx, v, job.Request, base, part, planRound{
		after: ps.After,
		write: func(t task) error { keys++; return items.add(ctx, t) },
		mark:  func(t task) error { keys++; return markers.add(ctx, t) },
		stop: func() bool {
			return bounded && time.Now().After(until) || PlanRoundKeys > 0 && keys >= PlanRoundKeys
		},
	})
	// Every write waited for, also after a failure (a round run again
	// writes the same items).
	if err = errors.Join(err, items.flush(ctx), markers.flush(ctx)); err != nil {
		return nil, err
	}
	next := ps
	next.After, next.Done, next.Rounds = res.last, res.done, ps.Rounds+1
	next.Items, next.Markers = items.n, markers.n
	next.Keys += items.keys
	next.Bytes += items.bytes
	next.MarkerKeys += markers.keys
	if next.Done {
		next.ItemsKey = sc.ItemsList()
		if err := writeItemsList(ctx, v, sc, next.Items); err != nil {
			return nil, err
		}
	}
	var now Report
	_, err = v.UpdateJobRecord(ctx, job.JobID, &now, func() bool {
		if now.Plan == nil || *now.Plan != ps || now.State != StateRunning {
			return false
		}
		now.mu = &sync.Mutex{}
		now.merge(part)
		now.Plan, now.UpdatedAt = &next, r.now().UTC()
		return true
	})
	if err == nil && (now.Plan == nil || *now.Plan != next) {
		err = &vault.ConflictError{Key: vault.JobKey(job.JobID)}
	}
	if err != nil {
		return nil, err
	}
	job.Plan = next
	return &job, nil
}

// planBase is the snapshot a request's plan reads: the recovery point it
// names, or the newest snapshot before its time (nil: none).
func planBase(ctx context.Context, v *vault.Vault, req Request) (*vault.SnapshotPoint, error) {
	if req.RecoveryPointID != "" {
		return snapshotPoint(ctx, v, req)
	}
	return v.BaseSnapshot(ctx, req.Bucket, req.At)
}

// writeItemsList writes the Distributed Map's items list: n work items
// (about 13 bytes each: 13 MB for 10^9 keys in items of 1,000).
func writeItemsList(ctx context.Context, v *vault.Vault, sc vault.RestoreScratch, n int) error {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"item":` + strconv.Itoa(i) + `}`)
	}
	b.WriteString("]")
	return v.PutBytes(ctx, sc.ItemsList(), []byte(b.String()), "application/json")
}

// itemWriter cuts a plan's tasks into work items in the vault, each a
// checked segment-format file (vault.WriteRecords) of one record per
// task: the version to write with the tags, ACL and storage class it had
// at T, or a delete marker. Each item's user metadata says its keys and
// bytes. ItemWritesInFlight items are written at once (10^6 items of a
// 10^9-key plan, one at a time at 30 ms, would take eight hours).
type itemWriter struct {
	v        *vault.Vault
	key      func(n int) string
	n        int // items cut (the next item's number)
	maxKeys  int
	maxBytes int64
	recs     []vault.Record
	size     int64
	// keys and bytes count what this writer cut.
	keys, bytes int64
	writes      *errgroup.Group
}

// ItemWritesInFlight bounds a plan's concurrent work-item writes.
var ItemWritesInFlight = 16

func (w *itemWriter) add(ctx context.Context, t task) error {
	rec := vault.Record{Op: vault.OpDeleteMarker, Key: t.key, Time: time.Unix(0, 0).UTC()}
	if !t.marker {
		rec = t.obj.Version
		rec.Key = t.key
		rec.Tags, rec.ACL, rec.StorageClass = t.obj.Tags, t.obj.ACL, t.obj.StorageClass
		rec.Detail = t.uncertain
	}
	if len(w.recs) > 0 && (len(w.recs) >= w.maxKeys || w.maxBytes > 0 && w.size+rec.Size > w.maxBytes) {
		if err := w.cut(ctx); err != nil {
			return err
		}
	}
	w.recs = append(w.recs, rec)
	w.size += rec.Size
	return nil
}

// cut starts writing the item gathered so far; a write that failed
// before is returned.
func (w *itemWriter) cut(ctx context.Context) error {
	if len(w.recs) == 0 {
		return nil
	}
	if w.writes == nil {
		w.writes = &errgroup.Group{}
		w.writes.SetLimit(ItemWritesInFlight)
	}
	recs, key := w.recs, w.key(w.n)
	meta := map[string]string{"keys": strconv.Itoa(len(recs)), "bytes": strconv.FormatInt(w.size, 10)}
	w.writes.Go(func() error { return w.v.WriteRecords(ctx, "", key, recs, meta) })
	w.n++
	w.keys += int64(len(recs))
	w.bytes += w.size
	w.recs, w.size = nil, 0
	return nil
}

// flush writes what is gathered and waits for every write.
func (w *itemWriter) flush(ctx context.Context) error {
	if err := w.cut(ctx); err != nil || w.writes == nil {
		return err
	}
	err := w.writes.Wait()
	w.writes = nil
	return err
}

// readItem reads one work item's tasks, checked.
func readItem(ctx context.Context, v *vault.Vault, key string) ([]task, error) {
	src, err := v.OpenSegmentFile(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("work item %s: %w", key, err)
	}
	defer src.Close()
	var tasks []task
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("work item %s: %w", key, err)
		}
		if o.Op == vault.OpDeleteMarker {
			tasks = append(tasks, task{key: o.Key, marker: true})
			continue
		}
		rec := o.Record
		tasks = append(tasks, task{key: rec.Key, uncertain: rec.Detail, obj: vault.Object{Version: rec, Tags: rec.Tags, ACL: rec.ACL, StorageClass: rec.StorageClass}})
	}
	if d, ok := src.(interface{ Damage() []vault.Damage }); ok && len(d.Damage()) > 0 {
		return nil, fmt.Errorf("work item %s is damaged: %s", key, d.Damage()[0])
	}
	return tasks, nil
}

// jobReport reads a state machine job's record, RUNNING.
func jobReport(ctx context.Context, v *vault.Vault, jobID string) (*Report, error) {
	var rep Report
	if err := v.GetJSON(ctx, vault.JobKey(jobID), &rep); err != nil {
		return nil, err
	}
	rep.mu = &sync.Mutex{}
	if rep.Plan == nil {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("job %s's record has no plan: it is not a state machine's restore", jobID)}
	}
	return &rep, nil
}

// Batch restores the work items of one Distributed Map batch. Each item's
// result (its counts and failures; its mapping in parts of its own) is
// kept in the vault: an item with a result is done and not run again. An
// item begun before (a retry, a re-drive) compares every key with the
// target first, so nothing is copied twice. A batch stops taking keys
// before its deadline and fails retryable: run again, it resumes.
func (r *Restorer) Batch(ctx context.Context, job Job, items []ItemRef) (*BatchResult, error) {
	v, err := vault.Open(ctx, r.S3, job.Request.Vault)
	if err != nil {
		return nil, err
	}
	rep, err := jobReport(ctx, v, job.JobID)
	if err != nil {
		return nil, err
	}
	if rep.State != StateRunning {
		return nil, &InvalidRequestError{Reason: fmt.Sprintf("job %s is %s, not RUNNING: its batches do not run", job.JobID, rep.State)}
	}
	base, err := planBase(ctx, v, job.Request)
	if err != nil {
		return nil, err
	}
	sc := vault.RestoreScratch{Job: job.JobID, Run: rep.Plan.Run}
	work := ctx
	if until, ok := stepDeadline(ctx); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(ctx, until, errDeadlineNear)
		defer cancel()
	}
	out := &BatchResult{}
	ph := phase{cold: base != nil && base.IsCold(), packs: v.NewPackReader()}
	for _, it := range items {
		res, err := r.runItem(work, v, job.Request, sc, it.Item, ph, vault.RestoreWork)
		if err == nil && work.Err() != nil {
			err = fmt.Errorf("work item %d stopped before it finished (%w): run again, it resumes", it.Item, context.Cause(work))
		}
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, it.Item)
		out.Restored += res.Restored
		out.Failed += res.Failed
	}
	return out, nil
}

// runItem restores one item (of work or of delete markers) and keeps its
// result, or returns the result kept by an earlier run.
func (r *Restorer) runItem(ctx context.Context, v *vault.Vault, req Request, sc vault.RestoreScratch, n int, ph phase, kind vault.RestoreItemKind) (*Report, error) {
	key, result := sc.Item, sc.Result
	if kind == vault.RestoreMarker {
		key, result = sc.Marker, sc.MarkerResult
	}
	jobID := sc.Job
	var done Report
	switch err := v.GetSealedJSON(ctx, result(n), &done); {
	case err == nil:
		return &done, nil
	case !s3x.IsNotFound(err) && !errors.Is(err, vault.ErrSealBroken):
		return nil, err
	}
	tasks, err := readItem(ctx, v, key(n))
	if err != nil {
		return nil, err
	}
	// Begun before: this run compares every key with the target.
	first, err := v.PutJSONOnce(ctx, sc.Begun(kind, n), map[string]any{"item": n})
	if err != nil {
		return nil, err
	}
	ph.compare = !first
	part := &Report{JobID: jobID, mu: &sync.Mutex{}}
	mw := newMappingWriter(ctx, v, jobID)
	mw.key = func(p int) string { return vault.RestoreItemPartKey(jobID, kind, n, p) }
	var collectErr error
	err = r.restorePhase(ctx, v, req, part, ph, func(send func(task) error) error {
		for _, t := range tasks {
			if err := send(t); err != nil {
				return err
			}
		}
		return nil
	}, func(mp Mapping) {
		part.add(mp)
		if err := mw.add(mp); err != nil && collectErr == nil {
			collectErr = err
		}
	})
	if err = errors.Join(err, mw.close(), collectErr); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	part.MappingParts = mw.parts
	if err := v.PutSealedJSON(ctx, result(n), part); err != nil {
		return nil, err
	}
	return part, nil
}

// RollbackStep puts the plan's delete markers (a rollback), one marker
// item at a time, until its deadline; the state machine runs it again
// until it is done. Nothing is marked before every batch has finished.
func (r *Restorer) RollbackStep(ctx context.Context, job Job) (*Job, error) {
	v, err := vault.Open(ctx, r.S3, job.Request.Vault)
	if err != nil {
		return nil, err
	}
	rep, err := jobReport(ctx, v, job.JobID)
	if err != nil {
		return nil, err
	}
	until, bounded := stepDeadline(ctx)
	work := ctx
	if bounded {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(ctx, until, errDeadlineNear)
		defer cancel()
	}
	for job.Rollback.Next < rep.Plan.Markers {
		if bounded && time.Now().After(until) {
			return &job, nil
		}
		if _, err := r.runItem(work, v, job.Request, vault.RestoreScratch{Job: job.JobID, Run: rep.Plan.Run}, job.Rollback.Next, phase{}, vault.RestoreMarker); err != nil {
			if work.Err() != nil {
				return &job, nil // the next round resumes this item
			}
			return nil, err
		}
		job.Rollback.Next++
	}
	job.Rollback.Done = true
	return &job, nil
}

// ReportStep merges the results of the job's items into its record, in
// rounds until its deadline, then concludes the job (its state, its
// warnings). An item without a result (its batch failed after its
// retries) counts every one of its keys failed.
func (r *Restorer) ReportStep(ctx context.Context, job Job) (*Job, error) {
	if job.State != "" {
		return &job, nil // concluded (a job COMPLETED before this run)
	}
	v, err := vault.Open(ctx, r.S3, job.Request.Vault)
	if err != nil {
		return nil, err
	}
	rep, err := jobReport(ctx, v, job.JobID)
	if err != nil {
		return nil, err
	}
	if rep.State != StateRunning {
		job.State, job.StatusMessage = rep.State, rep.StatusMessage
		job.Report.Done = true
		return &job, nil
	}
	until, bounded := stepDeadline(ctx)
	total := rep.Plan.Items + rep.Plan.Markers
	start := job.Report.Next
	if rep.Merged > start {
		start = rep.Merged // a round the record has and the payload not
	}
	part := &Report{mu: &sync.Mutex{}}
	next := start
	for ; next < total; next++ {
		if bounded && time.Now().After(until) {
			break
		}
		sc := vault.RestoreScratch{Job: job.JobID, Run: rep.Plan.Run}
		key, result, kind, n := sc.Item, sc.Result, vault.RestoreWork, next
		if next >= rep.Plan.Items {
			key, result, kind, n = sc.Marker, sc.MarkerResult, vault.RestoreMarker, next-rep.Plan.Items
		}
		var res Report
		switch err := v.GetSealedJSON(ctx, result(n), &res); {
		case err == nil:
			res.mu = &sync.Mutex{}
			part.merge(&res)
		case s3x.IsNotFound(err) || errors.Is(err, vault.ErrSealBroken):
			if err := r.unfinishedItem(ctx, v, key(n), kind, part); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	var now Report
	_, err = v.UpdateJobRecord(ctx, job.JobID, &now, func() bool {
		if now.Merged != start || now.State != StateRunning {
			return false
		}
		now.mu = &sync.Mutex{}
		now.merge(part)
		now.Merged = next
		if next == total {
			r.conclude(v, &now, nil)
		} else {
			now.UpdatedAt = r.now().UTC()
		}
		return true
	})
	if err == nil && now.Merged != next {
		err = &vault.ConflictError{Key: vault.JobKey(job.JobID)}
	}
	if err != nil {
		return nil, err
	}
	job.Report.Next = next
	if next == total {
		job.Report.Done = true
		job.State, job.StatusMessage = now.State, now.StatusMessage
	}
	return &job, nil
}

// unfinishedItem counts an item no batch finished: each of its keys
// failed (its writes may have been made; running the same restore again
// checks and finishes them).
func (r *Restorer) unfinishedItem(ctx context.Context, v *vault.Vault, key string, kind vault.RestoreItemKind, part *Report) error {
	tasks, err := readItem(ctx, v, key)
	if err != nil {
		return err
	}
	why := "its batch did not finish (see the state machine's execution): run the same restore again (the same job id) to finish it"
	if kind == vault.RestoreMarker {
		why = "its delete marker was not put: the rollback did not reach it; run the same restore again (the same job id) to finish it"
	}
	for _, t := range tasks {
		part.add(Mapping{Key: t.key, SourceVersionID: t.obj.Version.VersionID, Size: t.obj.Version.Size, Action: ActionFailed, Error: why})
	}
	return nil
}

// FailStep ends the job FAILED with what the state machine caught, and
// returns it so the execution fails with the same error.
func (r *Restorer) FailStep(ctx context.Context, job Job, caught, cause string) (*Job, error) {
	why := caught
	if c := causeMessage(cause); c != "" {
		why += ": " + c
	}
	if job.JobID == "" {
		// The plan's first round failed before the job had a record (a
		// vault that is none, say: nothing to open).
		job.State, job.StatusMessage = StateFailed, why
		return &job, nil
	}
	v, err := vault.Open(ctx, r.S3, job.Request.Vault)
	if err != nil {
		return nil, err
	}
	var now Report
	_, err = v.UpdateJobRecord(ctx, job.JobID, &now, func() bool {
		if now.State != StateRunning || now.Runner.execution() == "" {
			return false // not this workflow's, or ended already
		}
		now.mu = &sync.Mutex{}
		r.conclude(v, &now, errors.New(why))
		return true
	})
	switch {
	case s3x.IsNotFound(err):
		job.State, job.StatusMessage = StateFailed, why
		return &job, nil
	case err != nil:
		return nil, err
	}
	job.State, job.StatusMessage = now.State, now.StatusMessage
	return &job, nil
}

// causeMessage is the errorMessage of a Lambda error's Cause (a JSON
// document), or the cause as it is.
func causeMessage(cause string) string {
	var doc struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(cause), &doc) == nil && doc.ErrorMessage != "" {
		return doc.ErrorMessage
	}
	return cause
}

// merge adds a part's counts, failures and findings to the report (a
// batch's result, a plan round's findings).
func (r *Report) merge(p *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Restored += p.Restored
	r.Identical += p.Identical
	r.DeleteMarkers += p.DeleteMarkers
	r.Absent += p.Absent
	r.Failed += p.Failed
	r.ACLsNotRestored += p.ACLsNotRestored
	r.VaultDamaged += p.VaultDamaged
	r.Bytes += p.Bytes
	r.Uncertain += p.Uncertain
	r.FieldsChecked += p.FieldsChecked
	r.MappingParts += p.MappingParts
	r.Stopped = r.Stopped || p.Stopped
	for _, f := range p.Failures {
		if len(r.Failures) < MaxReportedFailures {
			r.Failures = append(r.Failures, f)
		}
	}
	for _, u := range p.UncertainKeys {
		if len(r.UncertainKeys) < MaxReportedFailures {
			r.UncertainKeys = append(r.UncertainKeys, u)
		}
	}
	for how, n := range p.VerifiedBy {
		if r.VerifiedBy == nil {
			r.VerifiedBy = map[string]int64{}
		}
		r.VerifiedBy[how] += n
	}
	if a := p.Archived; a != nil {
		if r.Archived == nil {
			r.Archived = &ArchiveReport{Tier: a.Tier, RequestedAt: a.RequestedAt, Waited: a.Waited}
		}
		r.Archived.Objects += a.Objects
		r.Archived.Keys += a.Keys
		r.Archived.Back += a.Back
	}
	for _, w := range p.Warnings {
		if !slices.Contains(r.Warnings, w) {
			r.Warnings = append(r.Warnings, w)
		}
	}
	if r.Restored+r.Identical+r.DeleteMarkers+r.Failed <= InlineMapping {
		r.Mapping = append(r.Mapping, p.Mapping...)
	} else {
		r.Mapping = nil
	}
	r.Unknown = append(r.Unknown, p.Unknown...)
	slices.Sort(r.Unknown)
	for _, d := range p.Unvouched {
		if !slices.ContainsFunc(r.Unvouched, func(u vault.Damage) bool { return u.Object == d.Object }) {
			r.Unvouched = append(r.Unvouched, d)
		}
	}
}

// Done counts the work items of a state machine's restore that have
// finished (a result in the vault), for a follower's progress: one
// listing request per 1,000 items.
func Done(ctx context.Context, c s3x.Client, vaultBucket, jobID string, plan PlanState) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: aws.String(vaultBucket), Prefix: aws.String(vault.RestoreScratch{Job: jobID, Run: plan.Run}.Results()),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return n, err
		}
		for _, o := range out.Contents {
			if !vault.IsMarkerResult(aws.ToString(o.Key)) {
				n++
			}
		}
	}
	return n, nil
}
