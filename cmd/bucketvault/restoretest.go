package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// restoreTestCommand groups the commands about restore testing: scheduled
// restores that prove a backup comes back.
func (a *app) restoreTestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore-test",
		Short: "Check AWS Backup restore testing plans and selections",
		Long: `The restore-test commands read AWS Backup's own restore testing JSON unchanged:
a create-restore-testing-plan --restore-testing-plan file, a
create-restore-testing-selection --restore-testing-selection file, either
command's --cli-input-json file, or get-restore-testing-plan and
get-restore-testing-selection output. bucketvault restore-tests S3 buckets.`,
	}
	cmd.AddCommand(a.restoreTestValidateCommand())
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
