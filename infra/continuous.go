package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/obs"
)

// JournalDetailTypes are the S3 EventBridge detail types the journal
// consumes (shared/event decodes each of them; a test checks). "Object
// Access Tier Changed" is S3 Intelligent-Tiering moving a version into an
// archive access tier: shared/event decodes it as a storage class change,
// which the journal records after a HEAD of the version.
var JournalDetailTypes = []string{
	"Object Created", "Object Deleted", "Object Tags Added", "Object Tags Deleted",
	"Object ACL Updated", "Object Storage Class Changed", "Object Access Tier Changed", "Object Restore Completed",
}

// MetricsNamespace is the CloudWatch namespace of the functions' EMF
// metrics. Every metric has a Vault dimension (shared/obs), so alarms name
// the stack's vault and stacks in one account stay apart.
const MetricsNamespace = obs.Namespace

// ContinuousProps configure Continuous.
type ContinuousProps struct {
	Config        *Config
	Journal       *GoFunction
	Notifications *Notifications
}

// Continuous is the continuous backup path: an EventBridge rule on the
// default bus for the protected buckets' S3 events, an SQS queue with a
// dead-letter queue, the journal function consuming it with partial batch
// failure reporting, and alarms on dead letters and on journal lag.
type Continuous struct {
	constructs.Construct
	Rule            awsevents.Rule
	Queue           awssqs.Queue
	DeadLetterQueue awssqs.Queue
}

// NewContinuous wires the path.
func NewContinuous(scope constructs.Construct, id string, props *ContinuousProps) *Continuous {
	c := props.Config
	self := constructs.NewConstruct(scope, jsii.String(id))
	k := &Continuous{Construct: self}
	seconds := func(n int) awscdk.Duration { return awscdk.Duration_Seconds(jsii.Number(float64(n))) }

	k.DeadLetterQueue = awssqs.NewQueue(self, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	setLogicalID(k.DeadLetterQueue, "JournalDeadLetterQueue")
	// AWS: a visibility timeout of at least six times the function's
	// timeout, plus the batching window, so a batch still being retried by
	// Lambda is not delivered twice.
	visibility := 6*c.Journal.TimeoutSeconds + c.Journal.MaxBatchingWindowSeconds
	k.Queue = awssqs.NewQueue(self, jsii.String("Queue"), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		VisibilityTimeout: seconds(visibility),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: k.DeadLetterQueue, MaxReceiveCount: jsii.Number(5)},
	})
	setLogicalID(k.Queue, "JournalQueue")

	buckets := make([]any, len(c.ProtectedBuckets))
	for i, b := range c.ProtectedBuckets {
		buckets[i] = b
	}
	k.Rule = awsevents.NewRule(self, jsii.String("Rule"), &awsevents.RuleProps{
		Description: jsii.String("bucketvault: S3 events of the protected buckets to the journal queue"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.s3"),
			DetailType: jsii.Strings(JournalDetailTypes...),
			Detail:     &map[string]any{"bucket": map[string]any{"name": buckets}},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(k.Queue, &awseventstargets.SqsQueueProps{
			// Events EventBridge cannot deliver land beside the journal's
			// dead letters: the same body, so one redrive replays both.
			DeadLetterQueue: k.DeadLetterQueue,
		})},
	})
	setLogicalID(k.Rule, "JournalRule")

	src := &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(float64(c.Journal.BatchSize)),
		ReportBatchItemFailures: jsii.Bool(true),
	}
	if w := c.Journal.MaxBatchingWindowSeconds; w > 0 {
		src.MaxBatchingWindow = seconds(w)
	}
	if m := c.Journal.MaxConcurrency; m > 0 {
		src.MaxConcurrency = jsii.Number(float64(m))
	}
	props.Journal.Function.AddEventSource(awslambdaeventsources.NewSqsEventSource(k.Queue, src))

	n := props.Notifications
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	n.Alarm(self, "DeadLetterAlarm",
		"bucketvault: S3 events the journal could not record (or EventBridge could not deliver) are in the dead-letter queue; see docs/deploy.md",
		k.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}),
		0, 1)
	lag := c.Alarms.JournalLagSeconds
	n.Alarm(self, "JournalLagAlarm",
		fmt.Sprintf("bucketvault: the journal records S3 changes more than %d s after they happened", lag),
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(MetricsNamespace),
			MetricName:    jsii.String("LagSeconds"),
			DimensionsMap: &map[string]*string{"Function": jsii.String("journal"), obs.DimVault: jsii.String(c.Vault.BucketName)},
			Statistic:     jsii.String("Maximum"),
			Period:        awscdk.Duration_Minutes(jsii.Number(5)),
		}),
		float64(lag), 1)
	n.Alarm(self, "QueueAgeAlarm",
		fmt.Sprintf("bucketvault: S3 events wait in the journal queue more than %d s", lag),
		k.Queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}),
		float64(lag), 1)
	return k
}
