package main

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/protect"
)

// jsonOf decodes JSON text for comparisons with template values.
func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func TestResourceCounts(t *testing.T) {
	s := synth(t)
	main := map[string]float64{
		"AWS::Lambda::Function":               8,
		"AWS::Lambda::EventSourceMapping":     1,
		"AWS::Logs::LogGroup":                 11, // eight functions, the snapshot state machines, the restore and the restore test state machines
		"AWS::IAM::Role":                      17, // eight functions, reconcile's, protect's, expire's, the snapshot rules' and the restore testing plans' schedules, the sweeper's, the snapshot, restore and restore test state machines
		"AWS::IAM::Policy":                    17,
		"AWS::S3::Bucket":                     1,
		"AWS::S3::BucketPolicy":               1,
		"AWS::KMS::Key":                       1,
		"AWS::KMS::Alias":                     1,
		"AWS::SQS::Queue":                     2,
		"AWS::SQS::QueuePolicy":               2, // EventBridge may send to the queue and to the dead-letter queue
		"AWS::Events::Rule":                   3, // the journal's; the vault bucket's and the vault key's changes
		"AWS::Scheduler::Schedule":            8, // reconcile, protect, expire, the plan's two snapshot rules, the two restore testing plans, the restore test sweeper
		"AWS::StepFunctions::StateMachine":    5, // snapshot on demand, one per snapshot rule, restore, restore test
		"AWS::SNS::Topic":                     2,
		"AWS::SNS::TopicPolicy":               2,
		"AWS::SNS::Subscription":              1,
		"AWS::CloudWatch::Alarm":              14,
		"AWS::CloudFormation::CustomResource": 0,
		"Custom::BucketvaultVault":            1,
		"Custom::BucketvaultProtect":          1,
	}
	for typ, n := range main {
		cdkAssert(t, func() { s.main.assertion.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	// The variant imports the key and the alarm topic and does not protect
	// on deploy; its vault is initialized all the same.
	for typ, n := range map[string]float64{
		"AWS::KMS::Key": 0, "AWS::KMS::Alias": 0, "AWS::SNS::Topic": 1, "AWS::SNS::Subscription": 0,
		"Custom::BucketvaultVault": 1, "Custom::BucketvaultProtect": 0, "AWS::Lambda::Function": 7, "AWS::CloudWatch::Alarm": 12,
		"AWS::Events::Rule": 3, "AWS::S3::BucketPolicy": 1,
		"AWS::StepFunctions::StateMachine": 3, "AWS::Scheduler::Schedule": 4,
	} {
		cdkAssert(t, func() { s.variant.assertion.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	// Without a backup plan there is no dispatch function, no role for
	// it, no rule schedules and their role: only the on-demand snapshot
	// state machine, the restore state machine and (one restore testing
	// plan) the restore test state machine, the plan's schedule and the
	// sweeper's.
	for typ, n := range map[string]float64{
		"AWS::Lambda::Function": 7, "AWS::IAM::Role": 15, "AWS::IAM::Policy": 15, "AWS::Logs::LogGroup": 10,
		"AWS::StepFunctions::StateMachine": 3, "AWS::Scheduler::Schedule": 5, "AWS::CloudWatch::Alarm": 11,
	} {
		cdkAssert(t, func() { s.noPlan.assertion.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	// Nothing but bucketvault's own functions runs: no CDK helper Lambdas
	// (auto-delete, log retention, bucket notifications, providers).
	seen := map[string]bool{}
	for _, r := range s.main.resources() {
		seen[r.(map[string]any)["Type"].(string)] = true
	}
	for typ := range seen {
		if _, ok := main[typ]; !ok {
			t.Errorf("unexpected resource type %s", typ)
		}
	}
}

func TestVaultBucket(t *testing.T) {
	s := synth(t).main
	cdkAssert(t, func() {
		s.assertion.HasResource(jsii.String("AWS::S3::Bucket"), &map[string]any{
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
			"Properties": map[string]any{
				"BucketName": "bucketvault-vault-123456789012-us-east-1",
				"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{map[string]any{
					"BucketKeyEnabled": true,
					"ServerSideEncryptionByDefault": map[string]any{
						"SSEAlgorithm":   "aws:kms",
						"KMSMasterKeyID": map[string]any{"Fn::GetAtt": []any{"VaultKey", "Arn"}},
					},
				}}},
				"VersioningConfiguration": map[string]any{"Status": "Enabled"},
				"ObjectLockEnabled":       true,
				"ObjectLockConfiguration": map[string]any{
					"ObjectLockEnabled": "Enabled",
					"Rule":              map[string]any{"DefaultRetention": map[string]any{"Mode": "COMPLIANCE", "Days": 35}},
				},
				"PublicAccessBlockConfiguration": map[string]any{
					"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
				},
				"OwnershipControls": map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}},
			},
		})
	})
	cdkAssert(t, func() {
		s.assertion.HasResource(jsii.String("AWS::KMS::Key"), &map[string]any{
			"DeletionPolicy": "Retain",
			"Properties":     map[string]any{"EnableKeyRotation": true},
		})
	})
	// No custom resource empties the bucket on delete.
	for _, id := range s.ofType("AWS::Lambda::Function") {
		if !strings.HasSuffix(id, "Function") || strings.Contains(id, "AutoDelete") {
			t.Errorf("unexpected function %s", id)
		}
	}
	// The variant's vault uses the key it is given.
	v := synth(t).variant
	enc := v.props(t, "VaultBucket")["BucketEncryption"]
	if got := render(enc); !strings.Contains(got, `"KMSMasterKeyID":"arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"`) {
		t.Errorf("variant vault encryption %s: want the configured key", got)
	}
	if got := render(v.props(t, "VaultBucket")["ObjectLockConfiguration"]); got != `{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Days":35,"Mode":"GOVERNANCE"}}}` {
		t.Errorf("variant object lock %s: want the defaults (GOVERNANCE, 35 days)", got)
	}
}

func TestFunctions(t *testing.T) {
	s := synth(t).main
	known := map[string]bool{
		config.EnvVault: true, config.EnvConcurrency: true, config.EnvRestoreTargets: true,
		config.EnvBuckets: true, config.EnvEventsTopic: true, config.EnvEventBus: true,
	}
	want := map[string]struct {
		memory, timeout float64
		env             map[string]string
	}{
		"JournalFunction": {1024, 240, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32"}},
		"ReconcileFunction": {1024, 900, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32",
			config.EnvBuckets: "photos,documents"}},
		"ProtectFunction": {256, 300, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvBuckets: "photos,documents"}},
		"RestoreFunction": {2048, 900, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32",
			config.EnvEventsTopic: "Ref:EventsTopic", config.EnvEventBus: eventBus,
			config.EnvRestoreTargets: "photos-restored*,scratch-restore-?,restore-test-*"}},
		// The restore test state machine's steps and the sweeper: 15
		// minutes, as every step-taking function.
		"RestoretestFunction": {1024, 900, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32",
			config.EnvEventsTopic: "Ref:EventsTopic", config.EnvEventBus: eventBus}},
		"SnapshotFunction": {2048, 900, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32",
			config.EnvEventsTopic: "Ref:EventsTopic", config.EnvEventBus: eventBus}},
		"DispatchFunction": {256, 300, map[string]string{config.EnvVault: "bucketvault-vault-123456789012-us-east-1"}},
		// expire.memoryMB; 15 minutes, as reconcile (a run resumes).
		"ExpireFunction": {1536, 900, map[string]string{
			config.EnvVault: "bucketvault-vault-123456789012-us-east-1", config.EnvConcurrency: "32"}},
	}
	ids := s.ofType("AWS::Lambda::Function")
	if len(ids) != len(want) {
		t.Fatalf("functions %v", ids)
	}
	for _, id := range ids {
		p := s.props(t, id)
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected function %s", id)
			continue
		}
		base := strings.TrimSuffix(id, "Function")
		for k, v := range map[string]string{
			"Runtime": "provided.al2023", "Architectures": `["arm64"]`, "Handler": "bootstrap",
			"TracingConfig": `{"Mode":"Active"}`, "Role": "GetAtt:" + base + "Role.Arn",
			"LoggingConfig": `{"ApplicationLogLevel":"INFO","LogFormat":"JSON","LogGroup":{"Ref":"` + base + `Logs"},"SystemLogLevel":"INFO"}`,
		} {
			if got := render(p[k]); got != v {
				t.Errorf("%s %s = %s, want %s", id, k, got, v)
			}
		}
		if p["MemorySize"] != w.memory || p["Timeout"] != w.timeout {
			t.Errorf("%s memory %v timeout %v, want %v %v", id, p["MemorySize"], p["Timeout"], w.memory, w.timeout)
		}
		vars, _ := p["Environment"].(map[string]any)["Variables"].(map[string]any)
		got := map[string]string{}
		for k, v := range vars {
			if !known[k] {
				t.Errorf("%s sets %s, which is not a shared/config constant", id, k)
			}
			got[k] = render(v)
		}
		if diff := cmp.Diff(w.env, got); diff != "" {
			t.Errorf("%s environment (-want +got):\n%s", id, diff)
		}
		if _, set := vars[config.EnvLogLevel]; set {
			t.Errorf("%s sets %s: Lambda sets it from LoggingConfig.ApplicationLogLevel", id, config.EnvLogLevel)
		}
		if got := render(s.props(t, base+"Logs")["RetentionInDays"]); got != "90" {
			t.Errorf("%sLogs retention %s days, want 90", base, got)
		}
	}
	if got := render(s.props(t, "RestoreFunction")["EphemeralStorage"]); got != `{"Size":10240}` {
		t.Errorf("restore ephemeral storage %s", got)
	}
}

