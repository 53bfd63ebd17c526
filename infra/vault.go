package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/vault"
)

// VaultProps configure a Vault.
type VaultProps struct {
	Config *Config
}

// Vault is the vault bucket and its customer managed key.
type Vault struct {
	constructs.Construct
	// Name is the bucket's name (known at synth, so IAM resources are
	// literal ARNs).
	Name string
	// Bucket is the vault bucket.
	Bucket awss3.Bucket
	// Policy is the bucket's policy (the vault lock).
	Policy awss3.BucketPolicy
	// Key encrypts the vault (created, or imported by ARN).
	Key awskms.IKey
	// DeployRoleARNs are the roles CloudFormation deploys the stack with,
	// exempt from the denies a stack update would meet.
	DeployRoleARNs []string
	// ExpireRoleARN is the role the vault lets delete object versions
	// (ExpireRoleName).
	ExpireRoleARN string
	arns          s3ARNs
}

// ExpireRoleNameFormat is the name (fmt: the stack's name, its region)
// the role of the expire (lifecycle) function must have: the vault's
// bucket policy lets that role, and no other principal, delete object
// versions (DenyDeletes). The expire function's GoFunction names its
// role ExpireRoleName(stackName, region) (GoFunctionProps.RoleName), so
// the exception and the role cannot drift. One exact name, not a pattern such as
// "<stack>-expire-*": a pattern would also exempt every other role anyone
// creates with a matching name. The region is in it because IAM role
// names are global to the account and a stack of one name may run in
// several regions.
const ExpireRoleNameFormat = "%s-expire-%s"

// maxRoleName is IAM's longest role name.
const maxRoleName = 64

// ExpireRoleName is the expire function's role name in a stack and region.
func ExpireRoleName(stackName, region string) string {
	return fmt.Sprintf(ExpireRoleNameFormat, stackName, region)
}

