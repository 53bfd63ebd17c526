package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// EventSource is the source the functions' events on the default bus must
// carry (shared/notify's): their roles may put events with this source
// only.
const EventSource = notify.Source

// Functions are the functions the stack deploys, one per directory of
// functions/ (a test checks the two agree). A new function gets an entry
// in functionProps.
var Functions = []string{"journal", "reconcile", "protect", "restore", "snapshot", "dispatch", "expire", "restoretest"}

// deployedFunctions are the functions a configuration deploys, each with
// its own role: all of Functions, except dispatch without a backup plan
// rule that takes snapshots (dispatch's only caller is such a rule's
// schedule) and restoretest without restoreTesting (its callers are the
// restore test state machine and the sweeper's schedule), so a role exists
// only with a function that uses it.
func deployedFunctions(c *Config) []string {
	var out []string
	for _, name := range Functions {
		if name == "dispatch" && len(snapshotRules(c)) == 0 || name == "restoretest" && c.RestoreTesting == nil {
			continue
		}
		out = append(out, name)
	}
	return out
}

// restoreTestTargets is the bucket name pattern of every bucket a restore
// test restores into (restoretest.TargetPrefix, then a random name).
const restoreTestTargets = restoretest.TargetPrefix + "*"

// restoreTargets are the bucket patterns the restore function may write
// to: restoreTargets, and the restore tests' buckets when restore testing
// is configured (the restore state machine restores each test).
func restoreTargets(c *Config) []string {
	out := slices.Clone(c.RestoreTargets)
	if c.RestoreTesting != nil && !slices.Contains(out, restoreTestTargets) {
		out = append(out, restoreTestTargets)
	}
	return out
}

// Vault key layout (docs/vault-format.md): what each role may read and write.
const (
	keyDescriptor = vault.DescriptorKey
	// keyLock is the vault lock record (shared/vault's LockKey), which
	// vault.Open reads: every role that opens the vault reads it, and a
	// missing one must read as 404 (ListVault covers it as a prefix).
	keyLock = vault.LockKey
	// keyScratch holds jobs' scratch files (compaction progress), which
	// the vault's lifecycle expires (NewVault).
	keyScratch   = vault.PatternScratch
	keyData      = vault.PatternData
	keyJournal   = vault.PatternJournal
	keyBuckets   = vault.PatternBuckets
	keyReconcile = vault.PatternReconcile
	keyJobs      = vault.PatternJobs
	keyRuns      = vault.PatternRuns
	keySnapshots = vault.PatternSnapshots
	// keyRestoreTests are restore test runs' records; keyVerdicts the
	// verdicts validation functions report for them later.
	keyRestoreTests = vault.PatternRestoreTests
	keyVerdicts     = vault.PatternRestoreTestVerdicts
	// keyRepairs are the repair records that vouch for data versions
	// repair wrote again (vault.RepairRecordKey): a role that reads data
	// reads them too (vault.FindData follows them).
	keyRepairs = vault.PatternRepairs
)

