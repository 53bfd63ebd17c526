package main

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/notify"
)

// EventSource is the source the functions' events on the default bus must
// carry (shared/notify's): their roles may put events with this source
// only.
const EventSource = notify.Source

// Functions are the functions the stack deploys, one per directory of
// functions/ (a test checks the two agree). A new function gets an entry
// in functionProps.
var Functions = []string{"journal", "reconcile", "protect", "restore", "snapshot", "dispatch"}

// Vault key layout (docs/vault-format.md): what each role may read and write.
const (
	keyDescriptor = "bucketvault.json"
	keyData       = "data/*"
	keyJournal    = "journal/*"
	keyBuckets    = "buckets/*"
	keyReconcile  = "reconcile/*"
	keyJobs       = "jobs/*"
	keyRuns       = "runs/*"
	keySnapshots  = "snapshots/*"
)

// FunctionResources are what the functions get permissions on.
type FunctionResources struct {
	Config      *Config
	Vault       *Vault
	EventsTopic awssns.ITopic
	// EventBusARN is the default event bus of the stack's account and region.
	EventBusARN string
}

// constructID is the function's construct id: "journal" -> "Journal".
func constructID(name string) string {
	return strings.ToUpper(name[:1]) + name[1:]
}

// functionProps is each function's size, environment and permissions: only
// the actions its code calls, on only the resources it touches.
func functionProps(name string, r *FunctionResources) *GoFunctionProps {
	c := r.Config
	p := &GoFunctionProps{
		Name:             name,
		AssetDir:         c.AssetDir,
		LogLevel:         c.LogLevel,
		LogRetentionDays: c.LogRetentionDays,
		Environment:      map[string]string{config.EnvVault: r.Vault.Name},
	}
	minutes := func(n float64) awscdk.Duration { return awscdk.Duration_Minutes(jsii.Number(n)) }
	switch name {
	case "journal":
		p.Description = "bucketvault journal: SQS batches of S3 events into the vault"
		p.MemoryMB = c.Journal.MemoryMB
		p.Timeout = awscdk.Duration_Seconds(jsii.Number(float64(c.Journal.TimeoutSeconds)))
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Statements = concat(
			r.readProtected(),
			r.vaultAccess(true, []string{keyDescriptor, keyBuckets, keyJournal, keyRuns, keyData}, []string{keyData, keyJournal}),
			r.sourceKeys(),
		)
	case "reconcile":
		p.Description = "bucketvault reconcile: fills the journal's gaps from ListObjectVersions, resuming across invocations"
		p.MemoryMB = c.Reconcile.MemoryMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvBuckets] = strings.Join(c.ProtectedBuckets, ",")
		p.Statements = concat(
			r.readProtected(),
			r.vaultAccess(true, []string{keyDescriptor, keyBuckets, keyJournal, keyRuns, keyData, keyReconcile}, []string{keyData, keyJournal, keyRuns, keyReconcile}),
			r.sourceKeys(),
		)
	case "protect":
		p.Description = "bucketvault protect: writes the vault descriptor, checks versioning and turns on EventBridge delivery of the protected buckets"
		p.MemoryMB = c.Protect.MemoryMB
		p.Timeout = minutes(5)
		p.Environment[config.EnvBuckets] = strings.Join(c.ProtectedBuckets, ",")
		p.Statements = concat(
			[]awsiam.PolicyStatement{allow("ConfigureProtectedBuckets",
				[]string{"s3:GetBucketVersioning", "s3:GetBucketNotification", "s3:PutBucketNotification"},
				r.protectedBuckets()...)},
			r.vaultAccess(false, []string{keyDescriptor, keyBuckets}, []string{keyBuckets}),
			r.createDescriptor(),
		)
	case "restore":
		p.Description = "bucketvault restore: a bucket, prefixes or keys as of a point in time, into an allowed target"
		p.MemoryMB = c.Restore.MemoryMB
		p.EphemeralStorageMB = c.Restore.EphemeralStorageMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvRestoreTargets] = strings.Join(c.RestoreTargets, ",")
		p.Environment[config.EnvEventsTopic] = *r.EventsTopic.TopicArn()
		p.Environment[config.EnvEventBus] = r.EventBusARN
		p.Statements = concat(
			r.vaultAccess(false, []string{keyDescriptor, keyBuckets, keyJournal, keyRuns, keySnapshots, keyData, keyJobs}, []string{keyJobs}),
			// A snapshot's data object carries its source's tags: a restore
			// copies them (TaggingDirective COPY) or reads them.
			[]awsiam.PolicyStatement{allow("ReadVaultDataTags", []string{"s3:GetObjectTagging"}, jsii.String(r.arns().objects(r.Vault.Name, keyData)))},
			r.writeTargets(),
			r.publishEvents(),
		)
	case "snapshot":
		p.Description = "bucketvault snapshot: the steps of the snapshot state machine (start, scan, copy, seal, notify, fail)"
		p.MemoryMB = c.Snapshot.MemoryMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvEventsTopic] = *r.EventsTopic.TopicArn()
		p.Environment[config.EnvEventBus] = r.EventBusARN
		p.Statements = concat(
			r.readSnapshotSources(),
			r.vaultAccess(true,
				[]string{keyDescriptor, keyBuckets, keyJournal, keyRuns, keySnapshots, keyData, keyJobs},
				[]string{keyData, keySnapshots, keyJobs}),
			// The copy carries the source's tags (TaggingDirective COPY).
			[]awsiam.PolicyStatement{allow("TagVaultData", []string{"s3:PutObjectTagging"}, jsii.String(r.arns().objects(r.Vault.Name, keyData)))},
			r.sourceKeys(),
			r.publishEvents(),
		)
	case "dispatch":
		p.Description = "bucketvault dispatch: a backup rule fired; resolves its selections and starts one snapshot execution per bucket"
		p.MemoryMB = 256
		p.Timeout = minutes(5)
		p.Statements = r.dispatchSnapshots()
	default:
		panic(fmt.Sprintf("function %q has no entry in functionProps", name))
	}
	return p
}

