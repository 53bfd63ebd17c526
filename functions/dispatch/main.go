// Command dispatch is the dispatch Lambda function: a backup plan rule's
// EventBridge Scheduler schedule invokes it when the rule fires, and it
// starts one execution of the rule's snapshot state machine per bucket the
// rule's selections take; see shared/schedule and shared/handler.Dispatch.
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
		slog.Error("dispatch function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Dispatch(f))
}
