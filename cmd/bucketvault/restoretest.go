package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// restoreTestCommand groups the commands about restore testing: scheduled
// restores that prove a backup comes back.
func (a *app) restoreTestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore-test",
		Short: "Run restore tests, see their history, check restore testing plans and selections",
		Long: `The restore-test commands read AWS Backup's own restore testing JSON unchanged:
a create-restore-testing-plan --restore-testing-plan file, a
create-restore-testing-selection --restore-testing-selection file, either
command's --cli-input-json file, or get-restore-testing-plan and
get-restore-testing-selection output. bucketvault restore-tests S3 buckets.`,
	}
	cmd.AddCommand(a.restoreTestValidateCommand(), a.restoreTestRunCommand(), a.restoreTestHistoryCommand(), a.restoreTestSweepCommand(),
		a.restoreTestPutValidationResultCommand())
	return cmd
}

// restoreTestRunCommand runs one restore test of one bucket.
func (a *app) restoreTestRunCommand() *cobra.Command {
	var req restoretest.RunRequest
	var planFile, algorithm string
	var types []string
	var keepHours float64
	var lambdaEndpoint string
	cmd := &cobra.Command{
		Use:   "run --vault V --bucket B [--plan FILE] [--algorithm latest|random] [--types snapshot,continuous] [--seed N] [--keep-hours H]",
		Short: "Restore a recovery point into a new restore-test-* bucket, validate every object against the vault, record the result",
		Long: `A restore test picks a recovery point of the bucket (the newest by default,
or as --plan's RecoveryPointSelection says), restores it into a new bucket
named restore-test-<random>, validates the restored bucket against what the
vault recorded, independently of the restore's own checks (every key from a
listing; a random sample, enough to find 0.1% corrupt objects with 99%
confidence, read whole: bytes, metadata, tags), keeps the result in the
vault (restore-test history) and deletes the bucket, at once or after
--keep-hours. A test that finds problems exits 3 and names each key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ n, v string }{{"vault", req.Vault}, {"bucket", req.Bucket}} {
				if err := requireFlag(f.n, f.v); err != nil {
					return err
				}
			}
			sel := &restoretest.RecoveryPointSelection{Algorithm: restoretest.LatestWithinWindow, IncludeVaults: []string{"*"},
				RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Snapshot, restoretest.Continuous}}
			if planFile != "" {
				doc, err := restoretest.Load(planFile)
				if err != nil {
					return usagef("--plan %s: %v", planFile, err)
				}
				if doc.Plan == nil || doc.Plan.RecoveryPointSelection == nil {
					return usagef("--plan %s is not a restore testing plan with a RecoveryPointSelection", planFile)
				}
				sel = doc.Plan.RecoveryPointSelection
				req.PlanName = doc.Plan.RestoreTestingPlanName
			}
			switch strings.ToLower(algorithm) {
			case "":
			case "latest":
				sel.Algorithm = restoretest.LatestWithinWindow
			case "random":
				sel.Algorithm = restoretest.RandomWithinWindow
			default:
				return usagef("--algorithm %q: want latest or random", algorithm)
			}
			if len(types) > 0 {
				sel.RecoveryPointTypes = nil
				for _, t := range types {
					switch strings.ToLower(t) {
					case "snapshot":
						sel.RecoveryPointTypes = append(sel.RecoveryPointTypes, restoretest.Snapshot)
					case "continuous":
						sel.RecoveryPointTypes = append(sel.RecoveryPointTypes, restoretest.Continuous)
					default:
						return usagef("--types %q: want snapshot, continuous or both", t)
					}
				}
			}
			if keepHours < 0 || keepHours > 168 {
				return usagef("--keep-hours %v: want 0 to 168 (AWS Backup's ValidationWindowHours)", keepHours)
			}
			req.Keep = time.Duration(keepHours * float64(time.Hour))
			if req.RTO < 0 {
				return usagef("--rto %v: want a positive duration", req.RTO)
			}
			req.Selection = sel
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			tester := &restoretest.Tester{S3: c}
			if req.ValidationFunction != "" {
				cfg, err := s3x.LoadConfig(cmd.Context(), s3x.ClientOptions{Region: a.region, Profile: a.profile})
				if err != nil {
					return err
				}
				tester.Lambda = lambda.NewFromConfig(cfg, func(o *lambda.Options) {
					if lambdaEndpoint != "" {
						o.BaseEndpoint = aws.String(lambdaEndpoint)
					}
				})
				if keepHours > 0 {
					fmt.Fprintf(a.stderr, "the validation function %s has until the validation window ends (%gh) to give its verdict: `bucketvault restore-test put-validation-result`\n", req.ValidationFunction, keepHours)
				}
			} else if lambdaEndpoint != "" {
				return usagef("--lambda-endpoint needs --validation-function")
			}
			p := a.newProgress("restore test")
			run, err := tester.Run(cmd.Context(), req)
			p.done()
			if errors.Is(err, restoretest.ErrNothingToPick) {
				return usagef("%v", err)
			}
			if err != nil {
				return err
			}
			if err := a.print(run, runText(run)); err != nil {
				return err
			}
			if run.Status != restoretest.StatusSuccessful {
				return &partialError{msg: fmt.Sprintf("restore test %s: %s: %s", run.ID, run.Status, run.StatusMessage)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Vault, "vault", "", "vault bucket name")
	f.StringVar(&req.Bucket, "bucket", "", "the protected bucket to test")
	f.StringVar(&planFile, "plan", "", "an AWS Backup restore testing plan file: its RecoveryPointSelection picks the recovery point")
	f.StringVar(&algorithm, "algorithm", "", "latest or random (default: the plan's, else latest)")
	f.StringSliceVar(&types, "types", nil, "snapshot, continuous or both (default: the plan's, else both)")
	f.Uint64Var(&req.Seed, "seed", 0, "seed of the random pick and sample (default: a random one, recorded)")
	f.Float64Var(&keepHours, "keep-hours", 0, "keep the restored bucket this long before deleting it (0: delete at once)")
	f.DurationVar(&req.RTO, "rto", 0, "recovery time objective to record the restore's time against, e.g. 4h (0: none)")
	f.StringVar(&req.ValidationFunction, "validation-function", "", "a Lambda function (name or ARN) that validates the restored bucket and gives its verdict within the validation window (--keep-hours)")
	f.StringVar(&lambdaEndpoint, "lambda-endpoint", "", "the Lambda API endpoint to invoke --validation-function at (e.g. a Lambda Runtime Interface Emulator's http://127.0.0.1:9001); default AWS's")
	return cmd
}

// runText renders a restore test run for people.
func runText(r *restoretest.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore test %s: %s\n", r.ID, r.Status)
	if r.StatusMessage != "" {
		fmt.Fprintf(&b, "  %s\n", r.StatusMessage)
	}
	what := r.At.Format(time.RFC3339)
	if r.Type == restoretest.Snapshot {
		what = r.RecoveryPointID + " (" + what + ")"
	}
	fmt.Fprintf(&b, "  s3://%s %s %s (%s, seed %d) -> s3://%s\n", r.Bucket, r.Type, what, r.Algorithm, r.Seed, r.TargetBucket)
	fmt.Fprintf(&b, "  restore %s: %d objects, %d bytes in %.1fs\n", r.RestoreState, r.Objects, r.Bytes, r.RestoreSeconds)
	if r.RTOMet != nil {
		verdict := "met"
		if !*r.RTOMet {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "  RTO %s: restored in %.1fs, target %s\n", verdict, r.RestoreSeconds, time.Duration(r.RTOTargetSeconds*float64(time.Second)))
	}
	if v := r.Validation; v != nil {
		sample := fmt.Sprintf("a sample of %d (for %.1f%% corrupt at %.0f%%)", v.SampleSize, v.Fraction*100, v.Confidence*100)
		if v.Whole {
			sample = fmt.Sprintf("all %d", v.SampleSize)
		}
		fmt.Fprintf(&b, "  validation %s: %d keys listed of %d; %s read whole\n", v.Verdict, v.Listed, v.Expected, sample)
	}
	if uv := r.UserValidation; uv != nil {
		fmt.Fprintf(&b, "  validation function %s: %s", uv.Function, uv.Status)
		if uv.Message != "" {
			fmt.Fprintf(&b, ": %s", uv.Message)
		}
		b.WriteString("\n")
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILED %s: %s\n", f.Key, f.Why)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if r.DeletedAt != nil {
		fmt.Fprintf(&b, "  restored bucket deleted %s\n", r.DeletedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "  restored bucket kept until %s\n", r.DeleteAfter.Format(time.RFC3339))
	}
	return b.String()
}

// restoreTestHistoryCommand lists the restore tests a vault recorded.
func (a *app) restoreTestHistoryCommand() *cobra.Command {
	var vaultName, bucket string
	cmd := &cobra.Command{
		Use:   "history --vault V [--bucket B]",
		Short: "List the restore tests a vault recorded, oldest first: what was restored, how long it took, the verdict",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			runs, err := restoretest.History(cmd.Context(), v, bucket)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, r := range runs {
				rto := "-"
				if r.RTOMet != nil && *r.RTOMet {
					rto = "RTO met"
				} else if r.RTOMet != nil {
					rto = "RTO MISSED"
				}
				fmt.Fprintf(&b, "%s  %-10s %-8s %s  %-10s %8d objects %8.1fs %-10s  %s\n", r.StartedAt.Format(time.RFC3339), r.Status, r.Bucket, r.At.Format(time.RFC3339), r.Type, r.Objects, r.RestoreSeconds, rto, r.StatusMessage)
			}
			if len(runs) == 0 {
				b.WriteString("no restore tests recorded\n")
			}
			if runs == nil {
				runs = []restoretest.Run{}
			}
			return a.print(runs, b.String())
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().StringVar(&bucket, "bucket", "", "only this protected bucket's tests")
	return cmd
}

// restoreTestFile is one file's verdict, as validate prints it with --json:
// the parsed plan or selection with AWS Backup's defaults written in.
type restoreTestFile struct {
	File string `json:"File"`
	// Kind is RestoreTestingPlan or RestoreTestingSelection.
	Kind                    string                 `json:"Kind,omitempty"`
	Valid                   bool                   `json:"Valid"`
	Problems                []*plan.FieldError     `json:"Problems,omitempty"`
	RestoreTestingPlan      *restoretest.Plan      `json:"RestoreTestingPlan,omitempty"`
	RestoreTestingSelection *restoretest.Selection `json:"RestoreTestingSelection,omitempty"`
	Tags                    map[string]string      `json:"Tags,omitempty"`
}

func (a *app) restoreTestValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a restore testing plan or selection; exit 2 listing every problem by field",
		Long: `validate reads FILE, a restore testing plan or a restore testing selection
(told apart by its fields), and checks it against AWS Backup's documented
limits: names, a cron() schedule that fires, the start window (1 to 168
hours), the algorithm, recovery point types and vaults, the selection window
(1 to 365 days); the selection's resource type (S3 only), role ARN, bucket
ARNs or tag conditions, S3 restore metadata overrides (encryptionType,
kmsKey, restoreACLs) and validation window (0 to 168 hours). Every problem is
listed with the field it is in, and the exit code is 2. A valid file is
summarized; --json prints it parsed, with AWS Backup's defaults written in.

IamRoleArn is required by AWS Backup and checked, but bucketvault does not
use it: its restore tests run with the restore function's own role.`,
		Args: oneFile("restore testing plan or selection"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, d, err := readRestoreTestFile(args[0])
			if err != nil {
				return err
			}
			var text strings.Builder
			if f.Valid {
				describeRestoreTest(&text, f.File, d)
			}
			if err := a.print(f, text.String()); err != nil {
				return err
			}
			return invalid([]*planFile{{File: f.File, Valid: f.Valid, Problems: f.Problems}})
		},
	}
}

