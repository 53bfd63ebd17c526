// Command protect is the protect Lambda function: on a schedule, and as a
// CloudFormation custom resource at deploy time, it checks that each
// configured bucket is versioned and turns on its EventBridge delivery.
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("protect function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
		v, err := f.Vault(ctx)
		if err != nil {
			return nil, err
		}
		h := &protect.Handler{Journal: &journal.Journal{Vault: v, S3: f.S3, Log: f.Log}, Log: f.Log, Buckets: f.Config.Buckets}
		return h.Handle(ctx, raw)
	})
}
