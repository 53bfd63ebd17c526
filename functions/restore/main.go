// Command restore is the restore Lambda function: a JSON restore request
// in, the job's report out (also kept in the vault). It publishes
// RESTORE_JOB_STARTED before the job and RESTORE_JOB_COMPLETED or
// RESTORE_JOB_FAILED after it, to the topic and bus its environment names.
package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/notify/restorejob"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("restore function cannot start", "error", err)
		os.Exit(1)
	}
	r := &restore.Restorer{S3: f.S3, AllowedTargets: f.Config.RestoreTargets, Log: f.Log}
	events := notify.FromEnv(f.AWS, os.Getenv)
	lambda.Start(func(ctx context.Context, req restore.Request) (*restore.Report, error) {
		if req.Vault == "" {
			req.Vault = f.Config.Vault
		}
		if req.Concurrency == 0 {
			req.Concurrency = f.Config.Concurrency
		}
		var invocation string
		r := *r
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			invocation = lc.AwsRequestID
			// arn:aws:lambda:<region>:<account>:function:<name>: targets
			// must be this account's buckets.
			if parts := strings.Split(lc.InvokedFunctionArn, ":"); len(parts) > 4 {
				r.ExpectedOwner = parts[4]
			}
		}
		notify.Send(ctx, events, restorejob.Started(req, invocation, time.Now()), f.Log)
		rep, err := r.Run(ctx, req)
		notify.Send(ctx, events, restorejob.Ended(req, rep, err, invocation, time.Now()), f.Log)
		return rep, err
	})
}