// TestAssets: every function in the template has an asset directory with
// an executable linux/arm64 bootstrap, and its staged copy in the cloud
// assembly is the one the template names.
func TestAssets(t *testing.T) {
	if testing.Short() {
		t.Skip("-short synthesizes with placeholder bootstraps")
	}
	s := synth(t)
	for _, id := range s.main.ofType("AWS::Lambda::Function") {
		name := strings.ToLower(strings.TrimSuffix(id, "Function"))
		for _, dir := range []string{filepath.Join(s.assetDir, name), stagedAsset(t, s, id)} {
			path := filepath.Join(dir, "bootstrap")
			st, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
			if st.Mode()&0o111 == 0 {
				t.Errorf("%s: %s is not executable", id, path)
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Errorf("%s: %s is not an ELF binary: %v", id, path, err)
				continue
			}
			if f.Machine != elf.EM_AARCH64 {
				t.Errorf("%s: %s is built for %v, want arm64", id, path, f.Machine)
			}
			f.Close()
		}
	}
	if err := checkBootstrap(filepath.Join(s.assetDir, "missing")); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("a missing bootstrap gives %v, want advice to run make build", err)
	}
}

// stagedAsset is the cloud assembly directory of a function's code.
func stagedAsset(t *testing.T, s *synthesis, id string) string {
	t.Helper()
	key := render(s.main.props(t, id)["Code"].(map[string]any)["S3Key"])
	return filepath.Join(s.outDir, "asset."+strings.TrimSuffix(key, ".zip"))
}

