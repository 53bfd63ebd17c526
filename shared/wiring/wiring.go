// Package wiring builds what every Lambda function starts with: its typed
// configuration, a logger with the request id, a traced S3 client (and the
// SDK configuration for other clients), the publisher of its job events,
// and the Vault dimension of its metrics.
package wiring

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/obs"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Function is a function's start-up state.
type Function struct {
	Config config.Config
	// AWS is the SDK configuration, traced (obs.Trace) on Lambda: the
	// clients of other services (shared/notify's, Step Functions') are
	// made from it.
	AWS aws.Config
	S3  *s3.Client
	Log *slog.Logger
	// Events publishes job events (notify.FromEnv on Lambda).
	Events notify.Publisher

	mu    sync.Mutex
	vault *vault.Vault
}

// Setup reads the configuration from the environment and builds the
// clients, as a function does when Lambda starts it. A configuration
// error is returned for main to report; nothing here exits the process.
func Setup(ctx context.Context) (*Function, error) {
	log := obs.LambdaLogger()
	slog.SetDefault(log)
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := s3x.LoadConfig(ctx, s3x.ClientOptions{})
	if err != nil {
		return nil, err
	}
	obs.Trace(&awsCfg)
	f, err := New(cfg, awsCfg, log)
	if err != nil {
		return nil, err
	}
	f.Events = notify.FromEnv(awsCfg, os.Getenv)
	return f, nil
}

// New builds a function's start-up state from a parsed configuration and
// an SDK configuration: Setup's second half, which the CLI's in-process
// invoke calls with the configuration the stack's environment would give
// the function. Job events go to log (notify.Log) until the caller sets
// Events.
func New(cfg config.Config, awsCfg aws.Config, log *slog.Logger) (*Function, error) {
	if log == nil {
		log = slog.Default()
	}
	obs.SetVault(cfg.Vault)
	client, err := s3x.NewClient(awsCfg, cfg.EndpointURL)
	if err != nil {
		return nil, err
	}
	return &Function{Config: cfg, AWS: awsCfg, S3: client, Log: log, Events: notify.Log{Logger: log}}, nil
}

// Vault opens the configured vault once, on first use.
func (f *Function) Vault(ctx context.Context) (*vault.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vault == nil {
		v, err := vault.Open(ctx, f.S3, f.Config.Vault)
		if err != nil {
			return nil, err // tried again on the next invocation
		}
		f.vault = v
	}
	return f.vault, nil
}
