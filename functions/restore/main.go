// Command restore is the restore Lambda function: a JSON restore request
// in, the job's report out (also kept in the vault).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

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
	lambda.Start(func(ctx context.Context, req restore.Request) (*restore.Report, error) {
		if req.Vault == "" {
			req.Vault = f.Config.Vault
		}
		if req.Concurrency == 0 {
			req.Concurrency = f.Config.Concurrency
		}
		return r.Run(ctx, req)
	})
}
