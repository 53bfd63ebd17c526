// Package config is the functions' configuration: the environment variable
// names (infra/ sets the same constants, so the CDK app and the functions
// cannot drift) and their parsing into one typed struct, once, at start.
package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Environment variables of the functions.
const (
	EnvVault          = "BUCKETVAULT_VAULT"           // vault bucket name (required)
	EnvEndpointURL    = "BUCKETVAULT_ENDPOINT_URL"    // S3-compatible endpoint, for local runs
	EnvRestoreTargets = "BUCKETVAULT_RESTORE_TARGETS" // comma-separated bucket patterns a restore may write to
	EnvConcurrency    = "BUCKETVAULT_CONCURRENCY"     // parallel S3 copies per invocation
	EnvBuckets        = "BUCKETVAULT_BUCKETS"         // comma-separated buckets to reconcile (default: all protected)
	// EnvPackMax is the largest object, in bytes, a snapshot stores in a
	// pack (0: none; default 262144).
	EnvPackMax = "BUCKETVAULT_PACK_MAX"
	// EnvRelayMax is the largest new version, in bytes, the journal
	// relays (GetObject + create-only PutObject) instead of copying it
	// server-side (0: none; default 262144).
	EnvRelayMax = "BUCKETVAULT_RELAY_MAX"
	EnvLogLevel = "AWS_LAMBDA_LOG_LEVEL" // DEBUG, INFO, WARN, ERROR (Lambda's own)
	// EnvEventsTopic is the ARN of the SNS topic that job events
	// (BACKUP_JOB_*, RESTORE_JOB_*, S3_BACKUP_OBJECT_FAILED) are published
	// to; shared/notify reads it.
	EnvEventsTopic = "BUCKETVAULT_EVENTS_TOPIC"
	// EnvEventBus is the EventBridge bus (name or ARN) that the same job
	// events are put on; shared/notify reads it.
	EnvEventBus = "BUCKETVAULT_EVENT_BUS"
)

// Config is the parsed configuration.
type Config struct {
	Vault          string
	EndpointURL    string
	RestoreTargets []string
	Concurrency    int
	Buckets        []string
	// PackMax is the snapshot engine's PackMax: 0 for its default, -1
	// for no packs.
	PackMax int64
	// RelayMax is the journal's RelayMax, the same way.
	RelayMax int64
}

// MaxPackMax bounds EnvPackMax and EnvRelayMax: a pack member, a relayed
// version, is held in memory.
const MaxPackMax = 16 << 20

// Error names the variable that is wrong.
type Error struct {
	Var, Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("configuration %s: %s", e.Var, e.Reason) }

// FromEnv parses the configuration from getenv (os.Getenv).
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Vault:          strings.TrimSpace(getenv(EnvVault)),
		EndpointURL:    strings.TrimSpace(getenv(EnvEndpointURL)),
		RestoreTargets: list(getenv(EnvRestoreTargets)),
		Buckets:        list(getenv(EnvBuckets)),
		Concurrency:    16,
	}
	if c.Vault == "" {
		return c, &Error{Var: EnvVault, Reason: "is required (the vault bucket's name)"}
	}
	if s := strings.TrimSpace(getenv(EnvConcurrency)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return c, &Error{Var: EnvConcurrency, Reason: fmt.Sprintf("%q: want a number from 1 to 1000", s)}
		}
		c.Concurrency = n
	}
	for _, v := range []struct {
		name, what string
		to         *int64
	}{{EnvPackMax, "no packs", &c.PackMax}, {EnvRelayMax, "no relay", &c.RelayMax}} {
		s := strings.TrimSpace(getenv(v.name))
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > MaxPackMax {
			return c, &Error{Var: v.name, Reason: fmt.Sprintf("%q: want a size in bytes from 0 (%s) to %d", s, v.what, MaxPackMax)}
		}
		*v.to = n
		if n == 0 {
			*v.to = -1
		}
	}
	return c, nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