func TestContinuousPath(t *testing.T) {
	s := synth(t).main
	c := s.config
	q := s.props(t, "JournalQueue")
	if vt := q["VisibilityTimeout"].(float64); vt < 6*float64(c.Journal.TimeoutSeconds) {
		t.Errorf("queue visibility timeout %v s < 6 x journal timeout %d s", vt, c.Journal.TimeoutSeconds)
	}
	if got := render(q["RedrivePolicy"]); got != `{"deadLetterTargetArn":{"Fn::GetAtt":["JournalDeadLetterQueue","Arn"]},"maxReceiveCount":5}` {
		t.Errorf("redrive policy %s", got)
	}
	dlq := s.props(t, "JournalDeadLetterQueue")
	for _, p := range []map[string]any{q, dlq} {
		if p["SqsManagedSseEnabled"] != true {
			t.Errorf("queue without SSE: %v", p)
		}
	}
	if dlq["MessageRetentionPeriod"] != float64(14*24*3600) {
		t.Errorf("dead-letter retention %v, want 14 days", dlq["MessageRetentionPeriod"])
	}
	cdkAssert(t, func() {
		s.assertion.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), &map[string]any{
			"FunctionName":                   map[string]any{"Ref": "JournalFunction"},
			"EventSourceArn":                 map[string]any{"Fn::GetAtt": []any{"JournalQueue", "Arn"}},
			"BatchSize":                      500,
			"MaximumBatchingWindowInSeconds": 20,
			"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
			"ScalingConfig":                  map[string]any{"MaximumConcurrency": 50},
		})
	})
	rule := s.props(t, "JournalRule")
	wantPattern := jsonOf(t, `{"source":["aws.s3"],"detail-type":["Object Created","Object Deleted","Object Tags Added","Object Tags Deleted",
		"Object ACL Updated","Object Storage Class Changed","Object Access Tier Changed","Object Restore Completed"],
		"detail":{"bucket":{"name":["photos","documents"]}}}`)
	if diff := cmp.Diff(wantPattern, rule["EventPattern"]); diff != "" {
		t.Errorf("event pattern (-want +got):\n%s", diff)
	}
	if rule["EventBusName"] != nil {
		t.Errorf("rule on bus %v, want the default bus", rule["EventBusName"])
	}
	targets := list0(rule["Targets"])
	if len(targets) != 1 {
		t.Fatalf("rule targets %v", targets)
	}
	tg := targets[0].(map[string]any)
	if render(tg["Arn"]) != "GetAtt:JournalQueue.Arn" || render(tg["DeadLetterConfig"]) != `{"Arn":{"Fn::GetAtt":["JournalDeadLetterQueue","Arn"]}}` {
		t.Errorf("rule target %s", render(tg))
	}
	// EventBridge may send to the queues, for this rule only.
	for _, id := range s.ofType("AWS::SQS::QueuePolicy") {
		for _, st := range statements(s.props(t, id)["PolicyDocument"]) {
			send := slices.Equal(st.Actions, []string{"sqs:SendMessage"}) ||
				slices.Equal(st.Actions, []string{"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"})
			if st.Effect == "Allow" && (!send ||
				st.Condition != `{"ArnEquals":{"aws:SourceArn":{"Fn::GetAtt":["JournalRule","Arn"]}}}`) {
				t.Errorf("%s: %+v", id, st)
			}
		}
	}
}

