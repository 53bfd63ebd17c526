// Command restoretest is the restore test Lambda function: the steps of
// the restore test state machine (a restore testing plan's schedule: pick,
// validate after the restore state machine, the user's validation
// function, clean up), the daily sweep of restore-test-* buckets whose
// time is up, or one restore test run in the function
// (shared/handler.RestoreTest). It publishes RESTORE_TESTING_JOB_* events
// to the topic and bus its environment names.
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
		slog.Error("restore test function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.RestoreTest(f))
}
