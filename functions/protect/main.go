// Command protect is the protect Lambda function: on a schedule, and as
// CloudFormation custom resources at deploy time, it writes the vault's
// descriptor (Custom::BucketvaultVault) and checks that each configured
// bucket is versioned and turns on its EventBridge delivery
// (Custom::BucketvaultProtect); see shared/handler.Protect.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/handler"
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
	lambda.Start(handler.Protect(f))
}
