package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// Context keys the app reads (cdk.json "context", or `cdk synth -c KEY=VALUE`).
const (
	// ContextConfig holds the configuration inline: a JSON object (or a
	// string of JSON, as -c passes it).
	ContextConfig = "bucketvault"
	// ContextConfigFile names a JSON file with the same schema; when set it
	// replaces the inline configuration whole.
	ContextConfigFile = "bucketvault:configFile"
)

// Config is the deployment's configuration. JSON names are what cdk.json
// uses; docs/deploy.md documents every field.
type Config struct {
	// Account and Region the stack deploys to. Required: synth must not
	// depend on credentials (CDK_DEFAULT_ACCOUNT/REGION fill them in when
	// the CLI has credentials and they are not set here).
	Account string `json:"account"`
	Region  string `json:"region"`
	// StackName is the CloudFormation stack's name (default BucketVault).
	StackName string `json:"stackName"`
	// TerminationProtection guards the stack against deletion (default
	// true; set false before tearing it down).
	TerminationProtection *bool `json:"terminationProtection"`

	Vault VaultConfig `json:"vault"`

	// ProtectedBuckets are the buckets backed up continuously (each must
	// have versioning Enabled).
	ProtectedBuckets []string `json:"protectedBuckets"`
	// SourceKMSKeyARNs are customer managed keys that encrypt objects in
	// the protected buckets: the journal and reconcile functions may
	// kms:Decrypt with them (a server-side copy reads the source).
	SourceKMSKeyARNs []string `json:"sourceKmsKeyArns"`
	// RestoreTargets are bucket name patterns (path.Match syntax, the
	// wildcards * and ? only) the restore function may write to.
	RestoreTargets []string `json:"restoreTargets"`
	// RestoreTargetKMSKeyARNs are keys that encrypt restore targets by
	// default (SSE-KMS): the restore function may use them to write.
	RestoreTargetKMSKeyARNs []string `json:"restoreTargetKmsKeyArns"`

	Alarms AlarmConfig `json:"alarms"`

	// LogLevel is the functions' application log level: DEBUG or INFO
	// (see validate for why not WARN or ERROR).
	LogLevel string `json:"logLevel"`
	// LogRetentionDays keeps each function's log group this long (one of
	// CloudWatch Logs' values; default 90).
	LogRetentionDays int `json:"logRetentionDays"`
	// Concurrency is BUCKETVAULT_CONCURRENCY: parallel S3 copies per
	// invocation (1–1000, default 16).
	Concurrency int `json:"concurrency"`

	Journal   JournalConfig   `json:"journal"`
	Reconcile ReconcileConfig `json:"reconcile"`
	Protect   ProtectConfig   `json:"protect"`
	Restore   RestoreConfig   `json:"restore"`
	// Expire is the expiry function: its schedule (default hourly), how
	// often it collects (default daily) and memory (default 1024 MB).
	Expire ExpireConfig `json:"expire"`

	// BackupPlanFile is the AWS Backup style plan (and selections) of the
	// snapshot path, any form plan.Load reads: every rule without
	// EnableContinuousBackup gets a schedule and a snapshot state machine.
	// Relative paths are relative to the directory cdk runs in.
	BackupPlanFile string `json:"backupPlanFile"`
	// Snapshot sizes the snapshot path.
	Snapshot SnapshotConfig `json:"snapshot"`
	// RestoreTesting runs AWS Backup restore testing plans on their
	// schedules (infra/restoretest.go); nil: no restore testing (no
	// restore test function, state machine or schedules).
	RestoreTesting *RestoreTestingConfig `json:"restoreTesting"`

	// Plan and Selections are BackupPlanFile's, loaded and validated by
	// Validate (nil and empty without a file).
	Plan       *plan.Plan       `json:"-"`
	Selections []plan.Selection `json:"-"`

	// AssetDir holds one directory per function with its bootstrap
	// (`make build` writes dist/lambda/<name>/bootstrap). Relative paths
	// are relative to the directory cdk runs in (the repository root).
	AssetDir string `json:"assetDir"`
}

// VaultConfig is the vault bucket and its key and lock.
type VaultConfig struct {
	// BucketName is the vault bucket's name (required; the bucket is
	// created by the stack and retained when the stack is deleted).
	BucketName string `json:"bucketName"`
	// KMSKeyARN is an existing customer managed key for the vault; empty
	// creates one (rotation on, retained).
	KMSKeyARN string     `json:"kmsKeyArn"`
	Lock      LockConfig `json:"lock"`
	// RetentionDays is the point-in-time window the stack writes into the
	// vault's descriptor (bucketvault.json) on the first deployment: how
	// far back a restore reaches. At most Lock.MinRetentionDays, so every
	// version inside the window is locked; default the lesser of 35 (AWS
	// Backup's continuous backup window) and Lock.MinRetentionDays. The
	// descriptor is never rewritten: a deployment whose value differs from
	// an existing vault's fails and names the vault's value.
	RetentionDays int `json:"retentionDays"`
	// BreakGlassRoleARN is the one IAM role (of the stack's account) the
	// vault lock's denies exempt: it may change or delete the vault's
	// bucket policy, its lifecycle, versioning and Object Lock
	// configuration, bypass governance retention, delete the bucket, and
	// disable, schedule the deletion of or change the policy of a key the
	// stack created. Empty: nobody is exempt (docs/deploy.md, "The vault
	// lock").
	BreakGlassRoleARN string `json:"breakGlassRoleArn"`
	// DeployRoleARNs are the roles CloudFormation deploys the stack with:
	// the vault lock lets them put the vault's bucket policy, lifecycle,
	// versioning and Object Lock configuration and its key's policy, as a
	// stack update does. Empty: the CDK bootstrap's CloudFormation
	// execution role (cdk-<qualifier>-cfn-exec-role-<account>-<region>),
	// which `cdk deploy` passes to CloudFormation. A list, so that a
	// deployment can move to another role: KMS refuses a key policy that
	// would lock out the role putting it.
	DeployRoleARNs []string `json:"deployRoleArns"`
	// ColdStorageClass is the S3 storage class the vault's cold tier
	// moves data to (the lifecycle rule cold-tier, NewVault): the data
	// objects that only COLD recovery points reference, which expiry tags
	// (shared/vault/cold.go). GLACIER_IR (Glacier Instant Retrieval, the
	// default: read as any other, 90 days minimum storage), DEEP_ARCHIVE
	// (a restore requests the data back first, within 12 hours, or 48 with
	// the Bulk tier; 180 days minimum storage) or GLACIER (Glacier
	// Flexible Retrieval: requested back too; 90 days minimum storage).
	ColdStorageClass string `json:"coldStorageClass"`
}

