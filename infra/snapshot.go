package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// The snapshot path (docs/deploy.md, "Snapshots"):
//
//	EventBridge Scheduler, one schedule per snapshot rule of the plan
//	  └▶ dispatch function: resolves the rule's selections, starts one
//	     execution of the rule's state machine per bucket
//	       └▶ snapshot state machine (Standard), one per rule, its timeout the
//	          rule's completion window:
//	          Start ─▶ StartWindowExpired? ─yes─▶ Notify ─▶ Succeeded
//	                    └no─▶ Scan ◀─┐
//	                          ScanDone? ─no─┘
//	                          └yes─▶ CopyBatches (Distributed Map over the
//	                                 scan's items list, batches of work-item
//	                                 files, each a Copy task)
//	                                 ─▶ Seal ─▶ Notify ─▶ Succeeded
//	          any task failing after its retries ─▶ RecordFailure (the engine's
//	          fail step) ─▶ Failed
//
// One state machine per rule makes each execution's timeout the rule's own
// completion window (the engine stops scanning and copying before it, so
// the seal records what was finished); a rule's state machine differs from
// another's only in that timeout. One more, the on-demand state machine
// (AWS Backup's default windows: a 7-day timeout), takes a job for any
// bucket the snapshot function may read: {"bucket": "photos"}.

// State names of the snapshot state machine.
const (
	stateStart         = "Start"
	stateExpired       = "StartWindowExpired"
	stateScan          = "Scan"
	stateScanDone      = "ScanDone"
	stateCopyBatches   = "CopyBatches"
	stateCopy          = "Copy"
	stateSeal          = "Seal"
	stateNotify        = "Notify"
	stateSucceeded     = "Succeeded"
	stateRecordFailure = "RecordFailure"
	stateFailed        = "Failed"
)

// Definition substitutions (CloudFormation fills them in).
const (
	substFunction = "SnapshotFunctionArn"
	substVault    = "VaultBucket"
)

// mapRunLabel labels the Distributed Map's runs: its child executions are
// execution:<state machine>/CopyBatches:<id>, which the state machine's
// role may describe and stop.
const mapRunLabel = "CopyBatches"

// maxStateMachineName is Step Functions' limit on a state machine's name.
const maxStateMachineName = 80

// maxExecutionTimeout is a Standard execution's longest duration, one
// year: a longer completion window is cut to it.
const maxExecutionTimeout = 365 * 24 * 3600

// LambdaTransientErrors are the errors Lambda itself reports for an
// invocation that did not run or did not finish through no fault of the
// function; every task retries them.
var LambdaTransientErrors = []string{"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"}

// stepRetry is the Retry of every Task state of the snapshot and restore
// state machines: the engine's retryable errors (its ErrorNames.Retryable)
// and LambdaTransientErrors, six attempts each with exponential backoff
// and full jitter.
func stepRetry(retryable []string) []any {
	return []any{
		map[string]any{"ErrorEquals": retryable, "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 6, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"},
		map[string]any{"ErrorEquals": LambdaTransientErrors, "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 6, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"},
	}
}

// stepCatch is the Catch of every step but the fail step's: what a step
// could not do after its retries, and payloads that cannot run (the
// engine's ErrorNames.Fatal, named so a reader sees them), go to
// RecordFailure with the job as it was before the step: ResultPath keeps
// the job and adds the caught {Error, Cause} beside it.
func stepCatch(fatal []string) []any {
	return []any{
		map[string]any{"ErrorEquals": fatal, "ResultPath": "$.error", "Next": stateRecordFailure},
		map[string]any{"ErrorEquals": []string{"States.ALL"}, "ResultPath": "$.error", "Next": stateRecordFailure},
	}
}

// recordFailure is the RecordFailure state: the engine's fail step (step)
// records what was caught at $.error, then the execution fails with it
// (Failed), whether or not the record could be written.
func recordFailure(fn, step string, retry []any) map[string]any {
	return map[string]any{
		"Type": "Task", "Resource": fn,
		"Parameters": map[string]any{"step": step, "job.$": "$", "error.$": "$.error"},
		"ResultPath": nil,
		"Retry":      retry,
		// The execution fails with the original error either way.
		"Catch": []any{map[string]any{"ErrorEquals": []string{"States.ALL"}, "ResultPath": "$.recordError", "Next": stateFailed}},
		"Next":  stateFailed,
	}
}

