package plan

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseForms(t *testing.T) {
	const rule = `{"RuleName":"daily","TargetBackupVaultName":"primary-vault","ScheduleExpression":"cron(0 5 ? * * *)"}`
	const plan = `{"BackupPlanName":"p","Rules":[` + rule + `]}`
	const sel = `{"SelectionName":"s","IamRoleArn":"arn:aws:iam::123456789012:role/r","Resources":["*"]}`
	tests := []struct {
		name       string
		doc        string
		plan       bool
		selections int
	}{
		{"bare plan (create-backup-plan --backup-plan)", plan, true, 0},
		{"cli-input-json plan", `{"BackupPlan":` + plan + `,"BackupPlanTags":{"a":"b"},"CreatorRequestId":"x"}`, true, 0},
		{"get-backup-plan output", `{"BackupPlan":` + plan + `,"BackupPlanId":"id","BackupPlanArn":"arn","VersionId":"v","CreationDate":"2026-01-01T00:00:00Z","LastExecutionDate":1767225600.5,"ScheduledRunsPreview":[{"ExecutionTime":1}]}`, true, 0},
		{"bare selection", sel, false, 1},
		{"cli-input-json selection", `{"BackupPlanId":"id","BackupSelection":` + sel + `,"CreatorRequestId":"x"}`, false, 1},
		{"get-backup-selection output", `{"BackupSelection":` + sel + `,"SelectionId":"s-1","BackupPlanId":"id","CreationDate":"2026-01-01T00:00:00Z","CreatorRequestId":"x"}`, false, 1},
		{"plan and selections", `{"BackupPlan":` + plan + `,"BackupSelections":[` + sel + `,` + sel + `]}`, true, 2},
		{"selections only", `{"BackupSelections":[` + sel + `]}`, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, sels, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if (p != nil) != tc.plan || len(sels) != tc.selections {
				t.Fatalf("plan %v, %d selections; want plan %v, %d", p != nil, len(sels), tc.plan, tc.selections)
			}
			if p != nil && (p.BackupPlanName != "p" || len(p.Rules) != 1 || p.Rules[0].ScheduleExpression != "cron(0 5 ? * * *)") {
				t.Errorf("plan decoded as %+v", p)
			}
			for _, s := range sels {
				if s.SelectionName != "s" || len(s.Resources) != 1 {
					t.Errorf("selection decoded as %+v", s)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		fields []string
		say    string
	}{
		{"unknown top-level field", `{"BackupPlanName":"p","Rules":[],"Rulez":[]}`, []string{"Rulez"}, "did you mean Rules?"},
		{"case matters", `{"BackupPlanName":"p","rules":[]}`, []string{"rules"}, "did you mean Rules? keys are case-sensitive"},
		{"unknown rule field in wrapper", `{"BackupPlan":{"BackupPlanName":"p","Rules":[{"RuleName":"a"},{"RuleName":"b","Schedule":"x"}]}}`, []string{"BackupPlan.Rules[1].Schedule"}, "unknown field"},
		{"unknown lifecycle field", `{"BackupPlanName":"p","Rules":[{"RuleName":"a","Lifecycle":{"DeleteAfterDays":5,"ExpireAfterDays":5}}]}`, []string{"Rules[0].Lifecycle.ExpireAfterDays"}, "unknown field"},
		{"unlike anything", `{"BackupPlanName":"p","Rules":[{"Zzzzzzzzzz":1}]}`, []string{"Rules[0].Zzzzzzzzzz"}, "want one of CompletionWindowMinutes"},
		{"unknown selection field", `{"BackupSelection":{"SelectionName":"s","IamRoleArn":"r","Conditions":{"StringEqual":[]}}}`, []string{"BackupSelection.Conditions.StringEqual"}, "did you mean StringEquals?"},
		{"unknown wrapper field", `{"BackupPlan":{"BackupPlanName":"p","Rules":[]},"Tags":{}}`, []string{"Tags"}, "unknown field"},
		{"number as string", `{"BackupPlanName":"p","Rules":[{"StartWindowMinutes":"60"}]}`, []string{"Rules[0].StartWindowMinutes"}, `want a whole number, got a string "60"`},
		{"fraction", `{"BackupPlanName":"p","Rules":[{"Lifecycle":{"DeleteAfterDays":1.5}}]}`, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "whole number"},
		{"bool as string", `{"BackupPlanName":"p","Rules":[{"EnableContinuousBackup":"true"}]}`, []string{"Rules[0].EnableContinuousBackup"}, "want a boolean"},
		{"rules not an array", `{"BackupPlanName":"p","Rules":{}}`, []string{"Rules"}, "want an array, got an object"},
		{"tag value not a string", `{"BackupPlanName":"p","Rules":[{"RecoveryPointTags":{"a":1}}]}`, []string{"Rules[0].RecoveryPointTags.a"}, "want a string"},
		{"every problem at once", `{"BackupPlanName":1,"Rules":[{"RuleNam":"a","StartWindowMinutes":true}]}`, []string{"BackupPlanName", "Rules[0].RuleNam", "Rules[0].StartWindowMinutes"}, ""},
		{"neither", `{"Name":"x"}`, []string{""}, "neither a backup plan nor a backup selection"},
		{"not an object", `[1,2]`, []string{""}, "want a JSON object at the top, got an array"},
		{"empty wrapper", `{"BackupPlan":null}`, []string{"BackupPlan"}, "holds no plan"},
		{"syntax error position", "{\n  \"BackupPlanName\": \"p\",\n  \"Rules\": [,]\n}", []string{""}, "line 3, column 13"},
		{"trailing data", `{"BackupPlanName":"p","Rules":[]} {}`, []string{""}, "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.doc))
			assertFields(t, err, tc.fields)
			if err != nil && !strings.Contains(err.Error(), tc.say) {
				t.Errorf("error %q does not say %q", err, tc.say)
			}
		})
	}
}

// Every valid example round-trips: encoding the parsed plan gives back the
// file's plan object, key for key, so nothing was dropped or renamed.
func TestExamplePlansRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(plansDir, "*.json"))
	for _, f := range files {
		if strings.Contains(f, "invalid-") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			data := mustRead(t, f)
			p, sels, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			var wantPlan, wantSels any
			switch {
			case doc["BackupPlan"] != nil || doc["BackupSelections"] != nil:
				wantPlan, wantSels = doc["BackupPlan"], doc["BackupSelections"]
			case doc["BackupSelection"] != nil:
				wantSels = []any{doc["BackupSelection"]}
			case doc["BackupPlanName"] != nil:
				wantPlan = doc
			default:
				wantSels = []any{doc}
			}
			if p != nil {
				if diff := cmp.Diff(wantPlan, generic(t, p)); diff != "" {
					t.Errorf("plan round trip (-file +encoded):\n%s", diff)
				}
			}
			if len(sels) > 0 {
				if diff := cmp.Diff(wantSels, generic(t, sels)); diff != "" {
					t.Errorf("selections round trip (-file +encoded):\n%s", diff)
				}
			}
		})
	}
}