// Cold storage classes of VaultConfig.ColdStorageClass (S3's names).
const (
	ColdGlacierIR   = "GLACIER_IR"
	ColdGlacier     = "GLACIER"
	ColdDeepArchive = "DEEP_ARCHIVE"
)

// LockConfig is the vault's Object Lock, in AWS Backup Vault Lock's terms.
type LockConfig struct {
	// Mode is GOVERNANCE (default) or COMPLIANCE: the default retention
	// mode of every object version written to the vault. Governance
	// retention can be bypassed with s3:BypassGovernanceRetention, which
	// the bucket policy denies to all but the break-glass role; compliance
	// retention by nobody, the root user included.
	Mode string `json:"mode"`
	// MinRetentionDays is the default retention of every version (default
	// 35, the point-in-time window) and the shortest retention anyone may
	// set explicitly, but on scratch files (scratch/), which carry their
	// own retention of a day (at most scratchMaxRetentionDays).
	MinRetentionDays int `json:"minRetentionDays"`
	// MaxRetentionDays, when set, is the longest retention anyone may set
	// explicitly (a bucket policy condition).
	MaxRetentionDays int `json:"maxRetentionDays"`
	// ChangeableForDays is the grace time (at least 3 days, as AWS Backup)
	// after ChangeableFrom during which the lock configuration may still be
	// changed (by a deployment or the break-glass role) and governance
	// retention bypassed (by the break-glass role); after it the bucket
	// policy denies both to everyone, as AWS Backup's compliance lock
	// becomes immutable after its grace time. Both or neither are set; the
	// start is a date in the configuration, not the deployment's time, so
	// synth stays deterministic.
	ChangeableForDays int    `json:"changeableForDays"`
	ChangeableFrom    string `json:"changeableFrom"` // YYYY-MM-DD (UTC)
}

// AlarmConfig says where alarms go.
type AlarmConfig struct {
	// Email subscribes an address to the alarm topic the stack creates.
	Email string `json:"email"`
	// TopicARN is an existing SNS topic for alarms, used instead of
	// creating one (Email must then be empty).
	TopicARN string `json:"topicArn"`
	// JournalLagSeconds is the journal lag alarm's threshold (default 900).
	JournalLagSeconds int `json:"journalLagSeconds"`
}

// JournalConfig sizes the continuous path.
type JournalConfig struct {
	BatchSize                int `json:"batchSize"`                // 1–10000, default DefaultJournalBatchSize (500)
	MaxBatchingWindowSeconds int `json:"maxBatchingWindowSeconds"` // 0–300, default 10; ≥1 when batchSize > 10
	TimeoutSeconds           int `json:"timeoutSeconds"`           // 30–900, default 300
	MemoryMB                 int `json:"memoryMB"`                 // default 1024
	MaxConcurrency           int `json:"maxConcurrency"`           // 0 (no cap) or 2–1000 concurrent batches
}

// ScheduleConfig is a scheduled function.
type ScheduleConfig struct {
	// Schedule is an EventBridge Scheduler expression: rate(...) or cron(...).
	Schedule string `json:"schedule"`
	// Timezone applies to cron expressions (default UTC).
	Timezone string `json:"timezone"`
	MemoryMB int    `json:"memoryMB"`
}

// ReconcileConfig is the reconcile function's schedule, and how often its
// runs also read every current version's tags.
type ReconcileConfig struct {
	ScheduleConfig
	// TagsEveryHours: a scheduled run also reads every current version's
	// tags (one GetObjectTagging each, about $0.40 a million) once the
	// last run that did started this many hours ago: a tag change whose
	// event was lost is found no other way. Default 168 (weekly); -1 never.
	TagsEveryHours int `json:"tagsEveryHours"`
}

// ExpireConfig is the expire function's schedule, and how often its runs
// also collect.
type ExpireConfig struct {
	ScheduleConfig
	// CollectEveryHours: a run collects (lists every data object and reads
	// every reference) only when the last collection finished this many
	// hours ago; the runs between fold journals (resuming a fold too large
	// for one invocation) and expire recovery points. Default 24.
	CollectEveryHours int `json:"collectEveryHours"`
}

// ProtectConfig is the protect function's schedule and custom resource.
type ProtectConfig struct {
	ScheduleConfig
	// OnDeploy adds the custom resource that protects the buckets during
	// the deployment itself (and fails it when one cannot be protected).
	// It needs an initialized vault (bucketvault.json written by
	// `bucketvault vault create`), so leave it off for the first deployment.
	OnDeploy bool `json:"onDeploy"`
}

// RestoreConfig sizes the restore function and the restore state
// machine (infra/restore.go).
type RestoreConfig struct {
	MemoryMB           int `json:"memoryMB"`           // default 2048
	EphemeralStorageMB int `json:"ephemeralStorageMB"` // /tmp for journal merge runs, 512–10240, default 10240
	// MaxConcurrency is how many restore batches (child executions of the
	// state machine's Distributed Map, each one batch invocation of the
	// restore function) run at once: 1–10000, default 100. Every batch
	// writes into the one target bucket, so this is also its writers.
	MaxConcurrency int `json:"maxConcurrency"`
	// ItemsPerBatch is the Distributed Map's MaxItemsPerBatch: how many
	// work items (each up to restore.WorkItemKeys keys, 1,000, and
	// restore.WorkItemBytes, 8 GiB) one batch invocation takes, 1–100,
	// default 1 (an item of 8 GiB already fills much of the function's 15
	// minutes; a batch cut short by its deadline is retried and resumes).
	ItemsPerBatch int `json:"itemsPerBatch"`
	// ToleratedFailurePercentage of batches may fail (after their
	// retries) without failing the execution: the report then counts
	// every key of a failed batch failed and the job is PARTIAL. 0–100,
	// default 0: a restore is all or nothing unless asked otherwise, and
	// a failed batch fails the execution and the job (FAILED, with why).
	ToleratedFailurePercentage *int `json:"toleratedFailurePercentage"`
	// TimeoutHours is the state machine's execution timeout, which is
	// also the job's deadline (a RUNNING record past it reads as
	// interrupted): 1–8760 (Step Functions' year), default 168 (7 days,
	// AWS Backup's default completion window).
	TimeoutHours int `json:"timeoutHours"`
}

