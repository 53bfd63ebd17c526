package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func assertFields(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("unexpected problems: %v", err)
		}
		return
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v, want plan.Errors at %v", err, want)
	}
	if diff := cmp.Diff(want, es.Fields()); diff != "" {
		t.Errorf("fields with problems (-want +got):\n%s\nerror:\n%v", diff, err)
	}
}

func i64(v int64) *int64 { return &v }
func yes() *bool         { b := true; return &b }

func validRule() Rule {
	return Rule{RuleName: "daily", TargetBackupVaultName: "primary-vault", ScheduleExpression: "cron(0 5 ? * * *)"}
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Rule)
		fields []string
		say    string
	}{
		{"valid", func(*Rule) {}, nil, ""},
		{"default schedule", func(r *Rule) { r.ScheduleExpression = "" }, nil, ""},
		{"rule name pattern", func(r *Rule) { r.RuleName = "daily backup" }, []string{"Rules[0].RuleName"}, "letters, digits"},
		{"rule name length", func(r *Rule) { r.RuleName = strings.Repeat("a", 51) }, []string{"Rules[0].RuleName"}, "1 to 50"},
		{"vault required", func(r *Rule) { r.TargetBackupVaultName = "" }, []string{"Rules[0].TargetBackupVaultName"}, "required"},
		{"vault pattern", func(r *Rule) { r.TargetBackupVaultName = "my.vault" }, []string{"Rules[0].TargetBackupVaultName"}, "2 to 50"},
		{"start window 59", func(r *Rule) { r.StartWindowMinutes = i64(59) }, []string{"Rules[0].StartWindowMinutes"}, "60 (an hour)"},
		{"start window 60", func(r *Rule) { r.StartWindowMinutes = i64(60) }, nil, ""},
		{"start window too long", func(r *Rule) { r.StartWindowMinutes, r.CompletionWindowMinutes = i64(52_560_001), i64(52_560_000) }, []string{"Rules[0].StartWindowMinutes"}, "100 years"},
		{"completion not after default start", func(r *Rule) { r.CompletionWindowMinutes = i64(480) }, []string{"Rules[0].CompletionWindowMinutes"}, "480 minutes, the default"},
		{"completion not after start", func(r *Rule) { r.StartWindowMinutes, r.CompletionWindowMinutes = i64(120), i64(60) }, []string{"Rules[0].CompletionWindowMinutes"}, "longer than the start window"},
		{"start longer than default completion", func(r *Rule) { r.StartWindowMinutes = i64(20000) }, []string{"Rules[0].CompletionWindowMinutes"}, "10080 minutes must be longer"},
		{"completion zero", func(r *Rule) { r.CompletionWindowMinutes = i64(0) }, []string{"Rules[0].CompletionWindowMinutes"}, "want 1"},
		{"every 30 minutes", func(r *Rule) { r.ScheduleExpression = "rate(30 minutes)" }, []string{"Rules[0].ScheduleExpression"}, "shortest interval is an hour"},
		{"every 60 minutes", func(r *Rule) { r.ScheduleExpression = "rate(60 minutes)" }, nil, ""},
		{"two minutes an hour", func(r *Rule) { r.ScheduleExpression = "cron(0,30 * * * ? *)" }, []string{"Rules[0].ScheduleExpression"}, "2 times an hour"},
		{"hourly cron", func(r *Rule) { r.ScheduleExpression = "cron(15 * ? * * *)" }, nil, ""},
		{"never", func(r *Rule) { r.ScheduleExpression = "cron(0 0 30 2 ? *)" }, []string{"Rules[0].ScheduleExpression"}, "never fires"},
		{"past year", func(r *Rule) { r.ScheduleExpression = "cron(0 0 1 1 ? 2020)" }, []string{"Rules[0].ScheduleExpression"}, "never fires"},
		{"syntax", func(r *Rule) { r.ScheduleExpression = "cron(0 5 * * * *)" }, []string{"Rules[0].ScheduleExpression"}, "must be ?"},
		{"time zone", func(r *Rule) { r.ScheduleExpressionTimezone = "CET+1" }, []string{"Rules[0].ScheduleExpressionTimezone"}, "IANA"},
		{"time zone ok", func(r *Rule) { r.ScheduleExpressionTimezone = "Asia/Kolkata" }, nil, ""},
		{"cold then delete too soon", func(r *Rule) {
			r.Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(30), DeleteAfterDays: i64(119)}
		}, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "119 must be at least 90 days after MoveToColdStorageAfterDays (30)"},
		{"cold then delete at 90 after", func(r *Rule) {
			r.Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(30), DeleteAfterDays: i64(120)}
		}, nil, ""},
		{"cold, kept forever", func(r *Rule) { r.Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(30)} }, nil, ""},
		{"minus one means never", func(r *Rule) { r.Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(-1), DeleteAfterDays: i64(-1)} }, nil, ""},
		{"delete zero", func(r *Rule) { r.Lifecycle = &Lifecycle{DeleteAfterDays: i64(0)} }, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "1 to 36500"},
		{"delete over 100 years", func(r *Rule) { r.Lifecycle = &Lifecycle{DeleteAfterDays: i64(36501)} }, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "1 to 36500"},
		{"cold negative", func(r *Rule) { r.Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(-5)} }, []string{"Rules[0].Lifecycle.MoveToColdStorageAfterDays"}, "1 to 36500"},
		{"DeleteAfterEvent value", func(r *Rule) { r.Lifecycle = &Lifecycle{DeleteAfterEvent: "NEVER"} }, []string{"Rules[0].Lifecycle.DeleteAfterEvent"}, "DELETE_AFTER_COPY"},
		{"continuous 35", func(r *Rule) { r.EnableContinuousBackup, r.Lifecycle = yes(), &Lifecycle{DeleteAfterDays: i64(35)} }, nil, ""},
		{"continuous 1", func(r *Rule) { r.EnableContinuousBackup, r.Lifecycle = yes(), &Lifecycle{DeleteAfterDays: i64(1)} }, nil, ""},
		{"continuous 3650", func(r *Rule) { r.EnableContinuousBackup, r.Lifecycle = yes(), &Lifecycle{DeleteAfterDays: i64(3650)} }, nil, ""},
		{"continuous 3651", func(r *Rule) { r.EnableContinuousBackup, r.Lifecycle = yes(), &Lifecycle{DeleteAfterDays: i64(3651)} }, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "1 to 3650 days"},
		{"continuous without retention", func(r *Rule) { r.EnableContinuousBackup = yes() }, []string{"Rules[0].Lifecycle.DeleteAfterDays"}, "required with EnableContinuousBackup"},
		{"continuous to cold", func(r *Rule) {
			r.EnableContinuousBackup, r.Lifecycle = yes(), &Lifecycle{MoveToColdStorageAfterDays: i64(7), DeleteAfterDays: i64(30)}
		}, []string{"Rules[0].Lifecycle.MoveToColdStorageAfterDays"}, "do not move to cold storage"},
		{"copy action account", func(r *Rule) {
			r.CopyActions = []CopyAction{{DestinationBackupVaultArn: "arn:aws:backup:us-west-2:1234:backup-vault:dr-vault"}}
		}, []string{"Rules[0].CopyActions[0].DestinationBackupVaultArn"}, "backup-vault:NAME"},
		{"copy action lifecycle", func(r *Rule) {
			r.CopyActions = []CopyAction{{DestinationBackupVaultArn: "arn:aws:backup:us-west-2:123456789012:backup-vault:dr-vault", Lifecycle: &Lifecycle{MoveToColdStorageAfterDays: i64(10), DeleteAfterDays: i64(20)}}}
		}, []string{"Rules[0].CopyActions[0].Lifecycle.DeleteAfterDays"}, "at least 90 days after"},
		{"copy to China", func(r *Rule) {
			r.CopyActions = []CopyAction{{DestinationBackupVaultArn: "arn:aws-cn:backup:cn-north-1:123456789012:backup-vault:dr-vault"}}
		}, nil, ""},
		{"copy destination missing", func(r *Rule) { r.CopyActions = []CopyAction{{}} }, []string{"Rules[0].CopyActions[0].DestinationBackupVaultArn"}, "required"},
		{"recovery point tag aws:", func(r *Rule) { r.RecoveryPointTags = map[string]string{"aws:owner": "x", "ok": "y"} }, []string{"Rules[0].RecoveryPointTags.aws:owner"}, "reserved"},
		{"index actions", func(r *Rule) { r.IndexActions = []IndexAction{{ResourceTypes: []string{"S3", "EBS"}}} }, []string{"Rules[0].IndexActions[0].ResourceTypes"}, "exactly one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRule()
			tc.modify(&r)
			p := Plan{BackupPlanName: "p", Rules: []Rule{r}}
			err := p.Validate(nil)
			assertFields(t, err, tc.fields)
			if tc.say != "" && (err == nil || !strings.Contains(err.Error(), tc.say)) {
				t.Errorf("error %v does not say %q", err, tc.say)
			}
		})
	}
}