// Actions the vault lock denies (docs/deploy.md, "The vault lock").
var (
	// lockDestroyActions would destroy the vault or strip its protection
	// for good: only the break-glass role may call them.
	lockDestroyActions = []string{"s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:BypassGovernanceRetention"}
	// lockConfigActions change what protects the vault; a stack update
	// calls them (CloudFormation puts the bucket's policy, lifecycle,
	// versioning and Object Lock configuration it synthesizes), so the
	// deploy roles may call them too, and the break-glass role.
	// s3:PutLifecycleConfiguration also covers DeleteBucketLifecycle.
	lockConfigActions = []string{"s3:PutBucketPolicy", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration"}
	// keyDestroyActions make every object in the vault unreadable: a
	// disabled key decrypts nothing, a deleted one never again. Deleting
	// the key's alias does not: S3 names the key by its ARN (the bucket's
	// encryption and every object record it), so CloudFormation keeps
	// managing the alias.
	keyDestroyActions = []string{"kms:DisableKey", "kms:ScheduleKeyDeletion"}
	// keyPolicyActions would rewrite the key policy, denies included.
	// CloudFormation puts the key policy when it creates the key and at
	// every update that changes it, and KMS refuses a key policy that
	// would keep the principal putting it from putting the next one: the
	// deploy roles are exempt, or the stack could neither create nor
	// update the key.
	keyPolicyActions = []string{"kms:PutKeyPolicy"}
	// tierActions would move a vault object into or out of the cold tier
	// (coldLifecycle): tagging a version (PutObjectTagging with a version
	// id is s3:PutObjectVersionTagging) and removing tags. Only the
	// expire role may: it tags what only COLD recovery points reference,
	// and nothing untags. s3:PutObjectTagging (the current version, no
	// version id) stays allowed: the snapshot role's CopyObject with the
	// source's tags (TaggingDirective COPY) needs it.
	tierActions = []string{"s3:PutObjectVersionTagging", "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"}
)

// NewVault creates the vault bucket: SSE-KMS with a customer managed key
// (S3 Bucket Key on, so KMS sees one request per bucket key, not per
// object), versioning, Object Lock with a default retention, Block Public
// Access, TLS only, owner-enforced object ownership, and the vault lock: a
// bucket policy that
//   - denies deleting objects and versions to every principal but the
//     expire function's role (ExpireRoleName);
//   - denies tagging a version and removing tags (tierActions), which
//     would move data into or out of the cold tier, to every principal
//     but the expire function's role;
//   - keeps explicit retention within the lock's minimum and maximum,
//     but under scratch/, where it is at most scratchMaxRetentionDays
//     (and at most the maximum);
//   - denies deleting the bucket or its policy and bypassing governance
//     retention to all but the break-glass role (vault.breakGlassRoleArn;
//     unset: to everyone);
//   - denies putting the bucket's policy, lifecycle, versioning and
//     Object Lock configuration to all but the deploy roles and the
//     break-glass role;
//   - after the lock's grace time, denies changing the Object Lock
//     configuration and bypassing governance retention to everyone;
//
// a lifecycle that aborts incomplete multipart uploads, expires jobs'
// scratch files (scratchLifecycle) and moves the cold tier's data to the
// cold storage class (coldLifecycle); and, when the stack creates the key,
// a key policy that keeps the account's administration of the key (CDK's
// default) but denies disabling the key or scheduling its deletion to all
// but the break-glass role, and changing its policy to all but the deploy
// roles and the break-glass role. The bucket, its policy and a created
// key are retained when the stack is deleted.
func NewVault(scope constructs.Construct, id string, props *VaultProps) *Vault {
	c := props.Config
	// Children are made in self, the plain construct: jsii must not see
	// the Go struct that embeds it.
	self := constructs.NewConstruct(scope, jsii.String(id))
	v := &Vault{Construct: self, Name: c.Vault.BucketName}
	stack := awscdk.Stack_Of(scope)
	v.arns = s3ARNs{partition: *stack.Partition()}
	v.DeployRoleARNs = deployRoles(stack, c)
	v.ExpireRoleARN = fmt.Sprintf("arn:%s:iam::%s:role/%s", v.arns.partition, c.Account, ExpireRoleName(c.StackName, c.Region))
	var breakGlass []string
	if r := c.Vault.BreakGlassRoleARN; r != "" {
		breakGlass = []string{r}
	}
	deployers := append(slices.Clone(v.DeployRoleARNs), breakGlass...)

	if c.Vault.KMSKeyARN != "" {
		v.Key = awskms.Key_FromKeyArn(self, jsii.String("ImportedKey"), jsii.String(c.Vault.KMSKeyARN))
	} else {
		key := awskms.NewKey(self, jsii.String("Key"), &awskms.KeyProps{
			Description:       jsii.String(fmt.Sprintf("bucketvault: encrypts the vault bucket %s", c.Vault.BucketName)),
			Alias:             jsii.String("alias/bucketvault/" + c.Vault.BucketName),
			EnableKeyRotation: jsii.Bool(true),
			PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		})
		setLogicalID(key, "VaultKey")
		// CDK's default key policy lets the account administer the key
		// through IAM (the root principal, kms:*); these denies override
		// it for every principal, the root user included, but the roles
		// named.
		key.AddToResourcePolicy(denyAllBut("DenyKeyDisableAndDeletion", keyDestroyActions, []string{"*"}, breakGlass, nil), nil)
		key.AddToResourcePolicy(denyAllBut("DenyKeyPolicyChanges", keyPolicyActions, []string{"*"}, deployers, nil), nil)
		v.Key = key
	}

	lock := c.Vault.Lock
	days := awscdk.Duration_Days(jsii.Number(float64(lock.MinRetentionDays)))
	retention := awss3.ObjectLockRetention_Governance(days)
	if lock.Mode == "COMPLIANCE" {
		retention = awss3.ObjectLockRetention_Compliance(days)
	}
	v.Bucket = awss3.NewBucket(self, jsii.String("Bucket"), &awss3.BucketProps{
		BucketName:                 jsii.String(c.Vault.BucketName),
		Encryption:                 awss3.BucketEncryption_KMS,
		EncryptionKey:              v.Key,
		BucketKeyEnabled:           jsii.Bool(true),
		Versioned:                  jsii.Bool(true),
		ObjectLockEnabled:          jsii.Bool(true),
		ObjectLockDefaultRetention: retention,
		BlockPublicAccess:          awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:            awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:                 jsii.Bool(true),
		RemovalPolicy:              awscdk.RemovalPolicy_RETAIN,
		AutoDeleteObjects:          jsii.Bool(false),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("abort-incomplete-multipart-uploads"),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
		}, scratchLifecycle(c), coldLifecycle(c)},
		// S3's default, spelled out: objects under 128 KB never
		// transition (the cold tier leaves them in S3 Standard, where
		// they cost less than in Glacier Instant Retrieval's 128 KB
		// minimum or Deep Archive's 40 KB of overhead per object).
		TransitionDefaultMinimumObjectSize: awss3.TransitionDefaultMinimumObjectSize_ALL_STORAGE_CLASSES_128_K,
	})
	setLogicalID(v.Bucket, "VaultBucket")
	suppress(v.Bucket, nagAccessLogs, "The vault's request audit is CloudTrail data events for this bucket (an account trail's; docs/deploy.md, Least privilege), which name the IAM principal of every call and are delivered reliably; "+
		"server access logs are best-effort and would need a second bucket, outside the vault's lock.")

	bucket, objects := v.arns.bucket(v.Name), v.arns.objects(v.Name, "*")
	v.Bucket.AddToResourcePolicy(denyAllBut("DenyDeletes", []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}, []string{objects}, []string{v.ExpireRoleARN}, nil))
	// The cold tier's tag moves data (coldLifecycle): only expiry may put
	// a version's tags or remove tags.
	v.Bucket.AddToResourcePolicy(denyAllBut("DenyTierChanges", tierActions, []string{objects}, []string{v.ExpireRoleARN}, nil))
	// Explicit retention outside [min, max] days is refused (the default
	// retention applies to every version anyway), except below the
	// minimum under scratch/: scratch files carry a retention of their
	// own, shorter than the minimum (vault.ScratchRetention), and at most
	// scratchMaxRetentionDays there. The minimum's deny names what it
	// spares (NotResource), not what it covers, so an area the vault adds
	// later is covered.
	scratch := v.arns.objects(v.Name, keyScratch)
	v.Bucket.AddToResourcePolicy(denyAllButOutside("DenyRetentionBelowMinimum", []string{"s3:PutObjectRetention"}, []string{scratch}, nil, map[string]any{
		"NumericLessThan": map[string]any{"s3:object-lock-remaining-retention-days": strconv.Itoa(lock.MinRetentionDays)},
	}))
	v.Bucket.AddToResourcePolicy(denyAllBut("DenyScratchRetentionAboveAWeek", []string{"s3:PutObjectRetention"}, []string{scratch}, nil, map[string]any{
		"NumericGreaterThan": map[string]any{"s3:object-lock-remaining-retention-days": strconv.Itoa(scratchMaxRetentionDays)},
	}))
	if lock.MaxRetentionDays > 0 {
		v.Bucket.AddToResourcePolicy(denyAllBut("DenyRetentionAboveMaximum", []string{"s3:PutObjectRetention"}, []string{objects}, nil, map[string]any{
			"NumericGreaterThan": map[string]any{"s3:object-lock-remaining-retention-days": strconv.Itoa(lock.MaxRetentionDays)},
		}))
	}
	if t := lock.LockedAfter(); !t.IsZero() {
		// After the grace time nobody, the break-glass role and
		// deployments included, may change the lock configuration or
		// bypass governance retention: governance behaves as compliance.
		v.Bucket.AddToResourcePolicy(denyAllBut("DenyLockChangesAfterGraceTime", []string{"s3:PutBucketObjectLockConfiguration", "s3:BypassGovernanceRetention"}, []string{bucket, objects}, nil, map[string]any{
			"DateGreaterThan": map[string]any{"aws:CurrentTime": t.UTC().Format("2006-01-02T15:04:05Z")},
		}))
	}
	v.Bucket.AddToResourcePolicy(denyAllBut("DenyLockRemoval", lockDestroyActions, []string{bucket, objects}, breakGlass, nil))
	v.Bucket.AddToResourcePolicy(denyAllBut("DenyLockChanges", lockConfigActions, []string{bucket}, deployers, nil))
	// The policy outlives the stack, as the bucket does. It also keeps a
	// stack update that replaces the policy resource from deleting the old
	// one: CloudFormation would call DeleteBucketPolicy, which the policy
	// denies to the deploy roles.
	v.Policy = v.Bucket.Policy()
	v.Policy.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	setLogicalID(v.Policy, "VaultBucketPolicy")
	return v
}

