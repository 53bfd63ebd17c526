// Command dispatch is the dispatch Lambda function: a backup plan rule's
// EventBridge Scheduler schedule invokes it when the rule fires, and it
// starts one execution of the rule's snapshot state machine per bucket the
// rule's selections take; see shared/schedule.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("dispatch function cannot start", "error", err)
		os.Exit(1)
	}
	d := &schedule.Dispatcher{S3: f.S3, SFN: sfn.NewFromConfig(f.AWS), Log: f.Log}
	lambda.Start(d.Dispatch)
}
