// Command journal is the continuous-backup Lambda function: SQS batches of
// S3 events in, vault data and journal segments out, with partial batch
// failure reporting (shared/handler.Journal).
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
		slog.Error("journal function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Journal(f))
}
