// Command bucketvault is the operator CLI: it creates vaults, protects
// buckets, journals events, reconciles, restores, verifies, and runs the
// local runner (serve) and the demo, all with the same engine the Lambda
// functions run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/obs"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitPartial = 3 // the job ran but some objects failed or problems were found
	exitRunning = 4 // the CLI stopped following a job that goes on (restore --wait)
)

// partialError makes the command exit with exitPartial after printing.
type partialError struct{ msg string }

func (e *partialError) Error() string { return e.msg }

// app holds the global flags and what they build.
type app struct {
	endpointURL string
	region      string
	profile     string
	jsonOut     bool
	logLevel    string
	noProgress  bool
	stdout      io.Writer
	stderr      io.Writer
	log         *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(*partialError)):
		fmt.Fprintln(stderr, "bucketvault:", err)
		return exitPartial
	case errors.As(err, new(*stillRunningError)):
		fmt.Fprintln(stderr, "bucketvault:", err)
		return exitRunning
	case errors.As(err, new(*usageError)), errors.As(err, new(*vault.CreateRefusedError)), errors.As(err, new(*s3x.InvalidBucketNameError)),
		errors.As(err, new(*vault.LockInputError)), errors.As(err, new(*protect.WindowError)):
		fmt.Fprintln(stderr, "bucketvault:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "bucketvault:", err)
		return exitFailed
	}
}

// usageError is bad input from the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(f string, a ...any) error { return &usageError{msg: fmt.Sprintf(f, a...)} }

// bucketFlags are the flags that name buckets, checked against S3's naming
// rules before a command runs.
var bucketFlags = []string{"vault", "bucket", "target-bucket"}

// checkBucketFlags refuses a bucket flag whose value S3 would not take
// for a bucket name, naming the flag and the rule, before any request.
func checkBucketFlags(cmd *cobra.Command) error {
	for _, name := range bucketFlags {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(interface{ GetSlice() []string }); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			if err := s3x.ValidateBucketName(v); err != nil {
				return usagef("--%s: %v", name, err)
			}
		}
	}
	return nil
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bucketvault",
		Short: "Continuous and periodic backup for Amazon S3, with point-in-time restore",
		Long: `bucketvault backs up S3 buckets into a vault bucket: every object version,
journaled from S3 events and reconciled against ListObjectVersions, so a bucket
can be restored as of any second inside the vault's window.

AWS credentials, region and endpoint come from the usual places (environment,
profiles, AWS_ENDPOINT_URL); --endpoint-url points at an S3-compatible server
such as the local one (path-style addressing).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.log = obs.CLILogger(a.stderr, a.logLevel, a.jsonOut)
			slog.SetDefault(a.log)
			return checkBucketFlags(cmd)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpointURL, "endpoint-url", "", "S3 endpoint URL (for example http://127.0.0.1:9000); path-style addressing")
	pf.StringVar(&a.region, "region", "", "AWS region (default: from the environment or profile, else us-east-1)")
	pf.StringVar(&a.profile, "profile", "", "AWS shared-config profile")
	pf.BoolVar(&a.jsonOut, "json", false, "print results as JSON")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.BoolVar(&a.noProgress, "no-progress", false, "do not show progress bars")
	root.AddCommand(
		a.vaultCommand(), a.protectCommand(), a.journalCommand(), a.reconcileCommand(), a.compactCommand(), a.expireCommand(),
		a.backupCommand(), a.restoreCommand(), a.recoveryPointsCommand(), a.verifyCommand(), a.jobCommand(),
		a.serveCommand(), a.demoCommand(), a.localServerCommand(), a.invokeCommand(),
		a.planCommand(), a.restoreTestCommand(), a.reportCommand(),
	)
	return root
}

// client builds the S3 client from the global flags.
func (a *app) client(ctx context.Context) (s3x.Client, error) {
	cfg, err := s3x.LoadConfig(ctx, s3x.ClientOptions{EndpointURL: a.endpointURL, Region: a.region, Profile: a.profile})
	if err != nil {
		return nil, err
	}
	return s3x.NewClient(cfg, a.endpointURL)
}

// print writes v as JSON (with --json) or as text.
func (a *app) print(v any, text string) error {
	if a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := io.WriteString(a.stdout, text)
	return err
}