// SnapshotConfig sizes the snapshot state machines and functions.
type SnapshotConfig struct {
	// MemoryMB is the snapshot function's memory (default 1024).
	MemoryMB int `json:"memoryMB"`
	// MaxConcurrency is how many copy batches (child executions of the
	// Distributed Map, each one copy invocation) run at once: 1–10000,
	// default 100.
	MaxConcurrency int `json:"maxConcurrency"`
	// ItemsPerBatch is the Distributed Map's MaxItemsPerBatch: how many
	// work-item files (up to 1,000 objects each) one copy invocation
	// takes, 1–100, default 2.
	ItemsPerBatch int `json:"itemsPerBatch"`
	// ToleratedFailurePercentage of copy batches may fail (after their
	// retries) without failing the job: the seal then records the objects
	// they did not copy and the recovery point is PARTIAL. 0–100, default
	// 100 (a failed batch never loses the rest of the snapshot).
	ToleratedFailurePercentage *int `json:"toleratedFailurePercentage"`
}

// RestoreTestingConfig is restore testing: AWS Backup restore testing
// plans, each run on its schedule by the restore test state machine.
type RestoreTestingConfig struct {
	// Plans are the restore testing plans, each with its selections.
	Plans []RestoreTestPlanConfig `json:"plans"`
	// MaxConcurrency is how many of a plan's tests (one per bucket its
	// selections take) run at once: the state machine's Map, 1–40,
	// default 4. The others wait their turn.
	MaxConcurrency int `json:"maxConcurrency"`
	// AwaitEverySeconds is how often a test awaiting its validation
	// function's verdict looks for it (the Wait between Await steps),
	// 10–86400, default 300.
	AwaitEverySeconds int `json:"awaitEverySeconds"`
	// TimeoutHours is the restore test state machine's execution timeout
	// (each test's deadline), 1–8760; default restore.timeoutHours plus
	// the longest validation window of the selections plus an hour
	// (DefaultRestoreTestTimeoutHours).
	TimeoutHours int `json:"timeoutHours"`
}

// RestoreTestPlanConfig is one restore testing plan.
type RestoreTestPlanConfig struct {
	// Plan is an AWS Backup restore testing plan file (any form
	// restoretest.Load reads); relative to the configuration's directory.
	Plan string `json:"plan"`
	// Selections are restore testing selection files; a selection that
	// names its plan (RestoreTestingPlanName) must name this one.
	Selections []string `json:"selections"`
	// RTOMinutes is the recovery time objective each test's restore is
	// measured against (0: none).
	RTOMinutes int `json:"rtoMinutes"`
	// ValidationFunctionARN is a Lambda function invoked with each
	// restored bucket, whose verdict the test awaits ("": none).
	ValidationFunctionARN string `json:"validationFunctionArn"`

	// Loaded and LoadedSelections are the files' plan and selections,
	// read and validated by Validate.
	Loaded           *restoretest.Plan       `json:"-"`
	LoadedSelections []restoretest.Selection `json:"-"`
}

// Scheduled is the plan's schedule input for the vault (the state
// machine's {"scheduled": ...}).
func (p *RestoreTestPlanConfig) Scheduled(vault string) restoretest.Scheduled {
	return restoretest.Scheduled{
		Vault: vault, PlanName: p.Loaded.RestoreTestingPlanName,
		RecoveryPointSelection: p.Loaded.RecoveryPointSelection, Selections: p.LoadedSelections,
		RTOSeconds: int64(p.RTOMinutes) * 60, ValidationFunction: p.ValidationFunctionARN,
	}
}

// longestValidationWindow is the longest validation window of the plan's
// selections.
func (p *RestoreTestPlanConfig) longestValidationWindow() time.Duration {
	var w time.Duration
	for i := range p.LoadedSelections {
		w = max(w, p.LoadedSelections[i].ValidationWindow())
	}
	return w
}

// ConfigError names the field that is wrong.
type ConfigError struct {
	Field, Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("bucketvault configuration: %s: %s", e.Field, e.Reason)
}

