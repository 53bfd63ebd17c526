package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// How the CLI follows a restore state machine's execution: it polls from
// pollFirst, doubling to pollMost (a billion-key restore is followed for
// hours at one DescribeExecution, one GetObject and a listing of 1,000
// results per request every 30 s), prints a line at most every lineEvery
// where no progress bar shows, and stops following after --wait.
var (
	pollFirst = 2 * time.Second
	pollMost  = 30 * time.Second
	lineEvery = 30 * time.Second
)

// maxExecutionName is Step Functions' limit on an execution's name.
const maxExecutionName = 80

// restoreStateMachine starts the restore state machine with req and
// follows the execution to its end (or for wait, when positive), showing
// the job's progress: work items done of those planned, objects and bytes
// (as the items planned hold them), the rate and an estimate of the time
// left.
func (a *app) restoreStateMachine(ctx context.Context, arn string, req restore.Request, wait time.Duration) (*restore.Report, error) {
	cfg, err := s3x.LoadConfig(ctx, s3x.ClientOptions{Region: a.region, Profile: a.profile})
	if err != nil {
		return nil, err
	}
	c, err := a.client(ctx)
	if err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, c, req.Vault)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if req.JobID == "" {
		req.JobID = vault.NewJobID("restore", now)
	}
	// One execution per run: a job run again (its job id) is a new
	// execution that finishes it.
	suffix := "-" + strconv.FormatInt(now.UnixMilli(), 36)
	name := req.JobID
	if len(name)+len(suffix) > maxExecutionName {
		name = name[:maxExecutionName-len(suffix)]
	}
	name += suffix
	input, err := json.Marshal(restore.Job{Request: req})
	if err != nil {
		return nil, err
	}
	client := sfn.NewFromConfig(cfg)
	out, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String(name), Input: aws.String(string(input))})
	if err != nil {
		return nil, fmt.Errorf("start restore state machine %s: %w", arn, err)
	}
	exec := aws.ToString(out.ExecutionArn)
	fmt.Fprintf(a.stderr, "restore job %s started as execution %s; following it (the job's record: s3://%s/%s)\n", req.JobID, exec, v.Bucket, vault.JobKey(req.JobID))
	p := a.newProgress("restore " + req.JobID)
	defer p.done()
	var lastLine time.Time
	every := pollFirst
	for {
		d, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(exec)})
		if err != nil {
			return nil, fmt.Errorf("describe execution %s: %w", exec, err)
		}
		rep, lerr := restore.LoadJob(ctx, v, req.JobID, time.Now())
		if lerr != nil && !s3x.IsNotFound(lerr) {
			return nil, lerr
		}
		if d.Status != sfntypes.ExecutionStatusRunning {
			return a.executionEnded(d, rep, exec)
		}
		if rep != nil && rep.Plan != nil {
			done, err := restore.Done(ctx, c, v.Bucket, req.JobID, *rep.Plan)
			if err != nil {
				return nil, err
			}
			line := progressLine(rep, done, time.Since(aws.ToTime(d.StartDate)))
			p.set(int64(done), line)
			if !p.shown() && time.Since(lastLine) >= lineEvery {
				fmt.Fprintf(a.stderr, "restore %s: %s\n", req.JobID, line)
				lastLine = time.Now()
			}
		}
		if wait > 0 && time.Since(now) > wait {
			return nil, &stillRunningError{msg: fmt.Sprintf("restore job %s is still running after %s (execution %s): follow it with `bucketvault job show --vault %s %s`",
				req.JobID, wait, exec, v.Bucket, req.JobID)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
		every = min(every*2, pollMost)
	}
}

// stillRunningError: the CLI stopped following a job that goes on.
type stillRunningError struct{ msg string }

func (e *stillRunningError) Error() string { return e.msg }

// progressLine says how far a state machine's restore is: planning, or
// items done of those planned with their objects and bytes, the rate and
// the time left at that rate.
func progressLine(rep *restore.Report, done int, elapsed time.Duration) string {
	pl := rep.Plan
	if !pl.Done {
		return fmt.Sprintf("planning: %d objects (%s) in %d work items so far, %s", pl.Keys, bytesText(pl.Bytes), pl.Items, elapsed.Round(time.Second))
	}
	if pl.Items == 0 {
		return "reporting"
	}
	frac := float64(done) / float64(pl.Items)
	objects, bytes := int64(frac*float64(pl.Keys)), int64(frac*float64(pl.Bytes))
	line := fmt.Sprintf("%d of %d work items: about %d of %d objects, %s of %s", done, pl.Items, objects, pl.Keys, bytesText(bytes), bytesText(pl.Bytes))
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		rate := float64(objects) / secs
		left := time.Duration(float64(pl.Keys-objects) / rate * float64(time.Second))
		line += fmt.Sprintf(", %.0f objects/s, about %s left", rate, left.Round(time.Second))
	}
	return line
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// executionEnded is the job's report once its execution ended: the
// record's, or (an execution that failed before the job had one) the
// execution's error.
func (a *app) executionEnded(d *sfn.DescribeExecutionOutput, rep *restore.Report, exec string) (*restore.Report, error) {
	if rep != nil && rep.State != restore.StateRunning {
		return rep, nil
	}
	why := fmt.Sprintf("execution %s ended %s", exec, d.Status)
	if e := aws.ToString(d.Error); e != "" {
		why += ": " + e
	}
	if c := aws.ToString(d.Cause); c != "" {
		var doc struct {
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal([]byte(c), &doc) == nil && doc.ErrorMessage != "" {
			c = doc.ErrorMessage
		}
		why += ": " + c
	}
	if rep == nil {
		if aws.ToString(d.Error) == "InvalidRequestError" {
			return nil, &restore.InvalidRequestError{Reason: why}
		}
		return nil, errors.New(why)
	}
	// RUNNING still: the execution ended without its report (timed out,
	// aborted): the job reads as interrupted once its deadline passed.
	return nil, fmt.Errorf("%s; job %s's record still says RUNNING: run the same restore again with --job-id %s to finish it", why, rep.JobID, rep.JobID)
}
