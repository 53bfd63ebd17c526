package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// LocalExecution runs a restore as the restore state machine does
// (infra/restore.go), without Step Functions: every step goes through
// the restore function's handler (Restorer.Handle) with the payload its
// Task state passes, as JSON in and JSON out; a step failing with a
// RetryableError is retried as its Retry says; the Distributed Map reads
// the plan's items list from the vault, batches it and runs its batches
// MaxConcurrency at a time, failing past ToleratedFailurePercentage; a
// step failing after its retries runs the fail step. Tests run it beside
// the synthesized state machine, and the CLI's follower is tried against
// it.
type LocalExecution struct {
	Restorer *Restorer
	// Execution is the execution's ARN (what $$.Execution.Id gives).
	Execution string
	// TimeoutSeconds is the state machine's timeout (0: none).
	TimeoutSeconds int
	// ItemsPerBatch, MaxConcurrency and ToleratedFailurePercentage are
	// the Distributed Map's (defaults 1, 8 and 0).
	ItemsPerBatch, MaxConcurrency, ToleratedFailurePercentage int
	// Attempts is how many times a step runs before it fails (default 6,
	// as the state machine's Retry).
	Attempts int
	// Invoke runs one step; nil means Restorer.Handle. A test wraps it to
	// fail or stop steps.
	Invoke func(ctx context.Context, raw json.RawMessage) (any, error)
	// OnStep, when set, is told of each step's end (its name and error).
	OnStep func(step string, err error)
}

// StepError is a step that failed after its retries: the error name the
// state machine's Catch would see, and its message.
type StepError struct {
	Step, Name, Message string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %s failed: %s: %s", e.Step, e.Name, e.Message)
}

// Run runs the execution for req to its end and returns the job as the
// last step left it (its State is the job's). An execution that failed
// returns its StepError too, after the fail step recorded it.
func (e *LocalExecution) Run(ctx context.Context, req Request) (*Job, error) {
	job := &Job{Request: req}
	start := time.Now().UTC().Format(time.RFC3339)
	// loop runs a step in rounds until done says it is done.
	loop := func(name string, in func() StepRequest, done func() bool) error {
		for !done() {
			out, err := e.step(ctx, name, in())
			if err != nil {
				return err
			}
			next, err := asJob(out)
			if err != nil {
				return err
			}
			job = next
		}
		return nil
	}
	err := loop(StepPlan, func() StepRequest {
		return StepRequest{Step: StepPlan, Job: job, Execution: e.Execution, StartTime: start, TimeoutSeconds: e.TimeoutSeconds}
	}, func() bool { return job.Plan.Done })
	if err == nil {
		err = e.distributedMap(ctx, job)
	}
	if err == nil && job.Request.Mode == Rollback {
		err = loop(StepRollback, func() StepRequest { return StepRequest{Step: StepRollback, Job: job} }, func() bool { return job.Rollback.Done })
	}
	if err == nil {
		err = loop(StepReport, func() StepRequest { return StepRequest{Step: StepReport, Job: job} }, func() bool { return job.Report.Done })
	}
	if err != nil {
		return e.fail(ctx, job, err)
	}
	return job, nil
}

// distributedMap does what the Batches state does: the items list, in
// batches, each a Batch task with its retries.
func (e *LocalExecution) distributedMap(ctx context.Context, job *Job) error {
	r := e.Restorer
	out, err := r.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(job.Request.Vault), Key: aws.String(job.Plan.ItemsKey)})
	if err != nil {
		return &StepError{Step: "Batches", Name: "States.ItemReaderFailed", Message: err.Error()}
	}
	var items []ItemRef
	err = json.NewDecoder(out.Body).Decode(&items)
	out.Body.Close()
	if err != nil {
		return &StepError{Step: "Batches", Name: "States.ItemReaderFailed", Message: err.Error()}
	}
	per := max(e.ItemsPerBatch, 1)
	batches := slices.Collect(slices.Chunk(items, per))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(e.MaxConcurrency, 1))
	if e.MaxConcurrency == 0 {
		g.SetLimit(8)
	}
	var mu sync.Mutex
	var failed []error
	for _, b := range batches {
		g.Go(func() error {
			in := StepRequest{Step: StepBatch, Items: b, BatchInput: &struct {
				Job Job `json:"job"`
			}{Job: *job}}
			if _, err := e.step(gctx, StepBatch, in); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(batches) > 0 && len(failed)*100 > e.ToleratedFailurePercentage*len(batches) {
		return &StepError{Step: "Batches", Name: "States.ExceedToleratedFailureThreshold",
			Message: fmt.Sprintf("%d of %d batches failed (tolerated: %d%%): %v", len(failed), len(batches), e.ToleratedFailurePercentage, failed[0])}
	}
	return nil
}

// step runs one step through the handler, JSON in and out, retrying a
// RetryableError.
func (e *LocalExecution) step(ctx context.Context, name string, in StepRequest) (json.RawMessage, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	invoke := e.Invoke
	if invoke == nil {
		invoke = e.Restorer.Handle
	}
	attempts := e.Attempts
	if attempts == 0 {
		attempts = 6
	}
	var last error
	for range attempts {
		out, err := invoke(ctx, raw)
		if e.OnStep != nil {
			e.OnStep(name, err)
		}
		if err == nil {
			return json.Marshal(out)
		}
		last = err
		if !errors.As(err, new(*RetryableError)) || ctx.Err() != nil {
			break
		}
	}
	return nil, &StepError{Step: name, Name: ErrorName(last), Message: last.Error()}
}

// ErrorName is the errorType Lambda's Go runtime reports for err: its
// type's name (what a state machine's Retry and Catch match).
func ErrorName(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// fail runs the fail step with what failed, as the state machine's Catch
// does, and returns the job it leaves and the failure.
func (e *LocalExecution) fail(ctx context.Context, job *Job, err error) (*Job, error) {
	var se *StepError
	if !errors.As(err, &se) {
		se = &StepError{Step: "?", Name: ErrorName(err), Message: err.Error()}
	}
	cause, _ := json.Marshal(map[string]string{"errorType": se.Name, "errorMessage": se.Message})
	in := StepRequest{Step: StepFail, Job: job, Error: &struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	}{se.Name, string(cause)}}
	if out, ferr := e.step(context.WithoutCancel(ctx), StepFail, in); ferr == nil {
		if j, jerr := asJob(out); jerr == nil {
			job = j
		}
	}
	return job, se
}

func asJob(raw json.RawMessage) (*Job, error) {
	var j Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("decode the step's job: %w", err)
	}
	return &j, nil
}
