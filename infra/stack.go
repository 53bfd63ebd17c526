package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	protectpkg "github.com/bucketvault/bucketvault/shared/protect"
)

// BucketVaultStack is everything bucketvault deploys into one account and
// region: the vault, the functions, the continuous path, the schedules and
// the notifications, the snapshot path (state machines and the backup
// plan's schedules) and the restore state machine.
type BucketVaultStack struct {
	awscdk.Stack
	Config        *Config
	Vault         *Vault
	Notifications *Notifications
	// VaultAlarms report calls that would weaken the vault.
	VaultAlarms *VaultAlarms
	Functions   map[string]*GoFunction
	Continuous  *Continuous
	Reconcile   *ScheduledInvoke
	Protect     *ScheduledInvoke
	// Expire runs the expire function (expiry and garbage collection,
	// the vault's only deleter) on expire.schedule.
	Expire    *ScheduledInvoke
	Snapshots *SnapshotPath
	// Restores is the restore state machine.
	Restores *RestorePath
	// RestoreTests is restore testing: the restore test state machine,
	// the plans' schedules and the sweeper (nil without restoreTesting).
	RestoreTests *RestoreTestPath
	// VaultDescriptor is the custom resource that writes the vault's
	// descriptor (bucketvault.json) at the first deployment, so the
	// vault bucket the stack creates is a vault without a manual step.
	VaultDescriptor awscdk.CustomResource
	// ProtectOnDeploy is the custom resource that protects the buckets
	// during a deployment (nil unless protect.onDeploy).
	ProtectOnDeploy awscdk.CustomResource
}

