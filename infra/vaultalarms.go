package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// CloudTrail's names (eventName) of the calls that would weaken the vault,
// as EventBridge receives them ("AWS API Call via CloudTrail"). CloudTrail
// names some S3 calls after their older forms: PutBucketLifecycle for
// PutBucketLifecycleConfiguration, PutBucketObjectLockConfiguration for
// PutObjectLockConfiguration; both spellings are matched.
var (
	VaultBucketEvents = []string{
		"PutBucketPolicy", "DeleteBucketPolicy",
		"PutBucketLifecycle", "PutBucketLifecycleConfiguration",
		"PutObjectLockConfiguration", "PutBucketObjectLockConfiguration",
		"PutBucketVersioning", "DeleteBucket",
	}
	VaultKeyEvents = []string{"DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"}
)

// VaultAlarmsProps configure VaultAlarms.
type VaultAlarmsProps struct {
	Vault         *Vault
	Notifications *Notifications
}

// VaultAlarms tell the alarm topic of every call that would weaken the
// vault: on the vault bucket, putting or deleting its policy, putting its
// lifecycle, Object Lock or versioning configuration, deleting it; on the
// vault key, disabling it, scheduling its deletion, putting its policy.
// Refused calls count too (their errorCode says AccessDenied): an attempt
// is worth knowing of. Two EventBridge rules on the default bus match the
// calls in CloudTrail's management events (which EventBridge receives only
// while a trail of the account logs management events in the stack's
// region); each publishes who did what to the alarm topic, and a
// CloudWatch alarm on each rule's matches notifies the topic as the
// stack's other alarms do.
type VaultAlarms struct {
	constructs.Construct
	BucketRule, KeyRule   awsevents.Rule
	BucketAlarm, KeyAlarm awscloudwatch.Alarm
}

// NewVaultAlarms creates the rules and alarms, and lets the rules (only
// them) publish to the alarm topic when the stack created it.
func NewVaultAlarms(scope constructs.Construct, id string, props *VaultAlarmsProps) *VaultAlarms {
	self := constructs.NewConstruct(scope, jsii.String(id))
	a := &VaultAlarms{Construct: self}
	v, n := props.Vault, props.Notifications
	// The message is the CloudTrail record whole: who (userIdentity), what
	// (eventName, requestParameters: a new policy's text, say), when, from
	// where, and errorCode when the call was refused. (Fields picked one
	// by one would each be missing from some records: a call of an AWS
	// service has no userIdentity.arn, a successful one no errorCode.)
	target := &topicTarget{topic: n.AlarmTopic, message: awsevents.RuleTargetInput_FromObject(map[string]any{
		"alarm": "bucketvault: a call that would weaken the vault " + v.Name + " (docs/deploy.md, The vault lock)",
		"event": awsevents.EventField_FromPath(jsii.String("$.detail")),
	})}
	cloudTrail := jsii.Strings("AWS API Call via CloudTrail")

	a.BucketRule = awsevents.NewRule(self, jsii.String("BucketRule"), &awsevents.RuleProps{
		Description: jsii.String("bucketvault: calls that would weaken the vault bucket " + v.Name + " (CloudTrail) to the alarm topic"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.s3"),
			DetailType: cloudTrail,
			Detail: &map[string]any{
				"eventSource":       []any{"s3.amazonaws.com"},
				"eventName":         anys(VaultBucketEvents),
				"requestParameters": map[string]any{"bucketName": []any{v.Name}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{target},
	})
	setLogicalID(a.BucketRule, "VaultBucketChangeRule")
	// A caller names the key by its id or its ARN (these calls take no
	// alias), and CloudTrail records it as given.
	a.KeyRule = awsevents.NewRule(self, jsii.String("KeyRule"), &awsevents.RuleProps{
		Description: jsii.String("bucketvault: calls that would make the vault " + v.Name + " unreadable (disable or delete its key, change the key policy) to the alarm topic"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.kms"),
			DetailType: cloudTrail,
			Detail: &map[string]any{
				"eventSource":       []any{"kms.amazonaws.com"},
				"eventName":         anys(VaultKeyEvents),
				"requestParameters": map[string]any{"keyId": []any{v.Key.KeyId(), v.Key.KeyArn()}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{target},
	})
	setLogicalID(a.KeyRule, "VaultKeyChangeRule")

	// The alarm topic's policy admits these two rules, by their ARNs (not
	// every EventBridge rule, which CDK's SnsTopic target would admit). An
	// existing topic (alarms.topicArn) keeps its own policy: docs/deploy.md
	// says what to add to it; without it the alarms below still notify it.
	n.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("VaultChangeRulesPublish"),
		Effect:     awsiam.Effect_ALLOW,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{n.AlarmTopic.TopicArn()},
		Conditions: &map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": []any{a.BucketRule.RuleArn(), a.KeyRule.RuleArn()}}},
	}))

	matches := func(r awsevents.Rule) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String("AWS/Events"),
			MetricName:    jsii.String("TriggeredRules"),
			DimensionsMap: &map[string]*string{"RuleName": r.RuleName()},
			Statistic:     jsii.String("Sum"),
			Period:        awscdk.Duration_Minutes(jsii.Number(5)),
		})
	}
	a.BucketAlarm = n.Alarm(self, "VaultBucketChangeAlarm",
		"bucketvault: someone put or deleted the vault bucket's policy, put its lifecycle, Object Lock or versioning configuration, or deleted it (or tried to): see the alarm topic's message or CloudTrail, and docs/deploy.md, The vault lock",
		matches(a.BucketRule), 0, 1)
	a.KeyAlarm = n.Alarm(self, "VaultKeyChangeAlarm",
		"bucketvault: someone disabled the vault's KMS key, scheduled its deletion or put its key policy (or tried to): see the alarm topic's message or CloudTrail, and docs/deploy.md, The vault lock",
		matches(a.KeyRule), 0, 1)
	return a
}

// topicTarget publishes a rule's events to an SNS topic, as
// awseventstargets.SnsTopic does, but adds nothing to the topic's policy:
// that target's statement admits every EventBridge rule of every account
// (events.amazonaws.com without a condition); NewVaultAlarms admits its
// own rules by ARN.
type topicTarget struct {
	topic   awssns.ITopic
	message awsevents.RuleTargetInput
}

// Bind implements awsevents.IRuleTarget.
func (t *topicTarget) Bind(_ awsevents.IRule, _ *string) *awsevents.RuleTargetConfig {
	return &awsevents.RuleTargetConfig{Arn: t.topic.TopicArn(), Input: t.message}
}

// anys is strings as a JSON list.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
