package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// planCommand groups the commands that read AWS Backup plan and selection
// files: validate, next and resolve.
func (a *app) planCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Check AWS Backup plan and selection files, show when rules fire, resolve selections",
		Long: `The plan commands read AWS Backup's own BackupPlan and BackupSelection JSON
unchanged: a create-backup-plan --backup-plan file, a --cli-input-json file,
get-backup-plan or get-backup-selection output, or a document holding
{"BackupPlan": ..., "BackupSelections": [...]}. See docs/plans.md.`,
	}
	cmd.AddCommand(a.planValidateCommand(), a.planNextCommand(), a.planResolveCommand())
	return cmd
}

func oneFile(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("want one %s file, got %d arguments", what, len(args))
		}
		return nil
	}
}

// planFile is one file's verdict, as validate prints it with --json.
type planFile struct {
	File       string             `json:"File"`
	Plan       string             `json:"Plan,omitempty"`
	Rules      int                `json:"Rules,omitempty"`
	Selections []string           `json:"Selections,omitempty"`
	Valid      bool               `json:"Valid"`
	Problems   []*plan.FieldError `json:"Problems,omitempty"`
	Ignored    []string           `json:"Ignored,omitempty"`
	plan       *plan.Plan
	sels       []plan.Selection
}

// readPlanFile parses and validates one file; problems are recorded, not
// returned. The error is for a file that cannot be read at all.
func readPlanFile(name string, knownVault func(string) bool) (*planFile, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("%v", err)
	}
	f := &planFile{File: name}
	p, sels, err := plan.Parse(data)
	if err != nil {
		f.Problems = fieldErrors(err)
		return f, nil
	}
	f.plan, f.sels = p, sels
	if p != nil {
		f.Plan, f.Rules, f.Ignored = p.BackupPlanName, len(p.Rules), p.Ignored()
		f.Problems = append(f.Problems, fieldErrors(p.Validate(knownVault))...)
	}
	for i := range sels {
		f.Selections = append(f.Selections, sels[i].SelectionName)
		problems := fieldErrors(sels[i].Validate())
		if p != nil || len(sels) > 1 {
			for _, pr := range problems {
				pr.Field = fmt.Sprintf("BackupSelections[%d].%s", i, pr.Field)
			}
		}
		f.Problems = append(f.Problems, problems...)
	}
	f.Valid = len(f.Problems) == 0
	return f, nil
}

func fieldErrors(err error) []*plan.FieldError {
	if err == nil {
		return nil
	}
	var es plan.Errors
	if errors.As(err, &es) {
		return es
	}
	return []*plan.FieldError{{Problem: err.Error()}}
}

// invalid is the usage error for files with problems: every problem of
// every file, each on its own line.
func invalid(files []*planFile) error {
	var b strings.Builder
	n := 0
	for _, f := range files {
		if f.Valid {
			continue
		}
		n += len(f.Problems)
		fmt.Fprintf(&b, "\n%s:", f.File)
		for _, p := range f.Problems {
			fmt.Fprintf(&b, "\n  %s", p)
		}
	}
	if n == 0 {
		return nil
	}
	noun := "problems"
	if n == 1 {
		noun = "problem"
	}
	return usagef("%d %s%s", n, noun, b.String())
}

func (a *app) planValidateCommand() *cobra.Command {
	var selections []string
	var checkVaults bool
	cmd := &cobra.Command{
		Use:   "validate FILE [--selection FILE]... [--check-vaults]",
		Short: "Check a plan (and selections) against AWS Backup's limits; exit 2 listing every problem by field",
		Long: `validate checks a plan file, and any selection files, against AWS Backup's
documented limits (names, start and completion windows, lifecycles,
continuous retention, hourly minimum frequency, at most 10 rules) and against
what makes no sense (a schedule that never fires, an unknown vault). Every
problem is listed with the field it is in, and the exit code is 2.

FILE may hold a plan, a selection, or both. --check-vaults opens each
TargetBackupVaultName as a vault on the S3 endpoint and reports the missing
ones. Fields that bucketvault reads but does not act on (malware scans,
indexes, air-gapped vaults) are listed as notes.`,
		Args: oneFile("plan"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var known func(string) bool
			var vaults map[string]*vault.Vault
			if checkVaults {
				var err error
				if known, vaults, err = a.knownVaults(cmd, args[0]); err != nil {
					return err
				}
			}
			var files []*planFile
			for i, name := range append([]string{args[0]}, selections...) {
				kv := known
				if i > 0 {
					kv = nil
				}
				f, err := readPlanFile(name, kv)
				if err != nil {
					return err
				}
				if i > 0 && f.plan != nil && len(f.Problems) == 0 {
					f.Problems = []*plan.FieldError{{Problem: "holds a plan: --selection wants a selection file (give the plan as the argument)"}}
					f.Valid = false
				}
				if i == 0 && f.plan != nil {
					f.Problems = append(f.Problems, lockProblems(f.plan, vaults)...)
					f.Valid = len(f.Problems) == 0
				}
				files = append(files, f)
			}
			var text strings.Builder
			for _, f := range files {
				if !f.Valid {
					continue
				}
				if f.plan != nil {
					fmt.Fprintf(&text, "%s: plan %q is valid (%d rules)\n", f.File, f.Plan, f.Rules)
					for i := range f.plan.Rules {
						text.WriteString("  " + describeRule(&f.plan.Rules[i]) + "\n")
					}
				}
				for _, s := range f.Selections {
					fmt.Fprintf(&text, "%s: selection %q is valid\n", f.File, s)
				}
				for _, n := range f.Ignored {
					fmt.Fprintf(&text, "  note: %s\n", n)
				}
			}
			if err := a.print(files, text.String()); err != nil {
				return err
			}
			return invalid(files)
		},
	}
	cmd.Flags().StringArrayVar(&selections, "selection", nil, "a selection file to validate as well (repeatable)")
	cmd.Flags().BoolVar(&checkVaults, "check-vaults", false, "check that every TargetBackupVaultName is a vault on the S3 endpoint")
	return cmd
}

