// Package obs is observability: JSON logs through log/slog with the Lambda
// request id, X-Ray tracing of every AWS call (the only package that knows
// the X-Ray SDK, so a move to OpenTelemetry touches one file), and metrics
// as CloudWatch embedded metric format (EMF) log lines.
package obs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-xray-sdk-go/instrumentation/awsv2"
)

// Namespace is the CloudWatch namespace of bucketvault's metrics.
const Namespace = "bucketvault"

// LambdaLogger returns the logger for a Lambda function: slog JSON with the
// request id of the invocation, at AWS_LAMBDA_LOG_LEVEL.
func LambdaLogger() *slog.Logger { return lambdacontext.NewLogger() }

// CLILogger returns the logger for the CLI: text on w at level.
func CLILogger(w io.Writer, level string, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level)}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ParseLevel reads debug, info, warn or error (default info).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Trace instruments every AWS SDK call made with cfg with X-Ray subsegments.
// It does nothing outside Lambda (no trace header to join).
func Trace(cfg *aws.Config) {
	if os.Getenv("AWS_LAMBDA_FUNCTION_NAME") == "" {
		return
	}
	awsv2.AWSV2Instrumentor(&cfg.APIOptions)
}

// Metrics writes EMF records: one JSON line per call that CloudWatch turns
// into metrics, with the dimensions given plus Vault.
//
// The lines go straight to standard output, not through slog, and carry no
// "level" field. Lambda's log-level filtering therefore counts them as
// INFO (it gives every line without a level INFO), so a function whose
// application log level is WARN or ERROR loses them: that is why the
// stack accepts only DEBUG and INFO (docs/deploy.md, "Metrics and log
// levels").
type Metrics struct {
	W io.Writer // nil: os.Stdout
	// Vault is the Vault dimension; empty: the process's (SetVault).
	Vault string
}

// DimVault is the dimension that names the vault bucket a metric is about.
// Every metric carries it, so one account's stacks (one vault each) keep
// their metrics, and their alarms, apart.
const DimVault = "Vault"

var processVault atomic.Value // string

// SetVault sets the Vault dimension of every metric this process emits
// (a function serves one vault; wiring.Setup calls it).
func SetVault(name string) { processVault.Store(name) }

func (m Metrics) vault() string {
	if m.Vault != "" {
		return m.Vault
	}
	v, _ := processVault.Load().(string)
	return v
}

// Unit names of EMF.
const (
	Count        = "Count"
	Bytes        = "Bytes"
	Seconds      = "Seconds"
	Milliseconds = "Milliseconds"
)

// Value is one metric value with its unit.
type Value struct {
	V    float64
	Unit string
}

// Put emits values under dims (for example {"Function":"journal","Bucket":b})
// and the Vault dimension, when the vault is known and dims does not name
// one.
func (m Metrics) Put(ctx context.Context, dims map[string]string, values map[string]Value) {
	w := m.W
	if w == nil {
		w = os.Stdout
	}
	if v := m.vault(); v != "" && dims[DimVault] == "" {
		withVault := make(map[string]string, len(dims)+1)
		for k, d := range dims {
			withVault[k] = d
		}
		withVault[DimVault] = v
		dims = withVault
	}
	dimNames := make([]string, 0, len(dims))
	for k := range dims {
		dimNames = append(dimNames, k)
	}
	sort.Strings(dimNames)
	type metric struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	var defs []metric
	rec := map[string]any{}
	for k, v := range dims {
		rec[k] = v
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		defs = append(defs, metric{Name: k, Unit: values[k].Unit})
		rec[k] = values[k].V
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		rec["requestId"] = lc.AwsRequestID
	}
	rec["_aws"] = map[string]any{
		"Timestamp": time.Now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace": Namespace, "Dimensions": [][]string{dimNames}, "Metrics": defs,
		}},
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	_, _ = w.Write(append(line, '\n'))
}
