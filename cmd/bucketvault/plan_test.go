package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/plan"
)

// examples is the shared directory of example plans.
const examples = "../../testdata/plans/"

// offline runs the CLI in-process for commands that need no S3 server.
func offline(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  []string // phrases on stdout
		err  []string // phrases on stderr
	}{
		{"continuous", []string{"plan", "validate", examples + "continuous-daily-35d.json"}, exitOK,
			[]string{`plan "s3-continuous-daily" is valid (1 rules)`, "continuous backup to primary-vault", "start within 1h, complete within 3h", "deleted after 35 days"}, nil},
		{"copy and time zone", []string{"plan", "validate", examples + "daily-cross-region-copy-tz.json"}, exitOK,
			[]string{"cron(30 1 ? * * *) in Europe/Paris", "1 copy actions"}, nil},
		{"plan and selection", []string{"plan", "validate", examples + "hourly-rate-cold-storage.json", "--selection", examples + "selection-backup-daily-production.json"}, exitOK,
			[]string{"rate(1 hour) in UTC", "cold after 30 days, deleted after 120 days", `selection "daily-production-buckets" is valid`}, nil},
		{"guide refused", []string{"plan", "validate", examples + "guide-daily-cold30-delete35.json"}, exitUsage,
			nil, []string{"1 problem", "guide-daily-cold30-delete35.json:", "Rules[0].Lifecycle.DeleteAfterDays: 35 must be at least 90 days after MoveToColdStorageAfterDays (30)"}},
		{"guide monthly", []string{"plan", "validate", examples + "guide-monthly-cold7-delete365.json"}, exitOK,
			[]string{"cold after 7 days, deleted after 365 days"}, nil},
		{"every problem", []string{"plan", "validate", examples + "invalid-many-problems.json"}, exitUsage,
			nil, []string{"10 problems", "Rules[1].ScheduleExpression: cron(0 0 30 2 ? *) never fires", "Rules[3].ScheduleExpressionTimezone"}},
		{"problems in several files", []string{"plan", "validate", examples + "guide-daily-cold30-delete35.json", "--selection", examples + "invalid-unknown-field.json"}, exitUsage,
			nil, []string{"3 problems", "Rules[0].Lifecyle: unknown field (did you mean Lifecycle?)"}},
		{"plan given as selection", []string{"plan", "validate", examples + "guide-monthly-cold7-delete365.json", "--selection", examples + "hourly-rate-cold-storage.json"}, exitUsage,
			nil, []string{"--selection wants a selection file"}},
		{"missing file", []string{"plan", "validate", "no-such-plan.json"}, exitUsage, nil, []string{"no-such-plan.json"}},
		{"no file", []string{"plan", "validate"}, exitUsage, nil, []string{"want one plan file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := offline(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout does not say %q:\n%s", s, out)
				}
			}
			for _, s := range tc.err {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr does not say %q:\n%s", s, errOut)
				}
			}
		})
	}
}

func TestPlanValidateJSON(t *testing.T) {
	code, out, _ := offline("--json", "plan", "validate", examples+"guide-daily-cold30-delete35.json", "--selection", examples+"selection-backup-daily-production.json")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	var files []struct {
		File       string
		Plan       string
		Selections []string
		Valid      bool
		Problems   []plan.FieldError
	}
	if err := json.Unmarshal([]byte(out), &files); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	if len(files) != 2 || files[0].Valid || !files[1].Valid || files[0].Plan != "guide-daily-and-monthly" ||
		len(files[0].Problems) != 1 || files[0].Problems[0].Field != "Rules[0].Lifecycle.DeleteAfterDays" ||
		len(files[1].Selections) != 1 {
		t.Errorf("--json verdicts: %+v", files)
	}
}

