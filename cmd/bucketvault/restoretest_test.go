package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// restoreTestExamples is the shared directory of example restore testing
// plans and selections (shared/restoretest's tests use it too).
const restoreTestExamples = "../../testdata/restoretest/"

func TestRestoreTestValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  []string // phrases on stdout
		err  []string // phrases on stderr
	}{
		{"plan-daily-random.json", nil, exitOK, []string{
			`plan-daily-random.json: restore testing plan "s3_daily_random" is valid`,
			"schedule: cron(0 5 ? * * *) in Europe/Paris, start within 8h",
			"picks: RANDOM_WITHIN_WINDOW among SNAPSHOT and CONTINUOUS recovery points of the last 14 days",
			"from vaults *, except arn:aws:backup:eu-west-1:123456789012:backup-vault:scratch-*",
		}, nil},
		{"create-plan-input.json", nil, exitOK, []string{
			`restore testing plan "weekly_latest" is valid`,
			"cron(30 2 ? * SUN *) in Etc/UTC, start within 24h",
			"LATEST_WITHIN_WINDOW among SNAPSHOT recovery points of the last 30 days",
			"tags: cost-centre=4711, team=platform",
		}, nil},
		{"get-restore-testing-plan-output.json", nil, exitOK, []string{`restore testing plan "weekly_latest" is valid`}, nil},
		{"selection-by-arns.json", nil, exitOK, []string{
			`restore testing selection "s3_two_buckets" is valid`,
			"takes: S3 buckets arn:aws:s3:::orders-prod, arn:aws:s3:::invoices-prod",
			"validation window: 4h, then the restored bucket is deleted",
			"IamRoleArn is required by AWS Backup; bucketvault does not assume it",
		}, nil},
		{"selection-by-tags.json", nil, exitOK, []string{
			`restore testing selection "s3_tagged_production" is valid (plan "s3_daily_random")`,
			`takes: every protected S3 bucket whose tags have backup = "true" and environment != "dev"`,
			"validation window: 24h",
			"metadata overrides: encryptionType=SSE-KMS, kmsKey=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab, restoreACLs=false",
		}, nil},
		{"get-restore-testing-selection-output.json", nil, exitOK, []string{
			`restore testing selection "s3_tagged" is valid (plan "s3_daily_random")`,
			"validation window: none, the restored bucket is deleted once the restore test ends",
		}, nil},
		{"invalid-plan.json", nil, exitUsage, nil, []string{
			"9 problems", "invalid-plan.json:",
			"  RecoveryPointSelection.SelectionWindowDays: 400: want 1 to 365",
			`  ScheduleExpression: "rate(1 day)": a restore testing plan takes a cron(...) expression`,
		}},
		{"invalid-plan-unknown-field.json", nil, exitUsage, nil, []string{
			"2 problems",
			`RestoreTestingPlan.StartWindowHours: want a whole number, got a string "24"`,
			"RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDay: unknown field (did you mean SelectionWindowDays?)",
		}},
		{"invalid-selection.json", nil, exitUsage, nil, []string{
			"8 problems",
			`ProtectedResourceType: "EBS": bucketvault restore-tests S3 buckets only`,
			"ProtectedResourceConditions: only with ProtectedResourceArns [\"*\"]",
			"ValidationWindowHours: 200: want 0 to 168",
		}},
		{"a backup plan", []string{"restore-test", "validate", examples + "continuous-daily-35d.json"}, exitUsage, nil,
			[]string{"1 problem", "not a restore testing one: check it with `bucketvault plan validate`"}},
		{"missing file", []string{"restore-test", "validate", "no-such-plan.json"}, exitUsage, nil, []string{"no-such-plan.json"}},
		{"no file", []string{"restore-test", "validate"}, exitUsage, nil, []string{"want one restore testing plan or selection file, got 0 arguments"}},
		{"two files", []string{"restore-test", "validate", restoreTestExamples + "plan-daily-random.json", restoreTestExamples + "selection-by-arns.json"}, exitUsage, nil,
			[]string{"got 2 arguments"}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				covered[tc.name] = true
				args = []string{"restore-test", "validate", restoreTestExamples + tc.name}
			}
			code, out, errOut := offline(args...)
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
	entries, err := os.ReadDir(restoreTestExamples)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !covered[e.Name()] {
			t.Errorf("%s%s has no verdict in this test", restoreTestExamples, e.Name())
		}
	}
}

