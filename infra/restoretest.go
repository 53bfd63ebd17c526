package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// Restore testing (docs/deploy.md, "Restore testing"): AWS Backup's
// restore testing plans, each on its schedule, run by the restore test
// state machine, every Task the restore test function with the payloads
// restoretest.LocalExecution passes (shared/restoretest/workflow.go draws
// it), in the same order:
//
//	EventBridge Scheduler, one schedule per plan: {"scheduled": {...}}
//	  └▶ restore test state machine <stack>-restoretest (Standard), its
//	     timeout restoreTesting.timeoutHours (each test's deadline):
//	     Resolve: the buckets the plan's selections take, one Test each
//	     └▶ Tests: an inline Map over $.tests, restoreTesting.maxConcurrency
//	        at a time; each iteration one Test:
//	        Start ─▶ Restore (the restore state machine, a nested execution;
//	        its failure caught) ─▶ Validate ─▶ HookWanted? ─yes─▶ Hook ─┐
//	                                              └no──────────────────┤
//	        ┌──────────────────────────────────────────────────────────┘
//	        └▶ Awaiting? ─yes─▶ AwaitEvery (Wait) ─▶ Await ─▶ Awaiting?
//	             └no─▶ WaitWindow (until $.deleteAfter) ─▶ Cleanup (end)
//	        any task failing after its retries ─▶ Fail (the run FAILED, its
//	        bucket deleted; end): the iteration ends, the Map goes on, so
//	        one test failing fails no other; Fail's own failure ─▶ Ended
//	        (LocalExecution ignores it too)
//	EventBridge Scheduler, daily: the restore test function with
//	{"sweep": true} (the restore-test-* buckets whose time is up)
//
// Every step's output is a restoretest.Test, the next state's input, as
// LocalExecution passes it on; Resolve's is {"tests": [...]}.

// State names of the restore test state machine.
const (
	stateResolve    = "Resolve"
	stateTests      = "Tests"
	stateTestStart  = "Start"
	stateTestRunsIt = "Restore"
	stateValidate   = "Validate"
	stateHookWanted = "HookWanted"
	stateHook       = "Hook"
	stateAwaiting   = "Awaiting"
	stateAwaitEvery = "AwaitEvery"
	stateAwait      = "Await"
	stateWaitWindow = "WaitWindow"
	stateCleanup    = "Cleanup"
	stateTestFail   = "Fail"
	stateTestEnded  = "Ended"
)

// Definition substitutions of the restore test state machine.
const (
	substRestoreTestFunction = "RestoreTestFunctionArn"
	substRestoreMachine      = "RestoreStateMachineArn"
)

// RestoreStartExecution is the Restore state's resource: a nested
// execution of the restore state machine, awaited until it ends, its
// output parsed as JSON.
const RestoreStartExecution = "arn:aws:states:::states:startExecution.sync:2"

// RestoreStartRetryable is what the Restore state retries: Step Functions
// refused to start the nested execution (too many running), so nothing
// started. A restore that ran and failed is not run again: Validate
// records it, as LocalExecution does.
var RestoreStartRetryable = []string{"StepFunctions.ExecutionLimitExceeded"}

// RestoreTestDefinitionProps shape the restore test definition.
type RestoreTestDefinitionProps struct {
	// TimeoutSeconds is the execution's timeout, which Start makes each
	// run's deadline.
	TimeoutSeconds int
	// MaxConcurrency is the Tests Map's; AwaitEverySeconds the Wait
	// between Await steps.
	MaxConcurrency, AwaitEverySeconds int
	Comment                           string
}

