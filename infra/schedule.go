package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// ScheduledInvokeProps configure a ScheduledInvoke.
type ScheduledInvokeProps struct {
	Function    awslambda.IFunction
	Expression  string // rate(...) or cron(...)
	Timezone    string // of cron expressions
	Description string
	Input       string // the invocation's JSON payload
}

// ScheduledInvoke invokes a function on an EventBridge Scheduler schedule,
// with a role of its own that may invoke only that function.
type ScheduledInvoke struct {
	constructs.Construct
	Schedule awsscheduler.CfnSchedule
	Role     awsiam.Role
}

// NewScheduledInvoke creates the schedule and its role.
func NewScheduledInvoke(scope constructs.Construct, id string, p *ScheduledInvokeProps) *ScheduledInvoke {
	self := constructs.NewConstruct(scope, jsii.String(id))
	s := &ScheduledInvoke{Construct: self}
	account := awscdk.Stack_Of(scope).Account()
	s.Role = awsiam.NewRole(self, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": account}},
		}),
		Description: jsii.String("bucketvault scheduler: " + p.Description),
	})
	setLogicalID(s.Role, id+"Role")
	s.Role.AddToPolicy(allow("Invoke", []string{"lambda:InvokeFunction"}, p.Function.FunctionArn()))
	if dp := s.Role.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, id+"RolePolicy")
	}
	s.Schedule = awsscheduler.NewCfnSchedule(self, jsii.String("Schedule"), &awsscheduler.CfnScheduleProps{
		Description:                jsii.String("bucketvault: " + p.Description),
		ScheduleExpression:         jsii.String(p.Expression),
		ScheduleExpressionTimezone: jsii.String(p.Timezone),
		FlexibleTimeWindow:         &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:                      jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     p.Function.FunctionArn(),
			RoleArn: s.Role.RoleArn(),
			Input:   jsii.String(p.Input),
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(3),
				MaximumEventAgeInSeconds: jsii.Number(3600),
			},
		},
	})
	s.Schedule.OverrideLogicalId(jsii.String(id))
	return s
}
