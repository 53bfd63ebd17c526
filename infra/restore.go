package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/restore"
)

// The restore state machine (docs/deploy.md, "Restore"): a restore of any
// size as steps of the restore function, each one invocation with a
// restore.StepRequest, in the order restore.LocalExecution runs them:
//
//	`bucketvault restore --state-machine ARN` (or StartExecution with a
//	restore job, {"request": {...restore.Request...}})
//	  └▶ restore state machine (Standard), its timeout restore.timeoutHours
//	     (the job's deadline):
//	     Plan ◀─┐  the plan in rounds: work items in the vault's scratch
//	     PlanDone? ─no─┘
//	     └yes─▶ Batches (Distributed Map over the plan's items list,
//	            batches of work items, each a Batch task)
//	            ─▶ RollbackWanted? ─rollback─▶ Rollback ◀─┐ (delete markers,
//	                                           RollbackDone? ─no─┘  in rounds)
//	                   └────────────────────────────┴yes─▶ Report ◀─┐
//	                                                       ReportDone? ─no─┘
//	                                                       └yes─▶ Succeeded
//	     any task failing after its retries ─▶ RecordFailure (the restore's
//	     fail step: the job FAILED, with why) ─▶ Failed
//
// Rollback and Report run while their cursor is not done, checked before
// each round as LocalExecution's loops do: a job the plan found COMPLETED
// already (the same job id run again) comes back with both done, and goes
// from RollbackWanted straight to Succeeded.

// State names of the restore state machine (Succeeded, RecordFailure and
// Failed are the snapshot state machine's names).
const (
	stateRestorePlan    = "Plan"
	statePlanDone       = "PlanDone"
	stateBatches        = "Batches"
	stateBatch          = "Batch"
	stateRollbackWanted = "RollbackWanted"
	stateRollback       = "Rollback"
	stateRollbackDone   = "RollbackDone"
	stateReport         = "Report"
	stateReportDone     = "ReportDone"
)

// substRestoreFunction is the restore function's ARN in the definition
// (CloudFormation's definition substitutions; the vault is substVault).
const substRestoreFunction = "RestoreFunctionArn"

// restoreMapRunLabel labels the Batches Map's runs: its child executions
// are execution:<state machine>/RestoreBatches:<id>, which the state
// machine's role may describe and stop.
const restoreMapRunLabel = "RestoreBatches"

// RestoreDefinitionProps shape the restore definition.
type RestoreDefinitionProps struct {
	// TimeoutSeconds is the execution's timeout, which the plan step
	// makes the job's deadline.
	TimeoutSeconds int
	// ItemsPerBatch, MaxConcurrency and ToleratedFailurePercentage are the
	// Distributed Map's MaxItemsPerBatch, MaxConcurrency and
	// ToleratedFailurePercentage.
	ItemsPerBatch, MaxConcurrency, ToleratedFailurePercentage int
	// Comment describes the state machine.
	Comment string
}