// Key patterns shared/vault builds (a "*" for what only run time names).
var (
	// keyJobScratch is every job's working files (vault.JobScratchKey:
	// scratch/jobs/<job>/<name>, under keyScratch, which the vault's
	// lifecycle expires): a snapshot's items list, scan progress, work
	// items, started markers, fragments and inventory runs. The job's
	// record stays under keyJobs.
	keyJobScratch = vault.JobScratchKey("*", "*")
	// keyItemsList is the items list of every snapshot job, which its
	// state machine's Distributed Map ItemReader reads.
	keyItemsList = vault.SnapshotItemsListKey("*")
	// keyRestoreScratch is the working files of every restore run by the
	// restore state machine (restore's scratch: scratch/jobs/<job>/
	// restore/<run>/...): its work items and delete-marker items, the
	// items list, begun markers and the items' results. A restore job
	// reads and writes no other scratch.
	keyRestoreScratch = vault.JobScratchKey("*", "restore/*")
	// keyRestoreItemsList is the items list of every restore run, which
	// the restore state machine's Distributed Map ItemReader reads.
	keyRestoreItemsList = vault.RestoreScratch{Job: "*", Run: "*"}.ItemsList()
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
// the actions its code calls, on only the resources it touches, in only the
// stack's account.
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
	pol := &p.Policy
	switch name {
	case "journal":
		p.Description = "bucketvault journal: SQS batches of S3 events into the vault"
		p.MemoryMB = c.Journal.MemoryMB
		p.Timeout = awscdk.Duration_Seconds(jsii.Number(float64(c.Journal.TimeoutSeconds)))
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		r.readProtected(pol)
		// buckets/: whether an event's bucket is protected (events of
		// others are refused); reconcile/: the completeness watermark, the
		// earliest a deletion a key's listing finds can date from.
		r.vaultAccess(pol, true, []string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keyData, keyReconcile}, []string{keyData, keyJournal})
		r.sourceKeys(pol, c.ProtectedBuckets)
	case "reconcile":
		p.Description = "bucketvault reconcile: fills the journal's gaps from ListObjectVersions, resuming across invocations"
		p.MemoryMB = c.Reconcile.MemoryMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvBuckets] = strings.Join(c.ProtectedBuckets, ",")
		r.readProtected(pol)
		// scratch/: the progress of the journal's compaction, which
		// reconcile runs (read to resume it, written as it goes).
		r.vaultAccess(pol, true, []string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keyData, keyReconcile, keyScratch},
			[]string{keyData, keyJournal, keyRuns, keyReconcile, keyScratch})
		r.sourceKeys(pol, c.ProtectedBuckets)
	case "protect":
		p.Description = "bucketvault protect: writes the vault descriptor, checks versioning and turns on EventBridge delivery of the protected buckets"
		p.MemoryMB = c.Protect.MemoryMB
		p.Timeout = minutes(5)
		p.Environment[config.EnvBuckets] = strings.Join(c.ProtectedBuckets, ",")
		pol.add(r.s3("ConfigureProtectedBuckets",
			[]string{"s3:GetBucketVersioning", "s3:GetBucketNotification", "s3:PutBucketNotification"},
			r.bucketARNs(c.ProtectedBuckets), nil))
		r.vaultAccess(pol, false, []string{keyDescriptor, keyLock, keyBuckets}, []string{keyBuckets})
		r.createDescriptor(pol)
	case "restore":
		p.Description = "bucketvault restore: a bucket, prefixes or keys as of a point in time, into an allowed target; and the restore state machine's steps (plan, batch, rollback, report, fail)"
		p.MemoryMB = c.Restore.MemoryMB
		p.EphemeralStorageMB = c.Restore.EphemeralStorageMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvRestoreTargets] = strings.Join(restoreTargets(c), ",")
		p.Environment[config.EnvEventsTopic] = *r.EventsTopic.TopicArn()
		p.Environment[config.EnvEventBus] = r.EventBusARN
		// reconcile/: the journal's completeness watermark
		// (vault.CompleteThrough), which a restore as of a time checks.
		// jobs/: the job's record and its mapping parts (a state
		// machine's batches write their own, jobs/<job>/mapping-i...);
		// the restore's scratch (keyRestoreScratch): a state machine's
		// plan writes work items there, its batches read them and write
		// their results, the report reads those. Scratch writes carry
		// their own retention (scratchRetention).
		r.vaultAccess(pol, false,
			[]string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keySnapshots, keyData, keyRepairs, keyJobs, keyReconcile, keyRestoreScratch},
			[]string{keyJobs, keyRestoreScratch})
		r.readVaultDataTags(pol)
		r.thawVaultData(pol)
		r.writeTargets(pol)
		r.publishEvents(pol)
	case "snapshot":
		p.Description = "bucketvault snapshot: the steps of the snapshot state machine (start, scan, copy, seal, notify, fail)"
		p.MemoryMB = c.Snapshot.MemoryMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvEventsTopic] = *r.EventsTopic.TopicArn()
		p.Environment[config.EnvEventBus] = r.EventBusARN
		r.readSnapshotSources(pol)
		// jobs/: the job's record; its working files are its scratch
		// (keyJobScratch), not the rest of scratch/.
		r.vaultAccess(pol, true,
			[]string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keySnapshots, keyData, keyRepairs, keyJobs, keyJobScratch},
			[]string{keyData, keySnapshots, keyJobs, keyJobScratch})
		// In a locked vault a seal retains the point's manifest and data
		// until its DeleteAt (and the repair record of a data version
		// repair wrote again, with it).
		r.retainVault(pol, keyData, keyRepairs, keySnapshots)
		// A seal records how the vault stores the point (its default
		// encryption: IsEncrypted, EncryptionKeyArn).
		pol.add(r.s3("ReadVaultEncryption", []string{"s3:GetEncryptionConfiguration"}, []*string{jsii.String(r.arns().bucket(r.Vault.Name))}, nil))
		// The copy carries the source's tags (TaggingDirective COPY).
		data := r.vaultKeys(keyData)
		pol.add(r.s3("TagVaultData", []string{"s3:PutObjectTagging"}, data, nil))
		pol.because(whyVaultKeys, data...)
		r.sourceKeys(pol, snapshotBuckets(c, r.arns().partition))
		r.publishEvents(pol)
	case "dispatch":
		p.Description = "bucketvault dispatch: a backup rule fired; resolves its selections and starts one snapshot execution per bucket"
		p.MemoryMB = 256
		p.Timeout = minutes(5)
		r.dispatchSnapshots(pol)
	case "expire":
		p.Description = "bucketvault expire: folds each journal past its window, deletes expired snapshot recovery points and collects unreferenced data; the only role the vault lets delete"
		p.MemoryMB = c.Expire.MemoryMB
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		// The vault's bucket policy lets this role, and no other
		// principal, delete: by this exact name.
		p.RoleName = ExpireRoleName(c.StackName, c.Region)
		// Reads (vault.Expire): the descriptor and the lock (Open, and
		// again before it deletes), buckets/ (the protected buckets and
		// their windows), journal/ and runs/ (the indexes, segments and
		// runs it folds and collects), snapshots/ (recovery points and
		// their manifests), jobs/ (running restores hold the fold back;
		// a format 1 vault's snapshot jobs kept their fragments there),
		// scratch/ (a compaction's progress names its shards; a running
		// snapshot job's fragments, under scratch/jobs/, reference data
		// no manifest does yet), data/ (the listing
		// the collection joins against; HEAD of a data object),
		// repairs/ (repair records, deleted and retained with their
		// data), reconcile/ (the journal's completeness watermark). Writes: a
		// fold's runs/ and journal/ index, scratch/ progress, and a
		// recovery point's EXPIRED (or COLD) status under snapshots/,
		// and the cold tier's tag on data/ versions (tierVaultData).
		r.vaultAccess(pol, false,
			[]string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keySnapshots, keyJobs, keyScratch, keyData, keyRepairs, keyReconcile},
			[]string{keyJournal, keyRuns, keySnapshots, keyScratch})
		r.deleteVault(pol, keyData, keyRepairs, keyJournal, keyRuns, keySnapshots)
		// In a locked vault, the retention of what is still referenced
		// is extended before it ends.
		r.retainVault(pol, keyData, keyRepairs, keyJournal, keyRuns)
		r.tierVaultData(pol)
	case "restoretest":
		p.Description = "bucketvault restore test: the restore test state machine's steps (resolve, start, validate, hook, await, cleanup, fail) and the daily sweep of restore-test-* buckets"
		p.MemoryMB = 1024
		p.Timeout = minutes(15)
		p.Environment[config.EnvConcurrency] = fmt.Sprint(c.Concurrency)
		p.Environment[config.EnvEventsTopic] = *r.EventsTopic.TopicArn()
		p.Environment[config.EnvEventBus] = r.EventBusARN
		// Reads what picking a recovery point and validating a restored
		// bucket against the vault read, as the restore does (buckets/,
		// journal/ and runs/, snapshots/, data/ and its tags, repairs/,
		// reconcile/:
		// the completeness watermark a pick stays before, jobs/: the
		// restore's record); writes the runs' records (restore-tests/);
		// reads the verdicts validation functions put later.
		r.vaultAccess(pol, false,
			[]string{keyDescriptor, keyLock, keyBuckets, keyJournal, keyRuns, keySnapshots, keyData, keyRepairs, keyJobs, keyReconcile, keyRestoreTests, keyVerdicts},
			[]string{keyRestoreTests})
		r.readVaultDataTags(pol)
		r.testRestores(pol)
		r.publishEvents(pol)
	default:
		panic(fmt.Sprintf("function %q has no entry in functionProps", name))
	}
	return p
}