func TestSchedules(t *testing.T) {
	s := synth(t).main
	for id, fn := range map[string]string{"ReconcileSchedule": "ReconcileFunction", "ProtectSchedule": "ProtectFunction", "ExpireSchedule": "ExpireFunction"} {
		p := s.props(t, id)
		expr := map[string]string{"ReconcileSchedule": "rate(6 hours)", "ProtectSchedule": "rate(1 hour)", "ExpireSchedule": "cron(30 2 * * ? *)"}[id]
		tz := map[string]string{"ReconcileSchedule": "UTC", "ProtectSchedule": "UTC", "ExpireSchedule": "Europe/Paris"}[id]
		if p["ScheduleExpression"] != expr || p["ScheduleExpressionTimezone"] != tz || p["State"] != "ENABLED" || render(p["FlexibleTimeWindow"]) != `{"Mode":"OFF"}` {
			t.Errorf("%s: %s", id, render(p))
		}
		// The scheduled reconcile reads tags weekly by default.
		input := map[string]string{"ReconcileSchedule": `"{\"tagsEveryHours\":168}"`, "ExpireSchedule": `"{\"collectEveryHours\":24}"`}[id]
		if input == "" {
			input = `"{}"`
		}
		want := `{"Arn":{"Fn::GetAtt":["` + fn + `","Arn"]},"Input":` + input + `,"RetryPolicy":{"MaximumEventAgeInSeconds":3600,"MaximumRetryAttempts":3},"RoleArn":{"Fn::GetAtt":["` + id + `Role","Arn"]}}`
		if got := render(p["Target"]); got != want {
			t.Errorf("%s target %s, want %s", id, got, want)
		}
	}
	// Expiry's defaults (the variant and noPlan configure none): hourly,
	// collecting daily, UTC, 1024 MB; every stack expires, with or without
	// a backup plan.
	for name, st := range map[string]*stackUnderTest{"variant": synth(t).variant, "noPlan": synth(t).noPlan} {
		cdkAssert(t, func() {
			st.assertion.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), &map[string]any{
				"ScheduleExpression": "rate(1 hour)", "ScheduleExpressionTimezone": "UTC", "State": "ENABLED",
				"FlexibleTimeWindow": map[string]any{"Mode": "OFF"},
				"Target": map[string]any{
					"Arn":         map[string]any{"Fn::GetAtt": []any{"ExpireFunction", "Arn"}},
					"RoleArn":     map[string]any{"Fn::GetAtt": []any{"ExpireScheduleRole", "Arn"}},
					"Input":       `{"collectEveryHours":24}`,
					"RetryPolicy": map[string]any{"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
				},
			})
		})
		cdkAssert(t, func() {
			st.assertion.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
				"Role": map[string]any{"Fn::GetAtt": []any{"ExpireRole", "Arn"}}, "MemorySize": 1024, "Timeout": 900,
			})
		})
		if _, ok := st.resources()["ExpireErrorsAlarm"]; !ok {
			t.Errorf("%s: no ExpireErrorsAlarm", name)
		}
	}
}