// RestoreTestDefinition is the restore test state machine in Amazon
// States Language (JSONPath), with ${RestoreTestFunctionArn} and
// ${RestoreStateMachineArn} left for CloudFormation's definition
// substitutions.
func RestoreTestDefinition(p RestoreTestDefinitionProps) map[string]any {
	fn := "${" + substRestoreTestFunction + "}"
	// restoretest.RetryableError (throttling, a 5xx, a lost race, a step
	// cut short) and Lambda's transient errors: every step is idempotent.
	retry := stepRetry(restoretest.ErrorNames.Retryable)
	// What a step could not do after its retries, and a step that can
	// never run (restoretest.ErrorNames.Fatal, named so a reader sees
	// them), end the test in Fail with the Test as it was before the step
	// and the caught {Error, Cause} beside it.
	catch := []any{
		map[string]any{"ErrorEquals": restoretest.ErrorNames.Fatal, "ResultPath": "$.error", "Next": stateTestFail},
		map[string]any{"ErrorEquals": []string{"States.ALL"}, "ResultPath": "$.error", "Next": stateTestFail},
	}
	// step is a Task of the function on the Test ($), whose output (the
	// Test after the step) replaces its input.
	step := func(name string, next string) map[string]any {
		return map[string]any{
			"Type": "Task", "Resource": fn,
			"Parameters": map[string]any{"step": name, "test.$": "$"},
			"Retry":      retry, "Catch": catch, "Next": next,
		}
	}
	choice := func(variable, yes, no string) map[string]any {
		return map[string]any{
			"Type":    "Choice",
			"Choices": []any{map[string]any{"Variable": variable, "BooleanEquals": true, "Next": yes}},
			"Default": no,
		}
	}
	start := step(restoretest.StepStart, stateTestRunsIt)
	start["Parameters"] = map[string]any{
		"step": restoretest.StepStart, "test.$": "$",
		"startTime.$": "$$.Execution.StartTime", "timeoutSeconds": p.TimeoutSeconds,
	}
	// Validate gets what the Restore state caught, if it caught anything:
	// $.error is {Error, Cause} after a failed restore, and both null
	// after one that succeeded (the step reads null as nothing caught).
	validate := step(restoretest.StepValidate, stateHookWanted)
	validate["Parameters"] = map[string]any{"step": restoretest.StepValidate, "test.$": "$", "error.$": "$.error"}
	cleanup := step(restoretest.StepCleanup, "")
	delete(cleanup, "Next")
	cleanup["End"] = true
	iteration := map[string]any{
		"ProcessorConfig": map[string]any{"Mode": "INLINE"},
		"StartAt":         stateTestStart,
		"States": map[string]any{
			stateTestStart: start,
			// The restore state machine restores the test's pick into its
			// restore-test-* bucket; its input is the Test's restore
			// object, {"request": ...}, and the execution that started
			// it (the console links the two).
			stateTestRunsIt: map[string]any{
				"Type":     "Task",
				"Resource": RestoreStartExecution,
				"Parameters": map[string]any{
					"StateMachineArn": "${" + substRestoreMachine + "}",
					"Input": map[string]any{
						"request.$": "$.restore.request",
						"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
					},
				},
				"ResultSelector": map[string]any{"Error": nil, "Cause": nil},
				"ResultPath":     "$.error",
				"Retry": []any{map[string]any{
					"ErrorEquals": RestoreStartRetryable, "IntervalSeconds": 60, "BackoffRate": 2, "MaxAttempts": 6, "MaxDelaySeconds": 900, "JitterStrategy": "FULL",
				}},
				// A failed, timed-out or aborted restore: Validate reads
				// the job's record and records the run FAILED with why.
				"Catch": []any{map[string]any{"ErrorEquals": []string{"States.ALL"}, "ResultPath": "$.error", "Next": stateValidate}},
				"Next":  stateValidate,
			},
			stateValidate:   validate,
			stateHookWanted: choice("$.hook", stateHook, stateAwaiting),
			stateHook:       step(restoretest.StepHook, stateAwaiting),
			stateAwaiting:   choice("$.awaiting", stateAwaitEvery, stateWaitWindow),
			stateAwaitEvery: map[string]any{"Type": "Wait", "Seconds": p.AwaitEverySeconds, "Next": stateAwait},
			stateAwait:      step(restoretest.StepAwait, stateAwaiting),
			// The restored bucket stays for the selection's validation
			// window (the run's DeleteAfter), then goes.
			stateWaitWindow: map[string]any{"Type": "Wait", "TimestampPath": "$.deleteAfter", "Next": stateCleanup},
			stateCleanup:    cleanup,
			stateTestFail: map[string]any{
				"Type": "Task", "Resource": fn,
				"Parameters": map[string]any{"step": restoretest.StepFail, "test.$": "$", "error.$": "$.error"},
				"Retry":      retry,
				// The test ends either way: one test failing fails no
				// other (the sweeper ends a run whose record this could
				// not write, and deletes its bucket).
				"Catch": []any{map[string]any{"ErrorEquals": []string{"States.ALL"}, "ResultPath": "$.failError", "Next": stateTestEnded}},
				"End":   true,
			},
			stateTestEnded: map[string]any{"Type": "Succeed"},
		},
	}
	return map[string]any{
		"Comment":        p.Comment,
		"StartAt":        stateResolve,
		"TimeoutSeconds": p.TimeoutSeconds,
		"States": map[string]any{
			// A plan that cannot be resolved tests nothing: the execution
			// fails (RestoreTestFailedAlarm).
			stateResolve: map[string]any{
				"Type": "Task", "Resource": fn,
				"Parameters": map[string]any{"step": restoretest.StepResolve, "scheduled.$": "$.scheduled"},
				"Retry":      retry,
				"Next":       stateTests,
			},
			stateTests: map[string]any{
				"Type":           "Map",
				"ItemsPath":      "$.tests",
				"ItemProcessor":  iteration,
				"MaxConcurrency": p.MaxConcurrency,
				// Each test as its last step left it.
				"ResultPath": "$.tests",
				"End":        true,
			},
		},
	}
}