// readRestoreTestFile parses and validates one file; problems are recorded,
// not returned. The error is for a file that cannot be read at all.
func readRestoreTestFile(name string) (*restoreTestFile, *restoretest.Document, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	f := &restoreTestFile{File: name}
	d, err := restoretest.Parse(data)
	if err != nil {
		f.Problems = fieldErrors(err)
		return f, nil, nil
	}
	f.Problems = fieldErrors(d.Validate())
	f.Valid = len(f.Problems) == 0
	f.Tags = d.Tags
	if d.Plan != nil {
		f.Kind, f.RestoreTestingPlan = "RestoreTestingPlan", d.Plan.WithDefaults()
	} else {
		f.Kind, f.RestoreTestingSelection = "RestoreTestingSelection", d.Selection.WithDefaults()
	}
	return f, d, nil
}

// describeRestoreTest writes what a valid plan or selection does, a line
// per aspect.
func describeRestoreTest(b *strings.Builder, file string, d *restoretest.Document) {
	if p := d.Plan; p != nil {
		r := p.RecoveryPointSelection
		fmt.Fprintf(b, "%s: restore testing plan %q is valid\n", file, p.RestoreTestingPlanName)
		fmt.Fprintf(b, "  schedule: %s in %s, start within %dh\n", p.ScheduleExpression, p.Timezone(), int64(p.StartWindow()/time.Hour))
		types := make([]string, len(r.RecoveryPointTypes))
		for i, t := range r.RecoveryPointTypes {
			types[i] = string(t)
		}
		fmt.Fprintf(b, "  picks: %s among %s recovery points of the last %d days\n", r.Algorithm, strings.Join(types, " and "), r.WindowDays())
		vaults := "from vaults " + strings.Join(r.IncludeVaults, ", ")
		if len(r.ExcludeVaults) > 0 {
			vaults += ", except " + strings.Join(r.ExcludeVaults, ", ")
		}
		fmt.Fprintf(b, "  %s\n", vaults)
		if len(d.Tags) > 0 {
			fmt.Fprintf(b, "  tags: %s\n", pairs(d.Tags, "="))
		}
		return
	}
	s := d.Selection
	fmt.Fprintf(b, "%s: restore testing selection %q is valid", file, s.RestoreTestingSelectionName)
	if s.RestoreTestingPlanName != "" {
		fmt.Fprintf(b, " (plan %q)", s.RestoreTestingPlanName)
	}
	b.WriteString("\n")
	targets := "every protected S3 bucket"
	if !s.Wildcard() {
		targets = "S3 buckets " + strings.Join(s.ProtectedResourceArns, ", ")
	}
	if c := s.ProtectedResourceConditions; c != nil {
		var conds []string
		for _, kv := range c.StringEquals {
			conds = append(conds, fmt.Sprintf("%s = %q", strings.TrimPrefix(kv.Key, "aws:ResourceTag/"), kv.Value))
		}
		for _, kv := range c.StringNotEquals {
			conds = append(conds, fmt.Sprintf("%s != %q", strings.TrimPrefix(kv.Key, "aws:ResourceTag/"), kv.Value))
		}
		if len(conds) > 0 {
			targets += " whose tags have " + strings.Join(conds, " and ")
		}
	}
	fmt.Fprintf(b, "  takes: %s\n", targets)
	if w := s.ValidationWindow(); w == 0 {
		b.WriteString("  validation window: none, the restored bucket is deleted once the restore test ends\n")
	} else {
		fmt.Fprintf(b, "  validation window: %dh, then the restored bucket is deleted\n", int64(w/time.Hour))
	}
	if len(s.RestoreMetadataOverrides) > 0 {
		fmt.Fprintf(b, "  metadata overrides: %s\n", pairs(s.RestoreMetadataOverrides, "="))
	}
	b.WriteString("  note: IamRoleArn is required by AWS Backup; bucketvault does not assume it\n")
}

