// Command expire is the daily expiry Lambda function: it folds each
// protected bucket's journal past its window, deletes snapshot recovery
// points at their DeleteAt and collects the data nothing references
// (vault.Expire, shared/handler.Expire). An interrupted run is finished by
// the next.
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
		slog.Error("expire function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Expire(f))
}
