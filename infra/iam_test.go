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

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/vault"
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
	Sid          string
	Effect       string
	Actions      []string
	Resources    []string
	NotResources []string
	Condition    string `json:",omitempty"`
}

func statements(doc any) []stmt {
	var out []stmt
	d, _ := doc.(map[string]any)
	for _, s := range list0(d["Statement"]) {
		m := s.(map[string]any)
		st := stmt{Effect: render(m["Effect"]), Actions: list(m["Action"]), Resources: list(m["Resource"]), NotResources: list(m["NotResource"])}
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
	account   = "123456789012"
	vaultARN  = "arn:aws:s3:::bucketvault-vault-123456789012-us-east-1"
	sourceKey = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
	targetKey = "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
	eventBus  = "arn:aws:events:us-east-1:123456789012:event-bus/default"
	viaS3     = "s3.us-east-1.amazonaws.com"
)

func vaultKeys(keys ...string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = vaultARN + "/" + k
	}
	sort.Strings(out)
	return out
}

// cond spells a Condition as render does (JSON, keys sorted).
func cond(c map[string]map[string]any) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// inAccount is a Condition binding a statement to the test account
// (aws:ResourceAccount), with more conditions.
func inAccount(more map[string]map[string]any) string {
	c := map[string]map[string]any{"StringEquals": {"aws:ResourceAccount": account}}
	for op, kv := range more {
		if c[op] == nil {
			c[op] = map[string]any{}
		}
		for k, v := range kv {
			c[op][k] = v
		}
	}
	return cond(c)
}

// s3In is an Allow statement on S3 resources of the test account.
func s3In(sid string, actions, resources []string) stmt {
	sort.Strings(actions)
	return stmt{Sid: sid, Effect: "Allow", Actions: actions, Resources: resources, Condition: inAccount(nil)}
}

// viaS3For is the Condition of a KMS statement: through S3 in the test
// region, for objects of the buckets named.
func viaS3For(bucketARNs ...string) string {
	var ctx []any
	for _, b := range bucketARNs {
		ctx = append(ctx, b, b+"/*")
	}
	return cond(map[string]map[string]any{
		"StringEquals": {"kms:ViaService": viaS3},
		"StringLike":   {"kms:EncryptionContext:aws:s3:arn": ctx},
	})
}

// listVault lists the vault under the prefixes the role reads.
func listVault(prefixes ...string) stmt {
	p := make([]any, len(prefixes))
	for i, x := range prefixes {
		p[i] = x
	}
	return stmt{Sid: "ListVault", Effect: "Allow", Actions: []string{"s3:ListBucket", "s3:ListBucketVersions"}, Resources: []string{vaultARN},
		Condition: inAccount(map[string]map[string]any{"StringLike": {"s3:prefix": p}})}
}

// readVault reads every version of the vault keys named (a damaged current
// version is read from an older one).
func readVault(keys []string) stmt {
	return s3In("ReadVault", []string{"s3:GetObject", "s3:GetObjectVersion"}, keys)
}