// failed is the Failed state: the execution fails with the caught error.
func failed() map[string]any {
	return map[string]any{"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
}

// SnapshotDefinitionProps shape the definition.
type SnapshotDefinitionProps struct {
	// TimeoutSeconds is the execution's timeout: the completion window.
	TimeoutSeconds int
	// ItemsPerBatch, MaxConcurrency and ToleratedFailurePercentage are the
	// Distributed Map's MaxItemsPerBatch, MaxConcurrency and
	// ToleratedFailurePercentage.
	ItemsPerBatch, MaxConcurrency, ToleratedFailurePercentage int
	// Comment describes the state machine.
	Comment string
}

// SnapshotDefinition is the snapshot state machine in Amazon States
// Language (JSONPath), with ${SnapshotFunctionArn} and ${VaultBucket}
// left for CloudFormation's definition substitutions. Every task calls the
// snapshot function with the same {"step": ...} payloads as the local
// runner (snapshot.Engine.Run, Engine.Handle).
func SnapshotDefinition(p SnapshotDefinitionProps) map[string]any {
	fn := "${" + substFunction + "}"
	// The engine's transient failures (throttling, 5xx, a scan or copy cut
	// short by the invocation's deadline) are retried: every step is
	// idempotent, so it runs again.
	retry := stepRetry(snapshot.ErrorNames.Retryable)
	catch := stepCatch(snapshot.ErrorNames.Fatal)
	step := func(name, next string) map[string]any {
		s := map[string]any{
			"Type": "Task", "Resource": fn,
			"Parameters": map[string]any{"step": name, "job.$": "$"},
			"Retry":      retry, "Catch": catch,
		}
		if next == "" {
			s["End"] = true
		} else {
			s["Next"] = next
		}
		return s
	}
	return map[string]any{
		"Comment":        p.Comment,
		"StartAt":        stateStart,
		"TimeoutSeconds": p.TimeoutSeconds,
		"States": map[string]any{
			stateStart: step(snapshot.StepStart, stateExpired),
			stateExpired: map[string]any{
				"Type":    "Choice",
				"Choices": []any{map[string]any{"Variable": "$.state", "StringEquals": snapshot.StateExpired, "Next": stateNotify}},
				"Default": stateScan,
			},
			// The scan lists in rounds, each bounded by the invocation's
			// deadline, until it is done.
			stateScan: step(snapshot.StepScan, stateScanDone),
			stateScanDone: map[string]any{
				"Type":    "Choice",
				"Choices": []any{map[string]any{"Variable": "$.scan.done", "BooleanEquals": true, "Next": stateCopyBatches}},
				"Default": stateScan,
			},
			stateCopyBatches: map[string]any{
				"Type":  "Map",
				"Label": mapRunLabel,
				"ItemReader": map[string]any{
					"Resource":     "arn:aws:states:::s3:getObject",
					"ReaderConfig": map[string]any{"InputType": "JSON"},
					"Parameters":   map[string]any{"Bucket": "${" + substVault + "}", "Key.$": "$.scan.itemsKey"},
				},
				"ItemBatcher": map[string]any{
					"MaxItemsPerBatch": p.ItemsPerBatch,
					"BatchInput":       map[string]any{"job.$": "$"},
				},
				"ItemProcessor": map[string]any{
					"ProcessorConfig": map[string]any{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
					"StartAt":         stateCopy,
					"States": map[string]any{
						stateCopy: map[string]any{
							"Type": "Task", "Resource": fn,
							"Parameters": map[string]any{"step": snapshot.StepCopy, "Items.$": "$.Items", "BatchInput.$": "$.BatchInput"},
							"Retry":      retry,
							"End":        true,
						},
					},
				},
				"MaxConcurrency": p.MaxConcurrency,
				// A batch that fails after its retries is what the seal
				// lists as not backed up (PARTIAL); the job goes on.
				"ToleratedFailurePercentage": p.ToleratedFailurePercentage,
				"ResultPath":                 nil,
				"Catch":                      catch,
				"Next":                       stateSeal,
			},
			stateSeal:          step(snapshot.StepSeal, stateNotify),
			stateNotify:        step(snapshot.StepNotify, stateSucceeded),
			stateSucceeded:     map[string]any{"Type": "Succeed"},
			stateRecordFailure: recordFailure(fn, snapshot.StepFail, retry),
			stateFailed:        failed(),
		},
	}
}

// snapshotMachineName is the name of a rule's state machine ("" is the
// on-demand one). Names are fixed so the roles can name the state machines
// and their Map Runs without a reference cycle.
func snapshotMachineName(stack, rule string) string {
	if rule == "" {
		return stack + "-snapshot"
	}
	return stack + "-snapshot-" + rule
}

// ruleID is a rule's name as a CloudFormation logical id part:
// "daily-cold.1" -> "DailyCold1".
func ruleID(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if up {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

// SnapshotMachine is one snapshot state machine.
type SnapshotMachine struct {
	// Rule is the plan rule (nil: the on-demand state machine).
	Rule         *plan.Rule
	Name         string
	StateMachine awsstepfunctions.StateMachine
	// Schedule fires the rule (nil for the on-demand state machine).
	Schedule awsscheduler.CfnSchedule
	// Definition is the ASL, before CloudFormation's substitutions.
	Definition map[string]any
}

// SnapshotPathProps configure SnapshotPath.
type SnapshotPathProps struct {
	Config   *Config
	Vault    *Vault
	Snapshot *GoFunction
	// Dispatch is the rules' schedules' target (nil without snapshot rules).
	Dispatch      *GoFunction
	Notifications *Notifications
}

// SnapshotPath is the snapshot state machines (the on-demand one and one
// per snapshot rule), their role, and the rules' schedules with theirs.
type SnapshotPath struct {
	constructs.Construct
	OnDemand *SnapshotMachine
	Rules    []*SnapshotMachine
	// Role is the state machines' role.
	Role awsiam.Role
	// LogGroup holds the state machines' execution logs.
	LogGroup awslogs.LogGroup
	// ScheduleRole is the rules' schedules' role (nil without rules).
	ScheduleRole awsiam.Role
}

// arns spells the Step Functions ARNs of the stack's account and region.
type stateARNs struct{ partition, region, account string }

func (a stateARNs) machine(name string) string {
	return fmt.Sprintf("arn:%s:states:%s:%s:stateMachine:%s", a.partition, a.region, a.account, name)
}

// mapRuns are the child executions of a state machine's Distributed Map
// labelled label.
func (a stateARNs) mapRuns(name, label string) string {
	return fmt.Sprintf("arn:%s:states:%s:%s:execution:%s/%s:*", a.partition, a.region, a.account, name, label)
}

// NewSnapshotPath creates the state machines and the schedules.
func NewSnapshotPath(scope constructs.Construct, id string, p *SnapshotPathProps) *SnapshotPath {
	c := p.Config
	self := constructs.NewConstruct(scope, jsii.String(id))
	sp := &SnapshotPath{Construct: self}
	stack := awscdk.Stack_Of(scope)
	arns := stateARNs{partition: *stack.Partition(), region: c.Region, account: c.Account}

	sp.OnDemand = &SnapshotMachine{Name: snapshotMachineName(c.StackName, "")}
	machines := []*SnapshotMachine{sp.OnDemand}
	for _, r := range snapshotRules(c) {
		m := &SnapshotMachine{Rule: r, Name: snapshotMachineName(c.StackName, r.RuleName)}
		sp.Rules = append(sp.Rules, m)
		machines = append(machines, m)
	}

	sp.Role = newStateMachineRole(self, c.Account, "bucketvault snapshot state machines: invoke the snapshot function, read the scan's items lists, run their Distributed Maps", "SnapshotStateMachineRole")
	var names, runs []*string
	for _, m := range machines {
		names = append(names, jsii.String(arns.machine(m.Name)))
		runs = append(runs, jsii.String(arns.mapRuns(m.Name, mapRunLabel)))
	}
	var pol policy
	items := []*string{jsii.String(p.Vault.arns.objects(p.Vault.Name, keyItemsList))}
	pol.add(
		allow("InvokeSnapshotFunction", []string{"lambda:InvokeFunction"}, p.Snapshot.Function.FunctionArn()),
		// The Distributed Map's ItemReader reads the items list the scan
		// wrote (snapshot.ScanState.ItemsKey), SSE-KMS with the vault key,
		// which it may use only through S3 for the vault's objects.
		s3Grant(c.Account, "ReadItemsLists", []string{"s3:GetObject"}, items, nil),
		kmsViaS3(c.Region, "DecryptItemsLists", []string{"kms:Decrypt"}, []*string{p.Vault.KeyARN()}, []string{p.Vault.arns.bucket(p.Vault.Name)}),
		// A Distributed Map runs its batches as child executions of its
		// own state machine, and stops them when the Map Run ends.
		allow("StartMapRuns", []string{"states:StartExecution"}, names...),
		allow("ManageMapRuns", []string{"states:DescribeExecution", "states:StopExecution"}, runs...),
	)
	pol.because("A scan writes its items list at scratch/jobs/<job id>/items.json of the vault, and the job id is made at run time: the ItemReader may read only that file of each job, in the stack's vault and account (aws:ResourceAccount).", items...)
	pol.because("A Distributed Map's child executions are named execution:<state machine>/<Map Run label>:<id> by Step Functions at run time: the role may describe and stop only the children of the CopyBatches Map Runs of the stack's snapshot state machines.", runs...)
	// Tracing and logging (below) add X-Ray's statement and CloudWatch
	// Logs' log delivery statement to the role.
	pol.because(whyStarOnly+" "+whyLogDelivery, jsii.String("*"))
	pol.attach(sp.Role)

	// Every state machine logs every event (AWS Solutions SF1: execution
	// history alone is kept 90 days and cannot be searched across
	// executions), with the states' input and output, to one log group.
	sp.LogGroup = newLogGroup(self, c.LogRetentionDays, "SnapshotStateMachineLogs")

	for _, m := range machines {
		window := int64(snapshot.DefaultCompletionWindowMinutes)
		comment := "bucketvault on-demand snapshot of one bucket (input: a snapshot job, at least {\"bucket\": ...}); AWS Backup's default windows"
		lid := "SnapshotStateMachine"
		if m.Rule != nil {
			window = int64(m.Rule.CompletionWindow().Minutes())
			comment = fmt.Sprintf("bucketvault snapshot of one bucket for backup rule %s of plan %s (started by the dispatch function); timeout: the rule's completion window", m.Rule.RuleName, c.Plan.BackupPlanName)
			lid = "SnapshotRule" + ruleID(m.Rule.RuleName) + "StateMachine"
		}
		m.Definition = SnapshotDefinition(SnapshotDefinitionProps{
			TimeoutSeconds: int(min(window*60, maxExecutionTimeout)),
			ItemsPerBatch:  c.Snapshot.ItemsPerBatch, MaxConcurrency: c.Snapshot.MaxConcurrency,
			ToleratedFailurePercentage: *c.Snapshot.ToleratedFailurePercentage,
			Comment:                    comment,
		})
		m.StateMachine = newStateMachine(self, lid, m.Name, m.Definition, map[string]*string{
			substFunction: p.Snapshot.Function.FunctionArn(),
			substVault:    jsii.String(p.Vault.Name),
		}, sp.Role, sp.LogGroup)
		// Its definition names the vault: the vault comes first.
		m.StateMachine.Node().AddDependency(p.Vault.Construct)
		p.Notifications.Alarm(self, strings.TrimSuffix(lid, "StateMachine")+"FailedAlarm",
			fmt.Sprintf("bucketvault: an execution of the snapshot state machine %s failed (its BACKUP_JOB_FAILED event says why)", m.Name),
			m.StateMachine.MetricFailed(nil), 0, 1)
	}
	if dp := sp.Role.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, "SnapshotStateMachineRolePolicy")
	}

	if len(sp.Rules) > 0 {
		sp.ScheduleRole = awsiam.NewRole(self, jsii.String("ScheduleRole"), &awsiam.RoleProps{
			AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
				Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": c.Account}},
			}),
			Description: jsii.String("bucketvault scheduler: the backup plan's snapshot rules invoke the dispatch function"),
		})
		setLogicalID(sp.ScheduleRole, "SnapshotScheduleRole")
		sp.ScheduleRole.AddToPolicy(allow("Invoke", []string{"lambda:InvokeFunction"}, p.Dispatch.Function.FunctionArn()))
		if dp := sp.ScheduleRole.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
			setLogicalID(dp, "SnapshotScheduleRolePolicy")
		}
	}
	sels := snapshotSelections(c, arns.partition)
	for _, m := range sp.Rules {
		m.Schedule = ruleSchedule(self, c, m, sels, arns, p.Dispatch, sp.ScheduleRole)
	}
	return sp
}

