// Command snapshot is the snapshot Lambda function: every task of the
// snapshot state machine (start, scan, copy, seal, notify, fail) calls it
// with {"step": ..., ...}; see shared/snapshot and shared/handler.Snapshot.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/handler"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("snapshot function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Snapshot(f))
}
