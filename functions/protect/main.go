// Command protect is the protect Lambda function: on a schedule, and as
// CloudFormation custom resources at deploy time, it writes the vault's
// descriptor (Custom::BucketvaultVault) and checks that each configured
// bucket is versioned and turns on its EventBridge delivery
// (Custom::BucketvaultProtect).
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

func main() {
	f, err := wiring.Setup(context.Background())
	if err != nil {
		// Still serve: a deployment waiting on a custom resource gets the
		// reason as FAILED instead of an hour's silence.
		slog.Error("protect function cannot start", "error", err)
		lambda.Start(protect.Unavailable(fmt.Errorf("protect function cannot start: %w", err)))
		return
	}
	h := &protect.Handler{
		S3: f.S3, Vault: f.Config.Vault, Log: f.Log, Buckets: f.Config.Buckets,
		// The vault is opened when buckets are protected, not before: the
		// vault resource writes its descriptor first, and a vault that
		// cannot be opened is an answer to CloudFormation, not a crash.
		OpenJournal: func(ctx context.Context) (*journal.Journal, error) {
			v, err := f.Vault(ctx)
			if err != nil {
				return nil, err
			}
			return &journal.Journal{Vault: v, S3: f.S3, Log: f.Log}, nil
		},
	}
	lambda.Start(h.Handle)
}
