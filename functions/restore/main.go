// Command restore is the restore Lambda function: a JSON restore request
// in, the job's report out (also kept in the vault). It publishes
// RESTORE_JOB_STARTED before the job and RESTORE_JOB_COMPLETED or
// RESTORE_JOB_FAILED after it, to the topic and bus its environment names
// (shared/handler.Restore).
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
		slog.Error("restore function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Restore(f))
}