// pairs writes a map as k=v, sorted by key.
func pairs(m map[string]string, sep string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+sep+m[k])
	}
	return strings.Join(out, ", ")
}

// restoreTestSweepCommand deletes the restore-test-* buckets whose time
// is up.
func (a *app) restoreTestSweepCommand() *cobra.Command {
	var vaultName, nowFlag string
	cmd := &cobra.Command{
		Use:   "sweep --vault V",
		Short: "Delete restore-test-* buckets past their validation window, and those no run names older than a day (a crashed run's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			now := time.Now()
			if nowFlag != "" {
				if now, err = time.Parse(time.RFC3339, nowFlag); err != nil {
					return usagef("--now %q: want an RFC 3339 time", nowFlag)
				}
			}
			sw, err := (&restoretest.Tester{S3: v.S3}).Sweep(cmd.Context(), v, now)
			if err != nil {
				return err
			}
			text := fmt.Sprintf("deleted %d restore-test buckets %v; kept %d still in their window %v\n", len(sw.Deleted), sw.Deleted, len(sw.Kept), sw.Kept)
			return a.print(sw, text)
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name (its runs say when each bucket's window ends)")
	cmd.Flags().StringVar(&nowFlag, "now", "", "sweep as of this time (RFC 3339), for tests and what-if runs")
	return cmd
}

// restoreTestPutValidationResultCommand records a validation's verdict on
// a run awaiting one, as AWS Backup's PutRestoreValidationResult.
func (a *app) restoreTestPutValidationResultCommand() *cobra.Command {
	var vaultName, bucket, runID, status, message string
	cmd := &cobra.Command{
		Use:   "put-validation-result --vault V --bucket B --run-id ID --validation-status SUCCESSFUL|FAILED|VALIDATING [--validation-status-message M]",
		Short: "Give a restore test's verdict from your own validation (AWS Backup's PutRestoreValidationResult), while the run awaits it",
		Long: `A restore test with a validation function waits for the function's verdict
until its validation window ends. A function that needs longer than one
invocation answers VALIDATING (or nothing), and the verdict is given
later with this command. No verdict by the end of the window is
TIMED_OUT, and the run FAILED.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ n, v string }{{"bucket", bucket}, {"run-id", runID}, {"validation-status", status}} {
				if err := requireFlag(f.n, f.v); err != nil {
					return err
				}
			}
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			verdict := restoretest.Verdict{ValidationStatus: strings.ToUpper(status), ValidationStatusMessage: message}
			if err := restoretest.PutValidationResult(cmd.Context(), v, bucket, runID, verdict); err != nil {
				if errors.As(err, new(*restoretest.InvalidRunError)) {
					return usagef("%v", err)
				}
				return err
			}
			return a.print(verdict, fmt.Sprintf("restore test %s: validation result %s recorded; the run takes it at its next look\n", runID, verdict.ValidationStatus))
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&bucket, "bucket", "", "the protected bucket the run tested")
	f.StringVar(&runID, "run-id", "", "the run's id (restore-test history; the validation function's event has it as detail.runId)")
	f.StringVar(&status, "validation-status", "", "SUCCESSFUL, FAILED or VALIDATING")
	f.StringVar(&message, "validation-status-message", "", "why, for the run's record")
	return cmd
}
