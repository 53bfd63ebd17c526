package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestRestoreStateMachine: one Standard state machine for restores, its
// timeout and Map settings the configuration's (the variant's are the
// defaults), its Retry and Catch the restore engine's error type names,
// every task the restore function with restore.LocalExecution's payloads,
// its choices LocalExecution's loops.
func TestRestoreStateMachine(t *testing.T) {
	for _, tc := range []struct {
		stack                                       string
		s                                           *stackUnderTest
		name                                        string
		timeout, perBatch, concurrency, tolerated   float64
		logs, role, function, vaultName, alarmTopic string
	}{
		{"main", synth(t).main, "BucketVault-restore", 72 * 3600, 2, 50, 0, "RestoreStateMachineLogs", "RestoreStateMachineRole", "RestoreFunction", "bucketvault-vault-123456789012-us-east-1", `[{"Ref":"AlarmTopic"}]`},
		{"variant", synth(t).variant, "BucketVaultVariant-restore", 168 * 3600, 1, 100, 0, "RestoreStateMachineLogs", "RestoreStateMachineRole", "RestoreFunction", "variant-vault", `["arn:aws:sns:us-east-1:123456789012:ops-alarms"]`},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			s := tc.s
			const id = "RestoreStateMachine"
			p := s.props(t, id)
			if p["StateMachineName"] != tc.name || p["StateMachineType"] != "STANDARD" || render(p["RoleArn"]) != "GetAtt:"+tc.role+".Arn" ||
				render(p["TracingConfiguration"]) != `{"Enabled":true}` {
				t.Errorf("%s: %s", id, render(p))
			}
			lc := p["LoggingConfiguration"].(map[string]any)
			dest := render(lc["Destinations"].([]any)[0].(map[string]any)["CloudWatchLogsLogGroup"].(map[string]any)["LogGroupArn"])
			if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != true || dest != "GetAtt:"+tc.logs+".Arn" {
				t.Errorf("%s logging %s: want every event with execution data to %s", id, render(lc), tc.logs)
			}
			subst := map[string]string{}
			for k, v := range p["DefinitionSubstitutions"].(map[string]any) {
				subst[k] = render(v)
			}
			if diff := cmp.Diff(map[string]string{"RestoreFunctionArn": "GetAtt:" + tc.function + ".Arn", "VaultBucket": tc.vaultName}, subst); diff != "" {
				t.Errorf("%s substitutions (-want +got):\n%s", id, diff)
			}
			if render(s.props(t, "RestoreFailedAlarm")["AlarmActions"]) != tc.alarmTopic {
				t.Errorf("RestoreFailedAlarm actions %s", render(s.props(t, "RestoreFailedAlarm")["AlarmActions"]))
			}

			def := definitionOf(t, s, id)
			if def["TimeoutSeconds"] != tc.timeout || def["StartAt"] != stateRestorePlan {
				t.Errorf("TimeoutSeconds %v StartAt %v, want %v (restore.timeoutHours) and Plan", def["TimeoutSeconds"], def["StartAt"], tc.timeout)
			}
			states := def["States"].(map[string]any)
			var names []string
			for n := range states {
				names = append(names, n)
			}
			sort.Strings(names)
			wantNames := []string{"Batches", "Failed", "Plan", "PlanDone", "RecordFailure", "Report", "ReportDone", "Rollback", "RollbackDone", "RollbackWanted", "Succeeded"}
			if !slices.Equal(names, wantNames) {
				t.Errorf("states %v, want %v", names, wantNames)
			}
			tasks := map[string]map[string]any{}
			for name, st := range states {
				if st.(map[string]any)["Type"] == "Task" {
					tasks[name] = st.(map[string]any)
				}
			}
			m := states[stateBatches].(map[string]any)
			proc := m["ItemProcessor"].(map[string]any)
			tasks[stateBatch] = proc["States"].(map[string]any)[stateBatch].(map[string]any)
			// The payloads restore.LocalExecution passes, step by step.
			wantParams := map[string]string{
				stateRestorePlan:   fmt.Sprintf(`{"execution.$":"$$.Execution.Id","job.$":"$","startTime.$":"$$.Execution.StartTime","step":"plan","timeoutSeconds":%v}`, tc.timeout),
				stateBatch:         `{"BatchInput.$":"$.BatchInput","Items.$":"$.Items","step":"batch"}`,
				stateRollback:      `{"job.$":"$","step":"rollback"}`,
				stateReport:        `{"job.$":"$","step":"report"}`,
				stateRecordFailure: `{"error.$":"$.error","job.$":"$","step":"fail"}`,
			}
			if len(tasks) != len(wantParams) {
				t.Errorf("tasks %v", tasks)
			}
			retry := [][]string{restore.ErrorNames.Retryable, LambdaTransientErrors}
			catch := [][]string{restore.ErrorNames.Fatal, {"States.ALL"}}
			for name, st := range tasks {
				if st["Resource"] != "${"+substRestoreFunction+"}" || render(st["Parameters"]) != wantParams[name] {
					t.Errorf("%s: resource %v parameters %s, want the restore function with %s", name, st["Resource"], render(st["Parameters"]), wantParams[name])
				}
				if diff := cmp.Diff(retry, errorNames(st["Retry"])); diff != "" {
					t.Errorf("%s Retry names (-want +got):\n%s", name, diff)
				}
				for _, r := range list0(st["Retry"]) {
					r := r.(map[string]any)
					if r["MaxAttempts"] != 6.0 || r["BackoffRate"] != 2.0 || r["IntervalSeconds"] != 2.0 || r["JitterStrategy"] != "FULL" {
						t.Errorf("%s retrier %s: want exponential backoff with jitter", name, render(r))
					}
				}
				if _, ok := st["ResultPath"]; ok != (name == stateRecordFailure) {
					t.Errorf("%s ResultPath %v: only RecordFailure keeps its input (the other steps return the job)", name, st["ResultPath"])
				}
				switch name {
				case stateBatch: // a failed batch is the Map's to tolerate
					if st["Catch"] != nil || st["End"] != true {
						t.Errorf("Batch: %s", render(st))
					}
				case stateRecordFailure:
					if render(st["Catch"]) != `[{"ErrorEquals":["States.ALL"],"Next":"Failed","ResultPath":"$.recordError"}]` || st["Next"] != stateFailed {
						t.Errorf("RecordFailure: %s", render(st))
					}
				default:
					if diff := cmp.Diff(catch, errorNames(st["Catch"])); diff != "" {
						t.Errorf("%s Catch names (-want +got):\n%s", name, diff)
					}
					for _, c := range list0(st["Catch"]) {
						if c := c.(map[string]any); c["Next"] != stateRecordFailure || c["ResultPath"] != "$.error" {
							t.Errorf("%s catcher %s: want the job kept and the error at $.error, on to RecordFailure", name, render(c))
						}
					}
				}
			}
			for _, n := range restore.ErrorNames.Fatal {
				if slices.Contains(restore.ErrorNames.Retryable, n) {
					t.Errorf("%s is both retryable and fatal", n)
				}
			}
			wantMap := map[string]any{
				"Type": "Map", "Label": "RestoreBatches",
				"ItemReader": map[string]any{"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": map[string]any{"InputType": "JSON"},
					"Parameters": map[string]any{"Bucket": "${VaultBucket}", "Key.$": "$.plan.itemsKey"}},
				"ItemBatcher":    map[string]any{"MaxItemsPerBatch": tc.perBatch, "BatchInput": map[string]any{"job.$": "$"}},
				"MaxConcurrency": tc.concurrency, "ToleratedFailurePercentage": tc.tolerated, "ResultPath": nil, "Next": stateRollbackWanted,
			}
			got := map[string]any{}
			for k := range wantMap {
				got[k] = m[k]
			}
			if diff := cmp.Diff(wantMap, got); diff != "" {
				t.Errorf("Batches (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(catch, errorNames(m["Catch"])); diff != "" {
				t.Errorf("Batches Catch names (-want +got):\n%s", diff)
			}
			if render(proc["ProcessorConfig"]) != `{"ExecutionType":"STANDARD","Mode":"DISTRIBUTED"}` || proc["StartAt"] != stateBatch {
				t.Errorf("ItemProcessor %s", render(proc))
			}
			for name, wantState := range map[string]string{
				statePlanDone: `{"Choices":[{"BooleanEquals":true,"Next":"Batches","Variable":"$.plan.done"}],"Default":"Plan","Type":"Choice"}`,
				stateRollbackWanted: `{"Choices":[{"And":[{"IsPresent":true,"Variable":"$.request.mode"},{"StringEquals":"rollback","Variable":"$.request.mode"},` +
					`{"BooleanEquals":false,"Variable":"$.rollback.done"}],"Next":"Rollback"},{"BooleanEquals":true,"Next":"Succeeded","Variable":"$.report.done"}],"Default":"Report","Type":"Choice"}`,
				stateRollbackDone: `{"Choices":[{"BooleanEquals":true,"Next":"Report","Variable":"$.rollback.done"}],"Default":"Rollback","Type":"Choice"}`,
				stateReportDone:   `{"Choices":[{"BooleanEquals":true,"Next":"Succeeded","Variable":"$.report.done"}],"Default":"Report","Type":"Choice"}`,
				stateSucceeded:    `{"Type":"Succeed"}`,
				stateFailed:       `{"CausePath":"$.error.Cause","ErrorPath":"$.error.Error","Type":"Fail"}`,
			} {
				if got := render(states[name]); got != wantState {
					t.Errorf("%s = %s, want %s", name, got, wantState)
				}
			}
			for from, to := range map[string]string{stateRestorePlan: statePlanDone, stateRollback: stateRollbackDone, stateReport: stateReportDone} {
				if next := states[from].(map[string]any)["Next"]; next != to {
					t.Errorf("%s -> %v, want %s", from, next, to)
				}
			}
		})
	}
	// The names the definition spells are the engine's.
	if got := []string{restore.StepPlan, restore.StepBatch, restore.StepRollback, restore.StepReport, restore.StepFail, restore.Rollback}; !slices.Equal(got,
		[]string{"plan", "batch", "rollback", "report", "fail", "rollback"}) {
		t.Errorf("the restore engine spells %v: the definitions above spell its old names", got)
	}
}

