// Command reconcile is the scheduled reconcile Lambda function: it walks
// ListObjectVersions of every protected bucket and fills the journal's
// gaps, stopping before the invocation's deadline and resuming next time.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("reconcile function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, req journal.ReconcileRequest) (*journal.ReconcileResponse, error) {
		v, err := f.Vault(ctx)
		if err != nil {
			return nil, err
		}
		j := &journal.Journal{Vault: v, S3: f.S3, Concurrency: f.Config.Concurrency, RelayMax: f.Config.RelayMax, Log: f.Log}
		if len(req.Buckets) == 0 {
			req.Buckets = f.Config.Buckets
		}
		return j.HandleReconcile(ctx, req)
	})
}