func TestProtectCustomResource(t *testing.T) {
	s := synth(t).main
	cdkAssert(t, func() {
		s.assertion.HasResource(jsii.String("Custom::BucketvaultProtect"), &map[string]any{
			"Properties": map[string]any{
				"ServiceToken":   map[string]any{"Fn::GetAtt": []any{"ProtectFunction", "Arn"}},
				"ServiceTimeout": "600",
				"Buckets":        []any{"photos", "documents"},
			},
		})
	})
	// Buckets are protected only once the vault has its descriptor and the
	// path to the journal exists.
	deps := dependsOn(s.resource(t, "ProtectBuckets"))
	for _, id := range []string{"VaultDescriptor", "VaultBucket", "JournalQueue", "JournalRule"} {
		if !slices.Contains(deps, id) {
			t.Errorf("ProtectBuckets depends on %v, not on %s", deps, id)
		}
	}
}

// TestVaultDescriptorResource: every stack initializes its vault at
// deploy, through the protect function, once the bucket, its policy and its
// key exist, with the configured point-in-time window.
func TestVaultDescriptorResource(t *testing.T) {
	for name, st := range map[string]*stackUnderTest{"main": synth(t).main, "variant": synth(t).variant} {
		r := st.resource(t, "VaultDescriptor")
		if r["Type"] != protect.ResourceVault {
			t.Errorf("%s: VaultDescriptor is a %v, want %s", name, r["Type"], protect.ResourceVault)
		}
		want := `{"RetentionDays":35,"ServiceTimeout":"300","ServiceToken":{"Fn::GetAtt":["ProtectFunction","Arn"]}}`
		if got := render(r["Properties"]); got != want {
			t.Errorf("%s: properties %s, want %s", name, got, want)
		}
		if r["DeletionPolicy"] != nil && r["DeletionPolicy"] != "Delete" {
			t.Errorf("%s: deletion policy %v", name, r["DeletionPolicy"])
		}
		deps := dependsOn(r)
		wantDeps := []string{"VaultBucket", "VaultBucketPolicy"}
		if name == "main" {
			wantDeps = append(wantDeps, "VaultKey")
		}
		for _, id := range wantDeps {
			if !slices.Contains(deps, id) {
				t.Errorf("%s: VaultDescriptor depends on %v, not on %s", name, deps, id)
			}
		}
	}
}

func dependsOn(r map[string]any) []string {
	var out []string
	for _, d := range list0(r["DependsOn"]) {
		out = append(out, d.(string))
	}
	return out
}