// lockProblems checks each rule's retention against the lock of the
// vault it backs up to, where that vault is known (--check-vaults) and
// locked.
func lockProblems(p *plan.Plan, vaults map[string]*vault.Vault) []*plan.FieldError {
	var out []*plan.FieldError
	for i := range p.Rules {
		r := &p.Rules[i]
		v := vaults[r.TargetBackupVaultName]
		if v == nil || v.Lock == nil {
			continue
		}
		days := 0
		if r.Lifecycle != nil && r.Lifecycle.DeleteAfterDays != nil {
			days = int(*r.Lifecycle.DeleteAfterDays)
		}
		if err := v.CheckRetention("Lifecycle.DeleteAfterDays", days); err != nil {
			var le *vault.LockInputError
			if errors.As(err, &le) {
				out = append(out, &plan.FieldError{Field: fmt.Sprintf("Rules[%d].%s", i, le.Field), Problem: le.Reason})
			}
		}
	}
	return out
}

// knownVaults opens every vault the plan file names and returns the set of
// those that exist, and the open vaults (their locks).
func (a *app) knownVaults(cmd *cobra.Command, file string) (func(string) bool, map[string]*vault.Vault, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	p, _, err := plan.Parse(data)
	if err != nil || p == nil {
		return nil, nil, nil // validate reports it
	}
	c, err := a.client(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	known := map[string]bool{}
	vaults := map[string]*vault.Vault{}
	for _, r := range p.Rules {
		name := r.TargetBackupVaultName
		if _, done := known[name]; done || name == "" {
			continue
		}
		v, err := vault.Open(cmd.Context(), c, name)
		var nv *vault.NotAVaultError
		switch {
		case err == nil:
			known[name], vaults[name] = true, v
		case errors.As(err, &nv):
			known[name] = false
		default:
			return nil, nil, err
		}
	}
	return func(name string) bool { return known[name] }, vaults, nil
}

// describeRule is one line about a rule: schedule, windows, lifecycle.
func describeRule(r *plan.Rule) string {
	s, _ := r.Schedule()
	kind := "snapshot"
	if r.Continuous() {
		kind = "continuous"
	}
	line := fmt.Sprintf("%s: %s backup to %s, %s in %s, start within %s, complete within %s",
		r.RuleName, kind, r.TargetBackupVaultName, s, s.Location(), span(r.StartWindow()), span(r.CompletionWindow()))
	if l := r.Lifecycle; l != nil {
		if d := l.MoveToColdStorageAfterDays; d != nil && *d >= 0 {
			line += fmt.Sprintf(", cold after %d days", *d)
		}
		if d := l.DeleteAfterDays; d != nil && *d >= 0 {
			line += fmt.Sprintf(", deleted after %d days", *d)
		}
	}
	if n := len(r.CopyActions); n > 0 {
		line += fmt.Sprintf(", %d copy actions", n)
	}
	return line
}

// span writes a window in the largest whole unit: 7d, 8h, 90m.
func span(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// ruleTimes is one rule's next fire times, as next prints them with --json.
type ruleTimes struct {
	Rule               string     `json:"Rule"`
	ScheduleExpression string     `json:"ScheduleExpression"`
	Timezone           string     `json:"Timezone"`
	Continuous         bool       `json:"Continuous,omitempty"`
	Next               []fireTime `json:"Next"`
}

type fireTime struct {
	Local string `json:"Local"`
	UTC   string `json:"UTC"`
}

func (a *app) planNextCommand() *cobra.Command {
	var count int
	var from string
	cmd := &cobra.Command{
		Use:   "next FILE [--count N] [--from RFC3339]",
		Short: "Show when each rule of a plan fires next, in the rule's time zone and in UTC",
		Args:  oneFile("plan"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 || count > 1000 {
				return usagef("--count %d: want 1 to 1000", count)
			}
			start := time.Now()
			if from != "" {
				t, err := time.Parse(time.RFC3339, from)
				if err != nil {
					return usagef("--from %q: want an RFC 3339 time such as 2026-01-30T17:58:00Z", from)
				}
				start = t
			}
			f, err := readPlanFile(args[0], nil)
			if err != nil {
				return err
			}
			if err := invalid([]*planFile{f}); err != nil {
				return err
			}
			if f.plan == nil {
				return usagef("%s holds no plan", args[0])
			}
			var out []ruleTimes
			var text strings.Builder
			for i := range f.plan.Rules {
				r := &f.plan.Rules[i]
				s, err := r.Schedule()
				if err != nil {
					return err // validated above
				}
				rt := ruleTimes{Rule: r.RuleName, ScheduleExpression: s.String(), Timezone: s.Location().String(), Continuous: r.Continuous(), Next: []fireTime{}}
				fmt.Fprintf(&text, "%s: %s in %s", r.RuleName, s, s.Location())
				if r.Continuous() {
					text.WriteString(" (continuous backup; the schedule paces its maintenance)")
				}
				text.WriteString("\n")
				t := start
				for range count {
					t = s.Next(t)
					if t.IsZero() {
						text.WriteString("  never again\n")
						break
					}
					ft := fireTime{Local: t.Format(time.RFC3339), UTC: t.UTC().Format(time.RFC3339)}
					rt.Next = append(rt.Next, ft)
					fmt.Fprintf(&text, "  %-25s  %s\n", ft.Local, ft.UTC)
				}
				out = append(out, rt)
			}
			return a.print(out, text.String())
		},
	}
	cmd.Flags().IntVar(&count, "count", 5, "how many fire times per rule")
	cmd.Flags().StringVar(&from, "from", "", "start after this time (RFC 3339; default now)")
	return cmd
}

// resolved is one selection's resolution, as resolve prints it with --json.
type resolved struct {
	Selection  string          `json:"Selection"`
	Resolution plan.Resolution `json:"Resolution"`
}

func (a *app) planResolveCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "resolve --selection FILE",
		Short: "List the buckets a selection takes, and those it takes whose versioning is not Enabled",
		Long: `resolve lists the account's buckets (ListBuckets), reads the tags and
versioning of each candidate, and prints the buckets each selection takes.
Buckets it takes whose versioning is not Enabled are listed apart with the
reason, as are buckets whose tags or versioning cannot be read; either makes
the exit code 3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("--selection is required")
			}
			var sels []plan.Selection
			var read []*planFile
			for _, name := range files {
				f, err := readPlanFile(name, nil)
				if err != nil {
					return err
				}
				if f.Valid && len(f.sels) == 0 {
					f.Problems, f.Valid = []*plan.FieldError{{Problem: "holds no selection"}}, false
				}
				read = append(read, f)
				sels = append(sels, f.sels...)
			}
			if err := invalid(read); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var out []resolved
			var text strings.Builder
			problems := 0
			for _, sel := range sels {
				res, err := plan.Resolve(cmd.Context(), c, sel)
				if err != nil {
					return fmt.Errorf("selection %q: %w", sel.SelectionName, err)
				}
				out = append(out, resolved{Selection: sel.SelectionName, Resolution: res})
				problems += len(res.NotVersioned) + len(res.Unreadable)
				fmt.Fprintf(&text, "selection %q:\n  selected (%d):\n", sel.SelectionName, len(res.Selected))
				for _, b := range res.Selected {
					fmt.Fprintf(&text, "    %s\n", b.Name)
				}
				if len(res.NotVersioned) > 0 {
					fmt.Fprintf(&text, "  not versioned, not backed up until versioning is Enabled (%d):\n", len(res.NotVersioned))
					for _, b := range res.NotVersioned {
						fmt.Fprintf(&text, "    %s: %s\n", b.Name, b.Reason)
					}
				}
				if len(res.Unreadable) > 0 {
					fmt.Fprintf(&text, "  could not be read (%d):\n", len(res.Unreadable))
					for _, b := range res.Unreadable {
						fmt.Fprintf(&text, "    %s: %s\n", b.Name, b.Reason)
					}
				}
			}
			if err := a.print(out, text.String()); err != nil {
				return err
			}
			if problems > 0 {
				return &partialError{msg: fmt.Sprintf("%d selected buckets cannot be backed up as they are (see above)", problems)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&files, "selection", nil, "a selection file (repeatable; a combined plan document's selections count too)")
	return cmd
}
