package restoretest

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// examplesDir holds the example restore testing plans and selections, shared
// with the CLI's tests (testdata/restoretest at the repository root).
const examplesDir = "../../testdata/restoretest"

// now is the time schedules are checked against in these tests.
var now = time.Date(2026, 1, 30, 17, 58, 3, 0, time.UTC)

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
		t.Fatalf("error %v, want Errors at %v", err, want)
	}
	if diff := cmp.Diff(want, es.Fields()); diff != "" {
		t.Errorf("fields with problems (-want +got):\n%s\nerror:\n%v", diff, err)
	}
}

func assertSays(t *testing.T, err error, say string) {
	t.Helper()
	if say != "" && (err == nil || !strings.Contains(err.Error(), say)) {
		t.Errorf("error %v does not say %q", err, say)
	}
}

// TestRestoreTestExampleFiles loads every file in testdata/restoretest and checks its
// verdict: valid (of the kind and name given), or refused with problems at
// exactly these fields. Every file must be in the table and in the
// directory's README.
func TestRestoreTestExampleFiles(t *testing.T) {
	tests := []struct {
		file     string
		kind     string // "plan" or "selection" for a valid file
		name     string
		problems []string
		say      string
	}{
		{file: "plan-daily-random.json", kind: "plan", name: "s3_daily_random"},
		{file: "create-plan-input.json", kind: "plan", name: "weekly_latest"},
		{file: "get-restore-testing-plan-output.json", kind: "plan", name: "weekly_latest"},
		{file: "selection-by-arns.json", kind: "selection", name: "s3_two_buckets"},
		{file: "selection-by-tags.json", kind: "selection", name: "s3_tagged_production"},
		{file: "get-restore-testing-selection-output.json", kind: "selection", name: "s3_tagged"},
		{
			file: "invalid-plan.json",
			problems: []string{
				"RestoreTestingPlanName",
				"ScheduleExpressionTimezone",
				"ScheduleExpression",
				"StartWindowHours",
				"RecoveryPointSelection.Algorithm",
				"RecoveryPointSelection.RecoveryPointTypes",
				"RecoveryPointSelection.IncludeVaults[0]",
				"RecoveryPointSelection.IncludeVaults[1]",
				"RecoveryPointSelection.SelectionWindowDays",
			},
			say: "RecoveryPointSelection.SelectionWindowDays: 400: want 1 to 365",
		},
		{
			file:     "invalid-plan-unknown-field.json",
			problems: []string{"RestoreTestingPlan.StartWindowHours", "RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDay"},
			say:      "RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDay: unknown field (did you mean SelectionWindowDays?)",
		},
		{
			file: "invalid-selection.json",
			problems: []string{
				"RestoreTestingSelectionName",
				"ProtectedResourceType",
				"IamRoleArn",
				"ProtectedResourceArns[1]",
				"ProtectedResourceConditions",
				"RestoreMetadataOverrides.destinationBucketName",
				"RestoreMetadataOverrides.storageClass",
				"ValidationWindowHours",
			},
			say: `ProtectedResourceType: "EBS": bucketvault restore-tests S3 buckets only`,
		},
	}
	listed := map[string]bool{}
	for _, tc := range tests {
		listed[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			d, err := Load(filepath.Join(examplesDir, tc.file))
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				switch {
				case tc.kind == "plan" && (d.Plan == nil || d.Plan.RestoreTestingPlanName != tc.name):
					t.Errorf("got %+v, want plan %q", d, tc.name)
				case tc.kind == "selection" && (d.Selection == nil || d.Selection.RestoreTestingSelectionName != tc.name):
					t.Errorf("got %+v, want selection %q", d, tc.name)
				}
				return
			}
			assertFields(t, err, tc.problems)
			assertSays(t, err, tc.say)
			if err != nil && !strings.HasPrefix(err.Error(), filepath.Join(examplesDir, tc.file)+": ") {
				t.Errorf("error %q does not start with the file's name", err)
			}
		})
	}
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(examplesDir, "README.md"))
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
			t.Errorf("%s is not listed in testdata/restoretest/README.md", e.Name())
		}
	}
}

func i64(v int64) *int64 { return &v }

func validPlan() Plan {
	return Plan{
		RestoreTestingPlanName: "daily",
		ScheduleExpression:     "cron(0 5 ? * * *)",
		RecoveryPointSelection: &RecoveryPointSelection{
			Algorithm:          RandomWithinWindow,
			RecoveryPointTypes: []RecoveryPointType{Snapshot},
			IncludeVaults:      []string{"*"},
		},
	}
}

