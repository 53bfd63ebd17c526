// Command journal is the continuous-backup Lambda function: SQS batches of
// S3 events in, vault data and journal segments out, with partial batch
// failure reporting.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("journal function cannot start", "error", err)
		os.Exit(1)
	}
	var j *journal.Journal
	lambda.Start(func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if j == nil {
			v, err := f.Vault(ctx)
			if err != nil {
				return events.SQSEventResponse{}, err
			}
			j = &journal.Journal{Vault: v, S3: f.S3, Concurrency: f.Config.Concurrency, RelayMax: f.Config.RelayMax, Log: f.Log}
		}
		return j.HandleSQS(ctx, ev)
	})
}
