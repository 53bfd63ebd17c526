package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// NotificationsProps configure Notifications.
type NotificationsProps struct {
	Config *Config
}

// Notifications are the alarm topic (created, with an e-mail subscription
// when configured, or an existing topic) and the job events topic the
// functions publish BACKUP_JOB_STARTED/COMPLETED/FAILED,
// RESTORE_JOB_COMPLETED/FAILED and S3_BACKUP_OBJECT_FAILED to.
type Notifications struct {
	constructs.Construct
	AlarmTopic  awssns.ITopic
	EventsTopic awssns.Topic
}

// NewNotifications creates the topics (TLS-only publishing).
func NewNotifications(scope constructs.Construct, id string, props *NotificationsProps) *Notifications {
	c := props.Config
	self := constructs.NewConstruct(scope, jsii.String(id))
	n := &Notifications{Construct: self}
	if c.Alarms.TopicARN != "" {
		n.AlarmTopic = awssns.Topic_FromTopicArn(self, jsii.String("AlarmTopic"), jsii.String(c.Alarms.TopicARN))
	} else {
		t := awssns.NewTopic(self, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String("bucketvault alarms"),
			EnforceSSL:  jsii.Bool(true),
		})
		setLogicalID(t, "AlarmTopic")
		if c.Alarms.Email != "" {
			t.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(c.Alarms.Email), nil))
		}
		n.AlarmTopic = t
	}
	n.EventsTopic = awssns.NewTopic(self, jsii.String("EventsTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("bucketvault job events"),
		EnforceSSL:  jsii.Bool(true),
	})
	setLogicalID(n.EventsTopic, "EventsTopic")
	return n
}

// Alarm creates an alarm that notifies the alarm topic when it fires and
// when it recovers; missing data is not breaching.
func (n *Notifications) Alarm(scope constructs.Construct, id, description string, metric awscloudwatch.IMetric, threshold float64, periods float64) awscloudwatch.Alarm {
	a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String(description),
		Metric:             metric,
		Threshold:          jsii.Number(threshold),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(periods),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	setLogicalID(a, id)
	action := awscloudwatchactions.NewSnsAction(n.AlarmTopic)
	a.AddAlarmAction(action)
	a.AddOkAction(action)
	return a
}