// ruleSchedule is a rule's EventBridge Scheduler schedule: the rule's
// cron(...) or rate(...) in its time zone, started within a flexible
// window of half its start window (at most Scheduler's 1,440 minutes) so
// rules firing at one time spread out, retried for the rest of the start
// window; its target is the dispatch function with the rule's job and
// selections.
func ruleSchedule(scope constructs.Construct, c *Config, m *SnapshotMachine, sels []plan.Selection, arns stateARNs, dispatch *GoFunction, role awsiam.Role) awsscheduler.CfnSchedule {
	r := m.Rule
	expr := r.ScheduleExpression
	if expr == "" {
		expr = plan.DefaultScheduleExpression
	}
	tz := r.ScheduleExpressionTimezone
	if tz == "" {
		tz = "UTC"
	}
	start := int(r.StartWindow().Minutes())
	flex := min(start/2, 1440)
	age := min(max((start-flex)*60, 60), 86400)
	// The job every execution starts from: the rule's windows, lifecycle,
	// tags and CreatedBy, in this stack's vault (a deployment has one
	// vault, whatever TargetBackupVaultName says). The dispatch function
	// adds the bucket and the scheduled time.
	job := snapshot.JobForRule(c.Plan, r, c.Vault.BucketName, "", time.Time{})
	// Not json.Marshal: it would write the placeholder's < and > as
	// \u003c and \u003e, which Scheduler would not replace.
	var input strings.Builder
	enc := json.NewEncoder(&input)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{
		"scheduledAt":     schedule.ScheduledTimePlaceholder,
		"stateMachineArn": arns.machine(m.Name),
		"job":             job,
		"selections":      sels,
	}); err != nil {
		panic(err)
	}
	lid := "SnapshotRule" + ruleID(r.RuleName) + "Schedule"
	s := awsscheduler.NewCfnSchedule(scope, jsii.String(lid), &awsscheduler.CfnScheduleProps{
		Description:                jsii.String(fmt.Sprintf("bucketvault: snapshots of backup rule %s of plan %s", r.RuleName, c.Plan.BackupPlanName)),
		ScheduleExpression:         jsii.String(expr),
		ScheduleExpressionTimezone: jsii.String(tz),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{
			Mode: jsii.String("FLEXIBLE"), MaximumWindowInMinutes: jsii.Number(float64(flex)),
		},
		State: jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     dispatch.Function.FunctionArn(),
			RoleArn: role.RoleArn(),
			Input:   jsii.String(strings.TrimSpace(input.String())),
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(185),
				MaximumEventAgeInSeconds: jsii.Number(float64(age)),
			},
		},
	})
	s.OverrideLogicalId(jsii.String(lid))
	return s
}