// TestRestoreJobFiles: a state machine's restore keeps its working files
// in its scratch (scratch/jobs/<job>/restore/<run>/, shared/restore's
// workflow.go), its record and mapping parts under jobs/. The restore
// function's role may read, write and list each of them, and set the
// scratch files' own retention, and no other scratch file; the restore
// state machine's role reads a run's items list (the Distributed Map's
// ItemReader) and nothing else of the vault.
func TestRestoreJobFiles(t *testing.T) {
	const job, run = "restore-20261207T150349Z-c30a8061", "0a1b2c3d4e5f"
	itemsList := vault.JobScratchKey(job, "restore/"+run+"/items.json")
	var scratch []string
	for _, name := range []string{"items.json", "items/00000000.seg", "markers/00000000.seg", "results/00000000.json", "results/m00000000.json",
		"begun/i00000000", "begun/m00000000"} {
		scratch = append(scratch, vault.JobScratchKey(job, "restore/"+run+"/"+name))
	}
	records := []string{vault.JobKey(job), vault.JobPartKey(job, 0), vault.JobItemPartKey(job, 3, 0), vault.JobItemPartKey(job, 50_000_000, 1)}
	for name, st := range synth(t).stacks() {
		bucket := "arn:aws:s3:::" + st.config.Vault.BucketName
		roles := roleStatements(t, st)
		may := func(role, action, key string) bool {
			for _, x := range roles[role] {
				if x.Effect == "Allow" && slices.Contains(x.Actions, action) &&
					slices.ContainsFunc(x.Resources, func(r string) bool { return patternMatches(r, bucket+"/"+key) }) {
					return true
				}
			}
			return false
		}
		lists := func(role, key string) bool {
			for _, x := range roles[role] {
				if x.Effect != "Allow" || !slices.Contains(x.Actions, "s3:ListBucket") || !slices.Contains(x.Resources, bucket) {
					continue
				}
				for _, p := range list0(conditionOf(t, x)["StringLike"]["s3:prefix"]) {
					if patternMatches(p.(string), key) {
						return true
					}
				}
			}
			return false
		}
		for _, k := range append(slices.Clone(scratch), records...) {
			if !may("RestoreRole", "s3:GetObject", k) || !may("RestoreRole", "s3:PutObject", k) || !lists("RestoreRole", k) {
				t.Errorf("%s: the restore role may not read, write and list %s", name, k)
			}
			if got, want := may("RestoreStateMachineRole", "s3:GetObject", k), k == itemsList; got != want {
				t.Errorf("%s: the restore state machine's role may read %s: %v, want %v", name, k, got, want)
			}
		}
		for _, k := range scratch {
			if !may("RestoreRole", "s3:PutObjectRetention", k) {
				t.Errorf("%s: the restore role may not set the retention of its scratch file %s", name, k)
			}
		}
		for _, k := range []string{"scratch/compact/photos.json", "scratch/jobs/backup-1/items.json", "scratch/jobs/backup-1/fragments/000001.jsonl.zst"} {
			if may("RestoreRole", "s3:GetObject", k) || may("RestoreRole", "s3:PutObject", k) || may("RestoreRole", "s3:PutObjectRetention", k) {
				t.Errorf("%s: the restore role may read or write %s, scratch that is not a restore's", name, k)
			}
		}
		for _, x := range roles["RestoreStateMachineRole"] {
			if slices.ContainsFunc(x.Actions, func(a string) bool { return strings.HasPrefix(a, "s3:") && a != "s3:GetObject" }) {
				t.Errorf("%s: the restore state machine's role may %v", name, x.Actions)
			}
		}
	}
}