func bad(field, format string, a ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Defaults.
const (
	DefaultStackName         = "BucketVault"
	DefaultAssetDir          = "dist/lambda"
	DefaultLogLevel          = "INFO"
	DefaultLogRetentionDays  = 90
	DefaultConcurrency       = 16
	DefaultMinRetentionDays  = 35
	DefaultRetentionDays     = 35 // vault.DefaultRetentionDays
	DefaultReconcileSchedule = "rate(6 hours)"
	// DefaultReconcileTagsEveryHours: the scheduled reconcile reads tags
	// weekly (a billion current versions: about $400 a week).
	DefaultReconcileTagsEveryHours = 168
	DefaultProtectSchedule         = "rate(1 hour)"
	DefaultExpireSchedule          = "rate(1 hour)"
	// DefaultExpireCollectEveryHours: expiry runs hourly, so a fold larger
	// than one invocation goes on within the hour, and collects daily.
	DefaultExpireCollectEveryHours = 24
	DefaultJournalLagSeconds       = 900
	// DefaultJournalBatchSize is the SQS batch of one journal invocation.
	// Each batch ends with its segment write while the invocation's other
	// captures wait, and its last captures run with slots idle: at 16 in
	// flight, batches of 100 keep about four fifths of an invocation's
	// slots busy, batches of 500 about 95% (docs/design.md, Scale). 500 SQS
	// records of S3 events stay far below Lambda's 6 MB payload, and the
	// local runner (`serve`) batches as many.
	DefaultJournalBatchSize = 500
	// The restore state machine's Distributed Map and timeout
	// (RestoreConfig).
	DefaultRestoreMaxConcurrency = 100
	DefaultRestoreItemsPerBatch  = 1
	DefaultRestoreTimeoutHours   = 7 * 24
	// Restore testing (RestoreTestingConfig).
	DefaultRestoreTestMaxConcurrency    = 4
	DefaultRestoreTestAwaitEverySeconds = 300
	// RestoreTestTimeoutMarginHours is what the default timeout adds to
	// the restore's timeout and the longest validation window: the test's
	// own steps (pick, validate, the validation function, clean up), each
	// one invocation of at most 15 minutes.
	RestoreTestTimeoutMarginHours = 1
)

// DefaultRestoreTestTimeoutHours is restoreTesting.timeoutHours when it
// is not set: restore.timeoutHours, plus the longest validation window of
// every plan's selections (whole hours), plus RestoreTestTimeoutMarginHours;
// at most a Standard execution's year.
func (c *Config) DefaultRestoreTestTimeoutHours() int {
	var window time.Duration
	for i := range c.RestoreTesting.Plans {
		window = max(window, c.RestoreTesting.Plans[i].longestValidationWindow())
	}
	h := c.Restore.TimeoutHours + int((window+time.Hour-1)/time.Hour) + RestoreTestTimeoutMarginHours
	return min(h, maxExecutionTimeout/3600)
}

// ParseConfig decodes a configuration strictly (unknown fields are errors)
// and applies the defaults; Validate checks it.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, bad(te.Field, "want a JSON %s, got %s", te.Type, te.Value)
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, bad(strings.Trim(msg, `"`), "unknown field (a misspelling?)")
		}
		return nil, bad("(document)", "%v", err)
	}
	if dec.More() {
		return nil, bad("(document)", "more than one JSON value")
	}
	c.applyDefaults()
	return &c, nil
}

func (c *Config) applyDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defs := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defs(&c.StackName, DefaultStackName)
	defs(&c.AssetDir, DefaultAssetDir)
	defs(&c.LogLevel, DefaultLogLevel)
	c.LogLevel = strings.ToUpper(c.LogLevel)
	def(&c.LogRetentionDays, DefaultLogRetentionDays)
	def(&c.Concurrency, DefaultConcurrency)
	defs(&c.Vault.Lock.Mode, "GOVERNANCE")
	c.Vault.Lock.Mode = strings.ToUpper(c.Vault.Lock.Mode)
	def(&c.Vault.Lock.MinRetentionDays, DefaultMinRetentionDays)
	def(&c.Vault.RetentionDays, min(DefaultRetentionDays, c.Vault.Lock.MinRetentionDays))
	defs(&c.Vault.ColdStorageClass, ColdGlacierIR)
	c.Vault.ColdStorageClass = strings.ToUpper(c.Vault.ColdStorageClass)
	def(&c.Alarms.JournalLagSeconds, DefaultJournalLagSeconds)
	def(&c.Journal.BatchSize, DefaultJournalBatchSize)
	if c.Journal.MaxBatchingWindowSeconds == 0 && c.Journal.BatchSize > 10 {
		c.Journal.MaxBatchingWindowSeconds = 10
	}
	def(&c.Journal.TimeoutSeconds, 300)
	def(&c.Journal.MemoryMB, 1024)
	defs(&c.Reconcile.Schedule, DefaultReconcileSchedule)
	defs(&c.Reconcile.Timezone, "UTC")
	def(&c.Reconcile.MemoryMB, 1024)
	def(&c.Reconcile.TagsEveryHours, DefaultReconcileTagsEveryHours)
	defs(&c.Protect.Schedule, DefaultProtectSchedule)
	defs(&c.Protect.Timezone, "UTC")
	def(&c.Protect.MemoryMB, 256)
	def(&c.Restore.MemoryMB, 2048)
	defs(&c.Expire.Schedule, DefaultExpireSchedule)
	defs(&c.Expire.Timezone, "UTC")
	def(&c.Expire.MemoryMB, 1024)
	def(&c.Expire.CollectEveryHours, DefaultExpireCollectEveryHours)
	def(&c.Restore.EphemeralStorageMB, 10240)
	def(&c.Restore.MaxConcurrency, DefaultRestoreMaxConcurrency)
	def(&c.Restore.ItemsPerBatch, DefaultRestoreItemsPerBatch)
	if c.Restore.ToleratedFailurePercentage == nil {
		none := 0
		c.Restore.ToleratedFailurePercentage = &none
	}
	def(&c.Restore.TimeoutHours, DefaultRestoreTimeoutHours)
	if rt := c.RestoreTesting; rt != nil {
		def(&rt.MaxConcurrency, DefaultRestoreTestMaxConcurrency)
		def(&rt.AwaitEverySeconds, DefaultRestoreTestAwaitEverySeconds)
		// TimeoutHours: from the plans' selections, once they are loaded
		// (loadRestoreTesting).
	}
	def(&c.Snapshot.MemoryMB, 1024)
	def(&c.Snapshot.MaxConcurrency, 100)
	def(&c.Snapshot.ItemsPerBatch, 2)
	if c.Snapshot.ToleratedFailurePercentage == nil {
		all := 100
		c.Snapshot.ToleratedFailurePercentage = &all
	}
}