func generic(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLoadPrefixesSelectionProblems(t *testing.T) {
	f := filepath.Join(t.TempDir(), "doc.json")
	doc := `{"BackupPlan":{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"vv"}]},
	"BackupSelections":[{"SelectionName":"ok","IamRoleArn":"arn:aws:iam::123456789012:role/r"},{"SelectionName":"bad name","IamRoleArn":"arn:aws:iam::123456789012:role/r"}]}`
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(f)
	assertFields(t, err, []string{"BackupSelections[1].SelectionName"})
	if err == nil || !strings.HasPrefix(err.Error(), f+": ") {
		t.Errorf("error %v does not name the file", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "BackupSelections[1].SelectionName" {
		t.Errorf("errors.As *FieldError: %v", fe)
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
}

// FuzzParse: any input decodes or fails with Errors, and whatever decodes
// validates and schedules without panicking or looping.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(plansDir, "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"BackupPlanName":"p","Rules":[{"ScheduleExpression":"cron(0 0 L * ? *)"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, sels, err := Parse(data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Parse error %v is not plan.Errors", err)
			}
			return
		}
		for i := range sels {
			_ = sels[i].Validate()
			sels[i].Matches("arn:aws:s3:::b", map[string]string{"k": "v"})
		}
		if p == nil {
			return
		}
		_ = p.Validate(nil)
		for i := range p.Rules {
			if s, err := p.Rules[i].Schedule(); err == nil {
				s.Next(time.Date(2026, 1, 30, 17, 58, 0, 0, time.UTC))
			}
		}
	})
}