func TestPlanNext(t *testing.T) {
	code, out, errOut := offline("plan", "next", examples+"daily-cross-region-copy-tz.json", "--count", "3", "--from", "2026-03-27T12:00:00Z")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// 01:30 in Paris: CET (UTC+1) until 29 March 2026, CEST (UTC+2) after.
	want := `daily-0130-paris: cron(30 1 ? * * *) in Europe/Paris
  2026-03-28T01:30:00+01:00  2026-03-28T00:30:00Z
  2026-03-29T01:30:00+01:00  2026-03-29T00:30:00Z
  2026-03-30T01:30:00+02:00  2026-03-29T23:30:00Z
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("plan next (-want +got):\n%s", diff)
	}

	code, out, errOut = offline("--json", "plan", "next", examples+"plan-and-selections.json", "--count", "2", "--from", "2026-11-01T03:00:00Z")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rules []ruleTimes
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	wantRules := []ruleTimes{
		{Rule: "nightly", ScheduleExpression: "cron(0 2 * * ? *)", Timezone: "America/New_York", Next: []fireTime{
			// 2 November 2026 falls after New York's change to EST.
			{Local: "2026-11-01T02:00:00-05:00", UTC: "2026-11-01T07:00:00Z"},
			{Local: "2026-11-02T02:00:00-05:00", UTC: "2026-11-02T07:00:00Z"},
		}},
		{Rule: "continuous", ScheduleExpression: plan.DefaultScheduleExpression, Timezone: "UTC", Continuous: true, Next: []fireTime{
			{Local: "2026-11-01T05:00:00Z", UTC: "2026-11-01T05:00:00Z"},
			{Local: "2026-11-02T05:00:00Z", UTC: "2026-11-02T05:00:00Z"},
		}},
	}
	if diff := cmp.Diff(wantRules, rules); diff != "" {
		t.Errorf("plan next --json (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"plan", "next", examples + "hourly-rate-cold-storage.json", "--from", "yesterday"}, "RFC 3339"},
		{[]string{"plan", "next", examples + "hourly-rate-cold-storage.json", "--count", "0"}, "--count 0"},
		{[]string{"plan", "next", examples + "guide-daily-cold30-delete35.json"}, "Rules[0].Lifecycle.DeleteAfterDays"},
		{[]string{"plan", "next", examples + "selection-backup-daily-production.json"}, "holds no plan"},
	} {
		if code, _, errOut := offline(tc.args...); code != exitUsage || !strings.Contains(errOut, tc.say) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, errOut, exitUsage, tc.say)
		}
	}
}

func TestPlanResolve(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	selected := srv.NewBucket(t, true)
	unversioned := srv.NewBucket(t, false)
	untagged := srv.NewBucket(t, true)
	tag := srv.BucketName(t) // a tag value no other test uses
	for _, b := range []string{selected, unversioned} {
		if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(b), Tagging: &types.Tagging{TagSet: []types.Tag{
			{Key: aws.String("Backup"), Value: aws.String("daily")}, {Key: aws.String("Run"), Value: aws.String(tag)},
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	sel := plan.Selection{
		SelectionName: "tagged",
		IamRoleArn:    "arn:aws:iam::123456789012:role/backup",
		Conditions: &plan.Conditions{StringEquals: []plan.ConditionParameter{
			{ConditionKey: "aws:ResourceTag/Backup", ConditionValue: "daily"},
			{ConditionKey: "aws:ResourceTag/Run", ConditionValue: tag},
		}},
	}
	body, err := json.Marshal(map[string]any{"BackupSelection": sel})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "selection.json")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := cli(t, srv, "plan", "resolve", "--selection", file)
	if code != exitPartial {
		t.Errorf("exit %d, want %d (a selected bucket is not versioned)\n%s", code, exitPartial, errOut)
	}
	for _, s := range []string{"selected (1):\n    " + selected + "\n", unversioned + ": versioning was never enabled", "not versioned"} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout does not say %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, untagged) {
		t.Errorf("untagged bucket %s listed:\n%s", untagged, out)
	}
	if !strings.Contains(errOut, "1 selected buckets cannot be backed up") {
		t.Errorf("stderr: %q", errOut)
	}

	// Once versioning is on, everything selected is protected: exit 0.
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(unversioned),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, srv, "--json", "plan", "resolve", "--selection", file)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res []resolved
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	var got []string
	for _, b := range res[0].Resolution.Selected {
		got = append(got, b.Name)
	}
	want := []string{selected, unversioned}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if len(res) != 1 || res[0].Selection != "tagged" || !cmp.Equal(want, got) || len(res[0].Resolution.NotVersioned) != 0 {
		t.Errorf("resolve --json: %+v, want %v selected", res, want)
	}

	if code, _, errOut := cli(t, srv, "plan", "resolve"); code != exitUsage || !strings.Contains(errOut, "--selection is required") {
		t.Errorf("resolve without --selection: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, srv, "plan", "resolve", "--selection", examples+"hourly-rate-cold-storage.json"); code != exitUsage || !strings.Contains(errOut, "holds no selection") {
		t.Errorf("resolve of a plan: exit %d, %q", code, errOut)
	}
}

func TestPlanValidateCheckVaults(t *testing.T) {
	srv := locals3.ForTest(t)
	vaultName := srv.BucketName(t)
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	plain := srv.NewBucket(t, true) // a bucket, but not a vault
	doc := map[string]any{"BackupPlanName": "vault-check", "Rules": []map[string]any{
		{"RuleName": "to-vault", "TargetBackupVaultName": vaultName},
		{"RuleName": "to-plain", "TargetBackupVaultName": plain},
		{"RuleName": "to-nothing", "TargetBackupVaultName": "no-such-vault-anywhere"},
	}}
	body, _ := json.Marshal(doc)
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := cli(t, srv, "plan", "validate", file, "--check-vaults")
	if code != exitUsage {
		t.Errorf("exit %d, want %d: %s", code, exitUsage, errOut)
	}
	for _, s := range []string{"2 problems", `Rules[1].TargetBackupVaultName: no vault named "` + plain + `"`, `Rules[2].TargetBackupVaultName: no vault named "no-such-vault-anywhere"`} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr does not say %q:\n%s", s, errOut)
		}
	}
	if strings.Contains(errOut, "Rules[0]") {
		t.Errorf("the existing vault was reported:\n%s", errOut)
	}
	// Without --check-vaults the names are not looked up.
	if code, _, errOut := cli(t, srv, "plan", "validate", file); code != exitOK {
		t.Errorf("without --check-vaults: exit %d: %s", code, errOut)
	}
}