var (
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	stackRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	bucketRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ipRE       = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)
	patternRE  = regexp.MustCompile(`^[a-z0-9.*?-]{1,63}$`)
	kmsKeyRE   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	snsTopicRE = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)
	scheduleRE = regexp.MustCompile(`^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$`)
	// roleRE is an IAM role's ARN (a path allowed, no wildcard): group 1
	// is the account.
	roleRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/[A-Za-z0-9+=,.@_/-]{1,576}$`)
)

// logRetentionDays are the retention periods CloudWatch Logs accepts.
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// Validate checks every field and returns the first problem, naming it.
// baseDir resolves a relative BackupPlanFile.
func (c *Config) Validate(baseDir string) error {
	if !accountRE.MatchString(c.Account) {
		return bad("account", "%q: want the 12-digit AWS account id to deploy to (or CDK_DEFAULT_ACCOUNT)", c.Account)
	}
	if !regionRE.MatchString(c.Region) {
		return bad("region", "%q: want an AWS region such as us-east-1 (or CDK_DEFAULT_REGION)", c.Region)
	}
	if !stackRE.MatchString(c.StackName) {
		return bad("stackName", "%q: want letters, digits and hyphens, starting with a letter", c.StackName)
	}
	if n := len(restoreTestMachineName(c.StackName)); n > maxStateMachineName {
		return bad("stackName", "%q: at most %d characters (the snapshot, restore and restore test state machines are named after it)", c.StackName, maxStateMachineName-len("-restoretest"))
	}
	if n := len(ExpireRoleName(c.StackName, c.Region)); n > maxRoleName {
		return bad("stackName", "%q: at most %d characters in %s (the expire function's role, the only principal the vault lets delete, is named %q, and IAM role names have at most %d)",
			c.StackName, len(c.StackName)-(n-maxRoleName), c.Region, ExpireRoleName(c.StackName, c.Region), maxRoleName)
	}
	if err := validBucket("vault.bucketName", c.Vault.BucketName); err != nil {
		return err
	}
	if k := c.Vault.KMSKeyARN; k != "" && !kmsKeyRE.MatchString(k) {
		return bad("vault.kmsKeyArn", "%q: want a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias", k)
	}
	if err := c.Vault.Lock.validate(); err != nil {
		return err
	}
	if r := c.Vault.BreakGlassRoleARN; r != "" {
		if err := c.validRole("vault.breakGlassRoleArn", r); err != nil {
			return err
		}
	}
	for i, r := range c.Vault.DeployRoleARNs {
		f := fmt.Sprintf("vault.deployRoleArns[%d]", i)
		if err := c.validRole(f, r); err != nil {
			return err
		}
		if r == c.Vault.BreakGlassRoleARN {
			return bad(f, "%q is the break-glass role: a deploy role is exempt from less, and the break-glass role from everything already", r)
		}
		if slices.Contains(c.Vault.DeployRoleARNs[:i], r) {
			return bad(f, "%q is listed twice", r)
		}
	}
	if r, m := c.Vault.RetentionDays, c.Vault.Lock.MinRetentionDays; r < 1 || r > m {
		return bad("vault.retentionDays", "%d: want 1 to vault.lock.minRetentionDays (%d), so that every version inside the point-in-time window is locked", r, m)
	}
	switch c.Vault.ColdStorageClass {
	case ColdGlacierIR, ColdDeepArchive, ColdGlacier:
	default:
		return bad("vault.coldStorageClass", "%q: want %s (Glacier Instant Retrieval, the default), %s (Glacier Deep Archive) or %s (Glacier Flexible Retrieval)",
			c.Vault.ColdStorageClass, ColdGlacierIR, ColdDeepArchive, ColdGlacier)
	}
	if len(c.ProtectedBuckets) == 0 {
		return bad("protectedBuckets", "name at least one bucket to protect")
	}
	seen := map[string]bool{}
	for i, b := range c.ProtectedBuckets {
		f := fmt.Sprintf("protectedBuckets[%d]", i)
		if err := validBucket(f, b); err != nil {
			return err
		}
		if b == c.Vault.BucketName {
			return bad(f, "%q is the vault itself", b)
		}
		if seen[b] {
			return bad(f, "%q is listed twice", b)
		}
		seen[b] = true
	}
	if err := validKeys("sourceKmsKeyArns", c.SourceKMSKeyARNs); err != nil {
		return err
	}
	if len(c.RestoreTargets) == 0 {
		return bad("restoreTargets", `name at least one bucket pattern restores may write to (for example "photos-restored-*"); the restore function's role is limited to them`)
	}
	for i, p := range c.RestoreTargets {
		f := fmt.Sprintf("restoreTargets[%d]", i)
		if !patternRE.MatchString(p) {
			return bad(f, "%q: want a bucket name pattern of lower-case letters, digits, '.', '-' and the wildcards * and ? (IAM supports no other)", p)
		}
		if patternMatches(p, c.Vault.BucketName) {
			return bad(f, "%q matches the vault bucket %q: a restore must never write into the vault", p, c.Vault.BucketName)
		}
	}
	if err := validKeys("restoreTargetKmsKeyArns", c.RestoreTargetKMSKeyARNs); err != nil {
		return err
	}
	if e := c.Alarms.Email; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			return bad("alarms.email", "%q: want one plain e-mail address", e)
		}
	}
	if t := c.Alarms.TopicARN; t != "" {
		if !snsTopicRE.MatchString(t) {
			return bad("alarms.topicArn", "%q: want an SNS topic ARN", t)
		}
		if c.Alarms.Email != "" {
			return bad("alarms.email", "set either alarms.email (a topic is created) or alarms.topicArn (an existing topic), not both")
		}
	}
	if c.Alarms.JournalLagSeconds < 60 {
		return bad("alarms.journalLagSeconds", "%d: want at least 60", c.Alarms.JournalLagSeconds)
	}
	switch c.LogLevel {
	case "DEBUG", "INFO":
	case "WARN", "ERROR":
		// Lambda's log-level filtering applies to everything a function
		// writes to stdout and stderr, and gives a JSON line without a
		// "level" field the level INFO. The functions' EMF metric lines
		// (shared/obs) are such lines, written straight to stdout, not
		// through slog: at WARN Lambda drops them, so there is no
		// LagSeconds metric and the lag alarm never fires. See
		// docs/deploy.md, "Metrics and log levels".
		return bad("logLevel", "%s would make Lambda drop the functions' metric (EMF) log lines, which carry no level and count as INFO, so the journal lag alarm could never fire: use INFO or DEBUG", c.LogLevel)
	default:
		return bad("logLevel", "%q: want DEBUG or INFO", c.LogLevel)
	}
	if !slices.Contains(logRetentionDays, c.LogRetentionDays) {
		return bad("logRetentionDays", "%d: want one of %v", c.LogRetentionDays, logRetentionDays)
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		return bad("concurrency", "%d: want 1 to 1000", c.Concurrency)
	}
	j := c.Journal
	switch {
	case j.BatchSize < 1 || j.BatchSize > 10000:
		return bad("journal.batchSize", "%d: want 1 to 10000", j.BatchSize)
	case j.MaxBatchingWindowSeconds < 0 || j.MaxBatchingWindowSeconds > 300:
		return bad("journal.maxBatchingWindowSeconds", "%d: want 0 to 300", j.MaxBatchingWindowSeconds)
	case j.BatchSize > 10 && j.MaxBatchingWindowSeconds < 1:
		return bad("journal.maxBatchingWindowSeconds", "SQS batches above 10 messages need a batching window of at least 1 second")
	case j.TimeoutSeconds < 30 || j.TimeoutSeconds > 900:
		return bad("journal.timeoutSeconds", "%d: want 30 to 900", j.TimeoutSeconds)
	case 6*j.TimeoutSeconds+j.MaxBatchingWindowSeconds > 43200:
		return bad("journal.timeoutSeconds", "the queue's visibility timeout (6 x timeout + batching window) would exceed SQS's 12 hours")
	case j.MaxConcurrency != 0 && (j.MaxConcurrency < 2 || j.MaxConcurrency > 1000):
		return bad("journal.maxConcurrency", "%d: want 0 (no cap) or 2 to 1000", j.MaxConcurrency)
	}
	for _, m := range []struct {
		field string
		mb    int
	}{{"journal.memoryMB", j.MemoryMB}, {"reconcile.memoryMB", c.Reconcile.MemoryMB}, {"protect.memoryMB", c.Protect.MemoryMB}, {"restore.memoryMB", c.Restore.MemoryMB}, {"snapshot.memoryMB", c.Snapshot.MemoryMB}, {"expire.memoryMB", c.Expire.MemoryMB}} {
		if m.mb < 128 || m.mb > 10240 {
			return bad(m.field, "%d: want 128 to 10240", m.mb)
		}
	}
	if h := c.Expire.CollectEveryHours; h < 1 || h > 8760 {
		return bad("expire.collectEveryHours", "%d: want 1 to 8760 hours", h)
	}
	if h := c.Reconcile.TagsEveryHours; h < -1 || h == 0 || h > 87600 {
		return bad("reconcile.tagsEveryHours", "%d: want 1 to 87600 hours, or -1 to never read tags (a tag change whose event was lost then stays unknown)", h)
	}
	if s := c.Restore.EphemeralStorageMB; s < 512 || s > 10240 {
		return bad("restore.ephemeralStorageMB", "%d: want 512 to 10240", s)
	}
	for _, s := range []struct {
		field string
		sc    ScheduleConfig
	}{{"reconcile", c.Reconcile.ScheduleConfig}, {"protect", c.Protect.ScheduleConfig}, {"expire", c.Expire.ScheduleConfig}} {
		if !scheduleRE.MatchString(s.sc.Schedule) {
			return bad(s.field+".schedule", "%q: want rate(N minutes|hours|days) or cron(...)", s.sc.Schedule)
		}
		if _, err := time.LoadLocation(s.sc.Timezone); err != nil {
			return bad(s.field+".timezone", "%q: want an IANA time zone such as UTC or Europe/Paris", s.sc.Timezone)
		}
	}
	if s := c.Snapshot; s.MaxConcurrency < 1 || s.MaxConcurrency > 10000 {
		return bad("snapshot.maxConcurrency", "%d: want 1 to 10000 (the Distributed Map's limit)", s.MaxConcurrency)
	}
	if s := c.Snapshot; s.ItemsPerBatch < 1 || s.ItemsPerBatch > 100 {
		return bad("snapshot.itemsPerBatch", "%d: want 1 to 100 work-item files (of up to 1,000 objects each) per copy invocation", s.ItemsPerBatch)
	}
	if p := *c.Snapshot.ToleratedFailurePercentage; p < 0 || p > 100 {
		return bad("snapshot.toleratedFailurePercentage", "%d: want 0 to 100", p)
	}
	if r := c.Restore; r.MaxConcurrency < 1 || r.MaxConcurrency > 10000 {
		return bad("restore.maxConcurrency", "%d: want 1 to 10000 (the Distributed Map's limit)", r.MaxConcurrency)
	}
	if r := c.Restore; r.ItemsPerBatch < 1 || r.ItemsPerBatch > 100 {
		return bad("restore.itemsPerBatch", "%d: want 1 to 100 work items (of up to 1,000 objects each) per batch invocation", r.ItemsPerBatch)
	}
	if p := *c.Restore.ToleratedFailurePercentage; p < 0 || p > 100 {
		return bad("restore.toleratedFailurePercentage", "%d: want 0 to 100", p)
	}
	if h := c.Restore.TimeoutHours; h < 1 || h*3600 > maxExecutionTimeout {
		return bad("restore.timeoutHours", "%d: want 1 to %d (a Standard execution's longest, one year)", h, maxExecutionTimeout/3600)
	}
	if err := c.loadPlan(baseDir); err != nil {
		return err
	}
	if err := c.loadRestoreTesting(baseDir); err != nil {
		return err
	}
	if c.AssetDir == "" {
		return bad("assetDir", "is empty")
	}
	return nil
}

