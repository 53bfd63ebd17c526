// Command reconcile is the scheduled reconcile Lambda function: it walks
// ListObjectVersions of every protected bucket and fills the journal's
// gaps, stopping before the invocation's deadline and resuming next time
// (shared/handler.Reconcile).
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
		slog.Error("reconcile function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler.Reconcile(f))
}