// restoreTestMachineName is the restore test state machine's name.
func restoreTestMachineName(stack string) string { return stack + "-restoretest" }

// RestoreTestPathProps configure RestoreTestPath.
type RestoreTestPathProps struct {
	Config        *Config
	Function      *GoFunction
	Restores      *RestorePath
	Notifications *Notifications
}

// RestoreTestPath is the restore test state machine, its role and logs,
// one schedule per plan (with their role) and the sweeper's schedule.
type RestoreTestPath struct {
	constructs.Construct
	Name         string
	StateMachine awsstepfunctions.StateMachine
	// Definition is the ASL, before CloudFormation's substitutions.
	Definition map[string]any
	Role       awsiam.Role
	LogGroup   awslogs.LogGroup
	// Schedules fire the plans, in restoreTesting.plans' order; their
	// role may start only the state machine.
	Schedules    []awsscheduler.CfnSchedule
	ScheduleRole awsiam.Role
	// Sweeper invokes the function daily with {"sweep": true}.
	Sweeper *ScheduledInvoke
}

// eventsRuleForSync is the EventBridge managed rule through which Step
// Functions learns that a nested execution started with .sync ended.
const eventsRuleForSync = "StepFunctionsGetEventsForStepFunctionsExecutionRule"

// NewRestoreTestPath creates the restore test state machine and its
// schedules.
func NewRestoreTestPath(scope constructs.Construct, id string, p *RestoreTestPathProps) *RestoreTestPath {
	c := p.Config
	rt := c.RestoreTesting
	self := constructs.NewConstruct(scope, jsii.String(id))
	tp := &RestoreTestPath{Construct: self, Name: restoreTestMachineName(c.StackName)}
	stack := awscdk.Stack_Of(scope)
	arns := stateARNs{partition: *stack.Partition(), region: c.Region, account: c.Account}

	tp.Role = newStateMachineRole(self, c.Account, "bucketvault restore test state machine: invoke the restore test function, run the restore state machine as a nested execution", "RestoreTestStateMachineRole")
	restoreExecutions := jsii.String(fmt.Sprintf("arn:%s:states:%s:%s:execution:%s:*", arns.partition, c.Region, c.Account, p.Restores.Name))
	rule := jsii.String(fmt.Sprintf("arn:%s:events:%s:%s:rule/%s", arns.partition, c.Region, c.Account, eventsRuleForSync))
	var pol policy
	pol.add(
		allow("InvokeRestoreTestFunction", []string{"lambda:InvokeFunction"}, p.Function.Function.FunctionArn()),
		// startExecution.sync:2: start the restore, follow it, and stop
		// it when the test's execution is stopped.
		allow("StartRestores", []string{"states:StartExecution"}, jsii.String(arns.machine(p.Restores.Name))),
		allow("FollowRestores", []string{"states:DescribeExecution", "states:StopExecution"}, restoreExecutions),
		// Step Functions learns that the nested execution ended through
		// this managed EventBridge rule, which it creates on the role's
		// behalf.
		allow("ManageSyncRule", []string{"events:PutTargets", "events:PutRule", "events:DescribeRule"}, rule),
	)
	pol.because("A nested restore execution is named by Step Functions at run time: the role may describe and stop only executions of the stack's restore state machine (execution:<stack>-restore:*), which it starts.", restoreExecutions)
	pol.because(whyStarOnly+" "+whyLogDelivery, jsii.String("*"))
	pol.attach(tp.Role)

	tp.LogGroup = newLogGroup(self, c.LogRetentionDays, "RestoreTestStateMachineLogs")

	tp.Definition = RestoreTestDefinition(RestoreTestDefinitionProps{
		TimeoutSeconds: rt.TimeoutHours * 3600, MaxConcurrency: rt.MaxConcurrency, AwaitEverySeconds: rt.AwaitEverySeconds,
		Comment: "bucketvault restore tests of one AWS Backup restore testing plan (input: {\"scheduled\": {...}}, as its schedule gives it): each bucket its selections take restored into a restore-test-* bucket, validated, kept for its validation window, deleted",
	})
	tp.StateMachine = newStateMachine(self, "RestoreTestStateMachine", tp.Name, tp.Definition, map[string]*string{
		substRestoreTestFunction: p.Function.Function.FunctionArn(),
		substRestoreMachine:      p.Restores.StateMachine.StateMachineArn(),
	}, tp.Role, tp.LogGroup)
	p.Notifications.Alarm(self, "RestoreTestFailedAlarm",
		fmt.Sprintf("bucketvault: an execution of the restore test state machine %s failed: a plan could not be resolved, or the execution timed out (a failed test fails no execution: its RESTORE_TESTING_JOB_FAILED event and its run's record say why)", tp.Name),
		tp.StateMachine.MetricFailed(nil), 0, 1)
	if dp := tp.Role.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, "RestoreTestStateMachineRolePolicy")
	}

	// The plans' schedules start the state machine: their role may start
	// it and nothing else.
	tp.ScheduleRole = awsiam.NewRole(self, jsii.String("ScheduleRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": c.Account}},
		}),
		Description: jsii.String("bucketvault scheduler: the restore testing plans start the restore test state machine"),
	})
	setLogicalID(tp.ScheduleRole, "RestoreTestScheduleRole")
	tp.ScheduleRole.AddToPolicy(allow("StartRestoreTests", []string{"states:StartExecution"}, jsii.String(arns.machine(tp.Name))))
	if dp := tp.ScheduleRole.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, "RestoreTestScheduleRolePolicy")
	}
	for i := range rt.Plans {
		tp.Schedules = append(tp.Schedules, restoreTestSchedule(self, c, &rt.Plans[i], tp))
	}

	tp.Sweeper = NewScheduledInvoke(self, "RestoreTestSweepSchedule", &ScheduledInvokeProps{
		Function: p.Function.Function, Expression: "rate(1 day)", Timezone: "UTC",
		Description: "delete the restore-test-* buckets whose validation window ended, and end dead restore test runs FAILED",
		Input:       `{"sweep":true}`,
	})
	return tp
}