// Scratch lifecycle: jobs' scratch files (scratch/: a snapshot job's
// working files, a compaction's progress) expire scratchDays(c) after they
// were written and their noncurrent versions scratchNoncurrentDays after
// that. In a vault with Object Lock each scratch version carries a
// retention of its own (vault.ScratchRetention, a day, in governance
// mode) in place of the vault's default, and the bucket policy refuses
// one above scratchMaxRetentionDays under scratch/: the retention has
// ended by the time the rule expires the version, whatever the mode and
// minimum of the lock.
const (
	scratchExpireDays       = 7
	scratchNoncurrentDays   = 1
	scratchMaxRetentionDays = scratchExpireDays
)

// scratchDays is how long scratch files live: a week, or a day more than
// the longest completion window of the plan's snapshot rules, so a job
// that may run that long keeps its working files until it ends.
func scratchDays(c *Config) int {
	days := scratchExpireDays
	for _, r := range snapshotRules(c) {
		days = max(days, int((r.CompletionWindow()+24*time.Hour-1)/(24*time.Hour))+1)
	}
	return days
}

// scratchLifecycle is the vault's one rule that removes versions, and
// only under scratch/: scratch files are what a job keeps while it runs
// (a compaction's progress, which a later step resumes from or ignores
// as stale), never what a restore reads, and nothing deletes them
// otherwise (only the expire function's role may delete, and it never
// deletes scratch/). A week is far longer than any job's step. S3
// Lifecycle removes a noncurrent version only once its retention has
// ended: a scratch version's own retention (at most
// scratchMaxRetentionDays), not the vault's default (docs/deploy.md).
func scratchLifecycle(c *Config) *awss3.LifecycleRule {
	return &awss3.LifecycleRule{
		Id:                          jsii.String("expire-scratch"),
		Prefix:                      jsii.String(strings.TrimSuffix(keyScratch, "*")),
		Expiration:                  awscdk.Duration_Days(jsii.Number(float64(scratchDays(c)))),
		NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(scratchNoncurrentDays)),
	}
}

