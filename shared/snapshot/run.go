package snapshot

import (
	"context"
	"encoding/json"
	"reflect"

	"github.com/bucketvault/bucketvault/shared/vault"
)

// Run takes a snapshot in-process, calling the same steps with the same
// payloads as the state machine: start, scan until done, copy the item
// files in batches of BatchFiles, seal, notify; a step's failure runs the
// fail step, as the state machine's Catch does.
func (e *Engine) Run(ctx context.Context, job Job) (*Job, error) {
	j, err := e.Start(ctx, job)
	if err != nil {
		return e.failed(ctx, job, err)
	}
	if j.State == StateExpired {
		return e.Notify(ctx, *j)
	}
	for !j.Scan.Done {
		next, err := e.Scan(ctx, *j)
		if err != nil {
			return e.failed(ctx, *j, err)
		}
		j = next
	}
	v := *j
	items, err := e.items(ctx, v)
	if err != nil {
		return e.failed(ctx, v, err)
	}
	// One batch holding every file: the copiers stay busy across files,
	// as many Map children do on AWS.
	if len(items) > 0 {
		req := CopyRequest{Items: items}
		req.BatchInput.Job = v
		if _, err := e.Copy(ctx, req); err != nil {
			return e.failed(ctx, v, err)
		}
	}
	sealed, err := e.Seal(ctx, v)
	if err != nil {
		return e.failed(ctx, v, err)
	}
	return e.Notify(ctx, *sealed)
}

// items reads the items list the scan wrote (what the ItemReader reads).
func (e *Engine) items(ctx context.Context, job Job) ([]ItemRef, error) {
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return nil, classify(err)
	}
	var items []ItemRef
	if err := v.GetJSON(ctx, job.Scan.ItemsKey, &items); err != nil {
		return nil, classify(err)
	}
	return items, nil
}

func (e *Engine) failed(ctx context.Context, job Job, cause error) (*Job, error) {
	req := FailRequest{Job: job}
	req.Error.Error = errorType(cause)
	req.Error.Cause = cause.Error()
	if _, err := e.Fail(context.WithoutCancel(ctx), req); err != nil {
		e.log().ErrorContext(ctx, "record failed snapshot job", "job", job.JobID, "error", err)
	}
	return nil, cause
}

// errorType is the name aws-lambda-go reports as a Lambda error's type.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// Request is the snapshot function's input: the step to run and its
// payload, as the state machine's tasks pass them.
type Request struct {
	Step string `json:"step"`
	Job  *Job   `json:"job,omitempty"`
	// Items and BatchInput: the copy step's Distributed Map batch.
	Items      []ItemRef `json:"Items,omitempty"`
	BatchInput *struct {
		Job Job `json:"job"`
	} `json:"BatchInput,omitempty"`
	// Error: what the fail step's Catch caught.
	Error *struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error,omitempty"`
}

// Handle runs one step of a Request (raw JSON) and returns its output:
// the Job for every step but copy, which returns a CopyResult. Errors are
// the typed errors the state machine's Retry and Catch name.
func (e *Engine) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, invalid("decode request: %v", err)
	}
	if req.Job != nil && req.Job.Vault == "" {
		req.Job.Vault = e.DefaultVault
	}
	if req.BatchInput != nil && req.BatchInput.Job.Vault == "" {
		req.BatchInput.Job.Vault = e.DefaultVault
	}
	if req.Step == StepCopy {
		if req.BatchInput == nil {
			return nil, invalid("copy: BatchInput.job is required")
		}
		cr := CopyRequest{Items: req.Items}
		cr.BatchInput.Job = req.BatchInput.Job
		return e.Copy(ctx, cr)
	}
	if req.Job == nil {
		return nil, invalid("%s: job is required", req.Step)
	}
	switch req.Step {
	case StepStart:
		return e.Start(ctx, *req.Job)
	case StepScan:
		return e.Scan(ctx, *req.Job)
	case StepSeal:
		return e.Seal(ctx, *req.Job)
	case StepNotify:
		return e.Notify(ctx, *req.Job)
	case StepFail:
		fr := FailRequest{Job: *req.Job}
		if req.Error != nil {
			fr.Error.Error, fr.Error.Cause = req.Error.Error, req.Error.Cause
		}
		return e.Fail(ctx, fr)
	}
	return nil, invalid("unknown step %q (want %s, %s, %s, %s, %s or %s)", req.Step, StepStart, StepScan, StepCopy, StepSeal, StepNotify, StepFail)
}