func TestRestoreTestValidateJSON(t *testing.T) {
	type verdict struct {
		File                    string
		Kind                    string
		Valid                   bool
		Problems                []plan.FieldError
		RestoreTestingPlan      *restoretest.Plan
		RestoreTestingSelection *restoretest.Selection
		Tags                    map[string]string
	}
	run := func(t *testing.T, wantCode int, file string) verdict {
		t.Helper()
		code, out, errOut := offline("--json", "restore-test", "validate", restoreTestExamples+file)
		if code != wantCode {
			t.Fatalf("exit %d, want %d\n%s", code, wantCode, errOut)
		}
		var v verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("--json printed %q: %v", out, err)
		}
		return v
	}

	// The plan as parsed, with AWS Backup's defaults written in.
	v := run(t, exitOK, "create-plan-input.json")
	p := v.RestoreTestingPlan
	if v.Kind != "RestoreTestingPlan" || !v.Valid || p == nil || v.RestoreTestingSelection != nil {
		t.Fatalf("verdict %+v", v)
	}
	r := p.RecoveryPointSelection
	if p.RestoreTestingPlanName != "weekly_latest" || p.ScheduleExpressionTimezone != "Etc/UTC" || p.StartWindowHours == nil || *p.StartWindowHours != 24 ||
		r == nil || r.SelectionWindowDays == nil || *r.SelectionWindowDays != 30 || r.Algorithm != restoretest.LatestWithinWindow {
		t.Errorf("plan %+v, selection %+v: want weekly_latest with Etc/UTC, 24 hours and 30 days", p, r)
	}
	if diff := cmp.Diff(map[string]string{"team": "platform", "cost-centre": "4711"}, v.Tags); diff != "" {
		t.Errorf("Tags (-want +got):\n%s", diff)
	}

	// What the file sets is kept.
	v = run(t, exitOK, "plan-daily-random.json")
	if p := v.RestoreTestingPlan; p.ScheduleExpressionTimezone != "Europe/Paris" || *p.StartWindowHours != 8 || *p.RecoveryPointSelection.SelectionWindowDays != 14 {
		t.Errorf("plan %+v", p)
	}

	v = run(t, exitOK, "selection-by-tags.json")
	s := v.RestoreTestingSelection
	if v.Kind != "RestoreTestingSelection" || s == nil || s.RestoreTestingPlanName != "s3_daily_random" || s.ValidationWindowHours == nil || *s.ValidationWindowHours != 24 {
		t.Fatalf("verdict %+v, selection %+v", v, s)
	}
	if v := run(t, exitOK, "selection-by-arns.json").RestoreTestingSelection; len(v.ProtectedResourceArns) != 2 {
		t.Errorf("selection %+v", v)
	}

	// A refused file: its problems by field, nothing parsed.
	v = run(t, exitUsage, "invalid-plan-unknown-field.json")
	var fields []string
	for _, pr := range v.Problems {
		fields = append(fields, pr.Field)
	}
	if diff := cmp.Diff([]string{"RestoreTestingPlan.StartWindowHours", "RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDay"}, fields); v.Valid || diff != "" {
		t.Errorf("valid %v; fields with problems (-want +got):\n%s", v.Valid, diff)
	}
	// A file that parses but is refused is printed parsed too.
	if v := run(t, exitUsage, "invalid-selection.json"); v.Valid || len(v.Problems) != 8 || v.RestoreTestingSelection == nil {
		t.Errorf("verdict %+v", v)
	}
}

// TestCLIRestoreTestRun: restore-test run restores the bucket's newest
// second into a restore-test-* bucket, validates it and prints a
// SUCCESSFUL run; history lists it; bad flags and a plan that picks
// nothing are usage errors (exit 2).
func TestCLIRestoreTestRun(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, true)
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x", "y/z"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := (&journal.Journal{Vault: v, S3: c}).Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, e := cli(t, srv, "--json", "restore-test", "run", "--vault", v.Bucket, "--bucket", bucket, "--seed", "7")
	var run restoretest.Run
	if code != 0 || json.Unmarshal([]byte(out), &run) != nil || run.Status != restoretest.StatusSuccessful || run.Objects != 2 || run.Seed != 7 || run.DeletedAt == nil {
		t.Fatalf("restore-test run: %d %q %s", code, out, e)
	}
	code, out, e = cli(t, srv, "--json", "restore-test", "history", "--vault", v.Bucket)
	var runs []restoretest.Run
	if code != 0 || json.Unmarshal([]byte(out), &runs) != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("restore-test history: %d %q %s", code, out, e)
	}
	code, out, e = cli(t, srv, "--json", "restore-test", "sweep", "--vault", v.Bucket)
	var sw restoretest.Swept
	if code != 0 || json.Unmarshal([]byte(out), &sw) != nil || len(sw.Deleted) != 0 {
		t.Fatalf("restore-test sweep: %d %q %s", code, out, e)
	}
	// A validation function (served by a stand-in of Lambda's Invoke API)
	// that answers FAILED fails the run: exit 3, its verdict printed.
	lambdaAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev restoretest.HookEvent
		if !strings.Contains(r.URL.Path, "/functions/check-orders/") || json.NewDecoder(r.Body).Decode(&ev) != nil || ev.Detail.Bucket != bucket {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(`{"ValidationStatus":"FAILED","ValidationStatusMessage":"orders table empty"}`))
	}))
	defer lambdaAPI.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	code, out, e = cli(t, srv, "restore-test", "run", "--vault", v.Bucket, "--bucket", bucket, "--validation-function", "check-orders", "--lambda-endpoint", lambdaAPI.URL)
	if code != 3 || !strings.Contains(out, "validation function check-orders: FAILED: orders table empty") {
		t.Fatalf("restore-test run with a validation function: %d %q %s", code, out, e)
	}
	// A verdict for a run that awaits none is refused.
	code, _, e = cli(t, srv, "restore-test", "put-validation-result", "--vault", v.Bucket, "--bucket", bucket, "--run-id", run.ID, "--validation-status", "SUCCESSFUL")
	if code != 2 || !strings.Contains(e, "has no validation function") {
		t.Errorf("put-validation-result on a run without one: %d %s", code, e)
	}
	for _, args := range [][]string{
		{"--algorithm", "sideways"},
		{"--types", "tape"},
		{"--keep-hours", "200"},
		{"--types", "snapshot"}, // none taken: nothing to pick
		{"--lambda-endpoint", "http://127.0.0.1:9"},
		{"--rto", "-1h"},
	} {
		code, out, e := cli(t, srv, append([]string{"restore-test", "run", "--vault", v.Bucket, "--bucket", bucket}, args...)...)
		if code != 2 {
			t.Errorf("restore-test run %v: exit %d (%s %s), want 2", args, code, out, e)
		}
	}
}
