package handler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bucketvault/bucketvault/shared/config"
)

// Names are the Lambda functions: their directories under functions/ and
// their names in infra/, sorted.
var Names = []string{"dispatch", "expire", "journal", "protect", "reconcile", "restore", "restoretest", "snapshot"}

// stackEnv are the variables the stack sets in each function's
// environment (infra/functions.go). A test holds them to the golden
// template's Environment.Variables.
var stackEnv = map[string][]string{
	"dispatch":    {config.EnvVault},
	"expire":      {config.EnvVault, config.EnvConcurrency},
	"journal":     {config.EnvVault, config.EnvConcurrency},
	"protect":     {config.EnvVault, config.EnvBuckets},
	"reconcile":   {config.EnvVault, config.EnvConcurrency, config.EnvBuckets},
	"restore":     {config.EnvVault, config.EnvConcurrency, config.EnvRestoreTargets, config.EnvEventsTopic, config.EnvEventBus},
	"restoretest": {config.EnvVault, config.EnvConcurrency, config.EnvEventsTopic, config.EnvEventBus},
	"snapshot":    {config.EnvVault, config.EnvConcurrency, config.EnvEventsTopic, config.EnvEventBus},
}

// awsResources are the stack's variables whose values are AWS resources
// (the events topic and bus): a local run leaves them out, so job events
// are logged (notify.FromEnv).
var awsResources = []string{config.EnvEventsTopic, config.EnvEventBus}

// StackEnv returns the names of the variables the stack sets in function
// name's environment, sorted, or nil for a name that is not a function.
func StackEnv(name string) []string {
	vars := slices.Clone(stackEnv[name])
	slices.Sort(vars)
	return vars
}

// Settings are the values a local run gives the stack's variables, and
// the endpoint of the S3-compatible server it runs against.
type Settings struct {
	Vault          string   // BUCKETVAULT_VAULT
	Concurrency    int      // BUCKETVAULT_CONCURRENCY; 0: the configuration's default
	Buckets        []string // BUCKETVAULT_BUCKETS
	RestoreTargets []string // BUCKETVAULT_RESTORE_TARGETS
	// EndpointURL is BUCKETVAULT_ENDPOINT_URL, which the stack does not
	// set (on AWS the SDK finds S3); empty: none.
	EndpointURL string
}

// LocalEnv is function name's environment on a local run: the variables
// the stack sets for it, with s's values, but for those that name AWS
// resources (left out: job events are logged), plus BUCKETVAULT_ENDPOINT_URL.
// Both the emulator's run of the bootstrap and the CLI's in-process invoke
// configure the function from it (config.FromEnv).
func LocalEnv(name string, s Settings) (map[string]string, error) {
	vars, ok := stackEnv[name]
	if !ok {
		return nil, fmt.Errorf("unknown function %q: want one of %s", name, strings.Join(Names, ", "))
	}
	env := map[string]string{}
	for _, v := range vars {
		switch v {
		case config.EnvVault:
			env[v] = s.Vault
		case config.EnvConcurrency:
			if s.Concurrency != 0 {
				env[v] = strconv.Itoa(s.Concurrency)
			}
		case config.EnvBuckets:
			env[v] = strings.Join(s.Buckets, ",")
		case config.EnvRestoreTargets:
			env[v] = strings.Join(s.RestoreTargets, ",")
		default:
			if !slices.Contains(awsResources, v) {
				return nil, fmt.Errorf("function %s: the stack sets %s, which a local run has no value for", name, v)
			}
		}
	}
	if s.EndpointURL != "" {
		env[config.EnvEndpointURL] = s.EndpointURL
	}
	return env, nil
}