func TestRestoreTestPlanValidate(t *testing.T) {
	rps := func(f func(*RecoveryPointSelection)) func(*Plan) {
		return func(p *Plan) { f(p.RecoveryPointSelection) }
	}
	tests := []struct {
		name   string
		modify func(*Plan)
		fields []string
		say    string
	}{
		{"valid", func(*Plan) {}, nil, ""},
		{"name required", func(p *Plan) { p.RestoreTestingPlanName = "" }, []string{"RestoreTestingPlanName"}, "required"},
		{"name 50", func(p *Plan) { p.RestoreTestingPlanName = strings.Repeat("a", 50) }, nil, ""},
		{"name 51", func(p *Plan) { p.RestoreTestingPlanName = strings.Repeat("a", 51) }, []string{"RestoreTestingPlanName"}, "1 to 50 letters, digits or underscores"},
		{"name hyphen", func(p *Plan) { p.RestoreTestingPlanName = "daily-s3" }, []string{"RestoreTestingPlanName"}, `"daily-s3"`},
		{"name dot", func(p *Plan) { p.RestoreTestingPlanName = "daily.s3" }, []string{"RestoreTestingPlanName"}, ""},
		{"name underscore", func(p *Plan) { p.RestoreTestingPlanName = "daily_s3_2" }, nil, ""},
		// AWS documents only the characters and the length: a leading
		// digit or underscore is accepted, as AWS accepts it.
		{"name leading digit", func(p *Plan) { p.RestoreTestingPlanName = "1_daily" }, nil, ""},
		{"schedule required", func(p *Plan) { p.ScheduleExpression = "" }, []string{"ScheduleExpression"}, "required: a cron(...) expression"},
		{"rate refused", func(p *Plan) { p.ScheduleExpression = "rate(1 day)" }, []string{"ScheduleExpression"}, "takes a cron(...) expression"},
		{"at refused", func(p *Plan) { p.ScheduleExpression = "at(2026-02-01T05:00:00)" }, []string{"ScheduleExpression"}, "not rate() or at()"},
		{"cron syntax", func(p *Plan) { p.ScheduleExpression = "cron(0 5 * * * *)" }, []string{"ScheduleExpression"}, "must be ?"},
		{"cron never", func(p *Plan) { p.ScheduleExpression = "cron(0 0 30 2 ? *)" }, []string{"ScheduleExpression"}, "never fires"},
		{"cron past year", func(p *Plan) { p.ScheduleExpression = "cron(0 0 1 1 ? 2020)" }, []string{"ScheduleExpression"}, "never fires"},
		{"cron weekly", func(p *Plan) { p.ScheduleExpression = "cron(30 2 ? * SUN *)" }, nil, ""},
		{"time zone", func(p *Plan) { p.ScheduleExpressionTimezone = "Asia/Kolkata" }, nil, ""},
		{"time zone Etc/UTC", func(p *Plan) { p.ScheduleExpressionTimezone = "Etc/UTC" }, nil, ""},
		{"time zone bad", func(p *Plan) { p.ScheduleExpressionTimezone = "CET+1" }, []string{"ScheduleExpressionTimezone"}, "IANA"},
		{"time zone Local", func(p *Plan) { p.ScheduleExpressionTimezone = "Local" }, []string{"ScheduleExpressionTimezone"}, "IANA"},
		{"start window 0", func(p *Plan) { p.StartWindowHours = i64(0) }, []string{"StartWindowHours"}, "0: want 1 to 168"},
		{"start window 1", func(p *Plan) { p.StartWindowHours = i64(1) }, nil, ""},
		{"start window 168", func(p *Plan) { p.StartWindowHours = i64(168) }, nil, ""},
		{"start window 169", func(p *Plan) { p.StartWindowHours = i64(169) }, []string{"StartWindowHours"}, "169: want 1 to 168"},
		{"selection required", func(p *Plan) { p.RecoveryPointSelection = nil }, []string{"RecoveryPointSelection"}, "required"},
		{"algorithm required", rps(func(r *RecoveryPointSelection) { r.Algorithm = "" }), []string{"RecoveryPointSelection.Algorithm"}, "required"},
		{"algorithm latest", rps(func(r *RecoveryPointSelection) { r.Algorithm = LatestWithinWindow }), nil, ""},
		{"algorithm lower case", rps(func(r *RecoveryPointSelection) { r.Algorithm = "random_within_window" }), []string{"RecoveryPointSelection.Algorithm"}, "want LATEST_WITHIN_WINDOW or RANDOM_WITHIN_WINDOW"},
		{"types required", rps(func(r *RecoveryPointSelection) { r.RecoveryPointTypes = nil }), []string{"RecoveryPointSelection.RecoveryPointTypes"}, "required"},
		{"types both", rps(func(r *RecoveryPointSelection) { r.RecoveryPointTypes = []RecoveryPointType{Continuous, Snapshot} }), nil, ""},
		{"type unknown", rps(func(r *RecoveryPointSelection) { r.RecoveryPointTypes = []RecoveryPointType{Snapshot, "PITR"} }), []string{"RecoveryPointSelection.RecoveryPointTypes[1]"}, `"PITR"`},
		{"type twice", rps(func(r *RecoveryPointSelection) { r.RecoveryPointTypes = []RecoveryPointType{Snapshot, Snapshot} }), []string{"RecoveryPointSelection.RecoveryPointTypes[1]"}, "listed twice"},
		{"vaults required", rps(func(r *RecoveryPointSelection) { r.IncludeVaults = nil }), []string{"RecoveryPointSelection.IncludeVaults"}, "required"},
		{"vault ARNs", rps(func(r *RecoveryPointSelection) {
			r.IncludeVaults = []string{"arn:aws:backup:us-east-1:123456789012:backup-vault:primary-vault", "arn:aws:backup:*:*:backup-vault:prod-*"}
		}), nil, ""},
		{"vault star with others", rps(func(r *RecoveryPointSelection) {
			r.IncludeVaults = []string{"arn:aws:backup:us-east-1:123456789012:backup-vault:v1", "*"}
		}), []string{"RecoveryPointSelection.IncludeVaults[1]"}, "stands alone"},
		{"vault name not ARN", rps(func(r *RecoveryPointSelection) { r.IncludeVaults = []string{"primary-vault"} }), []string{"RecoveryPointSelection.IncludeVaults[0]"}, "backup-vault:NAME"},
		{"exclude vault bad", rps(func(r *RecoveryPointSelection) {
			r.ExcludeVaults = []string{"arn:aws:s3:::scratch"}
		}), []string{"RecoveryPointSelection.ExcludeVaults[0]"}, "backup vault ARN"},
		{"window 0", rps(func(r *RecoveryPointSelection) { r.SelectionWindowDays = i64(0) }), []string{"RecoveryPointSelection.SelectionWindowDays"}, "0: want 1 to 365"},
		{"window 1", rps(func(r *RecoveryPointSelection) { r.SelectionWindowDays = i64(1) }), nil, ""},
		{"window 365", rps(func(r *RecoveryPointSelection) { r.SelectionWindowDays = i64(365) }), nil, ""},
		{"window 366", rps(func(r *RecoveryPointSelection) { r.SelectionWindowDays = i64(366) }), []string{"RecoveryPointSelection.SelectionWindowDays"}, "366: want 1 to 365"},
		{"request id", func(p *Plan) { p.CreatorRequestId = "has space" }, []string{"CreatorRequestId"}, "1 to 50"},
		{"ARN", func(p *Plan) { p.RestoreTestingPlanArn = "weekly" }, []string{"RestoreTestingPlanArn"}, "want an ARN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validPlan()
			r := *p.RecoveryPointSelection
			p.RecoveryPointSelection = &r
			tc.modify(&p)
			err := p.validate(now)
			assertFields(t, err, tc.fields)
			assertSays(t, err, tc.say)
		})
	}
}