// TestJournalDetailTypesDecode: the journal's decoder (shared/event)
// accepts every detail-type the rule routes to its queue, and records
// each as a change.
func TestJournalDetailTypesDecode(t *testing.T) {
	for _, dt := range JournalDetailTypes {
		t.Run(dt, func(t *testing.T) {
			detail := map[string]any{
				"version": "0", "bucket": map[string]any{"name": "photos"},
				"object":     map[string]any{"key": "a%2Fb+c", "version-id": "v1", "sequencer": "0066609F3A1C8E5D77", "size": 5, "etag": "e"},
				"request-id": "r", "requester": "123456789012",
			}
			switch dt {
			case "Object Deleted":
				detail["deletion-type"] = "Delete Marker Created"
			case "Object Storage Class Changed":
				detail["destination-storage-class"] = "GLACIER"
			case "Object Access Tier Changed":
				detail["destination-access-tier"] = "ARCHIVE_ACCESS"
			}
			doc, err := json.Marshal(map[string]any{
				"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": dt, "source": "aws.s3",
				"account": "123456789012", "time": "2026-03-01T12:00:00Z", "region": "us-east-1",
				"resources": []any{"arn:aws:s3:::photos"}, "detail": detail,
			})
			if err != nil {
				t.Fatal(err)
			}
			changes, err := event.Decode(doc)
			if err != nil {
				t.Fatalf("shared/event does not decode %q: %v", dt, err)
			}
			if len(changes) != 1 || changes[0].Bucket != "photos" || changes[0].Key != "a/b c" {
				t.Errorf("%q decodes to %+v", dt, changes)
			}
		})
	}
}