func concat(lists ...[]awsiam.PolicyStatement) []awsiam.PolicyStatement {
	var out []awsiam.PolicyStatement
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func (r *FunctionResources) arns() s3ARNs { return r.Vault.arns }

func (r *FunctionResources) protectedBuckets() []*string {
	var out []*string
	for _, b := range r.Config.ProtectedBuckets {
		out = append(out, jsii.String(r.arns().bucket(b)))
	}
	return out
}

// readProtected reads versions of the protected buckets: HeadObject
// (authorized by s3:GetObject and s3:GetObjectVersion), the copy source of
// CopyObject and UploadPartCopy, tags and ACLs of a version, and the
// listings of reconcile and of events without a version id. s3:ListBucket
// also makes a missing version answer 404 rather than 403, which the
// journal records as "gone" rather than "access denied".
func (r *FunctionResources) readProtected() []awsiam.PolicyStatement {
	var objects []*string
	for _, b := range r.Config.ProtectedBuckets {
		objects = append(objects, jsii.String(r.arns().objects(b, "*")))
	}
	return []awsiam.PolicyStatement{
		allow("ReadProtectedObjects", []string{
			"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:GetObjectAcl", "s3:GetObjectVersionAcl",
		}, objects...),
		allow("ListProtectedBuckets", []string{"s3:ListBucket", "s3:ListBucketVersions"}, r.protectedBuckets()...),
	}
}

// readSnapshotSources reads what a snapshot reads of the buckets it may
// back up (snapshotBuckets): the listing of every version (scan), whether
// the bucket uses ACLs (start: its ownership controls), and each version
// with its tags and ACL (copy: CopyObject and UploadPartCopy with the
// source's tags, GetObject of a small version, GetObjectTagging when a
// copy must set tags, GetObjectAcl where the bucket uses ACLs).
func (r *FunctionResources) readSnapshotSources() []awsiam.PolicyStatement {
	var buckets, objects []*string
	for _, b := range snapshotBuckets(r.Config, r.arns().partition) {
		buckets = append(buckets, jsii.String(r.arns().bucket(b)))
		objects = append(objects, jsii.String(r.arns().objects(b, "*")))
	}
	return []awsiam.PolicyStatement{
		allow("ReadSnapshotObjects", []string{"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}, objects...),
		allow("ListSnapshotBuckets", []string{"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketOwnershipControls"}, buckets...),
	}
}

// dispatchSnapshots is the dispatch function's access: resolve selections
// (ListBuckets, each candidate's tags and versioning) and start executions
// of the rules' state machines (not the on-demand one).
func (r *FunctionResources) dispatchSnapshots() []awsiam.PolicyStatement {
	c := r.Config
	var buckets []*string
	for _, b := range snapshotBuckets(c, r.arns().partition) {
		buckets = append(buckets, jsii.String(r.arns().bucket(b)))
	}
	out := []awsiam.PolicyStatement{
		allow("ListAllBuckets", []string{"s3:ListAllMyBuckets"}, jsii.String("*")),
		allow("ReadBucketSettings", []string{"s3:GetBucketTagging", "s3:GetBucketVersioning"}, buckets...),
	}
	arns := stateARNs{partition: r.arns().partition, region: c.Region, account: c.Account}
	var machines []*string
	if c.Plan != nil {
		for i := range c.Plan.Rules {
			if rule := &c.Plan.Rules[i]; !rule.Continuous() {
				machines = append(machines, jsii.String(arns.machine(snapshotMachineName(c.StackName, rule.RuleName))))
			}
		}
	}
	if len(machines) > 0 {
		out = append(out, allow("StartSnapshotJobs", []string{"states:StartExecution"}, machines...))
	}
	return out
}

// vaultAccess reads the vault keys in read, writes those in write (with the
// multipart-copy abort on data/ when copies is set), lists the vault (so a
// missing key is a 404), and uses the vault key.
func (r *FunctionResources) vaultAccess(copies bool, read, write []string) []awsiam.PolicyStatement {
	name := r.Vault.Name
	keys := func(patterns []string) []*string {
		var out []*string
		for _, p := range patterns {
			out = append(out, jsii.String(r.arns().objects(name, p)))
		}
		return out
	}
	out := []awsiam.PolicyStatement{
		allow("ListVault", []string{"s3:ListBucket"}, jsii.String(r.arns().bucket(name))),
		allow("ReadVault", []string{"s3:GetObject"}, keys(read)...),
		allow("WriteVault", []string{"s3:PutObject"}, keys(write)...),
	}
	if copies {
		out = append(out, allow("AbortVaultCopies", []string{"s3:AbortMultipartUpload"}, keys([]string{keyData})...))
	}
	return append(out, allow("UseVaultKey", []string{"kms:Decrypt", "kms:GenerateDataKey"}, r.Vault.KeyARN()))
}

func (r *FunctionResources) sourceKeys() []awsiam.PolicyStatement {
	if len(r.Config.SourceKMSKeyARNs) == 0 {
		return nil
	}
	return []awsiam.PolicyStatement{allow("DecryptSourceObjects", []string{"kms:Decrypt"}, strs(r.Config.SourceKMSKeyARNs...)...)}
}

// writeTargets is the restore function's access to the allowed targets:
// create and version a new target, list it (HeadBucket, the rollback
// listing), read the current version to skip identical objects and verify
// restored ones, write objects with tags and ACLs (CopyObject and the
// multipart copy), and put delete markers (rollback). Never
// s3:DeleteObjectVersion.
func (r *FunctionResources) writeTargets() []awsiam.PolicyStatement {
	var buckets, objects []*string
	for _, p := range r.Config.RestoreTargets {
		buckets = append(buckets, jsii.String(r.arns().bucket(p)))
		objects = append(objects, jsii.String(r.arns().objects(p, "*")))
	}
	out := []awsiam.PolicyStatement{
		allow("PrepareTargets", []string{"s3:ListBucket", "s3:CreateBucket", "s3:PutBucketVersioning"}, buckets...),
		allow("WriteTargets", []string{
			"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl", "s3:PutObjectVersionAcl",
			"s3:AbortMultipartUpload", "s3:DeleteObject",
		}, objects...),
	}
	if keys := r.Config.RestoreTargetKMSKeyARNs; len(keys) > 0 {
		out = append(out, allow("UseTargetKeys", []string{"kms:Decrypt", "kms:GenerateDataKey"}, strs(keys...)...))
	}
	return out
}

// createDescriptor lets the protect function write the vault's descriptor
// (the Custom::BucketvaultVault resource) only if it does not exist yet:
// S3 authorizes the write only with an If-None-Match header
// (s3:if-none-match present), so the role can create the descriptor and
// never overwrite it. Reading it and telling a missing key from a denied
// one are ReadVault and ListVault.
func (r *FunctionResources) createDescriptor() []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CreateVaultDescriptor"),
		Effect:     awsiam.Effect_ALLOW,
		Actions:    jsii.Strings("s3:PutObject"),
		Resources:  jsii.Strings(r.arns().objects(r.Vault.Name, keyDescriptor)),
		Conditions: &map[string]any{"Null": map[string]any{"s3:if-none-match": "false"}},
	})}
}

// publishEvents lets a function publish job events (shared/notify) to the
// topic and to the default event bus (with source EventSource only). Only
// functions that publish get it: restore and snapshot.
func (r *FunctionResources) publishEvents() []awsiam.PolicyStatement {
	put := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("PutJobEvents"),
		Effect:     awsiam.Effect_ALLOW,
		Actions:    jsii.Strings("events:PutEvents"),
		Resources:  jsii.Strings(r.EventBusARN),
		Conditions: &map[string]any{"StringEquals": map[string]any{"events:source": EventSource}},
	})
	return []awsiam.PolicyStatement{allow("PublishJobEvents", []string{"sns:Publish"}, r.EventsTopic.TopicArn()), put}
}