func validSelection() Selection {
	return Selection{
		RestoreTestingSelectionName: "s3_orders",
		ProtectedResourceType:       "S3",
		IamRoleArn:                  "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
		ProtectedResourceArns:       []string{"arn:aws:s3:::orders-prod"},
	}
}

func TestRestoreTestSelectionValidate(t *testing.T) {
	arns := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, "arn:aws:s3:::bucket-"+strings.Repeat("x", i+1))
		}
		return out
	}
	tagged := &Conditions{StringEquals: []KeyValue{{Key: "backup", Value: "true"}}}
	tests := []struct {
		name   string
		modify func(*Selection)
		fields []string
		say    string
	}{
		{"valid", func(*Selection) {}, nil, ""},
		{"name required", func(s *Selection) { s.RestoreTestingSelectionName = "" }, []string{"RestoreTestingSelectionName"}, "required"},
		{"name 51", func(s *Selection) { s.RestoreTestingSelectionName = strings.Repeat("s", 51) }, []string{"RestoreTestingSelectionName"}, "1 to 50"},
		{"plan name", func(s *Selection) { s.RestoreTestingPlanName = "daily plan" }, []string{"RestoreTestingPlanName"}, "1 to 50"},
		{"type required", func(s *Selection) { s.ProtectedResourceType = "" }, []string{"ProtectedResourceType"}, "required: S3"},
		{"type EBS", func(s *Selection) { s.ProtectedResourceType = "EBS" }, []string{"ProtectedResourceType"}, "S3 buckets only; test EBS resources with AWS Backup's own"},
		{"type DynamoDB", func(s *Selection) { s.ProtectedResourceType = "DynamoDB" }, []string{"ProtectedResourceType"}, "S3 buckets only"},
		{"type lower case", func(s *Selection) { s.ProtectedResourceType = "s3" }, []string{"ProtectedResourceType"}, "not an AWS Backup resource type"},
		{"role required", func(s *Selection) { s.IamRoleArn = "" }, []string{"IamRoleArn"}, "bucketvault does not use it"},
		{"role not a role", func(s *Selection) { s.IamRoleArn = "arn:aws:iam::123456789012:user/backup" }, []string{"IamRoleArn"}, "IAM role ARN"},
		{"role China", func(s *Selection) { s.IamRoleArn = "arn:aws-cn:iam::123456789012:role/backup" }, nil, ""},
		{"nothing selected", func(s *Selection) { s.ProtectedResourceArns = nil }, []string{"ProtectedResourceArns"}, "required"},
		{"empty conditions select nothing", func(s *Selection) { s.ProtectedResourceArns, s.ProtectedResourceConditions = nil, &Conditions{} }, []string{"ProtectedResourceArns"}, "required"},
		{"wildcard", func(s *Selection) { s.ProtectedResourceArns = []string{"*"} }, nil, ""},
		{"wildcard with conditions", func(s *Selection) { s.ProtectedResourceArns, s.ProtectedResourceConditions = []string{"*"}, tagged }, nil, ""},
		{"conditions alone", func(s *Selection) { s.ProtectedResourceArns, s.ProtectedResourceConditions = nil, tagged }, nil, ""},
		{"ARNs with conditions", func(s *Selection) { s.ProtectedResourceConditions = tagged }, []string{"ProtectedResourceConditions"}, "refuses specific ARNs together with conditions"},
		{"wildcard with ARNs", func(s *Selection) { s.ProtectedResourceArns = []string{"arn:aws:s3:::orders-prod", "*"} }, []string{"ProtectedResourceArns[1]"}, "stands alone"},
		{"30 ARNs", func(s *Selection) { s.ProtectedResourceArns = arns(30) }, nil, ""},
		{"31 ARNs", func(s *Selection) { s.ProtectedResourceArns = arns(31) }, []string{"ProtectedResourceArns"}, "at most 30"},
		{"wildcard inside ARN", func(s *Selection) { s.ProtectedResourceArns = []string{"arn:aws:s3:::orders-*"} }, []string{"ProtectedResourceArns[0]"}, "no wildcard inside an ARN"},
		{"object ARN", func(s *Selection) { s.ProtectedResourceArns = []string{"arn:aws:s3:::orders-prod/2026/"} }, []string{"ProtectedResourceArns[0]"}, "names objects"},
		{"not an S3 ARN", func(s *Selection) {
			s.ProtectedResourceArns = []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}
		}, []string{"ProtectedResourceArns[0]"}, "S3 bucket ARN"},
		{"bad bucket name", func(s *Selection) { s.ProtectedResourceArns = []string{"arn:aws:s3:::Orders_Prod"} }, []string{"ProtectedResourceArns[0]"}, "bucket name"},
		{"bucket twice", func(s *Selection) {
			s.ProtectedResourceArns = []string{"arn:aws:s3:::orders-prod", "arn:aws:s3:::orders-prod"}
		}, []string{"ProtectedResourceArns[1]"}, "is also ProtectedResourceArns[0]"},
		{"China bucket", func(s *Selection) { s.ProtectedResourceArns = []string{"arn:aws-cn:s3:::orders-prod"} }, nil, ""},
		{"condition key prefixed", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringEquals: []KeyValue{{Key: "aws:ResourceTag/backup", Value: "true"}}}
		}, nil, ""},
		{"condition key empty", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringNotEquals: []KeyValue{{Key: "aws:ResourceTag/", Value: "x"}}}
		}, []string{"ProtectedResourceConditions.StringNotEquals[0].Key"}, "required"},
		{"condition key aws:", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringEquals: []KeyValue{{Key: "aws:cloudformation:stack-name", Value: "x"}}}
		}, []string{"ProtectedResourceConditions.StringEquals[0].Key"}, "can't start with aws:"},
		{"condition key 129", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringEquals: []KeyValue{{Key: strings.Repeat("k", 129), Value: "x"}}}
		}, []string{"ProtectedResourceConditions.StringEquals[0].Key"}, "1 to 128"},
		{"condition key characters", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringEquals: []KeyValue{{Key: "team#1", Value: "x"}}}
		}, []string{"ProtectedResourceConditions.StringEquals[0].Key"}, "letters, digits"},
		{"condition value 257", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringEquals: []KeyValue{{Key: "k", Value: strings.Repeat("v", 257)}}}
		}, []string{"ProtectedResourceConditions.StringEquals[0].Value"}, "at most 256"},
		{"condition value empty", func(s *Selection) {
			s.ProtectedResourceArns = []string{"*"}
			s.ProtectedResourceConditions = &Conditions{StringNotEquals: []KeyValue{{Key: "k"}}}
		}, nil, ""},
		{"overrides", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"encryptionType": "SSE-KMS", "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "restoreACLs": "true"}
		}, nil, ""},
		{"override keys case-insensitive", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"EncryptionType": "sse-s3", "RESTOREACLS": "False"}
		}, nil, ""},
		{"override given twice", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"encryptionType": "SSE-S3", "EncryptionType": "SSE-KMS"}
		}, []string{"RestoreMetadataOverrides.encryptionType"}, "keys are not case sensitive"},
		{"override inferred", func(s *Selection) { s.RestoreMetadataOverrides = map[string]string{"newBucket": "false"} }, []string{"RestoreMetadataOverrides.newBucket"}, "does not let it be overridden"},
		{"override unknown", func(s *Selection) { s.RestoreMetadataOverrides = map[string]string{"storageClass": "GLACIER"} }, []string{"RestoreMetadataOverrides.storageClass"}, "want encryptionType, kmsKey or restoreACLs"},
		{"override EBS key", func(s *Selection) { s.RestoreMetadataOverrides = map[string]string{"availabilityZone": "us-east-1a"} }, []string{"RestoreMetadataOverrides.availabilityZone"}, "not an overridable S3"},
		{"encryption type", func(s *Selection) { s.RestoreMetadataOverrides = map[string]string{"encryptionType": "AES256"} }, []string{"RestoreMetadataOverrides.encryptionType"}, "SSE-S3 or SSE-KMS"},
		{"kms key ARN", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"encryptionType": "SSE-KMS", "kmsKey": "1234abcd"}
		}, []string{"RestoreMetadataOverrides.kmsKey"}, "KMS key ARN"},
		{"kms alias", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"encryptionType": "SSE-KMS", "kmsKey": "arn:aws:kms:us-east-1:123456789012:alias/backups"}
		}, nil, ""},
		{"kms key without SSE-KMS", func(s *Selection) {
			s.RestoreMetadataOverrides = map[string]string{"kmsKey": "arn:aws:kms:us-east-1:123456789012:alias/backups"}
		}, []string{"RestoreMetadataOverrides.kmsKey"}, "needs encryptionType SSE-KMS"},
		{"restore ACLs", func(s *Selection) { s.RestoreMetadataOverrides = map[string]string{"restoreACLs": "yes"} }, []string{"RestoreMetadataOverrides.restoreACLs"}, "true or false"},
		{"validation window -1", func(s *Selection) { s.ValidationWindowHours = i64(-1) }, []string{"ValidationWindowHours"}, "-1: want 0 to 168"},
		{"validation window 0", func(s *Selection) { s.ValidationWindowHours = i64(0) }, nil, ""},
		{"validation window 168", func(s *Selection) { s.ValidationWindowHours = i64(168) }, nil, ""},
		{"validation window 169", func(s *Selection) { s.ValidationWindowHours = i64(169) }, []string{"ValidationWindowHours"}, "169: want 0 to 168"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSelection()
			tc.modify(&s)
			err := s.Validate()
			assertFields(t, err, tc.fields)
			assertSays(t, err, tc.say)
		})
	}
}

