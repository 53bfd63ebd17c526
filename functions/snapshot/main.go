// Command snapshot is the snapshot Lambda function: every task of the
// snapshot state machine (start, scan, copy, seal, notify, fail) calls it
// with {"step": ..., ...}; see shared/snapshot.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("snapshot function cannot start", "error", err)
		os.Exit(1)
	}
	e := &snapshot.Engine{
		S3: f.S3, DefaultVault: f.Config.Vault, Concurrency: f.Config.Concurrency, PackMax: f.Config.PackMax, Log: f.Log,
		Events: notify.FromEnv(f.AWS, os.Getenv),
	}
	lambda.Start(e.Handle)
}