// coldTierDays is when the cold tier's data transitions: at once. S3
// accepts 0 days for current and noncurrent transitions to GLACIER_IR,
// GLACIER and DEEP_ARCHIVE, and cfn-lint passes it (TestTemplateLint).
// S3 Lifecycle still acts only after the next midnight UTC, and
// asynchronously: a tagged version moves within a day or two. Expiry
// tags a data object only once every recovery point that references it
// has been COLD for vault.ColdSettle: the tag is the decision, the
// lifecycle only carries it out.
const coldTierDays = 0

// coldStorageClasses are VaultConfig.ColdStorageClass's values as CDK's.
var coldStorageClasses = map[string]func() awss3.StorageClass{
	ColdGlacierIR:   awss3.StorageClass_GLACIER_INSTANT_RETRIEVAL,
	ColdGlacier:     awss3.StorageClass_GLACIER,
	ColdDeepArchive: awss3.StorageClass_DEEP_ARCHIVE,
}

// coldLifecycle is the cold tier's rule: the data objects (data/) whose
// version expiry tagged vault.TierTag=vault.TierCold, current and
// noncurrent versions alike, move to vault.coldStorageClass. It never
// expires anything: a transition keeps the version, its bytes, ETag,
// tags and Object Lock retention; deleting is the expire function's,
// which follows references. The tag filter is on the version's own tags,
// so an untagged version under data/ never moves.
func coldLifecycle(c *Config) *awss3.LifecycleRule {
	class := coldStorageClasses[c.Vault.ColdStorageClass]()
	after := awscdk.Duration_Days(jsii.Number(coldTierDays))
	return &awss3.LifecycleRule{
		Id:                           jsii.String("cold-tier"),
		Prefix:                       jsii.String(strings.TrimSuffix(keyData, "*")),
		TagFilters:                   &map[string]any{vault.TierTag: vault.TierCold},
		Transitions:                  &[]*awss3.Transition{{StorageClass: class, TransitionAfter: after}},
		NoncurrentVersionTransitions: &[]*awss3.NoncurrentVersionTransition{{StorageClass: class, TransitionAfter: after}},
	}
}