func TestRestoreTestParseForms(t *testing.T) {
	plan := `{"RestoreTestingPlanName": "p", "ScheduleExpression": "cron(0 5 ? * * *)",
	  "RecoveryPointSelection": {"Algorithm": "LATEST_WITHIN_WINDOW", "RecoveryPointTypes": ["CONTINUOUS"], "IncludeVaults": ["*"]}}`
	sel := `{"RestoreTestingSelectionName": "s", "ProtectedResourceType": "S3",
	  "IamRoleArn": "arn:aws:iam::123456789012:role/r", "ProtectedResourceArns": ["*"]}`
	tests := []struct {
		name      string
		data      string
		kind      string // what Parse finds; "" for an error
		planName  string // the selection's RestoreTestingPlanName
		tags      map[string]string
		problems  []string
		say       string
		validates []string // fields Validate then refuses
	}{
		{name: "bare plan", data: plan, kind: "restore testing plan"},
		{name: "create plan input", data: `{"RestoreTestingPlan": ` + plan + `, "Tags": {"team": "platform"}, "CreatorRequestId": "req-1"}`,
			kind: "restore testing plan", tags: map[string]string{"team": "platform"}},
		{name: "get plan output", data: `{"RestoreTestingPlan": {"RestoreTestingPlanName": "p", "ScheduleExpression": "cron(0 5 ? * * *)", "RestoreTestingPlanArn": "arn:aws:backup:us-east-1:123456789012:restore-testing-plan:p-1",
		  "CreationTime": 1738259883.087, "LastExecutionTime": "2026-02-01T05:00:00Z",
		  "RecoveryPointSelection": {"Algorithm": "LATEST_WITHIN_WINDOW", "RecoveryPointTypes": ["SNAPSHOT"], "IncludeVaults": ["*"], "ExcludeVaults": []}}}`,
			kind: "restore testing plan"},
		{name: "wrapper without plan", data: `{"RestoreTestingPlan": null, "Tags": {}}`, problems: []string{"RestoreTestingPlan"}, say: "missing"},
		{name: "bare selection", data: sel, kind: "restore testing selection"},
		{name: "create selection input", data: `{"RestoreTestingPlanName": "daily", "RestoreTestingSelection": ` + sel + `}`,
			kind: "restore testing selection", planName: "daily"},
		{name: "get selection output", data: `{"RestoreTestingSelection": {"RestoreTestingPlanName": "daily", "RestoreTestingSelectionName": "s", "ProtectedResourceType": "S3",
		  "IamRoleArn": "arn:aws:iam::123456789012:role/r", "ProtectedResourceArns": ["*"], "CreationTime": "2026-01-30T18:02:11Z", "CreatorRequestId": "x"}}`,
			kind: "restore testing selection", planName: "daily"},
		{name: "bare get selection object", data: `{"RestoreTestingPlanName": "daily", "RestoreTestingSelectionName": "s", "ProtectedResourceType": "S3",
		  "IamRoleArn": "arn:aws:iam::123456789012:role/r", "ProtectedResourceArns": ["*"]}`,
			kind: "restore testing selection", planName: "daily"},
		{name: "plan names disagree", data: `{"RestoreTestingPlanName": "daily", "RestoreTestingSelection": {"RestoreTestingPlanName": "weekly", "RestoreTestingSelectionName": "s"}}`,
			problems: []string{"RestoreTestingPlanName"}, say: `"daily", but the selection says it belongs to "weekly"`},
		{name: "wrapper plan name checked", data: `{"RestoreTestingPlanName": "daily-plan", "RestoreTestingSelection": ` + sel + `}`,
			kind: "restore testing selection", planName: "daily-plan", validates: []string{"RestoreTestingSelection.RestoreTestingPlanName"}},
		{name: "unknown top-level key", data: `{"RestoreTestingPlan": ` + plan + `, "Tag": {}}`, problems: []string{"Tag"}, say: "did you mean Tags?"},
		{name: "case", data: `{"restoreTestingPlanName": "p", "ScheduleExpression": "cron(0 5 ? * * *)"}`,
			problems: []string{"restoreTestingPlanName"}, say: "keys are case-sensitive"},
		{name: "nested unknown key", data: `{"RestoreTestingSelection": {"RestoreTestingSelectionName": "s", "ProtectedResourceConditions": {"StringLike": []}}}`,
			problems: []string{"RestoreTestingSelection.ProtectedResourceConditions.StringLike"}, say: "unknown field"},
		{name: "given twice", data: `{"RestoreTestingPlanName": "a", "RestoreTestingPlanName": "b"}`, problems: []string{"RestoreTestingPlanName"}, say: "given twice"},
		{name: "override twice", data: `{"RestoreTestingSelectionName": "s", "RestoreMetadataOverrides": {"kmsKey": "a", "kmsKey": "b"}}`,
			problems: []string{"RestoreMetadataOverrides.kmsKey"}, say: "given twice"},
		{name: "wrong types", data: `{"RestoreTestingSelectionName": "s", "ValidationWindowHours": 1.5, "ProtectedResourceArns": "*", "RestoreMetadataOverrides": {"restoreACLs": false}}`,
			problems: []string{"ValidationWindowHours", "ProtectedResourceArns", "RestoreMetadataOverrides.restoreACLs"}, say: "want an array, got a string"},
		{name: "backup plan", data: `{"BackupPlanName": "p", "Rules": []}`, problems: []string{""}, say: "bucketvault plan validate"},
		{name: "neither", data: `{"Name": "x"}`, problems: []string{""}, say: "neither a restore testing plan nor a restore testing selection"},
		{name: "not JSON", data: "{\n  \"RestoreTestingPlanName\": \"p\",\n}", problems: []string{""}, say: "not valid JSON: line 3"},
		{name: "array", data: `[` + plan + `]`, problems: []string{""}, say: "want a JSON object at the top, got an array"},
		{name: "trailing data", data: plan + ` {}`, problems: []string{""}, say: "after top-level value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.data))
			if tc.kind == "" {
				assertFields(t, err, tc.problems)
				assertSays(t, err, tc.say)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := d.Kind(); got != tc.kind {
				t.Errorf("Kind = %q, want %q", got, tc.kind)
			}
			if d.Selection != nil && d.Selection.RestoreTestingPlanName != tc.planName {
				t.Errorf("selection's RestoreTestingPlanName = %q, want %q", d.Selection.RestoreTestingPlanName, tc.planName)
			}
			if diff := cmp.Diff(tc.tags, d.Tags); diff != "" {
				t.Errorf("Tags (-want +got):\n%s", diff)
			}
			assertFields(t, d.validate(now), tc.validates)
		})
	}
}