func TestPlanValidate(t *testing.T) {
	rules := func(n int) []Rule {
		var out []Rule
		for i := range n {
			r := validRule()
			r.RuleName = "r" + strings.Repeat("x", i)
			out = append(out, r)
		}
		return out
	}
	assertFields(t, (&Plan{BackupPlanName: "p", Rules: rules(10)}).Validate(nil), nil)
	assertFields(t, (&Plan{BackupPlanName: "p", Rules: rules(11)}).Validate(nil), []string{"Rules"})
	assertFields(t, (&Plan{BackupPlanName: "p"}).Validate(nil), []string{"Rules"})
	assertFields(t, (&Plan{Rules: rules(1)}).Validate(nil), []string{"BackupPlanName"})
	assertFields(t, (&Plan{BackupPlanName: strings.Repeat("p", 200), Rules: rules(1)}).Validate(nil), nil)
	assertFields(t, (&Plan{BackupPlanName: strings.Repeat("p", 201), Rules: rules(1)}).Validate(nil), []string{"BackupPlanName"})
	dup := rules(2)
	dup[1].RuleName = dup[0].RuleName
	assertFields(t, (&Plan{BackupPlanName: "p", Rules: dup}).Validate(nil), []string{"Rules[1].RuleName"})
}

func TestValidateKnownVaults(t *testing.T) {
	p := Plan{BackupPlanName: "p", Rules: []Rule{validRule(), validRule()}}
	p.Rules[1].RuleName, p.Rules[1].TargetBackupVaultName = "other", "missing-vault"
	known := func(name string) bool { return name == "primary-vault" }
	err := p.Validate(known)
	assertFields(t, err, []string{"Rules[1].TargetBackupVaultName"})
	if err == nil || !strings.Contains(err.Error(), `no vault named "missing-vault"`) {
		t.Errorf("error %v does not name the vault", err)
	}
	assertFields(t, p.Validate(nil), nil) // nil: not checked
}