// snapshotRules are the plan's rules that take snapshots: each gets a
// schedule and a state machine (a continuous rule, EnableContinuousBackup,
// is served by the journal).
func snapshotRules(c *Config) []*plan.Rule {
	if c.Plan == nil {
		return nil
	}
	var out []*plan.Rule
	for i := range c.Plan.Rules {
		if r := &c.Plan.Rules[i]; !r.Continuous() {
			out = append(out, r)
		}
	}
	return out
}

// whyLogDelivery: a state machine's logging needs CloudWatch Logs' log
// delivery actions, which accept no resource but "*".
const whyLogDelivery = `Logging to CloudWatch Logs (level ALL) needs logs:CreateLogDelivery, logs:GetLogDelivery, logs:UpdateLogDelivery, logs:DeleteLogDelivery, logs:ListLogDeliveries, logs:PutResourcePolicy, logs:DescribeResourcePolicies and logs:DescribeLogGroups on Resource "*" (Step Functions developer guide, "IAM policies for logging to CloudWatch Logs"): the log group itself is named in the state machines' LoggingConfiguration.`

// snapshotSelections are the selections the rules' schedules resolve: the
// plan file's, or, when it has none, one that takes the protected buckets.
func snapshotSelections(c *Config, partition string) []plan.Selection {
	if len(c.Selections) > 0 {
		return c.Selections
	}
	var arns []string
	for _, b := range c.ProtectedBuckets {
		arns = append(arns, fmt.Sprintf("arn:%s:s3:::%s", partition, b))
	}
	return []plan.Selection{{SelectionName: "protectedBuckets", Resources: arns}}
}