// A wrapped file's problems are named from the top of the file; Validate
// on the object names them relative to it.
func TestRestoreTestFieldPaths(t *testing.T) {
	p := validPlan()
	p.RecoveryPointSelection.SelectionWindowDays = i64(400)
	err := p.validate(now)
	const want = "RecoveryPointSelection.SelectionWindowDays: 400: want 1 to 365"
	if err == nil || err.Error() != want {
		t.Errorf("Plan.Validate = %v, want %q", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "RecoveryPointSelection.SelectionWindowDays" {
		t.Errorf("errors.As *FieldError: %+v", fe)
	}
	d := &Document{Plan: &p, Tags: map[string]string{"aws:owner": "x"}, CreatorRequestId: "bad id", wrapper: "RestoreTestingPlan"}
	assertFields(t, d.validate(now), []string{"RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDays", "Tags.aws:owner", "CreatorRequestId"})
	d.wrapper = ""
	assertFields(t, d.validate(now), []string{"RecoveryPointSelection.SelectionWindowDays", "Tags.aws:owner", "CreatorRequestId"})
}

// Every example decodes and round-trips: marshalled and parsed again it
// is the same document (an empty list, written [] by AWS, is left out).
func TestRestoreTestRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "invalid-") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			d, err := Parse(mustRead(t, f))
			if err != nil {
				t.Fatal(err)
			}
			var body []byte
			if d.Plan != nil {
				body, err = json.Marshal(d.Plan)
			} else {
				body, err = json.Marshal(d.Selection)
			}
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse(%s): %v", body, err)
			}
			if diff := cmp.Diff(d.Plan, again.Plan, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan after a round trip (-first +again):\n%s", diff)
			}
			if diff := cmp.Diff(d.Selection, again.Selection, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("selection after a round trip (-first +again):\n%s", diff)
			}
		})
	}
}