// deployRoles are the roles CloudFormation deploys the stack with:
// vault.deployRoleArns, else the CloudFormation execution role of the
// stack's synthesizer (the CDK bootstrap's
// cdk-<qualifier>-cfn-exec-role-<account>-<region>, with the qualifier the
// app is synthesized with), which `cdk deploy` passes to CloudFormation:
// every resource operation of a deployment is that role's.
func deployRoles(stack awscdk.Stack, c *Config) []string {
	if len(c.Vault.DeployRoleARNs) > 0 {
		return c.Vault.DeployRoleARNs
	}
	syn, ok := stack.Synthesizer().(awscdk.DefaultStackSynthesizer)
	if !ok {
		panic(fmt.Sprintf("the stack's synthesizer names no CloudFormation execution role: set vault.deployRoleArns to the roles CloudFormation deploys %s with", c.StackName))
	}
	return []string{strings.ReplaceAll(*syn.CloudFormationExecutionRoleArn(), "${AWS::Partition}", *stack.Partition())}
}

// denyAllBut is a Deny of actions on resources for every principal (the
// account's root user included) but the IAM roles exempt, by
// aws:PrincipalArn: a role's ARN, whichever session uses it (the root
// user's is arn:<partition>:iam::<account>:root, a request of an AWS
// service has none, and neither is exempt). A role deleted and created
// again with the same name is exempt again, unlike a role named in a
// Principal element. No exempt roles: the Deny holds for everyone. more
// adds conditions.
func denyAllBut(sid string, actions, resources, exempt []string, more map[string]any) awsiam.PolicyStatement {
	props := denyProps(sid, actions, exempt, more)
	props.Resources = jsii.Strings(resources...)
	return awsiam.NewPolicyStatement(props)
}

// denyAllButOutside is denyAllBut on every resource but those of
// notResources (NotResource): every object of the bucket outside them,
// and the bucket.
func denyAllButOutside(sid string, actions, notResources, exempt []string, more map[string]any) awsiam.PolicyStatement {
	props := denyProps(sid, actions, exempt, more)
	props.NotResources = jsii.Strings(notResources...)
	return awsiam.NewPolicyStatement(props)
}

// denyProps are a Deny statement's properties but its resources.
func denyProps(sid string, actions, exempt []string, more map[string]any) *awsiam.PolicyStatementProps {
	cond := map[string]any{}
	for k, v := range more {
		cond[k] = v
	}
	if len(exempt) > 0 {
		cond["ArnNotLike"] = map[string]any{"aws:PrincipalArn": exempt}
	}
	props := &awsiam.PolicyStatementProps{
		Sid:        jsii.String(sid),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings(actions...),
	}
	if len(cond) > 0 {
		props.Conditions = &cond
	}
	return props
}

// KeyARN is the vault key's ARN (a token when the stack creates the key).
func (v *Vault) KeyARN() *string { return v.Key.KeyArn() }

// s3ARNs spells S3 ARNs in the stack's partition.
type s3ARNs struct{ partition string }

func (a s3ARNs) bucket(name string) string { return fmt.Sprintf("arn:%s:s3:::%s", a.partition, name) }

func (a s3ARNs) objects(bucket, pattern string) string {
	return fmt.Sprintf("arn:%s:s3:::%s/%s", a.partition, bucket, pattern)
}

// setLogicalID gives a construct's CloudFormation resource a fixed,
// readable logical id (stable across refactors of the construct tree).
func setLogicalID(c constructs.IConstruct, id string) {
	if r, ok := c.Node().DefaultChild().(awscdk.CfnResource); ok {
		r.OverrideLogicalId(jsii.String(id))
		return
	}
	panic(fmt.Sprintf("setLogicalID %s: %s has no CloudFormation resource", id, *c.Node().Path()))
}