// NewBucketVaultStack builds the stack from a validated configuration.
func NewBucketVaultStack(scope constructs.Construct, c *Config) *BucketVaultStack {
	terminationProtection := true
	if c.TerminationProtection != nil {
		terminationProtection = *c.TerminationProtection
	}
	s := &BucketVaultStack{Config: c, Functions: map[string]*GoFunction{}}
	s.Stack = awscdk.NewStack(scope, jsii.String(c.StackName), &awscdk.StackProps{
		Env:                   &awscdk.Environment{Account: jsii.String(c.Account), Region: jsii.String(c.Region)},
		Description:           jsii.String("bucketvault: continuous backup and point-in-time restore of S3 buckets into the vault " + c.Vault.BucketName),
		AnalyticsReporting:    jsii.Bool(false),
		TerminationProtection: jsii.Bool(terminationProtection),
	})
	awscdk.Tags_Of(s.Stack).Add(jsii.String("bucketvault:vault"), jsii.String(c.Vault.BucketName), nil)

	s.Vault = NewVault(s.Stack, "Vault", &VaultProps{Config: c})
	s.Notifications = NewNotifications(s.Stack, "Notifications", &NotificationsProps{Config: c})
	s.VaultAlarms = NewVaultAlarms(s.Stack, "VaultAlarms", &VaultAlarmsProps{Vault: s.Vault, Notifications: s.Notifications})

	res := &FunctionResources{
		Config:      c,
		Vault:       s.Vault,
		EventsTopic: s.Notifications.EventsTopic,
		EventBusARN: fmt.Sprintf("arn:%s:events:%s:%s:event-bus/default", *s.Stack.Partition(), c.Region, c.Account),
	}
	for _, name := range deployedFunctions(c) {
		f := NewGoFunction(s.Stack, constructID(name), functionProps(name, res))
		// The functions' policies name the vault by literal ARNs: make
		// CloudFormation create the vault (bucket, policy, key) first.
		f.Function.Node().AddDependency(s.Vault.Construct)
		s.Functions[name] = f
	}

	s.Continuous = NewContinuous(s.Stack, "Continuous", &ContinuousProps{
		Config: c, Journal: s.Functions["journal"], Notifications: s.Notifications,
	})

	reconcile, protect := s.Functions["reconcile"], s.Functions["protect"]
	s.Reconcile = NewScheduledInvoke(s.Stack, "ReconcileSchedule", &ScheduledInvokeProps{
		Function: reconcile.Function, Expression: c.Reconcile.Schedule, Timezone: c.Reconcile.Timezone,
		Description: "reconcile the protected buckets against their listings", Input: reconcileInput(c.Reconcile),
	})
	s.Protect = NewScheduledInvoke(s.Stack, "ProtectSchedule", &ScheduledInvokeProps{
		Function: protect.Function, Expression: c.Protect.Schedule, Timezone: c.Protect.Timezone,
		Description: "keep the protected buckets versioned and delivering events", Input: "{}",
	})
	expire := s.Functions["expire"]
	s.Expire = NewScheduledInvoke(s.Stack, "ExpireSchedule", &ScheduledInvokeProps{
		Function: expire.Function, Expression: c.Expire.Schedule, Timezone: c.Expire.Timezone,
		Description: "expire the vault (fold journals past their window, delete expired recovery points, collect unreferenced data)",
		Input:       fmt.Sprintf(`{"collectEveryHours":%d}`, c.Expire.CollectEveryHours),
	})
	s.Snapshots = NewSnapshotPath(s.Stack, "Snapshots", &SnapshotPathProps{
		Config: c, Vault: s.Vault, Snapshot: s.Functions["snapshot"], Dispatch: s.Functions["dispatch"], Notifications: s.Notifications,
	})

	s.Restores = NewRestorePath(s.Stack, "Restores", &RestorePathProps{
		Config: c, Vault: s.Vault, Restore: s.Functions["restore"], Notifications: s.Notifications,
	})

	if c.RestoreTesting != nil {
		s.RestoreTests = NewRestoreTestPath(s.Stack, "RestoreTests", &RestoreTestPathProps{
			Config: c, Function: s.Functions["restoretest"], Restores: s.Restores, Notifications: s.Notifications,
		})
	}

	n := s.Notifications
	for _, f := range []*GoFunction{reconcile, protect, s.Functions["dispatch"], expire} {
		if f == nil {
			continue // no dispatch function without a snapshot rule
		}
		id := constructID(f.Name)
		n.Alarm(f.Construct, id+"ErrorsAlarm",
			fmt.Sprintf("bucketvault: the scheduled %s function failed", f.Name),
			f.Function.MetricErrors(nil), 0, 1)
	}

	// The protect function answers CloudFormation itself (cfn.LambdaWrap),
	// so the function is the service token of both custom resources; it
	// answers every event, a failure to start included, so a failure
	// shows in the deployment at once with its reason.
	//
	// The vault resource writes the descriptor once the bucket, its policy
	// and its key exist, and never rewrites it (vault.Create's semantics):
	// an existing vault is left as it is, one of an unknown format or
	// another point-in-time window fails the deployment with the reason.
	// Deleting the resource leaves the vault alone.
	s.VaultDescriptor = awscdk.NewCustomResource(s.Stack, jsii.String("VaultDescriptor"), &awscdk.CustomResourceProps{
		ServiceToken:   protect.Function.FunctionArn(),
		ResourceType:   jsii.String(protectpkg.ResourceVault),
		Properties:     &map[string]any{"RetentionDays": c.Vault.RetentionDays},
		ServiceTimeout: awscdk.Duration_Minutes(jsii.Number(5)),
	})
	setLogicalID(s.VaultDescriptor, "VaultDescriptor")
	s.VaultDescriptor.Node().AddDependency(s.Vault.Construct)

	if c.Protect.OnDeploy {
		// Buckets the function cannot protect fail the deployment;
		// deleting the resource leaves protection and the vault alone.
		s.ProtectOnDeploy = awscdk.NewCustomResource(s.Stack, jsii.String("ProtectBuckets"), &awscdk.CustomResourceProps{
			ServiceToken:   protect.Function.FunctionArn(),
			ResourceType:   jsii.String(protectpkg.ResourceProtect),
			Properties:     &map[string]any{"Buckets": c.ProtectedBuckets},
			ServiceTimeout: awscdk.Duration_Minutes(jsii.Number(10)),
		})
		setLogicalID(s.ProtectOnDeploy, "ProtectBuckets")
		// Events are turned on once the vault is initialized and the path
		// to the journal exists.
		s.ProtectOnDeploy.Node().AddDependency(s.Vault.Construct, s.VaultDescriptor, s.Continuous.Construct)
	}

	out := func(id, value, description string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(description)})
	}
	out("VaultBucketName", c.Vault.BucketName, "the vault bucket (retained when the stack is deleted)")
	out("VaultKeyArn", *s.Vault.KeyARN(), "the vault's KMS key")
	out("RestoreFunctionName", *s.Functions["restore"].Function.FunctionName(), "invoke with a restore request (events/restore.request.json)")
	out("RestoreStateMachineArn", *s.Restores.StateMachine.StateMachineArn(), "a restore of any size: bucketvault restore --state-machine <this ARN>, or start an execution with {\"request\": <restore request>}")
	if s.RestoreTests != nil {
		out("RestoreTestStateMachineArn", *s.RestoreTests.StateMachine.StateMachineArn(), "restore tests of a restore testing plan: its schedule starts an execution with {\"scheduled\": {...}} (the schedule's input)")
	}
	out("ProtectFunctionName", *protect.Function.FunctionName(), "invoke with {} to protect the configured buckets now")
	out("ReconcileFunctionName", *reconcile.Function.FunctionName(), "invoke with {} to reconcile (and make first full backups) now")
	out("ExpireFunctionName", *expire.Function.FunctionName(), `invoke with {} to expire now, or {"dryRun": true} to see what it would delete`)
	out("SnapshotStateMachineArn", *s.Snapshots.OnDemand.StateMachine.StateMachineArn(), `on-demand snapshot: start an execution with {"bucket": "<bucket>"}`)
	out("SnapshotFunctionName", *s.Functions["snapshot"].Function.FunctionName(), "the snapshot state machines' steps (events/snapshot-*.request.json)")
	out("JournalQueueUrl", *s.Continuous.Queue.QueueUrl(), "the journal's SQS queue")
	out("JournalDeadLetterQueueUrl", *s.Continuous.DeadLetterQueue.QueueUrl(), "events the journal could not record")
	out("EventsTopicArn", *n.EventsTopic.TopicArn(), "job events")
	out("AlarmTopicArn", *n.AlarmTopic.TopicArn(), "alarms")
	return s
}

// reconcileInput is the scheduled reconcile's request: every protected
// bucket, tags read every TagsEveryHours (none when -1).
func reconcileInput(c ReconcileConfig) string {
	if c.TagsEveryHours <= 0 {
		return "{}"
	}
	return fmt.Sprintf(`{"tagsEveryHours":%d}`, c.TagsEveryHours)
}