func TestRestoreTestDefaults(t *testing.T) {
	p := validPlan()
	if p.Timezone() != "Etc/UTC" || p.StartWindow() != 24*time.Hour || p.RecoveryPointSelection.WindowDays() != 30 {
		t.Errorf("defaults: zone %q, start window %s, selection window %d days; want Etc/UTC, 24h, 30",
			p.Timezone(), p.StartWindow(), p.RecoveryPointSelection.WindowDays())
	}
	s, err := p.Schedule()
	if err != nil || s.Location().String() != "Etc/UTC" {
		t.Fatalf("Schedule = %v in %v, %v", s, s.Location(), err)
	}
	if got, want := s.Next(now), time.Date(2026, 1, 31, 5, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next(%s) = %s, want %s", now, got, want)
	}
	d := p.WithDefaults()
	if d.ScheduleExpressionTimezone != "Etc/UTC" || *d.StartWindowHours != 24 || *d.RecoveryPointSelection.SelectionWindowDays != 30 {
		t.Errorf("WithDefaults = %+v %+v", d, d.RecoveryPointSelection)
	}
	if p.StartWindowHours != nil || p.RecoveryPointSelection.SelectionWindowDays != nil {
		t.Errorf("WithDefaults changed the plan it copies")
	}
	start, end := p.RecoveryPointSelection.Window(now)
	if !end.Equal(now) || end.Sub(start) != 30*24*time.Hour {
		t.Errorf("Window = [%s, %s], want the 30 days before %s", start, end, now)
	}
	sel := validSelection()
	if sel.ValidationWindow() != 0 || *sel.WithDefaults().ValidationWindowHours != 0 {
		t.Errorf("validation window default: %s", sel.ValidationWindow())
	}
	sel.ValidationWindowHours = i64(6)
	if sel.ValidationWindow() != 6*time.Hour {
		t.Errorf("ValidationWindow = %s, want 6h", sel.ValidationWindow())
	}
	sel.RestoreMetadataOverrides = map[string]string{"KMSKey": "arn:aws:kms:us-east-1:123456789012:alias/k"}
	if v, ok := sel.Override("kmsKey"); !ok || v != "arn:aws:kms:us-east-1:123456789012:alias/k" {
		t.Errorf("Override(kmsKey) = %q, %v", v, ok)
	}
	if _, ok := sel.Override("restoreACLs"); ok {
		t.Errorf("Override(restoreACLs) found an unset key")
	}
}

func TestRestoreTestTakesVault(t *testing.T) {
	r := RecoveryPointSelection{
		IncludeVaults: []string{"arn:aws:backup:us-east-1:123456789012:backup-vault:primary-vault", "arn:aws:backup:*:*:backup-vault:prod-*"},
		ExcludeVaults: []string{"arn:aws:backup:eu-west-1:123456789012:backup-vault:prod-scratch"},
	}
	for name, want := range map[string]bool{"primary-vault": true, "prod-eu": true, "prod-scratch": false, "other": false, "primary-vault-2": false} {
		if got := r.TakesVault(name); got != want {
			t.Errorf("TakesVault(%q) = %v, want %v", name, got, want)
		}
	}
	all := RecoveryPointSelection{IncludeVaults: []string{"*"}, ExcludeVaults: []string{"arn:aws:backup:*:*:backup-vault:*-dev"}}
	if !all.TakesVault("anything") || all.TakesVault("orders-dev") {
		t.Errorf("* minus *-dev: anything %v, orders-dev %v", all.TakesVault("anything"), all.TakesVault("orders-dev"))
	}
	if all.Takes(Snapshot) || all.Takes(Continuous) {
		t.Errorf("Takes with no RecoveryPointTypes")
	}
	both := RecoveryPointSelection{RecoveryPointTypes: []RecoveryPointType{Continuous}}
	if both.Takes(Snapshot) || !both.Takes(Continuous) {
		t.Errorf("Takes(CONTINUOUS only)")
	}
}