// Why the functions' wildcard resources are needed (cdk-nag
// AwsSolutions-IAM5 suppressions; see policy.because).
const (
	whyVaultKeys    = "The vault's layout (docs/vault-format.md, shared/vault) keeps each kind of object under its own prefix, named by a content hash, a bucket, a segment, job or snapshot id that no deployment can know: the role may read and write only the prefixes its function's steps use, in the stack's vault, in the stack's account (aws:ResourceAccount)."
	whyProtected    = "A protected bucket is backed up whole: the journal and reconcile read any version of any object (and its tags and ACL) of the configured protectedBuckets, whose keys are the users' own; bound to the stack's account (aws:ResourceAccount)."
	whySnapshots    = "A snapshot backs up a bucket whole: it reads any version of any object (and its tags and ACL) of the buckets the backup plan's selections can take (their Resources patterns; every bucket when a selection goes by tags: docs/deploy.md, Permissions) and of the protected buckets; bound to the stack's account (aws:ResourceAccount)."
	whyTargets      = "A restore writes any key into a bucket the operator allowed: the configured restoreTargets patterns (a restore may create a new bucket matching one), bound to the stack's account by aws:ResourceAccount so a same-named bucket of another account is out of reach, and the restore function checks each target's owner too (ExpectedBucketOwner: its own account); shared/restore refuses any other target, and a pattern matching the vault is refused at synth."
	whyListAll      = "s3:ListAllMyBuckets supports no resource-level permissions (Resource \"*\" only): dispatch resolves selections by tags against the account's bucket list."
	whyVaultCheck   = "A selection never backs up a vault: dispatch recognises one by a HeadObject of its descriptor (bucketvault.json) on every bucket a selection takes, whose names are the selections' Resources patterns (any bucket when a selection goes by tags). The role may read only the key bucketvault.json of those buckets, and list them only with s3:prefix equal to it (so a missing descriptor answers 404, not 403); bound to the stack's account (aws:ResourceAccount)."
	whyListAllTests = "s3:ListAllMyBuckets supports no resource-level permissions (Resource \"*\" only): the restore test sweeper lists the account's buckets to find the restore-test-* buckets whose time is up."
	whyTestBuckets  = "A restore test restores into a new bucket named restore-test-<random> (restoretest.TargetPrefix), named at run time, and validates, locks down and finally deletes it whole (every key, every version): the role may do so on restore-test-* buckets only, in the stack's account (aws:ResourceAccount); it may delete no other bucket or object."
	whyDeletes      = "Expiry deletes every version of the vault objects no record references any more: data objects and the repair records that vouch for them, journal segments, runs and indexes, snapshot recovery points and their manifests, whose keys are content hashes, bucket names, segment, run and snapshot ids that no deployment can know. Only those five prefixes, only in the stack's vault and account (aws:ResourceAccount); the descriptor, the lock, buckets/, reconcile/, jobs/ and scratch/ are never deleted by it, and Object Lock keeps every version for its retention."
)

