package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/handler"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// onlyRestoreTestBuckets says whether every resource is a restore test's
// bucket or its objects (restore-test-*, restore-test-*/*).
func onlyRestoreTestBuckets(resources []string) bool {
	for _, r := range resources {
		if r != "arn:aws:s3:::"+restoreTestTargets && r != "arn:aws:s3:::"+restoreTestTargets+"/*" {
			return false
		}
	}
	return len(resources) > 0
}

// TestRestoreTestStateMachine: one Standard state machine for restore
// tests, with exactly the states shared/restoretest/workflow.go draws,
// every Task the restore test function with the payload
// restoretest.LocalExecution passes to the same step, Retry and Catch on
// the engine's error names, the Restore state a nested execution of the
// restore state machine whose failure Validate records, and a failed
// test ending its iteration without failing the Map.
func TestRestoreTestStateMachine(t *testing.T) {
	for _, tc := range []struct {
		stack                    string
		s                        *stackUnderTest
		name, restore            string
		timeout, concurrency, aw float64
	}{
		// main: restore.timeoutHours 72 + the longest validation window
		// (24 hours) + 1; noPlan: timeoutHours 12 as configured, the
		// defaults otherwise.
		{"main", synth(t).main, "BucketVault-restoretest", "RestoreStateMachine", 97 * 3600, 2, 600},
		{"noPlan", synth(t).noPlan, "BucketVaultNoPlan-restoretest", "RestoreStateMachine", 12 * 3600, 4, 300},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			s := tc.s
			const id = "RestoreTestStateMachine"
			p := s.props(t, id)
			if p["StateMachineName"] != tc.name || p["StateMachineType"] != "STANDARD" || render(p["RoleArn"]) != "GetAtt:RestoreTestStateMachineRole.Arn" ||
				render(p["TracingConfiguration"]) != `{"Enabled":true}` {
				t.Errorf("%s: %s", id, render(p))
			}
			lc := p["LoggingConfiguration"].(map[string]any)
			dest := render(lc["Destinations"].([]any)[0].(map[string]any)["CloudWatchLogsLogGroup"].(map[string]any)["LogGroupArn"])
			if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != true || dest != "GetAtt:RestoreTestStateMachineLogs.Arn" {
				t.Errorf("%s logging %s", id, render(lc))
			}
			subst := map[string]string{}
			for k, v := range p["DefinitionSubstitutions"].(map[string]any) {
				subst[k] = render(v)
			}
			if diff := cmp.Diff(map[string]string{substRestoreTestFunction: "GetAtt:RestoretestFunction.Arn", substRestoreMachine: "Ref:" + tc.restore}, subst); diff != "" {
				t.Errorf("%s substitutions (-want +got):\n%s", id, diff)
			}

			def := definitionOf(t, s, id)
			if def["TimeoutSeconds"] != tc.timeout || def["StartAt"] != stateResolve {
				t.Errorf("TimeoutSeconds %v StartAt %v, want %v and Resolve", def["TimeoutSeconds"], def["StartAt"], tc.timeout)
			}
			top := def["States"].(map[string]any)
			if got := sortedKeys(top); !slices.Equal(got, []string{stateResolve, stateTests}) {
				t.Errorf("top-level states %v", got)
			}
			m := top[stateTests].(map[string]any)
			proc := m["ItemProcessor"].(map[string]any)
			if m["Type"] != "Map" || m["ItemsPath"] != "$.tests" || m["MaxConcurrency"] != tc.concurrency || m["ResultPath"] != "$.tests" || m["End"] != true ||
				render(proc["ProcessorConfig"]) != `{"Mode":"INLINE"}` || proc["StartAt"] != stateTestStart || m["Catch"] != nil || m["Retry"] != nil {
				t.Errorf("Tests: %s", render(m))
			}
			states := proc["States"].(map[string]any)
			want := []string{"Await", "AwaitEvery", "Awaiting", "Cleanup", "Ended", "Fail", "Hook", "HookWanted", "Restore", "Start", "Validate", "WaitWindow"}
			if got := sortedKeys(states); !slices.Equal(got, want) {
				t.Errorf("a test's states %v, want %v", got, want)
			}
			tasks := map[string]map[string]any{stateResolve: top[stateResolve].(map[string]any)}
			for name, st := range states {
				if st := st.(map[string]any); st["Type"] == "Task" && name != stateTestRunsIt {
					tasks[name] = st
				}
			}
			// The payloads LocalExecution passes, step by step.
			wantParams := map[string]string{
				stateResolve:   `{"scheduled.$":"$.scheduled","step":"resolve"}`,
				stateTestStart: fmt.Sprintf(`{"startTime.$":"$$.Execution.StartTime","step":"start","test.$":"$","timeoutSeconds":%v}`, tc.timeout),
				stateValidate:  `{"error.$":"$.error","step":"validate","test.$":"$"}`,
				stateHook:      `{"step":"hook","test.$":"$"}`,
				stateAwait:     `{"step":"await","test.$":"$"}`,
				stateCleanup:   `{"step":"cleanup","test.$":"$"}`,
				stateTestFail:  `{"error.$":"$.error","step":"fail","test.$":"$"}`,
			}
			if diff := cmp.Diff(sortedKeys(wantParams), sortedKeys(tasks)); diff != "" {
				t.Errorf("tasks (-want +got):\n%s", diff)
			}
			next := map[string]string{stateResolve: stateTests, stateTestStart: stateTestRunsIt, stateValidate: stateHookWanted, stateHook: stateAwaiting, stateAwait: stateAwaiting}
			for name, st := range tasks {
				if st["Resource"] != "${"+substRestoreTestFunction+"}" || render(st["Parameters"]) != wantParams[name] {
					t.Errorf("%s: resource %v parameters %s, want the restore test function with %s", name, st["Resource"], render(st["Parameters"]), wantParams[name])
				}
				if diff := cmp.Diff([][]string{restoretest.ErrorNames.Retryable, LambdaTransientErrors}, errorNames(st["Retry"])); diff != "" {
					t.Errorf("%s Retry names (-want +got):\n%s", name, diff)
				}
				// Each step's output, the Test, is the next state's input.
				if _, ok := st["ResultPath"]; ok {
					t.Errorf("%s ResultPath %v: the step's output replaces its input", name, st["ResultPath"])
				}
				switch name {
				case stateResolve: // nothing to fail but the execution
					if st["Catch"] != nil || st["Next"] != stateTests {
						t.Errorf("Resolve: %s", render(st))
					}
				case stateTestFail:
					if render(st["Catch"]) != `[{"ErrorEquals":["States.ALL"],"Next":"Ended","ResultPath":"$.failError"}]` || st["End"] != true {
						t.Errorf("Fail: %s", render(st))
					}
				default:
					if diff := cmp.Diff([][]string{restoretest.ErrorNames.Fatal, {"States.ALL"}}, errorNames(st["Catch"])); diff != "" {
						t.Errorf("%s Catch names (-want +got):\n%s", name, diff)
					}
					for _, c := range list0(st["Catch"]) {
						if c := c.(map[string]any); c["Next"] != stateTestFail || c["ResultPath"] != "$.error" {
							t.Errorf("%s catcher %s: want the Test kept with the error at $.error, on to Fail", name, render(c))
						}
					}
					if name == stateCleanup {
						if st["End"] != true || st["Next"] != nil {
							t.Errorf("Cleanup ends the test: %s", render(st))
						}
					} else if st["Next"] != next[name] {
						t.Errorf("%s -> %v, want %s", name, st["Next"], next[name])
					}
				}
			}
			wantStates := map[string]string{
				stateTestRunsIt: `{"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Validate","ResultPath":"$.error"}],"Next":"Validate",` +
					`"Parameters":{"Input":{"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$":"$$.Execution.Id","request.$":"$.restore.request"},"StateMachineArn":"${RestoreStateMachineArn}"},` +
					`"Resource":"arn:aws:states:::states:startExecution.sync:2","ResultPath":"$.error","ResultSelector":{"Cause":null,"Error":null},` +
					`"Retry":[{"BackoffRate":2,"ErrorEquals":["StepFunctions.ExecutionLimitExceeded"],"IntervalSeconds":60,"JitterStrategy":"FULL","MaxAttempts":6,"MaxDelaySeconds":900}],"Type":"Task"}`,
				stateHookWanted: `{"Choices":[{"BooleanEquals":true,"Next":"Hook","Variable":"$.hook"}],"Default":"Awaiting","Type":"Choice"}`,
				stateAwaiting:   `{"Choices":[{"BooleanEquals":true,"Next":"AwaitEvery","Variable":"$.awaiting"}],"Default":"WaitWindow","Type":"Choice"}`,
				stateAwaitEvery: fmt.Sprintf(`{"Next":"Await","Seconds":%v,"Type":"Wait"}`, tc.aw),
				stateWaitWindow: `{"Next":"Cleanup","TimestampPath":"$.deleteAfter","Type":"Wait"}`,
				stateTestEnded:  `{"Type":"Succeed"}`,
			}
			for name, w := range wantStates {
				if got := render(states[name]); got != w {
					t.Errorf("%s = %s\nwant %s", name, got, w)
				}
			}
		})
	}
	// The step names and Test fields the definition spells are the
	// engine's.
	if got := []string{restoretest.StepResolve, restoretest.StepStart, restoretest.StepValidate, restoretest.StepHook, restoretest.StepAwait, restoretest.StepCleanup, restoretest.StepFail}; !slices.Equal(got,
		[]string{"resolve", "start", "validate", "hook", "await", "cleanup", "fail"}) {
		t.Errorf("the restore test engine spells %v: the definition spells its old names", got)
	}
	b, err := json.Marshal(restoretest.Test{Restore: &struct {
		Request restore.Request `json:"request"`
	}{}, DeleteAfter: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	_ = json.Unmarshal(b, &fields)
	for _, f := range []string{"restore", "hook", "awaiting", "deleteAfter"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("a Test has no %q in JSON (%s): the definition's paths name it", f, b)
		}
	}
	var probe restoretest.StepRequest
	if err := json.Unmarshal([]byte(`{"step":"validate","error":{"Error":null,"Cause":null}}`), &probe); err != nil || probe.Error == nil || probe.Error.Error != "" || probe.Error.Cause != "" {
		t.Errorf("the Restore state's null error decodes to %+v (%v): want empty, which Validate reads as nothing caught", probe.Error, err)
	}
}

