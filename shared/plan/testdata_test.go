package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// plansDir holds the example plans and selections shared by the project
// (testdata/plans at the repository root).
const plansDir = "../../testdata/plans"

// TestExamplePlans loads every file in testdata/plans and checks its
// verdict: valid, or refused with problems at exactly these fields. Every
// file must be in the table and in the directory's README.
func TestExamplePlans(t *testing.T) {
	tests := []struct {
		file       string
		rules      int // rules in the plan; 0 for a file with only selections
		selections int
		problems   []string // fields with problems; none means the file passes
		say        string   // a phrase the problems must contain
	}{
		{file: "continuous-daily-35d.json", rules: 1},
		{file: "daily-cross-region-copy-tz.json", rules: 1},
		{file: "hourly-rate-cold-storage.json", rules: 1},
		{file: "selection-backup-daily-production.json", selections: 1},
		{
			file:     "guide-daily-cold30-delete35.json",
			problems: []string{"Rules[0].Lifecycle.DeleteAfterDays"},
			say:      "35 must be at least 90 days after MoveToColdStorageAfterDays (30)",
		},
		{file: "guide-monthly-cold7-delete365.json", rules: 1},
		{file: "get-backup-plan-output.json", rules: 1},
		{file: "plan-and-selections.json", rules: 2, selections: 1},
		{
			file: "invalid-many-problems.json",
			problems: []string{
				"BackupPlanName",
				"Rules[0].TargetBackupVaultName",
				"Rules[0].ScheduleExpression",
				"Rules[0].StartWindowMinutes",
				"Rules[0].Lifecycle.DeleteAfterDays",
				"Rules[1].ScheduleExpression",
				"Rules[1].Lifecycle.DeleteAfterDays",
				"Rules[2].ScheduleExpression",
				"Rules[2].CopyActions[0].DestinationBackupVaultArn",
				"Rules[3].ScheduleExpressionTimezone",
			},
			say: "never fires",
		},
		{
			file:     "invalid-unknown-field.json",
			problems: []string{"Rules[0].Lifecyle", "Rules[0].StartWindowMinutes"},
			say:      "did you mean Lifecycle?",
		},
	}
	listed := map[string]bool{}
	for _, tc := range tests {
		listed[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			p, sels, err := Load(filepath.Join(plansDir, tc.file))
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				rules := 0
				if p != nil {
					rules = len(p.Rules)
				}
				if rules != tc.rules || len(sels) != tc.selections {
					t.Errorf("got %d rules and %d selections, want %d and %d", rules, len(sels), tc.rules, tc.selections)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load = %v, want plan.Errors", err)
			}
			if diff := cmp.Diff(tc.problems, es.Fields()); diff != "" {
				t.Errorf("fields with problems (-want +got):\n%s\nerror:\n%v", diff, err)
			}
			if !strings.Contains(err.Error(), tc.say) {
				t.Errorf("error does not say %q:\n%v", tc.say, err)
			}
		})
	}
	entries, err := os.ReadDir(plansDir)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(plansDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		if !listed[e.Name()] {
			t.Errorf("%s has no verdict in this test", e.Name())
		}
		if !strings.Contains(string(readme), "`"+e.Name()+"`") {
			t.Errorf("%s is not listed in testdata/plans/README.md", e.Name())
		}
	}
}

// The guide's monthly rule passes on its own, inside the refused plan too:
// only the daily rule is wrong.
func TestGuidePlanOnlyDailyRuleRefused(t *testing.T) {
	p, _, err := Parse(mustRead(t, filepath.Join(plansDir, "guide-daily-cold30-delete35.json")))
	if err != nil {
		t.Fatal(err)
	}
	monthly := *p
	monthly.Rules = p.Rules[1:]
	if err := monthly.Validate(nil); err != nil {
		t.Errorf("monthly rule alone: %v", err)
	}
	daily := *p
	daily.Rules = p.Rules[:1]
	err = daily.Validate(nil)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Rules[0].Lifecycle.DeleteAfterDays" {
		t.Fatalf("daily rule alone: %v, want a problem at Rules[0].Lifecycle.DeleteAfterDays", err)
	}
	const want = "Rules[0].Lifecycle.DeleteAfterDays: 35 must be at least 90 days after MoveToColdStorageAfterDays (30)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