var (
	xray = stmt{Effect: "Allow", Actions: []string{"xray:PutTelemetryRecords", "xray:PutTraceSegments"}, Resources: []string{"*"}}
	logs = func(fn string) stmt {
		return stmt{Sid: "Logs", Effect: "Allow", Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Resources: []string{"GetAtt:" + fn + "Logs.Arn"}}
	}
	readProtected = []stmt{
		s3In("ReadProtectedObjects", []string{
			"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
		}, []string{"arn:aws:s3:::documents/*", "arn:aws:s3:::photos/*"}),
		s3In("ListProtectedBuckets", []string{"s3:ListBucket", "s3:ListBucketVersions"}, []string{"arn:aws:s3:::documents", "arn:aws:s3:::photos"}),
	}
	abortVault     = s3In("AbortVaultCopies", []string{"s3:AbortMultipartUpload"}, vaultKeys("data/*"))
	useVaultKey    = stmt{Sid: "UseVaultKey", Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{"GetAtt:VaultKey.Arn"}, Condition: viaS3For(vaultARN)}
	decryptSources = stmt{Sid: "DecryptSourceObjects", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{sourceKey},
		Condition: viaS3For("arn:aws:s3:::photos", "arn:aws:s3:::documents")}
	publish = []stmt{
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

// TestRolePolicies pins every role's statements exactly: only the actions
// the function's code calls, on only what it touches, S3 in the stack's
// account only, the vault key through S3 for the vault only.
func TestRolePolicies(t *testing.T) {
	s := synth(t).main
	want := map[string][]stmt{
		"JournalRole": join(logs("Journal"), readProtected,
			// buckets/: is an event's bucket protected; reconcile/: the
			// completeness watermark (a listed key's purges date from it);
			// lock.json: the vault lock (vault.Open).
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "data/*", "reconcile/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "data/*", "reconcile/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("data/*", "journal/*")),
			abortVault, useVaultKey, decryptSources, xray,
			stmt{Effect: "Allow", Actions: []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}, Resources: []string{"GetAtt:JournalQueue.Arn"}},
		),
		"ReconcileRole": join(logs("Reconcile"), readProtected,
			// scratch/: the compaction's progress, read and written.
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "data/*", "reconcile/*", "scratch/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "data/*", "reconcile/*", "scratch/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("data/*", "journal/*", "runs/*", "reconcile/*", "scratch/*")),
			// Scratch writes carry their own short retention.
			s3In("SetScratchRetention", []string{"s3:PutObjectRetention"}, vaultKeys("scratch/*")),
			abortVault, useVaultKey, decryptSources, xray,
		),
		"ProtectRole": join(logs("Protect"),
			s3In("ConfigureProtectedBuckets", []string{"s3:GetBucketNotification", "s3:GetBucketVersioning", "s3:PutBucketNotification"}, []string{"arn:aws:s3:::documents", "arn:aws:s3:::photos"}),
			listVault("bucketvault.json", "lock.json", "buckets/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("buckets/*")),
			useVaultKey,
			// The descriptor: created only, never overwritten.
			stmt{Sid: "CreateVaultDescriptor", Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: vaultKeys("bucketvault.json"),
				Condition: inAccount(map[string]map[string]any{"Null": {"s3:if-none-match": "false"}})},
			xray,
		),
		"RestoreRole": join(logs("Restore"),
			// reconcile/: the completeness watermark; scratch/jobs/*/restore/*:
			// the state machine's work items and results, not the rest of
			// scratch/.
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "reconcile/*", "scratch/jobs/*/restore/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "reconcile/*", "scratch/jobs/*/restore/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("jobs/*", "scratch/jobs/*/restore/*")),
			// Scratch writes carry their own short retention.
			s3In("SetScratchRetention", []string{"s3:PutObjectRetention"}, vaultKeys("scratch/jobs/*/restore/*")),
			useVaultKey,
			s3In("ReadVaultDataTags", []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, vaultKeys("data/*")),
			// Data in an archive class (the cold tier) is requested back.
			s3In("ThawVaultData", []string{"s3:RestoreObject"}, vaultKeys("data/*")),
			// restoreTargets, and the restore tests' restore-test-* buckets.
			s3In("PrepareTargets", []string{"s3:CreateBucket", "s3:ListBucket", "s3:PutBucketVersioning"},
				[]string{"arn:aws:s3:::photos-restored*", "arn:aws:s3:::restore-test-*", "arn:aws:s3:::scratch-restore-?"}),
			s3In("WriteTargets", []string{
				"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionTagging",
				"s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging", "s3:PutObjectVersionAcl",
			}, []string{"arn:aws:s3:::photos-restored*/*", "arn:aws:s3:::restore-test-*/*", "arn:aws:s3:::scratch-restore-?/*"}),
			stmt{Sid: "UseTargetKeys", Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{targetKey},
				Condition: viaS3For("arn:aws:s3:::photos-restored*", "arn:aws:s3:::scratch-restore-?", "arn:aws:s3:::restore-test-*")},
			publish, xray,
		),
		"SnapshotRole": join(logs("Snapshot"),
			// The buckets the plan's selection can take (photos and
			// archive-*) and the protected ones (the on-demand snapshot's).
			s3In("ReadSnapshotObjects", []string{"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"},
				[]string{"arn:aws:s3:::archive-*/*", "arn:aws:s3:::documents/*", "arn:aws:s3:::photos/*"}),
			s3In("ListSnapshotBuckets", []string{"s3:GetBucketOwnershipControls", "s3:ListBucket", "s3:ListBucketVersions"},
				[]string{"arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos"}),
			// jobs/: the job's record; scratch/jobs/: its working files
			// (vault.JobScratchKey), not the rest of scratch/.
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "scratch/jobs/*/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "scratch/jobs/*/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("data/*", "snapshots/*", "jobs/*", "scratch/jobs/*/*")),
			s3In("SetScratchRetention", []string{"s3:PutObjectRetention"}, vaultKeys("scratch/jobs/*/*")),
			abortVault, useVaultKey,
			// A seal retains a data version repair wrote again with the
			// repair record that vouches for it.
			s3In("RetainVault", []string{"s3:GetObjectRetention", "s3:PutObjectRetention"}, vaultKeys("data/*", "repairs/*", "snapshots/*")),
			s3In("ReadVaultEncryption", []string{"s3:GetEncryptionConfiguration"}, []string{"arn:aws:s3:::bucketvault-vault-123456789012-us-east-1"}),
			s3In("TagVaultData", []string{"s3:PutObjectTagging"}, vaultKeys("data/*")),
			stmt{Sid: "DecryptSourceObjects", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{sourceKey},
				Condition: viaS3For("arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos")},
			publish, xray,
		),
		"DispatchRole": join(logs("Dispatch"),
			s3In("ListAllBuckets", []string{"s3:ListAllMyBuckets"}, []string{"*"}),
			s3In("ReadBucketSettings", []string{"s3:GetBucketTagging", "s3:GetBucketVersioning"},
				[]string{"arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos"}),
			// Is a bucket a vault: one HEAD of its descriptor, and a
			// listing with that key as the prefix (a missing descriptor
			// is then 404, not 403), on the same buckets.
			s3In("HeadVaultDescriptors", []string{"s3:GetObject"},
				[]string{"arn:aws:s3:::archive-*/bucketvault.json", "arn:aws:s3:::documents/bucketvault.json", "arn:aws:s3:::photos/bucketvault.json"}),
			stmt{Sid: "ListVaultDescriptors", Effect: "Allow", Actions: []string{"s3:ListBucket"},
				Resources: []string{"arn:aws:s3:::archive-*", "arn:aws:s3:::documents", "arn:aws:s3:::photos"},
				Condition: inAccount(map[string]map[string]any{"StringEquals": {"s3:prefix": "bucketvault.json"}})},
			stmt{Sid: "StartSnapshotJobs", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-daily",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-every-6-hours"}},
			xray,
		),
		"ExpireRole": join(logs("Expire"),
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "jobs/*", "scratch/*", "data/*", "repairs/*", "reconcile/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "jobs/*", "scratch/*", "data/*", "repairs/*", "reconcile/*")),
			// The journal index and fold output, a recovery point's
			// EXPIRED status, the compaction's progress.
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("journal/*", "runs/*", "snapshots/*", "scratch/*")),
			s3In("SetScratchRetention", []string{"s3:PutObjectRetention"}, vaultKeys("scratch/*")),
			useVaultKey,
			// Deletes: these five prefixes only (repair records go with
			// their data); never the descriptor, the lock, buckets/,
			// reconcile/, jobs/ or scratch/.
			s3In("DeleteVault", []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}, vaultKeys("data/*", "repairs/*", "journal/*", "runs/*", "snapshots/*")),
			s3In("RetainVault", []string{"s3:GetObjectRetention", "s3:PutObjectRetention"}, vaultKeys("data/*", "repairs/*", "journal/*", "runs/*")),
			// The cold tier's tag, on data/ versions only.
			s3In("TierVaultData", []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"}, vaultKeys("data/*")),
			xray,
		),
		"SnapshotStateMachineRole": {
			{Sid: "InvokeSnapshotFunction", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:SnapshotFunction.Arn"}},
			s3In("ReadItemsLists", []string{"s3:GetObject"}, vaultKeys("scratch/jobs/*/items.json")),
			{Sid: "DecryptItemsLists", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{"GetAtt:VaultKey.Arn"}, Condition: viaS3For(vaultARN)},
			{Sid: "StartMapRuns", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-daily",
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-every-6-hours"}},
			{Sid: "ManageMapRuns", Effect: "Allow", Actions: []string{"states:DescribeExecution", "states:StopExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot-daily/CopyBatches:*",
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot-every-6-hours/CopyBatches:*",
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-snapshot/CopyBatches:*"}},
			// Logging (level ALL) and tracing: CloudWatch Logs' log
			// delivery and X-Ray's actions take no narrower resource.
			// (@aws-cdk/aws-iam:minimizePolicies merges them).
			{Effect: "Allow", Actions: append(slices.Clone(logDelivery),
				"xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"), Resources: []string{"*"}},
		},
		"RestoreStateMachineRole": {
			{Sid: "InvokeRestoreFunction", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:RestoreFunction.Arn"}},
			s3In("ReadItemsLists", []string{"s3:GetObject"}, vaultKeys("scratch/jobs/*/restore/*/items.json")),
			{Sid: "DecryptItemsLists", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{"GetAtt:VaultKey.Arn"}, Condition: viaS3For(vaultARN)},
			{Sid: "StartMapRuns", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-restore"}},
			{Sid: "ManageMapRuns", Effect: "Allow", Actions: []string{"states:DescribeExecution", "states:StopExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-restore/RestoreBatches:*"}},
			{Effect: "Allow", Actions: append(slices.Clone(logDelivery),
				"xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"), Resources: []string{"*"}},
		},
		"RestoretestRole": join(logs("Restoretest"),
			// What a pick and a validation read of the vault (as the
			// restore reads it), the runs' records it writes, and the
			// verdicts validation functions put later.
			listVault("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "reconcile/*", "restore-tests/*", "restore-test-verdicts/*"),
			readVault(vaultKeys("bucketvault.json", "lock.json", "buckets/*", "journal/*", "runs/*", "snapshots/*", "data/*", "repairs/*", "jobs/*", "reconcile/*", "restore-tests/*", "restore-test-verdicts/*")),
			s3In("WriteVault", []string{"s3:PutObject"}, vaultKeys("restore-tests/*")),
			useVaultKey,
			s3In("ReadVaultDataTags", []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, vaultKeys("data/*")),
			// The sweeper lists the account's buckets.
			s3In("ListAllBuckets", []string{"s3:ListAllMyBuckets"}, []string{"*"}),
			// The restored buckets, and nothing else, it may delete.
			s3In("ManageTestBuckets", []string{"s3:DeleteBucket", "s3:GetEncryptionConfiguration", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListBucketVersions", "s3:PutBucketPublicAccessBlock"},
				[]string{"arn:aws:s3:::restore-test-*"}),
			s3In("ReadAndDeleteTestObjects", []string{
				"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
			}, []string{"arn:aws:s3:::restore-test-*/*"}),
			// Selections' tag conditions.
			s3In("ReadProtectedBucketTags", []string{"s3:GetBucketTagging"}, []string{"arn:aws:s3:::documents", "arn:aws:s3:::photos"}),
			stmt{Sid: "InvokeValidationFunctions", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"},
				Resources: []string{"arn:aws:lambda:us-east-1:123456789012:function:validate-restores"}},
			publish, xray,
		),
		"RestoreTestStateMachineRole": {
			{Sid: "InvokeRestoreTestFunction", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:RestoretestFunction.Arn"}},
			{Sid: "StartRestores", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-restore"}},
			{Sid: "FollowRestores", Effect: "Allow", Actions: []string{"states:DescribeExecution", "states:StopExecution"}, Resources: []string{
				"arn:aws:states:us-east-1:123456789012:execution:BucketVault-restore:*"}},
			{Sid: "ManageSyncRule", Effect: "Allow", Actions: []string{"events:DescribeRule", "events:PutRule", "events:PutTargets"}, Resources: []string{
				"arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"}},
			{Effect: "Allow", Actions: append(slices.Clone(logDelivery),
				"xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"), Resources: []string{"*"}},
		},
		"RestoreTestScheduleRole": {{Sid: "StartRestoreTests", Effect: "Allow", Actions: []string{"states:StartExecution"}, Resources: []string{
			"arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-restoretest"}}},
		"RestoreTestSweepScheduleRole": {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:RestoretestFunction.Arn"}}},
		"SnapshotScheduleRole":         {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:DispatchFunction.Arn"}}},
		"ReconcileScheduleRole":        {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:ReconcileFunction.Arn"}}},
		"ProtectScheduleRole":          {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:ProtectFunction.Arn"}}},
		"ExpireScheduleRole":           {{Sid: "Invoke", Effect: "Allow", Actions: []string{"lambda:InvokeFunction"}, Resources: []string{"GetAtt:ExpireFunction.Arn"}}},
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

// logDelivery are the CloudWatch Logs actions a state machine's logging
// needs, on Resource "*" only.
var logDelivery = []string{
	"logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
	"logs:GetLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:UpdateLogDelivery",
}

// conditionOf decodes a statement's Condition.
func conditionOf(t *testing.T, st stmt) map[string]map[string]any {
	t.Helper()
	c := map[string]map[string]any{}
	if st.Condition != "" {
		if err := json.Unmarshal([]byte(st.Condition), &c); err != nil {
			t.Fatalf("condition %s: %v", st.Condition, err)
		}
	}
	return c
}

// roleStatements are the statements of every role of a stack, by role.
func roleStatements(t *testing.T, s *stackUnderTest) map[string][]stmt {
	out := map[string][]stmt{}
	for _, role := range s.ofType("AWS::IAM::Role") {
		out[role] = rolePolicy(t, s, role)
	}
	return out
}

// TestS3InAccount: every statement that allows an S3 action holds only in
// the stack's account (aws:ResourceAccount): a bucket ARN names no
// account, so a name or pattern (a restore target's) would also match a
// same-named bucket of another account.
func TestS3InAccount(t *testing.T) {
	for name, st := range synth(t).stacks() {
		n := 0
		for role, stmts := range roleStatements(t, st) {
			for _, x := range stmts {
				if !slices.ContainsFunc(x.Actions, func(a string) bool { return strings.HasPrefix(a, "s3:") }) {
					continue
				}
				n++
				if got := conditionOf(t, x)["StringEquals"]["aws:ResourceAccount"]; got != account {
					t.Errorf("%s %s %q: aws:ResourceAccount %v, want %s (condition %s)", name, role, x.Sid, got, account, x.Condition)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no S3 statements", name)
		}
	}
}

// TestKeysViaS3: every statement that allows a KMS action lets S3 (in the
// stack's region) use the key, for objects of named buckets only.
func TestKeysViaS3(t *testing.T) {
	for name, st := range synth(t).stacks() {
		n := 0
		for role, stmts := range roleStatements(t, st) {
			for _, x := range stmts {
				if !slices.ContainsFunc(x.Actions, func(a string) bool { return strings.HasPrefix(a, "kms:") }) {
					continue
				}
				n++
				c := conditionOf(t, x)
				if got := c["StringEquals"]["kms:ViaService"]; got != viaS3 {
					t.Errorf("%s %s %q: kms:ViaService %v, want %s", name, role, x.Sid, got, viaS3)
				}
				if ctx := list0(c["StringLike"]["kms:EncryptionContext:aws:s3:arn"]); len(ctx) == 0 {
					t.Errorf("%s %s %q: no aws:s3:arn encryption context", name, role, x.Sid)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no KMS statements", name)
		}
	}
}

// TestVaultListedByPrefix: a role lists the vault (or its versions) only
// under prefixes it may read: every s3:prefix it may list is one of its
// ReadVault key patterns.
func TestVaultListedByPrefix(t *testing.T) {
	for name, st := range synth(t).stacks() {
		vault := "arn:aws:s3:::" + st.config.Vault.BucketName
		for role, stmts := range roleStatements(t, st) {
			var reads []string
			for _, x := range stmts {
				if x.Sid == "ReadVault" {
					reads = x.Resources
				}
			}
			for _, x := range stmts {
				if !slices.Contains(x.Resources, vault) ||
					!slices.Contains(x.Actions, "s3:ListBucket") && !slices.Contains(x.Actions, "s3:ListBucketVersions") {
					continue
				}
				prefixes := list0(conditionOf(t, x)["StringLike"]["s3:prefix"])
				if len(prefixes) == 0 {
					t.Errorf("%s %s %q lists the whole vault: %+v", name, role, x.Sid, x)
				}
				for _, p := range prefixes {
					if !slices.Contains(reads, vault+"/"+p.(string)) {
						t.Errorf("%s %s %q lists %v, which it may not read (%v)", name, role, x.Sid, p, reads)
					}
				}
			}
		}
	}
}

// TestSnapshotJobFiles: a snapshot job's working files are its scratch
// (vault.JobScratchKey, which the vault's lifecycle expires) and its
// record is under jobs/ (vault.JobKey). The snapshot function's role may
// read, write and list each of them (listing makes a missing one 404, not
// 403), and no other scratch file; the state machines' role reads a job's
// items list (the Distributed Map's ItemReader) and no other file of it.
func TestSnapshotJobFiles(t *testing.T) {
	const job = "backup-20261207T150349Z-c30a8061"
	itemsList := vault.JobScratchKey(job, "items.json")
	files := []string{vault.JobKey(job)}
	for _, name := range []string{"items.json", "scan.json", "items/000001.jsonl.zst", "items/000001.started",
		"fragments/000001.jsonl.zst", "fragments/000001.stats.json", "inventory/000001.jsonl.zst"} {
		files = append(files, vault.JobScratchKey(job, name))
	}
	for name, st := range synth(t).stacks() {
		bucket := "arn:aws:s3:::" + st.config.Vault.BucketName
		roles := roleStatements(t, st)
		for _, role := range []string{"SnapshotRole", "SnapshotStateMachineRole"} {
			if len(roles[role]) == 0 {
				t.Fatalf("%s: no %s statements", name, role)
			}
		}
		may := func(role, action, key string) bool {
			for _, x := range roles[role] {
				if x.Effect == "Allow" && slices.Contains(x.Actions, action) &&
					slices.ContainsFunc(x.Resources, func(r string) bool { return patternMatches(r, bucket+"/"+key) }) {
					return true
				}
			}
			return false
		}
		lists := func(role, key string) bool {
			for _, x := range roles[role] {
				if x.Effect != "Allow" || !slices.Contains(x.Actions, "s3:ListBucket") || !slices.Contains(x.Resources, bucket) {
					continue
				}
				for _, p := range list0(conditionOf(t, x)["StringLike"]["s3:prefix"]) {
					if patternMatches(p.(string), key) {
						return true
					}
				}
			}
			return false
		}
		for _, k := range files {
			if !may("SnapshotRole", "s3:GetObject", k) || !may("SnapshotRole", "s3:PutObject", k) || !lists("SnapshotRole", k) {
				t.Errorf("%s: the snapshot role may not read, write and list %s", name, k)
			}
			if got, want := may("SnapshotStateMachineRole", "s3:GetObject", k), k == itemsList; got != want {
				t.Errorf("%s: the state machines' role may read %s: %v, want %v", name, k, got, want)
			}
		}
		for _, k := range []string{"scratch/compact/photos.json", "scratch/items.json"} {
			if may("SnapshotRole", "s3:GetObject", k) || may("SnapshotRole", "s3:PutObject", k) {
				t.Errorf("%s: the snapshot role may read or write %s, scratch that is not a job's", name, k)
			}
		}
	}
}

// TestRolesHaveUsers: a role exists only with what assumes it (a
// function, a state machine, a schedule): the dispatch function and its
// role only with a backup plan rule that takes snapshots.
func TestRolesHaveUsers(t *testing.T) {
	for name, st := range synth(t).stacks() {
		users := map[string]bool{}
		for _, r := range st.resources() {
			res := r.(map[string]any)
			p, _ := res["Properties"].(map[string]any)
			switch res["Type"] {
			case "AWS::Lambda::Function":
				users[render(p["Role"])] = true
			case "AWS::StepFunctions::StateMachine":
				users[render(p["RoleArn"])] = true
			case "AWS::Scheduler::Schedule":
				users[render(p["Target"].(map[string]any)["RoleArn"])] = true
			}
		}
		for _, role := range st.ofType("AWS::IAM::Role") {
			if !users["GetAtt:"+role+".Arn"] {
				t.Errorf("%s: role %s is used by nothing", name, role)
			}
		}
		_, dispatch := st.resources()["DispatchFunction"]
		if want := len(snapshotRules(st.config)) > 0; dispatch != want {
			t.Errorf("%s: dispatch function deployed %v, want %v (snapshot rules: %d)", name, dispatch, want, len(snapshotRules(st.config)))
		}
	}
	if _, ok := synth(t).noPlan.resources()["DispatchRole"]; ok {
		t.Error("a stack without a backup plan has a dispatch role")
	}
	// A plan whose only rule is continuous has no snapshot rule either.
	on := true
	c := &Config{Plan: &plan.Plan{Rules: []plan.Rule{{RuleName: "pitr", EnableContinuousBackup: &on}}}}
	if got := deployedFunctions(c); slices.Contains(got, "dispatch") {
		t.Errorf("a continuous-only plan deploys %v", got)
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
		if strings.HasSuffix(role, "StateMachineRole") {
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

func init() {
	for _, a := range logDelivery {
		starOnly[a] = true
	}
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
	for _, st := range synth(t).stacks() {
		checkNoWildcards(t, st)
	}
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

// policyOwners maps each policy document of policyDocuments to whom it
// grants: the roles an AWS::IAM::Policy is attached to ("Ref:<role>"),
// the role of an inline policy, or the resource a resource policy is on.
func policyOwners(t *testing.T, s *stackUnderTest) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for id := range policyDocuments(t, s) {
		res, _, _ := strings.Cut(id, ".") // <role>.Policies[i], <key>.KeyPolicy
		switch typ := s.resource(t, res)["Type"]; {
		case typ == "AWS::IAM::Role":
			out[id] = []string{"Ref:" + res}
		case typ == "AWS::IAM::Policy":
			out[id] = list(s.props(t, id)["Roles"])
		default:
			out[id] = []string{id}
		}
	}
	return out
}

// vaultKinds are one key of each kind the vault holds
// (docs/vault-format.md), for policy decisions on its objects.
var vaultKinds = []string{
	"bucketvault.json", "lock.json", "buckets/photos.json", "reconcile/photos.json", "jobs/restore-1.json",
	"scratch/compact/photos.json", "scratch/jobs/backup-1/fragments/000001.jsonl.zst", "scratch/jobs/restore-1/restore/0a1b2c3d4e5f/items/00000000.seg", "data/0a1b2c", "journal/photos/ab/0001-x.jsonl.zst", "runs/photos/r/s.jsonl.zst",
	"snapshots/photos/rp-1.json",
}

// TestOnlyExpireDeletesVersions: over every policy document of every
// stack (identity policies, inline policies, bucket, queue, topic and key
// policies), the expire function's role is the only principal any Allow
// gives s3:DeleteObjectVersion, anywhere, or s3:DeleteObject on the vault
// (but the restore test role, on the restore-test-* buckets only:
// TestRestoreTestDeletesOnlyItsBuckets);
// and it may delete every version under data/, journal/, runs/ and
// snapshots/ of the vault, and nothing else of it.
func TestOnlyExpireDeletesVersions(t *testing.T) {
	for name, st := range synth(t).stacks() {
		vaultObjects := "arn:aws:s3:::" + st.config.Vault.BucketName + "/"
		onVault := func(resources []string) bool {
			return slices.ContainsFunc(resources, func(r string) bool {
				return slices.ContainsFunc(vaultKinds, func(k string) bool { return patternMatches(r, vaultObjects+k) })
			})
		}
		allows := func(x stmt, action string) bool {
			return slices.ContainsFunc(x.Actions, func(a string) bool { return patternMatches(a, action) })
		}
		owners := policyOwners(t, st)
		var expire []stmt
		for id, doc := range policyDocuments(t, st) {
			for _, x := range statements(doc) {
				if x.Effect != "Allow" {
					continue
				}
				deletes := allows(x, "s3:DeleteObjectVersion") || allows(x, "s3:DeleteObject") && onVault(x.Resources)
				if !deletes {
					continue
				}
				// The restore test role deletes the restored buckets
				// whole, and nothing else (TestRestoreTestDeletesOnlyItsBuckets).
				if slices.Equal(owners[id], []string{"Ref:RestoretestRole"}) && onlyRestoreTestBuckets(x.Resources) {
					continue
				}
				if !slices.Equal(owners[id], []string{"Ref:ExpireRole"}) {
					t.Errorf("%s: %s (for %v) allows deleting: %+v", name, id, owners[id], x)
					continue
				}
				expire = append(expire, x)
			}
		}
		deletable := map[string]bool{}
		for _, k := range vaultKinds {
			for _, x := range expire {
				if allows(x, "s3:DeleteObjectVersion") && allows(x, "s3:DeleteObject") &&
					slices.ContainsFunc(x.Resources, func(r string) bool { return patternMatches(r, vaultObjects+k) }) {
					deletable[k] = true
				}
			}
			kind, _, _ := strings.Cut(k, "/")
			want := slices.Contains([]string{"data", "journal", "runs", "snapshots"}, kind)
			if deletable[k] != want {
				t.Errorf("%s: the expire role may delete %s: %v, want %v", name, k, deletable[k], want)
			}
		}
	}
}

// vaultAllowed returns who(action, key): the owners (policyOwners) of
// the Allow statements of a stack's policy documents that give action on
// the vault's key, sorted.
func vaultAllowed(t *testing.T, st *stackUnderTest) func(action, key string) []string {
	t.Helper()
	vaultObjects := "arn:aws:s3:::" + st.config.Vault.BucketName + "/"
	owners := policyOwners(t, st)
	docs := policyDocuments(t, st)
	return func(action, key string) []string {
		var out []string
		for id, doc := range docs {
			for _, x := range statements(doc) {
				if x.Effect != "Allow" || !slices.ContainsFunc(x.Actions, func(a string) bool { return patternMatches(a, action) }) ||
					!slices.ContainsFunc(x.Resources, func(r string) bool { return patternMatches(r, vaultObjects+key) }) {
					continue
				}
				for _, o := range owners[id] {
					if !slices.Contains(out, o) {
						out = append(out, o)
					}
				}
			}
		}
		sort.Strings(out)
		return out
	}
}

// TestRetentionPermissions: over every policy document of every stack,
// who may set an object's retention (s3:PutObjectRetention), for each
// kind of vault key. Under scratch/ it is exactly who may write the key
// (a scratch write carries its own retention: infra's scratchRetention);
// elsewhere only the roles that extend what a recovery point references
// (retainVault): snapshot on data/ and snapshots/, expire on data/,
// journal/ and runs/.
func TestRetentionPermissions(t *testing.T) {
	expire, snapshot := "Ref:ExpireRole", "Ref:SnapshotRole"
	// Sorted, as who's are.
	retain := map[string][]string{"data": {expire, snapshot}, "snapshots": {snapshot}, "journal": {expire}, "runs": {expire}}
	for name, st := range synth(t).stacks() {
		who := vaultAllowed(t, st)
		for _, k := range vaultKinds {
			kind, _, _ := strings.Cut(k, "/")
			want := retain[kind]
			if kind == "scratch" {
				want = who("s3:PutObject", k)
				if len(want) == 0 {
					t.Errorf("%s: nobody writes %s", name, k)
				}
			}
			if got := who("s3:PutObjectRetention", k); !slices.Equal(got, want) {
				t.Errorf("%s: s3:PutObjectRetention on the vault's %s is allowed to %v, want %v", name, k, got, want)
			}
		}
		// The roles that write scratch files: reconcile and expire any
		// (a compaction's progress), snapshot its jobs' only.
		for k, want := range map[string][]string{
			"scratch/compact/photos.json":                      {"Ref:ExpireRole", "Ref:ReconcileRole"},
			"scratch/jobs/backup-1/fragments/000001.jsonl.zst": {"Ref:ExpireRole", "Ref:ReconcileRole", "Ref:SnapshotRole"},
		} {
			if got := who("s3:PutObjectRetention", k); !slices.Equal(got, want) {
				t.Errorf("%s: s3:PutObjectRetention on the vault's %s is allowed to %v, want %v", name, k, got, want)
			}
		}
	}
}

// TestColdTierPermissions: over every policy document of every stack,
// who may do what to the cold tier, for each kind of vault key: only the
// expire role may tag a version (s3:PutObjectVersionTagging), only the
// restore role may request an object back from an archive
// (s3:RestoreObject), both under data/ only; nobody may remove tags;
// s3:PutObjectTagging on data/ is the expire role's and the snapshot
// role's (CopyObject with the source's tags), and reading data/ tags the
// expire role's, the restore role's and the restore test role's.
func TestColdTierPermissions(t *testing.T) {
	expire, restore, snapshot := []string{"Ref:ExpireRole"}, []string{"Ref:RestoreRole"}, []string{"Ref:SnapshotRole"}
	for name, st := range synth(t).stacks() {
		who := vaultAllowed(t, st)
		// A restore test's validation reads what the restore reads: the
		// tags a data object carries.
		var restoreTest []string
		if st.config.RestoreTesting != nil {
			restoreTest = []string{"Ref:RestoretestRole"}
		}
		for _, k := range vaultKinds {
			data := strings.HasPrefix(k, "data/")
			only := func(roles ...[]string) []string {
				if !data {
					return nil
				}
				out := slices.Concat(roles...)
				sort.Strings(out)
				return out
			}
			for action, want := range map[string][]string{
				"s3:PutObjectVersionTagging":    only(expire),
				"s3:RestoreObject":              only(restore),
				"s3:DeleteObjectTagging":        nil,
				"s3:DeleteObjectVersionTagging": nil,
				"s3:PutObjectTagging":           only(expire, snapshot),
				"s3:GetObjectVersionTagging":    only(expire, restore, restoreTest),
				"s3:GetObjectTagging":           only(expire, restore, restoreTest),
			} {
				if got := who(action, k); !slices.Equal(got, want) {
					t.Errorf("%s: %s on the vault's %s is allowed to %v, want %v", name, action, k, got, want)
				}
			}
		}
	}
}

// TestDispatchRecognisesVaults: the dispatch role may HEAD the descriptor
// (bucketvault.json) of exactly the buckets its selections can take, and
// list those buckets only with that key as the prefix; with a selection
// by tags, of any bucket of the account. (The main stack's statements are
// pinned by TestRolePolicies.)
func TestDispatchRecognisesVaults(t *testing.T) {
	main := synth(t).main
	for _, tc := range []struct {
		name       string
		selections []plan.Selection
		buckets    []string
	}{
		{"named buckets and patterns", []plan.Selection{{SelectionName: "s", Resources: []string{"arn:aws:s3:::logs", "arn:aws:s3:::prod-*"}}},
			[]string{"arn:aws:s3:::logs", "arn:aws:s3:::media", "arn:aws:s3:::prod-*"}},
		{"by tags: any bucket", []plan.Selection{{SelectionName: "s", Resources: []string{"arn:aws:s3:::logs"},
			ListOfTags: []plan.Condition{{ConditionType: "STRINGEQUALS", ConditionKey: "Backup", ConditionValue: "daily"}}}},
			[]string{"arn:aws:s3:::*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *main.config
			c.ProtectedBuckets, c.Selections = []string{"media"}, tc.selections
			r := &FunctionResources{Config: &c, Vault: &Vault{Name: c.Vault.BucketName, arns: s3ARNs{partition: "aws"}}}
			// The role's policy as CloudFormation gets it: a role with
			// the statements, in a stack of its own.
			stack := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("DispatchVaultCheck"), nil)
			role := awsiam.NewRole(stack, jsii.String("Role"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil)})
			for _, s := range functionProps("dispatch", r).Policy.statements {
				role.AddToPolicy(s)
			}
			var tmpl struct {
				Resources map[string]struct {
					Type       string
					Properties map[string]any
				}
			}
			b, err := json.Marshal(assertions.Template_FromStack(stack, nil).ToJSON())
			if err == nil {
				err = json.Unmarshal(b, &tmpl)
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			for _, res := range tmpl.Resources {
				if res.Type == "AWS::IAM::Policy" {
					doc = res.Properties["PolicyDocument"]
				}
			}
			var descriptors []string
			for _, b := range tc.buckets {
				descriptors = append(descriptors, b+"/bucketvault.json")
			}
			want := []stmt{
				s3In("HeadVaultDescriptors", []string{"s3:GetObject"}, descriptors),
				{Sid: "ListVaultDescriptors", Effect: "Allow", Actions: []string{"s3:ListBucket"}, Resources: tc.buckets,
					Condition: inAccount(map[string]map[string]any{"StringEquals": {"s3:prefix": "bucketvault.json"}})},
			}
			var got []stmt
			for _, x := range statements(doc) {
				if x.Sid == "HeadVaultDescriptors" || x.Sid == "ListVaultDescriptors" {
					got = append(got, x)
				}
				// Nothing else of those buckets' objects.
				if x.Sid != "HeadVaultDescriptors" && slices.ContainsFunc(x.Actions, func(a string) bool { return strings.HasPrefix(a, "s3:GetObject") }) {
					t.Errorf("dispatch reads objects beyond the descriptors: %+v", x)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("vault check statements (-want +got):\n%s", diff)
			}
		})
	}
}