func (r *FunctionResources) arns() s3ARNs { return r.Vault.arns }

// s3 is an S3 statement bound to the stack's account (s3Grant).
func (r *FunctionResources) s3(sid string, actions []string, resources []*string, c conditions) awsiam.PolicyStatement {
	return s3Grant(r.Config.Account, sid, actions, resources, c)
}

// bucketARNs are the ARNs of buckets (names or IAM patterns).
func (r *FunctionResources) bucketARNs(buckets []string) []*string {
	var out []*string
	for _, b := range buckets {
		out = append(out, jsii.String(r.arns().bucket(b)))
	}
	return out
}

// objectARNs are the ARNs of every object of buckets (names or patterns).
func (r *FunctionResources) objectARNs(buckets []string) []*string {
	var out []*string
	for _, b := range buckets {
		out = append(out, jsii.String(r.arns().objects(b, "*")))
	}
	return out
}

// vaultKeys are the ARNs of the vault's key patterns.
func (r *FunctionResources) vaultKeys(patterns ...string) []*string {
	var out []*string
	for _, p := range patterns {
		out = append(out, jsii.String(r.arns().objects(r.Vault.Name, p)))
	}
	return out
}

// readProtected reads versions of the protected buckets: HeadObject
// (authorized by s3:GetObject and s3:GetObjectVersion), the copy source of
// CopyObject and UploadPartCopy, tags and ACLs of a version, and the
// listings of reconcile and of events without a version id. s3:ListBucket
// also makes a missing version answer 404 rather than 403, which the
// journal records as "gone" rather than "access denied".
func (r *FunctionResources) readProtected(p *policy) {
	objects := r.objectARNs(r.Config.ProtectedBuckets)
	p.add(
		r.s3("ReadProtectedObjects", []string{
			"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:GetObjectAcl", "s3:GetObjectVersionAcl",
		}, objects, nil),
		r.s3("ListProtectedBuckets", []string{"s3:ListBucket", "s3:ListBucketVersions"}, r.bucketARNs(r.Config.ProtectedBuckets), nil),
	)
	p.because(whyProtected, objects...)
}