// RestoreTestScheduleInput is a plan's schedule input: the state
// machine's {"scheduled": ...}.
func RestoreTestScheduleInput(c *Config, p *RestoreTestPlanConfig) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"scheduled": p.Scheduled(c.Vault.BucketName)}); err != nil {
		panic(err)
	}
	return strings.TrimSpace(b.String())
}

// maxFlexibleWindowMinutes is EventBridge Scheduler's longest flexible
// time window.
const maxFlexibleWindowMinutes = 1440

// RestoreTestFlexibleWindow is a plan's schedule's flexible time window:
// its start window (StartWindowHours, default 24), at most Scheduler's
// 1,440 minutes, and the retries' age: the rest of the start window, 1
// minute to a day (Scheduler's bounds).
func RestoreTestFlexibleWindow(p *restoretest.Plan) (windowMinutes, retryAgeSeconds int) {
	start := int(p.StartWindow().Minutes())
	windowMinutes = min(start, maxFlexibleWindowMinutes)
	retryAgeSeconds = min(max((start-windowMinutes)*60, 60), 86400)
	return windowMinutes, retryAgeSeconds
}

// restoreTestSchedule is a plan's EventBridge Scheduler schedule: its
// ScheduleExpression in its ScheduleExpressionTimezone, started anywhere
// in its start window (RestoreTestFlexibleWindow), the restore test state
// machine's StartExecution (Scheduler's templated Step Functions target)
// with the plan and its selections.
func restoreTestSchedule(scope constructs.Construct, c *Config, p *RestoreTestPlanConfig, tp *RestoreTestPath) awsscheduler.CfnSchedule {
	pl := p.Loaded
	window, age := RestoreTestFlexibleWindow(pl)
	lid := "RestoreTestPlan" + ruleID(pl.RestoreTestingPlanName) + "Schedule"
	s := awsscheduler.NewCfnSchedule(scope, jsii.String(lid), &awsscheduler.CfnScheduleProps{
		Description:                jsii.String(fmt.Sprintf("bucketvault: restore tests of restore testing plan %s", pl.RestoreTestingPlanName)),
		ScheduleExpression:         jsii.String(pl.ScheduleExpression),
		ScheduleExpressionTimezone: jsii.String(pl.Timezone()),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{
			Mode: jsii.String("FLEXIBLE"), MaximumWindowInMinutes: jsii.Number(float64(window)),
		},
		State: jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     tp.StateMachine.StateMachineArn(),
			RoleArn: tp.ScheduleRole.RoleArn(),
			Input:   jsii.String(RestoreTestScheduleInput(c, p)),
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(185),
				MaximumEventAgeInSeconds: jsii.Number(float64(age)),
			},
		},
	})
	s.OverrideLogicalId(jsii.String(lid))
	return s
}
