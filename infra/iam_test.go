package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// render spells a template value as a string: literals as they are,
// {"Ref": X} as "Ref:X", {"Fn::GetAtt": [X, A]} as "GetAtt:X.A", joins
// concatenated, anything else as JSON.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if r, ok := x["Ref"].(string); ok && len(x) == 1 {
			return "Ref:" + r
		}
		if g, ok := x["Fn::GetAtt"].([]any); ok && len(x) == 1 && len(g) == 2 {
			return fmt.Sprintf("GetAtt:%v.%v", g[0], g[1])
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(x) == 1 && len(j) == 2 {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, render(p))
			}
			return strings.Join(parts, j[0].(string))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// list is a string or a list of values as sorted strings.
func list(v any) []string {
	var out []string
	switch x := v.(type) {
	case nil:
	case []any:
		for _, e := range x {
			out = append(out, render(e))
		}
	default:
		out = []string{render(x)}
	}
	sort.Strings(out)
	return out
}

// stmt is a policy statement in a comparable form.
type stmt struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []string
	Condition string `json:",omitempty"`
}

func statements(doc any) []stmt {
	var out []stmt
	d, _ := doc.(map[string]any)
	for _, s := range list0(d["Statement"]) {
		m := s.(map[string]any)
		st := stmt{Effect: render(m["Effect"]), Actions: list(m["Action"]), Resources: list(m["Resource"])}
		if sid, ok := m["Sid"].(string); ok {
			st.Sid = sid
		}
		if c, ok := m["Condition"]; ok {
			st.Condition = render(c)
		}
		out = append(out, st)
	}
	return out
}

func list0(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// rolePolicy is every statement of the identity policies attached to a
// role (AWS::IAM::Policy resources naming it, and its inline policies).
func rolePolicy(t *testing.T, s *stackUnderTest, role string) []stmt {
	t.Helper()
	var out []stmt
	for _, id := range s.ofType("AWS::IAM::Policy") {
		p := s.props(t, id)
		for _, r := range list(p["Roles"]) {
			if r == "Ref:"+role {
				out = append(out, statements(p["PolicyDocument"])...)
			}
		}
	}
	for _, p := range list0(s.props(t, role)["Policies"]) {
		out = append(out, statements(p.(map[string]any)["PolicyDocument"])...)
	}
	return out
}

const (
	vaultARN  = "arn:aws:s3:::bucketvault-vault-123456789012-us-east-1"
	sourceKey = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
	targetKey = "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
	eventBus  = "arn:aws:events:us-east-1:123456789012:event-bus/default"
)

func vaultKeys(keys ...string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = vaultARN + "/" + k
	}
	sort.Strings(out)
	return out
}

var (
	xray = stmt{Effect: "Allow", Actions: []string{"xray:PutTelemetryRecords", "xray:PutTraceSegments"}, Resources: []string{"*"}}
	logs = func(fn string) stmt {
		return stmt{Sid: "Logs", Effect: "Allow", Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Resources: []string{"GetAtt:" + fn + "Logs.Arn"}}
	}
	readProtected = []stmt{
		{Sid: "ReadProtectedObjects", Effect: "Allow", Actions: []string{
			"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
		}, Resources: []string{"arn:aws:s3:::documents/*", "arn:aws:s3:::photos/*"}},
		{Sid: "ListProtectedBuckets", Effect: "Allow", Actions: []string{"s3:ListBucket", "s3:ListBucketVersions"}, Resources: []string{"arn:aws:s3:::documents", "arn:aws:s3:::photos"}},
	}
	listVault      = stmt{Sid: "ListVault", Effect: "Allow", Actions: []string{"s3:ListBucket"}, Resources: []string{vaultARN}}
	abortVault     = stmt{Sid: "AbortVaultCopies", Effect: "Allow", Actions: []string{"s3:AbortMultipartUpload"}, Resources: vaultKeys("data/*")}
	useVaultKey    = stmt{Sid: "UseVaultKey", Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{"GetAtt:VaultKey.Arn"}}
	decryptSources = stmt{Sid: "DecryptSourceObjects", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{sourceKey}}
	publish        = []stmt{
		{Sid: "PublishJobEvents", Effect: "Allow", Actions: []string{"sns:Publish"}, Resources: []string{"Ref:EventsTopic"}},
		{Sid: "PutJobEvents", Effect: "Allow", Actions: []string{"events:PutEvents"}, Resources: []string{eventBus}, Condition: `{"StringEquals":{"events:source":"bucketvault"}}`},
	}
)