func TestRuleDefaults(t *testing.T) {
	r := validRule()
	if got := r.StartWindow(); got != 8*time.Hour {
		t.Errorf("default StartWindow = %s, want 8h", got)
	}
	if got := r.CompletionWindow(); got != 7*24*time.Hour {
		t.Errorf("default CompletionWindow = %s, want 168h", got)
	}
	r.StartWindowMinutes, r.CompletionWindowMinutes = i64(90), i64(600)
	if r.StartWindow() != 90*time.Minute || r.CompletionWindow() != 10*time.Hour {
		t.Errorf("windows %s %s, want 1h30m 10h", r.StartWindow(), r.CompletionWindow())
	}
	r.ScheduleExpression = ""
	s, err := r.Schedule()
	if err != nil || s.String() != DefaultScheduleExpression || s.Location() != time.UTC {
		t.Errorf("default Schedule = %v in %v, %v; want %s in UTC", s, s.Location(), err, DefaultScheduleExpression)
	}
}

func TestCalculatedLifecycle(t *testing.T) {
	created := time.Date(2026, 1, 30, 17, 58, 3, 0, time.FixedZone("CET", 3600))
	tp := func(s string) *time.Time { v := utc(s); return &v }
	tests := []struct {
		name       string
		l          *Lifecycle
		cold, dele *time.Time
	}{
		{"nil", nil, nil, nil},
		{"delete only", &Lifecycle{DeleteAfterDays: i64(35)}, nil, tp("2026-03-06T16:58:03Z")},
		{"cold and delete", &Lifecycle{MoveToColdStorageAfterDays: i64(7), DeleteAfterDays: i64(365)}, tp("2026-02-06T16:58:03Z"), tp("2027-01-30T16:58:03Z")},
		{"minus one is never", &Lifecycle{MoveToColdStorageAfterDays: i64(-1), DeleteAfterDays: i64(-1)}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cold, del := tc.l.CalculatedLifecycle(created)
			if diff := cmp.Diff(tc.cold, cold); diff != "" {
				t.Errorf("moveToColdAt (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.dele, del); diff != "" {
				t.Errorf("deleteAt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	p := Plan{
		BackupPlanName: "p",
		ScanSettings:   []ScanSetting{{MalwareScanner: "GUARDDUTY"}},
		Rules: []Rule{{
			RuleName: "r", TargetBackupVaultName: "v1",
			IndexActions: []IndexAction{{ResourceTypes: []string{"S3"}}},
			Lifecycle:    &Lifecycle{OptInToArchiveForSupportedResources: yes()},
			CopyActions:  []CopyAction{{DestinationBackupVaultArn: "arn:aws:backup:us-west-2:123456789012:backup-vault:dr", Lifecycle: &Lifecycle{DeleteAfterEvent: "DELETE_AFTER_COPY"}}},
		}},
	}
	var fields []string
	for _, s := range p.Ignored() {
		f, _, _ := strings.Cut(s, ":")
		fields = append(fields, f)
	}
	want := []string{"ScanSettings", "Rules[0].IndexActions", "Rules[0].CopyActions[0].Lifecycle.DeleteAfterEvent", "Rules[0].Lifecycle.OptInToArchiveForSupportedResources"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("Ignored fields (-want +got):\n%s", diff)
	}
	if got := (&Plan{Rules: []Rule{validRule()}}).Ignored(); len(got) != 0 {
		t.Errorf("plain plan: Ignored = %v, want none", got)
	}
}