func TestRestoreTestResolve(t *testing.T) {
	buckets := []Bucket{
		{Name: "orders-prod", Tags: map[string]string{"backup": "true", "environment": "prod"}},
		{Name: "orders-dev", Tags: map[string]string{"backup": "true", "environment": "dev"}},
		{Name: "logs", Tags: map[string]string{"backup": "true"}},
		{Name: "invoices-prod", Tags: map[string]string{"backup": "TRUE"}},
		{Name: "untagged"},
		{Name: "logs", Tags: map[string]string{"backup": "true"}}, // listed twice
	}
	tests := []struct {
		name string
		sel  Selection
		want []string
	}{
		{"by ARNs", Selection{ProtectedResourceType: "S3", ProtectedResourceArns: []string{"arn:aws:s3:::orders-prod", "arn:aws:s3:::untagged", "arn:aws:s3:::gone"}},
			[]string{"orders-prod", "untagged"}},
		{"every bucket", Selection{ProtectedResourceType: "S3", ProtectedResourceArns: []string{"*"}},
			[]string{"invoices-prod", "logs", "orders-dev", "orders-prod", "untagged"}},
		// StringNotEquals holds for a bucket without the tag (logs);
		// matching is case-sensitive (invoices-prod's TRUE).
		{"wildcard and tags", Selection{ProtectedResourceType: "S3", ProtectedResourceArns: []string{"*"}, ProtectedResourceConditions: &Conditions{
			StringEquals:    []KeyValue{{Key: "aws:ResourceTag/backup", Value: "true"}},
			StringNotEquals: []KeyValue{{Key: "environment", Value: "dev"}},
		}}, []string{"logs", "orders-prod"}},
		{"conditions alone", Selection{ProtectedResourceType: "S3", ProtectedResourceConditions: &Conditions{
			StringNotEquals: []KeyValue{{Key: "backup", Value: "true"}},
		}}, []string{"invoices-prod", "untagged"}},
		{"China partition", Selection{ProtectedResourceType: "S3", ProtectedResourceArns: []string{"arn:aws-cn:s3:::logs"}}, []string{"logs"}},
		{"not S3", Selection{ProtectedResourceType: "EBS", ProtectedResourceArns: []string{"*"}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.sel.Resolve(buckets)); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func TestRestoreTestPickContinuous(t *testing.T) {
	base := time.Date(2026, 1, 30, 12, 0, 0, 0, time.UTC)
	start, end := base.Add(250*time.Millisecond), base.Add(10*time.Second+750*time.Millisecond)
	got, err := PickContinuous(start, end, LatestWithinWindow, nil)
	if err != nil || !got.Equal(base.Add(10*time.Second)) {
		t.Errorf("latest = %s, %v; want %s (end truncated to the second)", got, err, base.Add(10*time.Second))
	}
	if got, _ := PickContinuous(base, base.Add(10*time.Second), LatestWithinWindow, nil); !got.Equal(base.Add(10 * time.Second)) {
		t.Errorf("latest of a window ending on a whole second = %s, want its end", got)
	}
	paris := time.FixedZone("CET", 3600)
	if got, _ := PickContinuous(start, end.In(paris), LatestWithinWindow, nil); got.Location() != paris {
		t.Errorf("pick in %v, want end's location", got.Location())
	}
	// Random: whole seconds only, both ends included: in a window holding
	// the whole seconds base+1s and base+2s, and nothing else, both come up.
	seen := map[time.Time]int{}
	for seed := range uint64(200) {
		got, err := PickContinuous(base.Add(time.Millisecond), base.Add(2*time.Second), RandomWithinWindow, seeded(seed))
		if err != nil {
			t.Fatal(err)
		}
		if got.Nanosecond() != 0 {
			t.Fatalf("random pick %s is not a whole second", got)
		}
		seen[got]++
	}
	if len(seen) != 2 || seen[base.Add(time.Second)] == 0 || seen[base.Add(2*time.Second)] == 0 {
		t.Errorf("random picks in [base+1ms, base+2s]: %v, want base+1s and base+2s", seen)
	}
	a, _ := PickContinuous(start, end, RandomWithinWindow, seeded(7))
	b, _ := PickContinuous(start, end, RandomWithinWindow, seeded(7))
	if !a.Equal(b) {
		t.Errorf("the same seed picked %s and %s", a, b)
	}
	for _, tc := range []struct {
		name       string
		start, end time.Time
		alg        Algorithm
		is         error
	}{
		{"less than a second", base.Add(100 * time.Millisecond), base.Add(900 * time.Millisecond), RandomWithinWindow, ErrNothingToPick},
		{"end before start", base.Add(time.Hour), base, LatestWithinWindow, ErrNothingToPick},
		{"unknown algorithm", base, base.Add(time.Hour), "OLDEST_WITHIN_WINDOW", nil},
	} {
		_, err := PickContinuous(tc.start, tc.end, tc.alg, nil)
		if err == nil || tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want an error (%v)", tc.name, err, tc.is)
		}
	}
}

// chiSquare is Pearson's statistic for counts against equal expected
// counts.
func chiSquare(counts []int, n int) float64 {
	e := float64(n) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// chi2Crit9 is the chi-square distribution's 0.999 quantile with 9 degrees
// of freedom (10 bins): a uniform pick exceeds it with probability 0.001.
// The runs are seeded, so the test is deterministic: a correct change that
// draws other numbers fails it for about one seed set in a thousand. The
// bound still catches small biases: with N = 10,000 picks, a pick that
// favours one half of the window by a fraction b gives χ² ≈ N·b² + 9 on
// average, about 34 for b = 5%.
const chi2Crit9 = 27.877

// RANDOM_WITHIN_WINDOW covers the window uniformly: 10,000 runs, each
// with its own seed, over a window of exactly 1,000 whole seconds (its
// ends off the second, so rounding at both ends is covered too), counted
// in 10 bins of 100 seconds.
func TestRestoreTestPickContinuousUniform(t *testing.T) {
	const runs, bins, seconds = 10_000, 10, 1000
	base := time.Date(2026, 1, 30, 12, 0, 0, 0, time.UTC)
	first := base.Add(time.Second)
	start, end := base.Add(400*time.Millisecond), base.Add(seconds*time.Second+600*time.Millisecond)
	counts := make([]int, bins)
	lo, hi := seconds, -1
	for seed := range uint64(runs) {
		got, err := PickContinuous(start, end, RandomWithinWindow, seeded(seed))
		if err != nil {
			t.Fatal(err)
		}
		s := int(got.Sub(first) / time.Second)
		if s < 0 || s >= seconds || got.Nanosecond() != 0 {
			t.Fatalf("seed %d picked %s, outside the window's whole seconds", seed, got)
		}
		counts[s/(seconds/bins)]++
		lo, hi = min(lo, s), max(hi, s)
	}
	if x := chiSquare(counts, runs); x > chi2Crit9 {
		t.Errorf("χ² = %.2f over %v, above %.3f (p = 0.001, 9 degrees of freedom): not uniform", x, counts, chi2Crit9)
	} else {
		t.Logf("χ² = %.2f (bound %.3f), bins %v", x, chi2Crit9, counts)
	}
	if lo != 0 || hi != seconds-1 {
		t.Errorf("picks spanned seconds %d to %d of the window, want 0 to %d: both ends are inside", lo, hi, seconds-1)
	}
}

func TestRestoreTestPickSnapshot(t *testing.T) {
	base := time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return base.AddDate(0, 0, d) }
	points := []Candidate{
		{ID: "rp-3", Time: day(3)},
		{ID: "rp-old", Time: day(-40)},
		{ID: "rp-1", Time: day(1)},
		{ID: "rp-5b", Time: day(5)},
		{ID: "rp-5a", Time: day(5)},
		{ID: "rp-future", Time: day(9)},
	}
	start, end := day(0), day(7)
	got, err := PickSnapshot(points, start, end, LatestWithinWindow, nil)
	if err != nil || got.ID != "rp-5b" {
		t.Errorf("latest = %+v, %v; want rp-5b (newest, greatest ID of equal times)", got, err)
	}
	onEdge, err := PickSnapshot(points, day(1), day(3), LatestWithinWindow, nil)
	if err != nil || onEdge.ID != "rp-3" {
		t.Errorf("latest in [day 1, day 3] = %+v, %v; want rp-3 (ends included)", onEdge, err)
	}
	// The same seed picks the same point whatever the order of points.
	reversed := make([]Candidate, len(points))
	for i, p := range points {
		reversed[len(points)-1-i] = p
	}
	for seed := range uint64(50) {
		a, _ := PickSnapshot(points, start, end, RandomWithinWindow, seeded(seed))
		b, _ := PickSnapshot(reversed, start, end, RandomWithinWindow, seeded(seed))
		if a != b {
			t.Fatalf("seed %d: %s, and %s with the points reversed", seed, a.ID, b.ID)
		}
		if a.ID == "rp-old" || a.ID == "rp-future" {
			t.Fatalf("seed %d picked %s, outside the window", seed, a.ID)
		}
	}
	if _, err := PickSnapshot(points, day(10), day(20), RandomWithinWindow, nil); !errors.Is(err, ErrNothingToPick) {
		t.Errorf("empty window: %v, want ErrNothingToPick", err)
	}
	if _, err := PickSnapshot(nil, start, end, LatestWithinWindow, nil); !errors.Is(err, ErrNothingToPick) {
		t.Errorf("no points: %v, want ErrNothingToPick", err)
	}
	if _, err := PickSnapshot(points, start, end, "", nil); err == nil || errors.Is(err, ErrNothingToPick) {
		t.Errorf("no algorithm: %v, want an algorithm error", err)
	}
}

// RANDOM_WITHIN_WINDOW picks each of 10 recovery points in the window
// equally often (the same bound as TestRestoreTestPickContinuousUniform), and never
// one outside it.
func TestRestoreTestPickSnapshotUniform(t *testing.T) {
	const runs = 10_000
	base := time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC)
	var points []Candidate
	for i := range 10 {
		points = append(points, Candidate{ID: string(rune('a' + i)), Time: base.Add(time.Duration(i) * 7 * time.Hour)})
	}
	points = append(points, Candidate{ID: "outside", Time: base.Add(-time.Second)})
	counts := make([]int, 10)
	for seed := range uint64(runs) {
		got, err := PickSnapshot(points, base, base.Add(63*time.Hour), RandomWithinWindow, seeded(seed))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID == "outside" {
			t.Fatalf("seed %d picked the point outside the window", seed)
		}
		counts[got.ID[0]-'a']++
	}
	if x := chiSquare(counts, runs); x > chi2Crit9 {
		t.Errorf("χ² = %.2f over %v, above %.3f: not uniform", x, counts, chi2Crit9)
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