func join(parts ...any) []stmt {
	var out []stmt
	for _, p := range parts {
		switch x := p.(type) {
		case stmt:
			out = append(out, x)
		case []stmt:
			out = append(out, x...)
		}
	}
	return out
}

// TestRolePolicies pins every function role's statements exactly: only
// the actions the function's code calls, on only what it touches.
func TestRolePolicies(t *testing.T) {
	s := synth(t).main
	want := map[string][]stmt{
		"JournalRole": join(logs("Journal"), readProtected, listVault,
			stmt{Sid: "ReadVault", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("bucketvault.json", "buckets/*", "journal/*", "runs/*", "data/*")},
			stmt{Sid: "WriteVault", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("data/*", "journal/*")},
			abortVault, useVaultKey, decryptSources, xray,
			stmt{Effect: "Allow", Actions: []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}, Resources: []string{"GetAtt:JournalQueue.Arn"}},
		),
		"ReconcileRole": join(logs("Reconcile"), readProtected, listVault,
			stmt{Sid: "ReadVault", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("bucketvault.json", "buckets/*", "journal/*", "runs/*", "data/*", "reconcile/*")},
			stmt{Sid: "WriteVault", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("data/*", "journal/*", "runs/*", "reconcile/*")},
			abortVault, useVaultKey, decryptSources, xray,
		),
		"ProtectRole": join(logs("Protect"),
			stmt{Sid: "ConfigureProtectedBuckets", Effect: "Allow", Actions: []string{"s3:GetBucketNotification", "s3:GetBucketVersioning", "s3:PutBucketNotification"}, Resources: []string{"arn:aws:s3:::documents", "arn:aws:s3:::photos"}},
			listVault,
			stmt{Sid: "ReadVault", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("bucketvault.json", "buckets/*")},
			stmt{Sid: "WriteVault", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("buckets/*")},
			useVaultKey,
			// The descriptor: created only, never overwritten.
			stmt{Sid: "CreateVaultDescriptor", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("bucketvault.json"),
				Condition: `{"Null":{"s3:if-none-match":"false"}}`},
			xray,
		),
		"RestoreRole": join(logs("Restore"), listVault,
			stmt{Sid: "ReadVault", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("bucketvault.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "jobs/*")},
			stmt{Sid: "WriteVault", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("jobs/*")},
			useVaultKey,
			stmt{Sid: "ReadVaultDataTags", Effect: "Allow", Actions: []string{"s3:GetObjectTagging"}, Resources: vaultKeys("data/*")},
			stmt{Sid: "PrepareTargets", Effect: "Allow", Actions: []string{"s3:CreateBucket", "s3:ListBucket", "s3:PutBucketVersioning"}, Resources: []string{"arn:aws:s3:::photos-restored*", "arn:aws:s3:::scratch-restore-?"}},
			stmt{Sid: "WriteTargets", Effect: "Allow", Actions: []string{
				"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionTagging",
				"s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging", "s3:PutObjectVersionAcl",
			}, Resources: []string{"arn:aws:s3:::photos-restored*/*", "arn:aws:s3:::scratch-restore-?/*"}},
			stmt{Sid: "UseTargetKeys", Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{targetKey}},
			publish, xray,
		),
		"SnapshotRole": join(logs("Snapshot"),
			// The buckets the plan's selection can take (photos and
			// archive-*) and the protected ones (the on-demand snapshot's).
			stmt{Sid: "ReadSnapshotObjects", Effect: "Allow", Actions: []string{"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"},
				Resources: []string{"arn:aws:s3:::archive-*/*", "arn:aws:s3:::documents/*", "arn:aws:s3:::photos/*"}},
			stmt{Sid: "ListSnapshotBuckets", Effect: "Allow", Actions: []string{"s3:GetBucketOwnershipControls", "s3:ListBucket", "s3:ListBucketVersions"},
				Resources: []string{"arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos"}},
			listVault,
			stmt{Sid: "ReadVault", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("bucketvault.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "jobs/*")},
			stmt{Sid: "WriteVault", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("data/*", "snapshots/*", "jobs/*")},
			abortVault, useVaultKey,
			stmt{Sid: "TagVaultData", Effect: "Allow", Actions: []string{"s3:PutObjectTagging"}, Resources: vaultKeys("data/*")},
			decryptSources, publish, xray,
		),
		"DispatchRole": join(logs("Dispatch"),
			stmt{Sid: "ListAllBuckets", Effect: "Allow", Actions: []string{"s3:ListAllMyBuckets"}, Resources: []string{"*"}},
			stmt{Sid: "ReadBucketSettings", Effect: "Allow", Actions: []string{"s3:GetBucketTagging", "s3:GetBucketVersioning"},
				Resources: []string{"arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos"}},
			stmt{Sid: "StartSnapshotJobs", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-daily",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-every-6-hours"}},
			xray,
		),
		"SnapshotStateMachineRole": {
			{Sid: "InvokeSnapshotFunction", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:SnapshotFunction.Arn"}},
			{Sid: "ReadItemsLists", Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: vaultKeys("jobs/*/items.json")},
			{Sid: "DecryptItemsLists", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{"GetAtt:VaultKey.Arn"}},
			{Sid: "StartMapRuns", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-daily",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-every-6-hours"}},
			{Sid: "ManageMapRuns", Effect: "Allow", Actions: []string{"states:DescribeExecution", "states:StopExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot-daily/CopyBatches:*",
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot-every-6-hours/CopyBatches:*",
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot/CopyBatches:*"}},
			// Tracing (TracingEnabled): X-Ray's actions take no narrower
			// resource.
			{Effect: "Allow", Actions: []string{"xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}, Resources: []string{"*"}},
		},
		"SnapshotScheduleRole":  {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:DispatchFunction.Arn"}}},
		"ReconcileScheduleRole": {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:ReconcileFunction.Arn"}}},
		"ProtectScheduleRole":   {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:ProtectFunction.Arn"}}},
		"ExpiryRole":            nil, // the lifecycle function (a later issue) brings its permissions
	}
	roles := s.ofType("AWS::IAM::Role")
	var wantRoles []string
	for r := range want {
		wantRoles = append(wantRoles, r)
	}
	sort.Strings(wantRoles)
	if !slices.Equal(roles, wantRoles) {
		t.Fatalf("roles %v, want %v", roles, wantRoles)
	}
	for _, role := range roles {
		got := rolePolicy(t, s, role)
		if diff := cmp.Diff(want[role], got); diff != "" {
			t.Errorf("%s statements (-want +got):\n%s", role, diff)
		}
	}
	// Nothing in the restore role may delete a version, anywhere.
	for _, st := range rolePolicy(t, s, "RestoreRole") {
		if slices.Contains(st.Actions, "s3:DeleteObjectVersion") {
			t.Errorf("restore role has s3:DeleteObjectVersion: %+v", st)
		}
	}
}

func TestRoleTrust(t *testing.T) {
	s := synth(t).main
	for _, role := range s.ofType("AWS::IAM::Role") {
		trust := statements(s.props(t, role)["AssumeRolePolicyDocument"])
		if len(trust) != 1 {
			t.Fatalf("%s: %d trust statements", role, len(trust))
		}
		principal := render(s.props(t, role)["AssumeRolePolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)["Principal"])
		want := `{"Service":"lambda.amazonaws.com"}`
		if role == "SnapshotStateMachineRole" {
			want = `{"Service":"states.amazonaws.com"}`
			if trust[0].Condition != `{"StringEquals":{"aws:SourceAccount":"123456789012"}}` {
				t.Errorf("%s trust condition %s: want the account as aws:SourceAccount", role, trust[0].Condition)
			}
		}
		if strings.HasSuffix(role, "ScheduleRole") {
			want = `{"Service":"scheduler.amazonaws.com"}`
			if trust[0].Condition != `{"StringEquals":{"aws:SourceAccount":"123456789012"}}` {
				t.Errorf("%s trust condition %s: want the account as aws:SourceAccount", role, trust[0].Condition)
			}
		}
		if principal != want {
			t.Errorf("%s is assumed by %s, want %s", role, principal, want)
		}
	}
}

// starOnly are the actions that support no resource narrower than "*".
var starOnly = map[string]bool{
	"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true, "cloudwatch:PutMetricData": true,
	"xray:GetSamplingRules": true, "xray:GetSamplingTargets": true, "s3:ListAllMyBuckets": true,
}

// policyDocuments lists every IAM policy document in a template: identity
// policies, role inline policies, and resource policies.
func policyDocuments(t *testing.T, s *stackUnderTest) map[string]any {
	docs := map[string]any{}
	for id, r := range s.resources() {
		res := r.(map[string]any)
		p, _ := res["Properties"].(map[string]any)
		switch res["Type"] {
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy":
			docs[id] = p["PolicyDocument"]
		case "AWS::IAM::Role":
			for i, ip := range list0(p["Policies"]) {
				docs[fmt.Sprintf("%s.Policies[%d]", id, i)] = ip.(map[string]any)["PolicyDocument"]
			}
		case "AWS::KMS::Key":
			docs[id+".KeyPolicy"] = p["KeyPolicy"]
		case "AWS::Lambda::Permission":
			t.Errorf("%s: unexpected Lambda resource policy", id)
		}
	}
	return docs
}

// checkNoWildcards fails on an Allow statement with Action "*" or
// "<service>:*", or Resource "*" for an action that has a narrower
// resource. A KMS key policy's Resource "*" means the key itself, and its
// default statement gives the account (root) kms:*, which is what keeps a
// key manageable: both are allowed there.
func checkNoWildcards(t *testing.T, s *stackUnderTest) {
	for id, doc := range policyDocuments(t, s) {
		keyPolicy := strings.HasSuffix(id, ".KeyPolicy")
		for _, st := range statements(doc) {
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range st.Actions {
				if a == "*" || strings.HasSuffix(a, ":*") && !(keyPolicy && a == "kms:*") {
					t.Errorf("%s: statement %q allows %s", id, st.Sid, a)
				}
			}
			if slices.Contains(st.Resources, "*") && !keyPolicy {
				for _, a := range st.Actions {
					if !starOnly[a] {
						t.Errorf("%s: statement %q allows %s on Resource \"*\"", id, st.Sid, a)
					}
				}
			}
		}
	}
}

func TestNoWildcards(t *testing.T) {
	s := synth(t)
	checkNoWildcards(t, s.main)
	checkNoWildcards(t, s.variant)
}

// TestFunctionsMatchDirectories: every directory of functions/ is deployed,
// and nothing else is.
func TestFunctionsMatchDirectories(t *testing.T) {
	ents, err := os.ReadDir("../functions")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join("../functions", e.Name(), "main.go")); e.IsDir() && err == nil {
			dirs = append(dirs, e.Name())
		}
	}
	got := append([]string(nil), Functions...)
	sort.Strings(got)
	if !slices.Equal(got, dirs) {
		t.Errorf("infra deploys %v; functions/ has %v", got, dirs)
	}
}