// readSnapshotSources reads what a snapshot reads of the buckets it may
// back up (snapshotBuckets): the listing of every version (scan), whether
// the bucket uses ACLs (start: its ownership controls), and each version
// with its tags and ACL (copy: CopyObject and UploadPartCopy with the
// source's tags, GetObject of a small version, GetObjectTagging when a
// copy must set tags, GetObjectAcl where the bucket uses ACLs).
func (r *FunctionResources) readSnapshotSources(p *policy) {
	sources := snapshotBuckets(r.Config, r.arns().partition)
	buckets, objects := r.bucketARNs(sources), r.objectARNs(sources)
	p.add(
		r.s3("ReadSnapshotObjects", []string{"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}, objects, nil),
		r.s3("ListSnapshotBuckets", []string{"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketOwnershipControls"}, buckets, nil),
	)
	p.because(whySnapshots, append(objects, buckets...)...)
}

// dispatchSnapshots is the dispatch function's access: resolve selections
// (ListBuckets, each candidate's tags and versioning, and whether it is a
// vault: one HeadObject of its descriptor, shared/plan's isVault) and
// start executions of the rules' state machines (not the on-demand one).
//
// The vault check reads only the key bucketvault.json of the buckets the
// selections can take (s3:GetObject authorizes HeadObject), and lists
// those buckets only with s3:prefix equal to that key: without
// s3:ListBucket S3 answers a HEAD of a missing key 403, not 404, and
// every plain bucket would be reported unreadable.
func (r *FunctionResources) dispatchSnapshots(p *policy) {
	c := r.Config
	all := []*string{jsii.String("*")}
	sources := snapshotBuckets(c, r.arns().partition)
	buckets := r.bucketARNs(sources)
	var descriptors []*string
	for _, b := range sources {
		descriptors = append(descriptors, jsii.String(r.arns().objects(b, keyDescriptor)))
	}
	p.add(
		r.s3("ListAllBuckets", []string{"s3:ListAllMyBuckets"}, all, nil),
		r.s3("ReadBucketSettings", []string{"s3:GetBucketTagging", "s3:GetBucketVersioning"}, buckets, nil),
		r.s3("HeadVaultDescriptors", []string{"s3:GetObject"}, descriptors, nil),
		r.s3("ListVaultDescriptors", []string{"s3:ListBucket"}, buckets,
			conditions{"StringEquals": {"s3:prefix": keyDescriptor}}),
	)
	p.because(whyListAll, all...)
	p.because(whySnapshots, buckets...)
	p.because(whyVaultCheck, append(descriptors, buckets...)...)
	arns := stateARNs{partition: r.arns().partition, region: c.Region, account: c.Account}
	var machines []*string
	for _, rule := range snapshotRules(c) {
		machines = append(machines, jsii.String(arns.machine(snapshotMachineName(c.StackName, rule.RuleName))))
	}
	if len(machines) > 0 {
		p.add(allow("StartSnapshotJobs", []string{"states:StartExecution"}, machines...))
	}
}

// vaultAccess reads the vault keys in read, writes those in write (with the
// multipart-copy abort on data/ when copies is set, and the scratch
// files' own retention: scratchRetention), lists the vault, and uses the
// vault key through S3 for the vault's objects only.
//
// Reading is reading every version: a vault object whose current version
// is damaged, or behind a delete marker, is read from an older version
// that is sound (design.md's invariant 7; shared/vault's FindData and its
// readers of runs, segments and manifests list the object's versions and
// read one), which takes s3:GetObjectVersion and s3:ListBucketVersions.
//
// Listing (objects and versions) is limited to the prefixes the role
// reads (s3:prefix): the vault's listings (shared/vault: buckets/,
// journal/<bucket>/, runs/<bucket>/, snapshots/ and snapshots/<bucket>/,
// and the versions of one key) are all under them; and S3 answers a GET
// or HEAD of a missing key 404, not 403, when the role may list with
// s3:prefix equal to that key, which every read key matches. (Ceph's RGW
// copied that evaluation from S3: ceph/ceph#68577.)
func (r *FunctionResources) vaultAccess(p *policy, copies bool, read, write []string) {
	name := r.Vault.Name
	readKeys, writeKeys := r.vaultKeys(read...), r.vaultKeys(write...)
	p.add(
		r.s3("ListVault", []string{"s3:ListBucket", "s3:ListBucketVersions"}, []*string{jsii.String(r.arns().bucket(name))},
			conditions{"StringLike": {"s3:prefix": read}}),
		r.s3("ReadVault", []string{"s3:GetObject", "s3:GetObjectVersion"}, readKeys, nil),
		r.s3("WriteVault", []string{"s3:PutObject"}, writeKeys, nil),
	)
	p.because(whyVaultKeys, append(readKeys, writeKeys...)...)
	r.scratchRetention(p, write)
	if copies {
		p.add(r.s3("AbortVaultCopies", []string{"s3:AbortMultipartUpload"}, r.vaultKeys(keyData), nil))
	}
	p.add(kmsViaS3(r.Config.Region, "UseVaultKey", []string{"kms:Decrypt", "kms:GenerateDataKey"},
		[]*string{r.Vault.KeyARN()}, []string{r.arns().bucket(name)}))
}

// deleteVault lets the expire function delete every version of the vault
// objects under the key patterns named (DeleteObjects authorizes each key
// as s3:DeleteObject, each version as s3:DeleteObjectVersion). No other
// role may delete from the vault, by its policy and by the vault's
// bucket policy (DenyDeletes exempts only ExpireRoleName); Object Lock
// refuses a version whose retention has not ended, to this role too.
func (r *FunctionResources) deleteVault(p *policy, patterns ...string) {
	keys := r.vaultKeys(patterns...)
	p.add(r.s3("DeleteVault", []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}, keys, nil))
	p.because(whyDeletes, keys...)
}

// scratchRetention lets a role that writes scratch files (the patterns of
// write under keyScratch) set their retention, on those patterns only:
// in a vault with Object Lock each scratch write carries its own short
// retention in governance mode (vault.ScratchRetention, in place of the
// vault's default), and S3 authorizes a PutObject with Object Lock
// headers as s3:PutObjectRetention too. The bucket policy keeps that
// retention at most scratchMaxRetentionDays (DenyScratchRetentionAboveAWeek).
func (r *FunctionResources) scratchRetention(p *policy, write []string) {
	var scratch []string
	for _, w := range write {
		if patternMatches(keyScratch, w) {
			scratch = append(scratch, w)
		}
	}
	if len(scratch) == 0 {
		return
	}
	keys := r.vaultKeys(scratch...)
	p.add(r.s3("SetScratchRetention", []string{"s3:PutObjectRetention"}, keys, nil))
	p.because(whyVaultKeys, keys...)
}

// retainVault lets a role extend the S3 Object Lock retention of vault
// objects (vault.Retain: read the retention, extend it; never shorten,
// which the vault lock's mode forbids anyway): what a recovery point
// references stays locked while the point lives.
func (r *FunctionResources) retainVault(p *policy, patterns ...string) {
	keys := r.vaultKeys(patterns...)
	p.add(r.s3("RetainVault", []string{"s3:GetObjectRetention", "s3:PutObjectRetention"}, keys, nil))
	p.because(whyVaultKeys, keys...)
}

// readVaultDataTags lets a restore read the tags of the vault's data
// objects (of whichever version it reads, ReadVault): a copy carries them
// (TaggingDirective COPY).
func (r *FunctionResources) readVaultDataTags(p *policy) {
	data := r.vaultKeys(keyData)
	p.add(r.s3("ReadVaultDataTags", []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, data, nil))
	p.because(whyVaultKeys, data...)
}

// tierVaultData lets the expire function tag data object versions for
// the cold tier (vault.tagCold: GetObjectTagging, then PutObjectTagging
// of the tags with vault.TierTag added, each with the version's id, which
// S3 authorizes as s3:GetObjectVersionTagging and
// s3:PutObjectVersionTagging; without a version id, the null version, as
// s3:GetObjectTagging and s3:PutObjectTagging). Under data/ only: the
// vault's lifecycle moves what carries the tag (coldLifecycle), and the
// bucket policy denies tagging versions to every other principal
// (DenyTierChanges).
func (r *FunctionResources) tierVaultData(p *policy) {
	data := r.vaultKeys(keyData)
	p.add(r.s3("TierVaultData", []string{"s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"}, data, nil))
	p.because(whyVaultKeys, data...)
}

// thawVaultData lets a restore request the vault's data objects back
// from an archive storage class (the cold tier in Deep Archive or
// Glacier Flexible Retrieval: RestoreObject of a version, then HEAD,
// which ReadVault allows, until the copy is readable). Under data/ only.
func (r *FunctionResources) thawVaultData(p *policy) {
	data := r.vaultKeys(keyData)
	p.add(r.s3("ThawVaultData", []string{"s3:RestoreObject"}, data, nil))
	p.because(whyVaultKeys, data...)
}

// sourceKeys lets S3 decrypt objects of the source buckets (names or
// patterns) with the configured source keys, for a copy into the vault.
func (r *FunctionResources) sourceKeys(p *policy, buckets []string) {
	if len(r.Config.SourceKMSKeyARNs) == 0 {
		return
	}
	var arns []string
	for _, b := range buckets {
		arns = append(arns, r.arns().bucket(b))
	}
	p.add(kmsViaS3(r.Config.Region, "DecryptSourceObjects", []string{"kms:Decrypt"}, strs(r.Config.SourceKMSKeyARNs...), arns))
}

// writeTargets is the restore function's access to the allowed targets:
// create and version a new target, list it (HeadBucket, the rollback
// listing), read the current version to skip identical objects and verify
// restored ones, write objects with tags and ACLs (CopyObject and the
// multipart copy), and put delete markers (rollback). Never
// s3:DeleteObjectVersion. Every statement holds in the stack's account
// only: a target pattern names buckets, and bucket names are global.
func (r *FunctionResources) writeTargets(p *policy) {
	targets := restoreTargets(r.Config)
	buckets, objects := r.bucketARNs(targets), r.objectARNs(targets)
	p.add(
		r.s3("PrepareTargets", []string{"s3:ListBucket", "s3:CreateBucket", "s3:PutBucketVersioning"}, buckets, nil),
		r.s3("WriteTargets", []string{
			"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
			"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl", "s3:PutObjectVersionAcl",
			"s3:AbortMultipartUpload", "s3:DeleteObject",
		}, objects, nil),
	)
	p.because(whyTargets, append(buckets, objects...)...)
	if keys := r.Config.RestoreTargetKMSKeyARNs; len(keys) > 0 {
		var arns []string
		for _, b := range targets {
			arns = append(arns, r.arns().bucket(b))
		}
		p.add(kmsViaS3(r.Config.Region, "UseTargetKeys", []string{"kms:Decrypt", "kms:GenerateDataKey"}, strs(keys...), arns))
	}
}

// testRestores is the restore test function's access outside the vault:
// the restored buckets (restore-test-*, which the restore function
// creates and writes) to validate, lock down and delete; the account's
// bucket list (the sweeper looks for restore-test-* buckets); the
// protected buckets' tags (a selection's conditions); and the validation
// functions. It may delete nothing else: no other bucket, no object
// elsewhere.
func (r *FunctionResources) testRestores(p *policy) {
	c := r.Config
	all := []*string{jsii.String("*")}
	buckets, objects := r.bucketARNs([]string{restoreTestTargets}), r.objectARNs([]string{restoreTestTargets})
	p.add(
		r.s3("ListAllBuckets", []string{"s3:ListAllMyBuckets"}, all, nil),
		// Validation lists the bucket (ListObjectsV2) and asks its default
		// encryption (GetBucketEncryption); the bucket is made private
		// (PutPublicAccessBlock); deleting it lists every version and
		// incomplete multipart upload first.
		r.s3("ManageTestBuckets", []string{
			"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:GetEncryptionConfiguration", "s3:PutBucketPublicAccessBlock", "s3:DeleteBucket",
		}, buckets, nil),
		// Validation reads objects with their tags and ACLs; deleting the
		// bucket deletes every version and delete marker (DeleteObjects)
		// and aborts what a stopped restore left uploading.
		r.s3("ReadAndDeleteTestObjects", []string{
			"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:GetObjectAcl", "s3:GetObjectVersionAcl",
			"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
		}, objects, nil),
		r.s3("ReadProtectedBucketTags", []string{"s3:GetBucketTagging"}, r.bucketARNs(c.ProtectedBuckets), nil),
	)
	p.because(whyListAllTests, all...)
	p.because(whyTestBuckets, append(buckets, objects...)...)
	var fns []*string
	for _, pl := range c.RestoreTesting.Plans {
		if f := pl.ValidationFunctionARN; f != "" && !slices.ContainsFunc(fns, func(x *string) bool { return *x == f }) {
			fns = append(fns, jsii.String(f))
		}
	}
	if len(fns) > 0 {
		p.add(allow("InvokeValidationFunctions", []string{"lambda:InvokeFunction"}, fns...))
	}
}

// createDescriptor lets the protect function write the vault's descriptor
// (the Custom::BucketvaultVault resource) only if it does not exist yet:
// S3 authorizes the write only with an If-None-Match header
// (s3:if-none-match present), so the role can create the descriptor and
// never overwrite it. Reading it and telling a missing key from a denied
// one are ReadVault and ListVault.
func (r *FunctionResources) createDescriptor(p *policy) {
	p.add(r.s3("CreateVaultDescriptor", []string{"s3:PutObject"}, r.vaultKeys(keyDescriptor),
		conditions{"Null": {"s3:if-none-match": "false"}}))
}

// publishEvents lets a function publish job events (shared/notify) to the
// topic and to the default event bus (with source EventSource only). Only
// functions that publish get it: restore and snapshot.
func (r *FunctionResources) publishEvents(p *policy) {
	p.add(
		allow("PublishJobEvents", []string{"sns:Publish"}, r.EventsTopic.TopicArn()),
		grant("PutJobEvents", []string{"events:PutEvents"}, []*string{jsii.String(r.EventBusARN)},
			conditions{"StringEquals": {"events:source": EventSource}}),
	)
}