// loadPlan reads and validates BackupPlanFile (plan.Load: every problem,
// each naming its field) into Plan and Selections.
func (c *Config) loadPlan(baseDir string) error {
	c.Plan, c.Selections = nil, nil
	p := c.BackupPlanFile
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(baseDir, p)
	}
	pl, sels, err := plan.Load(p)
	if err != nil {
		return bad("backupPlanFile", "%v", err)
	}
	if pl == nil {
		return bad("backupPlanFile", "%s holds selections but no BackupPlan: the schedules come from the plan's rules", c.BackupPlanFile)
	}
	names := map[string]string{}
	for i := range pl.Rules {
		r := &pl.Rules[i]
		if r.Continuous() {
			continue
		}
		id := ruleID(r.RuleName)
		if other, dup := names[id]; dup {
			return bad("backupPlanFile", "%s: Rules[%d].RuleName: %q and %q make the same resource name %q: rename one", p, i, other, r.RuleName, id)
		}
		names[id] = r.RuleName
		if n := len(snapshotMachineName(c.StackName, r.RuleName)); n > maxStateMachineName {
			return bad("backupPlanFile", "%s: Rules[%d].RuleName: the state machine name %q is %d characters, Step Functions allows %d: shorten the rule name (or stackName)",
				p, i, snapshotMachineName(c.StackName, r.RuleName), n, maxStateMachineName)
		}
	}
	c.Plan, c.Selections = pl, sels
	return nil
}

