package restoretest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/restore"
)

// LocalExecution runs a schedule's restore tests as the restore test
// state machine does (infra/restoretest.go), without Step Functions:
// every step goes through the function's handler (Tester.Handle) with the
// payload its Task state passes, JSON in and out; a RetryableError is
// retried; a step failing after its retries runs Fail for its test, and
// one test failing fails no other.
type LocalExecution struct {
	Tester *Tester
	// Restore runs a test's restore (the Restore state: the restore state
	// machine); nil: the Tester's restorer, in this process.
	Restore func(ctx context.Context, req restore.Request) error
	// TimeoutSeconds is the state machine's timeout (0: none).
	TimeoutSeconds int
	// MaxConcurrency bounds the tests run at once (the Map's; default 4).
	MaxConcurrency int
	// AwaitEvery is the Wait between Await steps (default PollEvery).
	AwaitEvery time.Duration
	// Sleep waits until a time (WaitWindow, the Wait between Await
	// steps); nil: time.Sleep, cut short by ctx.
	Sleep func(ctx context.Context, until time.Time) error
	// Invoke runs one step; nil: Tester.Handle. A test wraps it.
	Invoke func(ctx context.Context, raw json.RawMessage) (any, error)
	// Attempts is how many times a step runs before it fails (default 6).
	Attempts int
}

// Run runs the schedule's tests to their end and returns the tests as
// their last step left them.
func (e *LocalExecution) Run(ctx context.Context, s Scheduled) ([]Test, error) {
	start := time.Now().UTC().Format(time.RFC3339)
	var res Resolved
	if err := e.step(ctx, StepRequest{Step: StepResolve, Scheduled: &s}, &res); err != nil {
		return nil, err
	}
	out := make([]Test, len(res.Tests))
	g, gctx := errgroup.WithContext(ctx)
	limit := e.MaxConcurrency
	if limit <= 0 {
		limit = 4
	}
	g.SetLimit(limit)
	var mu sync.Mutex
	for i, test := range res.Tests {
		g.Go(func() error {
			t := e.one(gctx, test, start)
			mu.Lock()
			out[i] = t
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return out, ctx.Err()
}

// one runs one test's states, as the Map's iterator does.
func (e *LocalExecution) one(ctx context.Context, test Test, start string) Test {
	err := func() error {
		if err := e.step(ctx, StepRequest{Step: StepStart, Test: &test, StartTime: start, TimeoutSeconds: e.TimeoutSeconds}, &test); err != nil {
			return err
		}
		vreq := StepRequest{Step: StepValidate, Test: &test}
		if rerr := e.restore(ctx, test.Restore.Request); rerr != nil {
			var se *StepError
			if !errors.As(rerr, &se) {
				se = &StepError{Step: "Restore", Name: "States.TaskFailed", Message: rerr.Error()}
			}
			vreq.Error = &struct {
				Error string `json:"Error"`
				Cause string `json:"Cause"`
			}{se.Name, se.Message}
		}
		if err := e.step(ctx, vreq, &test); err != nil {
			return err
		}
		if test.Hook {
			if err := e.step(ctx, StepRequest{Step: StepHook, Test: &test}, &test); err != nil {
				return err
			}
		}
		for test.Awaiting {
			if err := e.sleep(ctx, time.Now().Add(e.awaitEvery())); err != nil {
				return err
			}
			if err := e.step(ctx, StepRequest{Step: StepAwait, Test: &test}, &test); err != nil {
				return err
			}
		}
		if err := e.sleep(ctx, test.DeleteAfter); err != nil {
			return err
		}
		return e.step(ctx, StepRequest{Step: StepCleanup, Test: &test}, &test)
	}()
	if err == nil {
		return test
	}
	var se *StepError
	if !errors.As(err, &se) {
		se = &StepError{Step: "?", Name: restore.ErrorName(err), Message: err.Error()}
	}
	cause, _ := json.Marshal(map[string]string{"errorType": se.Name, "errorMessage": se.Message})
	in := StepRequest{Step: StepFail, Test: &test, Error: &struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	}{se.Name, string(cause)}}
	_ = e.step(context.WithoutCancel(ctx), in, &test)
	return test
}

func (e *LocalExecution) restore(ctx context.Context, req restore.Request) error {
	if e.Restore != nil {
		return e.Restore(ctx, req)
	}
	rep, err := e.Tester.restorer().Run(ctx, req)
	if err != nil && rep == nil {
		return err
	}
	return nil // a report records how the restore ended; Validate reads it
}

func (e *LocalExecution) awaitEvery() time.Duration {
	if e.AwaitEvery > 0 {
		return e.AwaitEvery
	}
	return e.Tester.pollEvery()
}

func (e *LocalExecution) sleep(ctx context.Context, until time.Time) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, until)
	}
	d := time.Until(until)
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// StepError is a step that failed after its retries: restore's.
type StepError = restore.StepError

// step runs one step through the handler, JSON in and out, retrying a
// RetryableError, and decodes its output into out.
func (e *LocalExecution) step(ctx context.Context, in StepRequest, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	invoke := e.Invoke
	if invoke == nil {
		invoke = e.Tester.Handle
	}
	attempts := e.Attempts
	if attempts == 0 {
		attempts = 6
	}
	var last error
	for range attempts {
		res, err := invoke(ctx, raw)
		if err == nil {
			b, err := json.Marshal(res)
			if err != nil {
				return err
			}
			return json.Unmarshal(b, out)
		}
		last = err
		if !errors.As(err, new(*RetryableError)) || ctx.Err() != nil {
			break
		}
	}
	return &StepError{Step: in.Step, Name: restore.ErrorName(last), Message: last.Error()}
}