// snapshotBuckets are the bucket name patterns (IAM wildcards) the
// snapshot function may read and the dispatch function may inspect: the
// protected buckets (the on-demand state machine's) and every bucket a
// selection can take. A selection by tags, or one without Resources, can
// take any bucket: then "*".
func snapshotBuckets(c *Config, partition string) []string {
	set := map[string]bool{}
	for _, b := range c.ProtectedBuckets {
		set[b] = true
	}
	s3Prefix := "arn:" + partition + ":s3:::"
	for _, sel := range c.Selections {
		if len(sel.ListOfTags) > 0 || len(sel.Resources) == 0 {
			return []string{"*"}
		}
		for _, r := range sel.Resources {
			switch {
			case strings.HasPrefix(r, s3Prefix):
				set[strings.TrimPrefix(r, s3Prefix)] = true
			case r == "*" || strings.Contains(r, "*") && strings.HasPrefix(s3Prefix, r[:strings.Index(r, "*")]):
				return []string{"*"} // "arn:aws:*" and the like can match any bucket
			}
			// An ARN of another service (or partition) takes no bucket.
		}
	}
	out := make([]string, 0, len(set))
	for b := range set {
		out = append(out, b)
	}
	sort.Strings(out)
	if set["*"] {
		return []string{"*"}
	}
	return out
}