func TestAlarms(t *testing.T) {
	s := synth(t).main
	type alarm struct {
		Namespace, Metric, Statistic, Comparison string
		Dimensions                               string
		Threshold, Period                        float64
	}
	want := map[string]alarm{
		"DeadLetterAlarm": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold",
			`[{"Name":"QueueName","Value":{"Fn::GetAtt":["JournalDeadLetterQueue","QueueName"]}}]`, 0, 60},
		"JournalLagAlarm": {"bucketvault", "LagSeconds", "Maximum", "GreaterThanThreshold",
			`[{"Name":"Function","Value":"journal"},{"Name":"Vault","Value":"bucketvault-vault-123456789012-us-east-1"}]`, 600, 300},
		"QueueAgeAlarm": {"AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "GreaterThanThreshold",
			`[{"Name":"QueueName","Value":{"Fn::GetAtt":["JournalQueue","QueueName"]}}]`, 600, 300},
		"ReconcileErrorsAlarm": {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold", `[{"Name":"FunctionName","Value":{"Ref":"ReconcileFunction"}}]`, 0, 300},
		"ProtectErrorsAlarm":   {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold", `[{"Name":"FunctionName","Value":{"Ref":"ProtectFunction"}}]`, 0, 300},
		"DispatchErrorsAlarm":  {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold", `[{"Name":"FunctionName","Value":{"Ref":"DispatchFunction"}}]`, 0, 300},
		"ExpireErrorsAlarm":    {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold", `[{"Name":"FunctionName","Value":{"Ref":"ExpireFunction"}}]`, 0, 300},
		"SnapshotFailedAlarm": {"AWS/States", "ExecutionsFailed", "Sum", "GreaterThanThreshold",
			`[{"Name":"StateMachineArn","Value":{"Ref":"SnapshotStateMachine"}}]`, 0, 300},
		"SnapshotRuleDailyFailedAlarm": {"AWS/States", "ExecutionsFailed", "Sum", "GreaterThanThreshold",
			`[{"Name":"StateMachineArn","Value":{"Ref":"SnapshotRuleDailyStateMachine"}}]`, 0, 300},
		"SnapshotRuleEvery6HoursFailedAlarm": {"AWS/States", "ExecutionsFailed", "Sum", "GreaterThanThreshold",
			`[{"Name":"StateMachineArn","Value":{"Ref":"SnapshotRuleEvery6HoursStateMachine"}}]`, 0, 300},
		"RestoreFailedAlarm": {"AWS/States", "ExecutionsFailed", "Sum", "GreaterThanThreshold",
			`[{"Name":"StateMachineArn","Value":{"Ref":"RestoreStateMachine"}}]`, 0, 300},
		"RestoreTestFailedAlarm": {"AWS/States", "ExecutionsFailed", "Sum", "GreaterThanThreshold",
			`[{"Name":"StateMachineArn","Value":{"Ref":"RestoreTestStateMachine"}}]`, 0, 300},
		"VaultBucketChangeAlarm": {"AWS/Events", "TriggeredRules", "Sum", "GreaterThanThreshold",
			`[{"Name":"RuleName","Value":{"Ref":"VaultBucketChangeRule"}}]`, 0, 300},
		"VaultKeyChangeAlarm": {"AWS/Events", "TriggeredRules", "Sum", "GreaterThanThreshold",
			`[{"Name":"RuleName","Value":{"Ref":"VaultKeyChangeRule"}}]`, 0, 300},
	}
	ids := s.ofType("AWS::CloudWatch::Alarm")
	var wantIDs []string
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	sort.Strings(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("alarms %v, want %v", ids, wantIDs)
	}
	for id, w := range want {
		p := s.props(t, id)
		got := alarm{render(p["Namespace"]), render(p["MetricName"]), render(p["Statistic"]), render(p["ComparisonOperator"]),
			render(p["Dimensions"]), p["Threshold"].(float64), p["Period"].(float64)}
		if got != w {
			t.Errorf("%s = %+v, want %+v", id, got, w)
		}
		for _, k := range []string{"AlarmActions", "OKActions"} {
			if got := render(p[k]); got != `[{"Ref":"AlarmTopic"}]` {
				t.Errorf("%s %s = %s, want the alarm topic", id, k, got)
			}
		}
		if p["TreatMissingData"] != "notBreaching" {
			t.Errorf("%s treats missing data as %v", id, p["TreatMissingData"])
		}
	}
	cdkAssert(t, func() {
		s.assertion.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), &map[string]any{
			"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": map[string]any{"Ref": "AlarmTopic"},
		})
	})
	// The variant sends alarms to the topic it is given.
	v := synth(t).variant
	if got := render(v.props(t, "DeadLetterAlarm")["AlarmActions"]); got != `["arn:aws:sns:us-east-1:123456789012:ops-alarms"]` {
		t.Errorf("variant alarm actions %s", got)
	}
}

func TestTopicsRequireTLS(t *testing.T) {
	s := synth(t).main
	policies := s.ofType("AWS::SNS::TopicPolicy")
	if len(policies) != 2 {
		t.Fatalf("topic policies %v", policies)
	}
	for _, id := range policies {
		topics := list(s.props(t, id)["Topics"])
		want := []stmt{{Sid: "AllowPublishThroughSSLOnly", Effect: "Deny", Actions: []string{"sns:Publish"},
			Resources: topics, Condition: `{"Bool":{"aws:SecureTransport":"false"}}`}}
		if slices.Equal(topics, []string{"Ref:AlarmTopic"}) {
			// The vault's change rules, and no other EventBridge rule,
			// publish to the alarm topic (TestVaultAlarms).
			want = append(want, stmt{Sid: "VaultChangeRulesPublish", Effect: "Allow", Actions: []string{"sns:Publish"}, Resources: topics,
				Condition: `{"ArnEquals":{"aws:SourceArn":[{"Fn::GetAtt":["VaultBucketChangeRule","Arn"]},{"Fn::GetAtt":["VaultKeyChangeRule","Arn"]}]}}`})
		}
		if diff := cmp.Diff(want, statements(s.props(t, id)["PolicyDocument"])); diff != "" {
			t.Errorf("%s (-want +got):\n%s", id, diff)
		}
	}
}

func TestStackSettings(t *testing.T) {
	s := synth(t)
	if !*s.main.stack.TerminationProtection() {
		t.Error("the stack is not protected against deletion by default")
	}
	if *s.variant.stack.TerminationProtection() {
		t.Error("terminationProtection false is ignored")
	}
	outs, _ := s.main.template["Outputs"].(map[string]any)
	for _, o := range []string{"VaultBucketName", "VaultKeyArn", "RestoreFunctionName", "ProtectFunctionName", "ReconcileFunctionName", "ExpireFunctionName", "RestoreStateMachineArn", "RestoreTestStateMachineArn", "SnapshotStateMachineArn", "SnapshotFunctionName", "JournalQueueUrl", "JournalDeadLetterQueueUrl", "EventsTopicArn", "AlarmTopicArn"} {
		if _, ok := outs[o]; !ok {
			t.Errorf("no output %s", o)
		}
	}
}

// cdkAssert turns a failed awscdk assertion (a jsii panic) into a test
// failure.
func cdkAssert(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Error(r)
		}
	}()
	f()
}
