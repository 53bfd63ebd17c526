// Command expire is the daily expiry Lambda function: it folds each
// protected bucket's journal past its window, deletes snapshot recovery
// points at their DeleteAt and collects the data nothing references
// (vault.Expire). An interrupted run is finished by the next.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/vault"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		slog.Error("expire function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, req vault.ExpireRequest) (*vault.ExpireReport, error) {
		v, err := f.Vault(ctx)
		if err != nil {
			return nil, err
		}
		rep, err := v.Expire(ctx, vault.ExpireOptions{Now: time.Now(), DryRun: req.DryRun, Concurrency: f.Config.Concurrency})
		if rep != nil {
			f.Log.InfoContext(ctx, "expiry", "folds", len(rep.Folds), "recoveryPoints", len(rep.Expired),
				"journalObjects", rep.Journal.Objects, "dataObjects", rep.Data.Objects, "bytesFreed", rep.Data.Bytes+rep.Journal.Bytes,
				"retained", rep.Data.Retained+rep.Journal.Retained, "warnings", len(rep.Warnings))
		}
		return rep, err
	})
}