// lambdaFunctionRE is a Lambda function's ARN, with an optional version
// or alias: what the restore test function invokes and its role names.
var lambdaFunctionRE = regexp.MustCompile(`^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[a-zA-Z0-9_-]{1,64}(:(\$LATEST|[a-zA-Z0-9_-]{1,128}))?$`)

// Limits of restoreTesting.
const (
	// maxInlineMapConcurrency: an inline Map runs at most 40 iterations
	// at once (Step Functions quotas).
	maxInlineMapConcurrency = 40
	// maxHistoryEvents is a Standard execution's event history; every
	// test of a plan (the Map's iterations) writes into the one
	// execution's history.
	maxHistoryEvents = 25000
	// awaitEventsPerPoll are the history events of one round of the
	// await loop: the Wait (entered, exited), the Await task (entered,
	// scheduled, started, succeeded, exited) and the Awaiting choice
	// (entered, exited).
	awaitEventsPerPoll = 9
	// testEventsBesidesPolls bounds the events of a test's other states.
	testEventsBesidesPolls = 100
)

// loadRestoreTesting reads and validates restoreTesting's plan and
// selection files (restoretest.Load: every problem, each naming its
// field) into each plan's Loaded and LoadedSelections, and sets the
// default timeout.
func (c *Config) loadRestoreTesting(baseDir string) error {
	rt := c.RestoreTesting
	if rt == nil {
		return nil
	}
	if len(rt.Plans) == 0 {
		return bad("restoreTesting.plans", "name at least one restore testing plan (or leave restoreTesting out)")
	}
	for _, b := range append([]string{c.Vault.BucketName}, c.ProtectedBuckets...) {
		if strings.HasPrefix(b, restoretest.TargetPrefix) {
			return bad("restoreTesting", "the bucket %q starts with %q: restore tests restore into new %s* buckets, which the restore function may write and the restore test function deletes; rename the bucket", b, restoretest.TargetPrefix, restoretest.TargetPrefix)
		}
	}
	for i, p := range c.RestoreTargets {
		if strings.HasPrefix(p, restoretest.TargetPrefix) {
			return bad(fmt.Sprintf("restoreTargets[%d]", i), "%q: with restoreTesting, the restore test sweeper deletes %s* buckets that no restore test names once they are a day old: restore into buckets named otherwise (the restore tests' own are allowed already)", p, restoretest.TargetPrefix)
		}
	}
	load := func(field, file string) (*restoretest.Document, error) {
		if file == "" {
			return nil, bad(field, "is empty: want a file")
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(baseDir, file)
		}
		d, err := restoretest.Load(file)
		if err != nil {
			return nil, bad(field, "%v", err)
		}
		return d, nil
	}
	names, ids := map[string]int{}, map[string]int{}
	for i := range rt.Plans {
		p := &rt.Plans[i]
		p.Loaded, p.LoadedSelections = nil, nil
		f := fmt.Sprintf("restoreTesting.plans[%d]", i)
		d, err := load(f+".plan", p.Plan)
		if err != nil {
			return err
		}
		if d.Plan == nil {
			return bad(f+".plan", "%s holds a %s, not a restore testing plan", p.Plan, d.Kind())
		}
		name := d.Plan.RestoreTestingPlanName
		if j, dup := names[name]; dup {
			return bad(f+".plan", "%s: the plan %q is restoreTesting.plans[%d]'s too: a plan is named once", p.Plan, name, j)
		}
		names[name] = i
		if j, dup := ids[ruleID(name)]; dup {
			return bad(f+".plan", "%s: RestoreTestingPlanName: %q and restoreTesting.plans[%d]'s %q make the same resource name %q: rename one", p.Plan, name, j, rt.Plans[j].Loaded.RestoreTestingPlanName, ruleID(name))
		}
		ids[ruleID(name)] = i
		if len(p.Selections) == 0 {
			return bad(f+".selections", "name at least one restore testing selection file: a plan without one tests nothing")
		}
		selNames := map[string]bool{}
		for j, file := range p.Selections {
			sf := fmt.Sprintf("%s.selections[%d]", f, j)
			sd, err := load(sf, file)
			if err != nil {
				return err
			}
			if sd.Selection == nil {
				return bad(sf, "%s holds a %s, not a restore testing selection", file, sd.Kind())
			}
			s := sd.Selection
			if s.RestoreTestingPlanName != "" && s.RestoreTestingPlanName != name {
				return bad(sf, "%s: RestoreTestingPlanName: %q, but the plan is %q", file, s.RestoreTestingPlanName, name)
			}
			if selNames[s.RestoreTestingSelectionName] {
				return bad(sf, "%s: RestoreTestingSelectionName: %q is another selection's of the plan too", file, s.RestoreTestingSelectionName)
			}
			selNames[s.RestoreTestingSelectionName] = true
			p.LoadedSelections = append(p.LoadedSelections, *s)
		}
		if p.RTOMinutes < 0 {
			return bad(f+".rtoMinutes", "%d: want a number of minutes above 0 (or leave it out: no RTO target)", p.RTOMinutes)
		}
		if fn := p.ValidationFunctionARN; fn != "" && !lambdaFunctionRE.MatchString(fn) {
			return bad(f+".validationFunctionArn", "%q: want a Lambda function's ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME, optionally :VERSION or :ALIAS)", fn)
		}
		p.Loaded = d.Plan
	}
	if n := rt.MaxConcurrency; n < 1 || n > maxInlineMapConcurrency {
		return bad("restoreTesting.maxConcurrency", "%d: want 1 to %d (an inline Map's concurrent iterations)", n, maxInlineMapConcurrency)
	}
	if s := rt.AwaitEverySeconds; s < 10 || s > 86400 {
		return bad("restoreTesting.awaitEverySeconds", "%d: want 10 to 86400", s)
	}
	// A test awaiting its validation function's verdict polls until the
	// validation window ends: its rounds must fit in the execution's
	// history.
	for i := range rt.Plans {
		p := &rt.Plans[i]
		if p.ValidationFunctionARN == "" {
			continue
		}
		w := p.longestValidationWindow()
		polls := int((w + time.Duration(rt.AwaitEverySeconds)*time.Second - 1) / (time.Duration(rt.AwaitEverySeconds) * time.Second))
		if testEventsBesidesPolls+polls*awaitEventsPerPoll > maxHistoryEvents {
			least := int(w.Seconds())*awaitEventsPerPoll/(maxHistoryEvents-testEventsBesidesPolls) + 1
			return bad("restoreTesting.awaitEverySeconds", "%d: a test of plan %s awaiting its verdict for its validation window (%s) would look %d times, %d state machine events, more than an execution's history holds (%d): want at least %d",
				rt.AwaitEverySeconds, p.Loaded.RestoreTestingPlanName, w, polls, polls*awaitEventsPerPoll, maxHistoryEvents, least)
		}
	}
	if rt.TimeoutHours == 0 {
		rt.TimeoutHours = c.DefaultRestoreTestTimeoutHours()
	}
	if h := rt.TimeoutHours; h < 1 || h*3600 > maxExecutionTimeout {
		return bad("restoreTesting.timeoutHours", "%d: want 1 to %d (a Standard execution's longest, one year)", h, maxExecutionTimeout/3600)
	}
	return nil
}

