package main

// The module's layers, lowest first (docs/design.md, "Layers"). A package
// imports only packages of lower layers: never one of its own layer, never
// one above. Peers of a layer are independent of each other, so moving a
// package, or adding one, is a decision recorded here and in the doc.
//
// A pattern is a package path relative to the module, or PATH/... for
// PATH and every package below it; the longest matching pattern wins.
var layers = []layer{
	{
		Name: "base",
		Why:  "S3 access and error classification, logs/traces/metrics, event decoding, configuration, the local S3 server: nothing of ours below them",
		Packages: []string{
			"shared/s3x", "shared/obs", "shared/event", "shared/config", "shared/locals3",
		},
	},
	{
		Name: "format",
		Why:  "shared/vault, the one owner of the vault format and its keys; readers of a bucket's state; job notifications; the recorded format-1 vault that tests load (shared/vault/vaultfixture: files, not the format, so it imports no shared/vault)",
		Packages: []string{
			"shared/vault", "shared/inspect", "shared/notify", "shared/vault/vaultfixture",
		},
	},
	{
		Name: "engine",
		Why:  "continuous backup, point-in-time restore, backup plans and selections: each reads and writes the vault through shared/vault only",
		Packages: []string{
			"shared/journal", "shared/restore", "shared/plan",
		},
	},
	{
		Name: "jobs",
		Why:  "what puts the engine to work: protecting a bucket, snapshots, restore jobs' notifications",
		Packages: []string{
			"shared/protect", "shared/snapshot", "shared/notify/restorejob", "shared/restoretest",
		},
	},
	{
		Name: "drive",
		Why:  "what starts jobs: the local runner and scheduler, the dispatch of scheduled rules, a Lambda function's start-up; and what reads what jobs leave: the vault's report (recovery points and restore test history, shared/report)",
		Packages: []string{
			"shared/runner", "shared/schedule", "shared/wiring", "shared/report",
		},
	},
	{
		Name: "functions",
		Why:  "each Lambda function's handler, and the environment the stack gives it, built in one place for the functions' mains and the CLI's invoke; the Lambda Runtime Interface Emulator that runs them locally (installed and run as the local S3 server is)",
		Packages: []string{
			"shared/handler", "shared/rie",
		},
	},
	{
		Name: "adapters",
		Why:  "thin mains and the CDK app: nothing imports them",
		Packages: []string{
			"functions/...", "cmd/...", "infra/...", "shared/locals3/cmd/...", "shared/bench",
		},
	},
}

// vaultPackage is the one package that builds vault keys.
const vaultPackage = "shared/vault"

// keyPrefixes are the top-level prefixes of vault keys (docs/vault-format.md).
// A string literal outside vaultPackage that starts with one builds a vault
// key. The check adds every constant of vaultPackage whose value is such a
// prefix ("scratch/" and whatever the format adds), and the descriptor's
// key (vault.DescriptorKey).
var keyPrefixes = []string{"journal/", "runs/", "snapshots/", "data/", "jobs/", "buckets/", "reconcile/"}

// keyAllowlist are vault keys built outside shared/vault, by file and
// literal: none (infra uses the patterns shared/vault exports). An entry
// that matches nothing fails the check.
var keyAllowlist = []allowed{}
