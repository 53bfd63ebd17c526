package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// How the CLI follows a job a function runs: how often it reads the job's
// record, and how long it waits for the function to create it.
var (
	followEvery = 2 * time.Second
	startWithin = 2 * time.Minute
	// retryWithin is how long a job stopped at the function's deadline
	// is followed for Lambda's retry (async invocations are retried after
	// about one and two minutes).
	retryWithin = 5 * time.Minute
)

// restoreRemote starts the deployed restore function with req (an
// asynchronous invocation: a restore may outlast a synchronous call) and
// follows the job's record in the vault until it ends.
func (a *app) restoreRemote(ctx context.Context, function string, req restore.Request) (*restore.Report, error) {
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
	req.JobID = vault.NewJobID("restore", time.Now())
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	out, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(function), InvocationType: types.InvocationTypeEvent, Payload: payload,
	})
	if err != nil {
		return nil, fmt.Errorf("start restore function %s: %w", function, err)
	}
	if out.StatusCode != 202 {
		return nil, fmt.Errorf("start restore function %s: status %d", function, out.StatusCode)
	}
	fmt.Fprintf(a.stderr, "restore job %s started by %s; following its record in s3://%s/%s\n", req.JobID, function, v.Bucket, vault.JobKey(req.JobID))
	p := a.newProgress("restore " + req.JobID)
	defer p.done()
	started := time.Now()
	for {
		rep, err := restore.LoadJob(ctx, v, req.JobID, time.Now())
		switch {
		case err == nil && rep.State == restore.StateFailed && rep.Stopped && time.Since(rep.CompletedAt) < retryWithin:
			// Stopped at the function's deadline: Lambda retries the
			// invocation (the same job id), which finishes the job.
			p.set(int64(time.Since(started).Seconds()), fmt.Sprintf("stopped at its deadline, %s; waiting for Lambda's retry", time.Since(rep.StartedAt).Round(time.Second)))
		case err == nil && rep.State != restore.StateRunning:
			return rep, nil
		case err == nil:
			p.set(int64(time.Since(started).Seconds()), fmt.Sprintf("%s, %s", rep.State, time.Since(rep.StartedAt).Round(time.Second)))
		case !s3x.IsNotFound(err):
			return nil, err
		case time.Since(started) > startWithin:
			return nil, fmt.Errorf("restore function %s did not start job %s within %s: see its logs (a request it refuses is logged there, not here)",
				function, req.JobID, startWithin)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(followEvery):
		}
	}
}