// RestoreDefinition is the restore state machine in Amazon States Language
// (JSONPath), with ${RestoreFunctionArn} and ${VaultBucket} left for
// CloudFormation's definition substitutions. Every task calls the restore
// function with the payloads restore.LocalExecution passes
// (restore.Restorer.Handle); its input is a restore.Job, {"request": ...},
// and every task but Batch and RecordFailure replaces it with the Job it
// returns.
func RestoreDefinition(p RestoreDefinitionProps) map[string]any {
	fn := "${" + substRestoreFunction + "}"
	// restore.RetryableError: throttling, a 5xx, a conflicting update of
	// the job's record, a step cut short by the invocation's deadline.
	// Every step resumes from the job's record and its scratch, so it runs
	// again.
	retry := stepRetry(restore.ErrorNames.Retryable)
	catch := stepCatch(restore.ErrorNames.Fatal)
	task := func(params map[string]any, next string) map[string]any {
		return map[string]any{"Type": "Task", "Resource": fn, "Parameters": params, "Retry": retry, "Catch": catch, "Next": next}
	}
	onJob := func(step string) map[string]any { return map[string]any{"step": step, "job.$": "$"} }
	// until runs a step again until its cursor says done.
	until := func(variable, done, again string) map[string]any {
		return map[string]any{
			"Type":    "Choice",
			"Choices": []any{map[string]any{"Variable": variable, "BooleanEquals": true, "Next": done}},
			"Default": again,
		}
	}
	return map[string]any{
		"Comment":        p.Comment,
		"StartAt":        stateRestorePlan,
		"TimeoutSeconds": p.TimeoutSeconds,
		"States": map[string]any{
			// The first round begins the job (its checks, target and
			// record, the deadline from the execution's start and
			// timeout); each round plans until the invocation's deadline.
			stateRestorePlan: task(map[string]any{
				"step": restore.StepPlan, "job.$": "$",
				"execution.$": "$$.Execution.Id", "startTime.$": "$$.Execution.StartTime",
				"timeoutSeconds": p.TimeoutSeconds,
			}, statePlanDone),
			statePlanDone: until("$.plan.done", stateBatches, stateRestorePlan),
			stateBatches: map[string]any{
				"Type":  "Map",
				"Label": restoreMapRunLabel,
				"ItemReader": map[string]any{
					"Resource":     "arn:aws:states:::s3:getObject",
					"ReaderConfig": map[string]any{"InputType": "JSON"},
					"Parameters":   map[string]any{"Bucket": "${" + substVault + "}", "Key.$": "$.plan.itemsKey"},
				},
				"ItemBatcher": map[string]any{
					"MaxItemsPerBatch": p.ItemsPerBatch,
					"BatchInput":       map[string]any{"job.$": "$"},
				},
				"ItemProcessor": map[string]any{
					"ProcessorConfig": map[string]any{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
					"StartAt":         stateBatch,
					"States": map[string]any{
						stateBatch: map[string]any{
							"Type": "Task", "Resource": fn,
							"Parameters": map[string]any{"step": restore.StepBatch, "Items.$": "$.Items", "BatchInput.$": "$.BatchInput"},
							"Retry":      retry,
							"End":        true,
						},
					},
				},
				"MaxConcurrency": p.MaxConcurrency,
				// Past the tolerated share the execution fails and the
				// job is FAILED; below it the report counts every key of
				// a failed batch failed (PARTIAL).
				"ToleratedFailurePercentage": p.ToleratedFailurePercentage,
				// The batches' results are in the vault, for the report.
				"ResultPath": nil,
				"Catch":      catch,
				"Next":       stateRollbackWanted,
			},
			stateRollbackWanted: map[string]any{
				"Type": "Choice",
				"Choices": []any{
					// A job COMPLETED already has no mode of its own
					// (the request as given) and its cursors done.
					map[string]any{
						"And": []any{
							map[string]any{"Variable": "$.request.mode", "IsPresent": true},
							map[string]any{"Variable": "$.request.mode", "StringEquals": restore.Rollback},
							map[string]any{"Variable": "$.rollback.done", "BooleanEquals": false},
						},
						"Next": stateRollback,
					},
					map[string]any{"Variable": "$.report.done", "BooleanEquals": true, "Next": stateSucceeded},
				},
				"Default": stateReport,
			},
			stateRollback:      task(onJob(restore.StepRollback), stateRollbackDone),
			stateRollbackDone:  until("$.rollback.done", stateReport, stateRollback),
			stateReport:        task(onJob(restore.StepReport), stateReportDone),
			stateReportDone:    until("$.report.done", stateSucceeded, stateReport),
			stateSucceeded:     map[string]any{"Type": "Succeed"},
			stateRecordFailure: recordFailure(fn, restore.StepFail, retry),
			stateFailed:        failed(),
		},
	}
}

// restoreMachineName is the restore state machine's name: fixed, so its
// role can name it and its Map Runs without a reference cycle.
func restoreMachineName(stack string) string { return stack + "-restore" }

// RestorePathProps configure RestorePath.
type RestorePathProps struct {
	Config        *Config
	Vault         *Vault
	Restore       *GoFunction
	Notifications *Notifications
}

// RestorePath is the restore state machine, its role and its logs.
type RestorePath struct {
	constructs.Construct
	Name         string
	StateMachine awsstepfunctions.StateMachine
	// Definition is the ASL, before CloudFormation's substitutions.
	Definition map[string]any
	Role       awsiam.Role
	LogGroup   awslogs.LogGroup
}

// NewRestorePath creates the restore state machine.
func NewRestorePath(scope constructs.Construct, id string, p *RestorePathProps) *RestorePath {
	c := p.Config
	self := constructs.NewConstruct(scope, jsii.String(id))
	rp := &RestorePath{Construct: self, Name: restoreMachineName(c.StackName)}
	stack := awscdk.Stack_Of(scope)
	arns := stateARNs{partition: *stack.Partition(), region: c.Region, account: c.Account}

	rp.Role = newStateMachineRole(self, c.Account, "bucketvault restore state machine: invoke the restore function, read the plan's items lists, run their Distributed Maps", "RestoreStateMachineRole")
	machine := jsii.String(arns.machine(rp.Name))
	runs := jsii.String(arns.mapRuns(rp.Name, restoreMapRunLabel))
	items := jsii.String(p.Vault.arns.objects(p.Vault.Name, keyRestoreItemsList))
	var pol policy
	pol.add(
		allow("InvokeRestoreFunction", []string{"lambda:InvokeFunction"}, p.Restore.Function.FunctionArn()),
		// The Distributed Map's ItemReader reads the items list the plan
		// wrote (restore.PlanState.ItemsKey), SSE-KMS with the vault key,
		// which it may use only through S3 for the vault's objects.
		s3Grant(c.Account, "ReadItemsLists", []string{"s3:GetObject"}, []*string{items}, nil),
		kmsViaS3(c.Region, "DecryptItemsLists", []string{"kms:Decrypt"}, []*string{p.Vault.KeyARN()}, []string{p.Vault.arns.bucket(p.Vault.Name)}),
		// A Distributed Map runs its batches as child executions of its
		// own state machine, and stops them when the Map Run ends.
		allow("StartMapRuns", []string{"states:StartExecution"}, machine),
		allow("ManageMapRuns", []string{"states:DescribeExecution", "states:StopExecution"}, runs),
	)
	pol.because("A restore's plan writes its items list at scratch/jobs/<job id>/restore/<run>/items.json of the vault, and the job id and the run (a hash of the execution's ARN) are made at run time: the ItemReader may read only that file of each restore, in the stack's vault and account (aws:ResourceAccount).", items)
	pol.because("A Distributed Map's child executions are named execution:<state machine>/<Map Run label>:<id> by Step Functions at run time: the role may describe and stop only the children of the RestoreBatches Map Runs of the stack's restore state machine.", runs)
	// Tracing and logging (below) add X-Ray's statement and CloudWatch
	// Logs' log delivery statement to the role.
	pol.because(whyStarOnly+" "+whyLogDelivery, jsii.String("*"))
	pol.attach(rp.Role)

	// Every event, with the states' input and output (AWS Solutions SF1),
	// in a log group of its own.
	rp.LogGroup = newLogGroup(self, c.LogRetentionDays, "RestoreStateMachineLogs")

	rp.Definition = RestoreDefinition(RestoreDefinitionProps{
		TimeoutSeconds: c.Restore.TimeoutHours * 3600,
		ItemsPerBatch:  c.Restore.ItemsPerBatch, MaxConcurrency: c.Restore.MaxConcurrency,
		ToleratedFailurePercentage: *c.Restore.ToleratedFailurePercentage,
		Comment:                    "bucketvault restore of a bucket, prefixes or keys as of a point in time or a recovery point (input: a restore job, {\"request\": {...}}, the restore function's request; bucketvault restore --state-machine starts and follows it)",
	})
	rp.StateMachine = newStateMachine(self, "RestoreStateMachine", rp.Name, rp.Definition, map[string]*string{
		substRestoreFunction: p.Restore.Function.FunctionArn(),
		substVault:           jsii.String(p.Vault.Name),
	}, rp.Role, rp.LogGroup)
	// Its definition names the vault: the vault comes first.
	rp.StateMachine.Node().AddDependency(p.Vault.Construct)
	p.Notifications.Alarm(self, "RestoreFailedAlarm",
		fmt.Sprintf("bucketvault: an execution of the restore state machine %s failed (its RESTORE_JOB_FAILED event and the job's record say why)", rp.Name),
		rp.StateMachine.MetricFailed(nil), 0, 1)
	if dp := rp.Role.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, "RestoreStateMachineRolePolicy")
	}
	return rp
}