// sortedKeys are a map's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRestoreTestSchedules: one EventBridge Scheduler schedule per plan,
// its expression and time zone, a flexible window of its start window
// (at most 1,440 minutes), the restore test state machine as target with
// the plan, its selections, RTO and validation function as input, and a
// role that may start that state machine only; and the sweeper, daily.
func TestRestoreTestSchedules(t *testing.T) {
	s := synth(t).main
	c := s.config
	type sched struct {
		id, expr, tz string
		window, age  float64
		plan         int
	}
	for _, w := range []sched{
		// 8 hours, all of it flexible; retries for a minute (Scheduler's least).
		{"RestoreTestPlanS3DailySchedule", "cron(0 5 ? * * *)", "Europe/Paris", 480, 60, 0},
		// 48 hours: 1,440 minutes flexible (Scheduler's most), retries for the other day.
		{"RestoreTestPlanS3WeeklyRandomSchedule", "cron(0 3 ? * SUN *)", "Etc/UTC", 1440, 86400, 1},
	} {
		p := s.props(t, w.id)
		if p["ScheduleExpression"] != w.expr || p["ScheduleExpressionTimezone"] != w.tz || p["State"] != "ENABLED" ||
			render(p["FlexibleTimeWindow"]) != fmt.Sprintf(`{"MaximumWindowInMinutes":%v,"Mode":"FLEXIBLE"}`, w.window) {
			t.Errorf("%s: %s", w.id, render(p))
		}
		tg := p["Target"].(map[string]any)
		if render(tg["Arn"]) != "Ref:RestoreTestStateMachine" || render(tg["RoleArn"]) != "GetAtt:RestoreTestScheduleRole.Arn" ||
			render(tg["RetryPolicy"]) != fmt.Sprintf(`{"MaximumEventAgeInSeconds":%v,"MaximumRetryAttempts":185}`, w.age) {
			t.Errorf("%s target %s", w.id, render(tg))
		}
		var in struct {
			Scheduled restoretest.Scheduled `json:"scheduled"`
		}
		dec := json.NewDecoder(strings.NewReader(tg["Input"].(string)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("%s input %s: %v", w.id, tg["Input"], err)
		}
		pl := c.RestoreTesting.Plans[w.plan]
		want := restoretest.Scheduled{Vault: "bucketvault-vault-123456789012-us-east-1", PlanName: pl.Loaded.RestoreTestingPlanName,
			RecoveryPointSelection: pl.Loaded.RecoveryPointSelection, Selections: pl.LoadedSelections}
		if w.plan == 0 {
			want.RTOSeconds, want.ValidationFunction = 3600, "arn:aws:lambda:us-east-1:123456789012:function:validate-restores"
		}
		if diff := cmp.Diff(want, in.Scheduled); diff != "" {
			t.Errorf("%s input (-want +got):\n%s", w.id, diff)
		}
		if w.plan == 0 && (len(in.Scheduled.Selections) != 2 || in.Scheduled.Selections[0].RestoreTestingSelectionName != "s3_tagged" ||
			in.Scheduled.Selections[0].ProtectedResourceConditions == nil || *in.Scheduled.Selections[0].ValidationWindowHours != 24) {
			t.Errorf("%s selections %+v: want the files' two, as written", w.id, in.Scheduled.Selections)
		}
	}
	var ids []string
	for _, id := range s.ofType("AWS::Scheduler::Schedule") {
		if strings.HasPrefix(id, "RestoreTest") {
			ids = append(ids, id)
		}
	}
	if diff := cmp.Diff([]string{"RestoreTestPlanS3DailySchedule", "RestoreTestPlanS3WeeklyRandomSchedule", "RestoreTestSweepSchedule"}, ids); diff != "" {
		t.Errorf("restore test schedules (-want +got):\n%s", diff)
	}
	sw := s.props(t, "RestoreTestSweepSchedule")
	if sw["ScheduleExpression"] != "rate(1 day)" || sw["ScheduleExpressionTimezone"] != "UTC" || render(sw["FlexibleTimeWindow"]) != `{"Mode":"OFF"}` ||
		render(sw["Target"]) != `{"Arn":{"Fn::GetAtt":["RestoretestFunction","Arn"]},"Input":"{\"sweep\":true}","RetryPolicy":{"MaximumEventAgeInSeconds":3600,"MaximumRetryAttempts":3},"RoleArn":{"Fn::GetAtt":["RestoreTestSweepScheduleRole","Arn"]}}` {
		t.Errorf("sweeper: %s", render(sw))
	}
	// The sweeper's input is a sweep to the function's handler.
	req, err := handler.DecodeRestoreTestRequest([]byte(`{"sweep":true}`))
	if err != nil || !req.Sweep {
		t.Errorf("the sweeper's input decodes to %+v, %v", req, err)
	}
	// A stack without restore testing has none of it.
	v := synth(t).variant
	for _, id := range []string{"RestoretestFunction", "RestoretestRole", "RestoreTestStateMachine", "RestoreTestScheduleRole", "RestoreTestSweepSchedule", "RestoreTestFailedAlarm"} {
		if _, ok := v.resources()[id]; ok {
			t.Errorf("variant (no restoreTesting) has %s", id)
		}
	}
	if _, ok := v.template["Outputs"].(map[string]any)["RestoreTestStateMachineArn"]; ok {
		t.Error("variant (no restoreTesting) outputs RestoreTestStateMachineArn")
	}
}

// TestRestoreTestFlexibleWindow: Scheduler's flexible window is the plan's
// start window up to 1,440 minutes; the rest of the start window is the
// retries' (at least a minute, at most a day).
func TestRestoreTestFlexibleWindow(t *testing.T) {
	for hours, want := range map[int64][2]int{1: {60, 60}, 24: {1440, 60}, 25: {1440, 3600}, 48: {1440, 86400}, 168: {1440, 86400}} {
		h := hours
		w, age := RestoreTestFlexibleWindow(&restoretest.Plan{StartWindowHours: &h})
		if [2]int{w, age} != want {
			t.Errorf("StartWindowHours %d: window %d minutes, retries %d s; want %v", hours, w, age, want)
		}
	}
	if w, _ := RestoreTestFlexibleWindow(&restoretest.Plan{}); w != 1440 {
		t.Errorf("default start window (24 hours): %d minutes", w)
	}
}

// TestRestoreTestDeletesOnlyItsBuckets: over every policy document of
// every stack, s3:DeleteBucket, s3:DeleteObject and s3:DeleteObjectVersion
// are the restore test role's on restore-test-* buckets and their objects
// only (wherever it has them, it has them on nothing else); no other role
// may delete a bucket; and the restore test role has every one of them
// there, so it can delete a restored bucket whole.
func TestRestoreTestDeletesOnlyItsBuckets(t *testing.T) {
	deletes := []string{"s3:DeleteBucket", "s3:DeleteObject", "s3:DeleteObjectVersion"}
	for name, st := range synth(t).stacks() {
		owners := policyOwners(t, st)
		has := map[string]bool{}
		for id, doc := range policyDocuments(t, st) {
			for _, x := range statements(doc) {
				if x.Effect != "Allow" {
					continue
				}
				for _, d := range deletes {
					if !slices.ContainsFunc(x.Actions, func(a string) bool { return patternMatches(a, d) }) {
						continue
					}
					switch {
					case slices.Equal(owners[id], []string{"Ref:RestoretestRole"}):
						if !onlyRestoreTestBuckets(x.Resources) {
							t.Errorf("%s: the restore test role may %s on %v: want restore-test-* only", name, d, x.Resources)
						}
						has[d] = true
					case d == "s3:DeleteBucket":
						t.Errorf("%s: %s (for %v) may delete buckets: %+v", name, id, owners[id], x)
					}
				}
			}
		}
		if st.config.RestoreTesting == nil {
			if len(has) > 0 {
				t.Errorf("%s: no restore testing, yet a restore test role deletes", name)
			}
			continue
		}
		for _, d := range deletes {
			if !has[d] {
				t.Errorf("%s: the restore test role may not %s on restore-test-*", name, d)
			}
		}
		// Nothing the stack protects, restores into or keeps is a
		// restore-test-* bucket (the configuration refuses such names).
		for _, b := range append(append([]string{st.config.Vault.BucketName}, st.config.ProtectedBuckets...), st.config.RestoreTargets...) {
			if patternMatches(restoreTestTargets, b) {
				t.Errorf("%s: %s matches %s", name, b, restoreTestTargets)
			}
		}
	}
}

// TestRestoreTestValidationFunctions: the restore test role may invoke
// the configured validation functions and nothing else; without one it
// may invoke nothing.
func TestRestoreTestValidationFunctions(t *testing.T) {
	for name, want := range map[string][]string{
		"main":   {"arn:aws:lambda:us-east-1:123456789012:function:validate-restores"},
		"noPlan": nil,
	} {
		st := synth(t).stacks()[name]
		var got []string
		for _, x := range rolePolicy(t, st, "RestoretestRole") {
			if slices.ContainsFunc(x.Actions, func(a string) bool { return strings.HasPrefix(a, "lambda:") }) {
				got = append(got, x.Resources...)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: the restore test role invokes (-want +got):\n%s", name, diff)
		}
	}
}

// TestRestoreTargetsForRestoreTests: with restore testing, the restore
// function may create and write restore-test-* buckets (its environment's
// targets and its role); without, it may not.
func TestRestoreTargetsForRestoreTests(t *testing.T) {
	for name, st := range synth(t).stacks() {
		want := st.config.RestoreTesting != nil
		env := render(st.props(t, "RestoreFunction")["Environment"].(map[string]any)["Variables"].(map[string]any)[config.EnvRestoreTargets])
		if got := slices.Contains(strings.Split(env, ","), restoreTestTargets); got != want {
			t.Errorf("%s: %s = %q: restore-test-* %v, want %v", name, config.EnvRestoreTargets, env, got, want)
		}
		for _, sid := range []string{"PrepareTargets", "WriteTargets"} {
			got := false
			for _, x := range rolePolicy(t, st, "RestoreRole") {
				if x.Sid == sid {
					got = slices.ContainsFunc(x.Resources, func(r string) bool { return strings.HasPrefix(r, "arn:aws:s3:::"+restoreTestTargets) })
				}
			}
			if got != want {
				t.Errorf("%s: the restore role's %s on restore-test-*: %v, want %v", name, sid, got, want)
			}
		}
	}
	// The variable the function reads (shared/config) and the stack's
	// variables for the restore test function (shared/handler).
	if diff := cmp.Diff(handler.StackEnv("restoretest"), sortedKeys(synth(t).main.props(t, "RestoretestFunction")["Environment"].(map[string]any)["Variables"].(map[string]any))); diff != "" {
		t.Errorf("the restore test function's environment (-handler.StackEnv +template):\n%s", diff)
	}
}