func (l LockConfig) validate() error {
	switch l.Mode {
	case "GOVERNANCE", "COMPLIANCE":
	default:
		return bad("vault.lock.mode", "%q: want GOVERNANCE or COMPLIANCE", l.Mode)
	}
	if l.MinRetentionDays < 1 || l.MinRetentionDays > 36500 {
		return bad("vault.lock.minRetentionDays", "%d: want 1 to 36500", l.MinRetentionDays)
	}
	if l.MaxRetentionDays != 0 && (l.MaxRetentionDays < l.MinRetentionDays || l.MaxRetentionDays > 36500) {
		return bad("vault.lock.maxRetentionDays", "%d: want at least minRetentionDays (%d) and at most 36500", l.MaxRetentionDays, l.MinRetentionDays)
	}
	switch {
	case l.ChangeableForDays == 0 && l.ChangeableFrom == "":
	case l.ChangeableForDays == 0:
		return bad("vault.lock.changeableForDays", "is required with changeableFrom")
	case l.ChangeableFrom == "":
		return bad("vault.lock.changeableFrom", "is required with changeableForDays: the date (YYYY-MM-DD, UTC) the grace time starts")
	case l.ChangeableForDays < 3 || l.ChangeableForDays > 36500:
		return bad("vault.lock.changeableForDays", "%d: want 3 to 36500 (AWS Backup Vault Lock's minimum grace time is 3 days)", l.ChangeableForDays)
	default:
		if _, err := time.Parse(time.DateOnly, l.ChangeableFrom); err != nil {
			return bad("vault.lock.changeableFrom", "%q: want a date YYYY-MM-DD", l.ChangeableFrom)
		}
	}
	return nil
}

// LockedAfter is when the lock configuration stops being changeable, or
// the zero time when no grace time is configured.
func (l LockConfig) LockedAfter() time.Time {
	if l.ChangeableForDays == 0 {
		return time.Time{}
	}
	t, _ := time.Parse(time.DateOnly, l.ChangeableFrom)
	return t.AddDate(0, 0, l.ChangeableForDays)
}

// validRole checks that arn is an IAM role of the stack's account: the
// vault's bucket policy exempts it by aws:PrincipalArn, and only the bucket
// owner's account may change a bucket's policy.
func (c *Config) validRole(field, arn string) error {
	m := roleRE.FindStringSubmatch(arn)
	if m == nil {
		return bad(field, "%q: want an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), without wildcards", arn)
	}
	if m[1] != c.Account {
		return bad(field, "%q is a role of account %s, not of the stack's account %s (only the bucket owner's account may change a bucket's policy)", arn, m[1], c.Account)
	}
	return nil
}

func validBucket(field, name string) error {
	if !bucketRE.MatchString(name) || strings.Contains(name, "..") || ipRE.MatchString(name) ||
		strings.HasPrefix(name, "xn--") || strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3") {
		return bad(field, "%q is not a valid S3 bucket name", name)
	}
	return nil
}

func validKeys(field string, keys []string) error {
	for i, k := range keys {
		if !kmsKeyRE.MatchString(k) {
			return bad(fmt.Sprintf("%s[%d]", field, i), "%q: want a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", k)
		}
	}
	return nil
}

// patternMatches reports whether an IAM-style pattern (* and ?) matches
// name; bucket names hold no '/', so path.Match's and IAM's wildcards agree.
func patternMatches(pattern, name string) bool {
	re := "^" + strings.NewReplacer(`\*`, `.*`, `\?`, `.`).Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(name)
}

// LoadConfig reads the configuration from the app's context: the file
// ContextConfigFile names (relative to baseDir), else the inline
// ContextConfig value. CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION fill an
// unset account and region.
func LoadConfig(getContext func(key string) any, getenv func(string) string, baseDir string) (*Config, error) {
	var data []byte
	if f := getContext(ContextConfigFile); f != nil && f != "" {
		name, ok := f.(string)
		if !ok {
			return nil, bad(ContextConfigFile, "want a file name")
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(baseDir, name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, bad(ContextConfigFile, "%v", err)
		}
		data = b
	} else {
		switch v := getContext(ContextConfig).(type) {
		case nil:
			return nil, bad(ContextConfig, "no configuration: set the %q object in cdk.json's context (see docs/deploy.md) or %q to a JSON file", ContextConfig, ContextConfigFile)
		case string:
			data = []byte(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, bad(ContextConfig, "%v", err)
			}
			data = b
		}
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	if c.Account == "" {
		c.Account = getenv("CDK_DEFAULT_ACCOUNT")
	}
	if c.Region == "" {
		c.Region = getenv("CDK_DEFAULT_REGION")
	}
	if err := c.Validate(baseDir); err != nil {
		return nil, err
	}
	return c, nil
}
