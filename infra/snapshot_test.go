package main

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// definitionOf decodes a state machine's DefinitionString.
func definitionOf(t *testing.T, s *stackUnderTest, id string) map[string]any {
	t.Helper()
	def, ok := s.props(t, id)["DefinitionString"].(string)
	if !ok {
		t.Fatalf("%s: DefinitionString %s", id, render(s.props(t, id)["DefinitionString"]))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// errorNames are the ErrorEquals of a Retry or Catch list.
func errorNames(v any) [][]string {
	var out [][]string
	for _, r := range list0(v) {
		var names []string
		for _, n := range list0(r.(map[string]any)["ErrorEquals"]) {
			names = append(names, n.(string))
		}
		out = append(out, names)
	}
	return out
}

// TestSnapshotStateMachines: one Standard state machine per snapshot rule
// (and the on-demand one), its timeout the rule's completion window, its
// Map settings the configuration's, its Retry and Catch the engine's error
// type names, every task the snapshot function with the local runner's
// payloads.
func TestSnapshotStateMachines(t *testing.T) {
	s := synth(t).main
	want := map[string]struct {
		name    string
		timeout float64
	}{
		"SnapshotStateMachine":                {"BucketVault-snapshot", 10080 * 60},
		"SnapshotRuleDailyStateMachine":       {"BucketVault-snapshot-daily", 720 * 60},
		"SnapshotRuleEvery6HoursStateMachine": {"BucketVault-snapshot-every-6-hours", 300 * 60},
	}
	var ids []string
	for _, id := range s.ofType("AWS::StepFunctions::StateMachine") {
		if strings.HasPrefix(id, "Snapshot") { // the restore state machine is TestRestoreStateMachine's
			ids = append(ids, id)
		}
	}
	var wantIDs []string
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	sort.Strings(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("state machines %v, want %v (none for the continuous rule)", ids, wantIDs)
	}
	retry := [][]string{snapshot.ErrorNames.Retryable, LambdaTransientErrors}
	catch := [][]string{snapshot.ErrorNames.Fatal, {"States.ALL"}}
	for id, w := range want {
		p := s.props(t, id)
		if p["StateMachineName"] != w.name || p["StateMachineType"] != "STANDARD" || render(p["RoleArn"]) != "GetAtt:SnapshotStateMachineRole.Arn" ||
			render(p["TracingConfiguration"]) != `{"Enabled":true}` {
			t.Errorf("%s: %s", id, render(p))
		}
		def := definitionOf(t, s, id)
		if def["TimeoutSeconds"] != w.timeout || def["StartAt"] != stateStart {
			t.Errorf("%s: TimeoutSeconds %v StartAt %v, want %v (the completion window) and Start", id, def["TimeoutSeconds"], def["StartAt"], w.timeout)
		}
		states := def["States"].(map[string]any)
		// Every task: the snapshot function, the engine's step payloads.
		tasks := map[string]any{}
		for name, st := range states {
			if st.(map[string]any)["Type"] == "Task" {
				tasks[name] = st
			}
		}
		m := states[stateCopyBatches].(map[string]any)
		proc := m["ItemProcessor"].(map[string]any)
		tasks[stateCopy] = proc["States"].(map[string]any)[stateCopy]
		wantParams := map[string]string{
			stateStart: `{"job.$":"$","step":"start"}`, stateScan: `{"job.$":"$","step":"scan"}`,
			stateCopy: `{"BatchInput.$":"$.BatchInput","Items.$":"$.Items","step":"copy"}`,
			stateSeal: `{"job.$":"$","step":"seal"}`, stateNotify: `{"job.$":"$","step":"notify"}`,
			stateRecordFailure: `{"error.$":"$.error","job.$":"$","step":"fail"}`,
		}
		if len(tasks) != len(wantParams) {
			t.Errorf("%s: tasks %v", id, tasks)
		}
		for name, task := range tasks {
			st := task.(map[string]any)
			if st["Resource"] != "${"+substFunction+"}" || render(st["Parameters"]) != wantParams[name] {
				t.Errorf("%s %s: resource %v parameters %s, want the snapshot function with %s", id, name, st["Resource"], render(st["Parameters"]), wantParams[name])
			}
			if diff := cmp.Diff(retry, errorNames(st["Retry"])); diff != "" {
				t.Errorf("%s %s Retry names (-want +got):\n%s", id, name, diff)
			}
			for _, r := range list0(st["Retry"]) {
				r := r.(map[string]any)
				if r["MaxAttempts"] != 6.0 || r["BackoffRate"] != 2.0 || r["IntervalSeconds"] != 2.0 || r["JitterStrategy"] != "FULL" {
					t.Errorf("%s %s retrier %s: want exponential backoff with jitter", id, name, render(r))
				}
			}
			switch name {
			case stateCopy: // a failed batch is the Map's to tolerate
				if st["Catch"] != nil {
					t.Errorf("%s Copy catches: %s", id, render(st["Catch"]))
				}
			case stateRecordFailure:
				if render(st["Catch"]) != `[{"ErrorEquals":["States.ALL"],"Next":"Failed","ResultPath":"$.recordError"}]` || st["Next"] != stateFailed {
					t.Errorf("%s RecordFailure: %s", id, render(st))
				}
			default:
				if diff := cmp.Diff(catch, errorNames(st["Catch"])); diff != "" {
					t.Errorf("%s %s Catch names (-want +got):\n%s", id, name, diff)
				}
				for _, c := range list0(st["Catch"]) {
					if c := c.(map[string]any); c["Next"] != stateRecordFailure || c["ResultPath"] != "$.error" {
						t.Errorf("%s %s catcher %s: want the job kept and the error at $.error, on to RecordFailure", id, name, render(c))
					}
				}
			}
		}
		// The engine's names never appear in the wrong list.
		for _, n := range snapshot.ErrorNames.Fatal {
			if slices.Contains(snapshot.ErrorNames.Retryable, n) {
				t.Errorf("%s is both retryable and fatal", n)
			}
		}
		wantMap := map[string]any{
			"Type": "Map", "Label": "CopyBatches",
			"ItemReader": map[string]any{"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": map[string]any{"InputType": "JSON"},
				"Parameters": map[string]any{"Bucket": "${VaultBucket}", "Key.$": "$.scan.itemsKey"}},
			"ItemBatcher":    map[string]any{"MaxItemsPerBatch": 3.0, "BatchInput": map[string]any{"job.$": "$"}},
			"MaxConcurrency": 200.0, "ToleratedFailurePercentage": 100.0, "ResultPath": nil, "Next": stateSeal,
		}
		got := map[string]any{}
		for k := range wantMap {
			got[k] = m[k]
		}
		if diff := cmp.Diff(wantMap, got); diff != "" {
			t.Errorf("%s CopyBatches (-want +got):\n%s", id, diff)
		}
		if render(proc["ProcessorConfig"]) != `{"ExecutionType":"STANDARD","Mode":"DISTRIBUTED"}` {
			t.Errorf("%s ProcessorConfig %s", id, render(proc["ProcessorConfig"]))
		}
		for name, wantState := range map[string]string{
			stateExpired:   `{"Choices":[{"Next":"Notify","StringEquals":"EXPIRED","Variable":"$.state"}],"Default":"Scan","Type":"Choice"}`,
			stateScanDone:  `{"Choices":[{"BooleanEquals":true,"Next":"CopyBatches","Variable":"$.scan.done"}],"Default":"Scan","Type":"Choice"}`,
			stateSucceeded: `{"Type":"Succeed"}`,
			stateFailed:    `{"CausePath":"$.error.Cause","ErrorPath":"$.error.Error","Type":"Fail"}`,
		} {
			if got := render(states[name]); got != wantState {
				t.Errorf("%s %s = %s, want %s", id, name, got, wantState)
			}
		}
		for from, to := range map[string]string{stateStart: stateExpired, stateScan: stateScanDone, stateSeal: stateNotify, stateNotify: stateSucceeded} {
			if next := states[from].(map[string]any)["Next"]; next != to {
				t.Errorf("%s %s -> %v, want %s", id, from, next, to)
			}
		}
	}
	if snapshot.StateExpired != "EXPIRED" {
		t.Errorf("the ScanDone and StartWindowExpired choices above spell the engine's state %q", snapshot.StateExpired)
	}
}

// TestSnapshotSchedules: one schedule per snapshot rule of the plan file,
// none for the continuous rule, each the rule's expression and zone, a
// flexible window inside its start window, and the dispatch function as
// target with the job snapshot.JobForRule makes.
func TestSnapshotSchedules(t *testing.T) {
	s := synth(t).main
	c := s.config
	want := map[string]struct {
		rule, expr, tz string
		flex, age      float64
	}{
		"SnapshotRuleDailySchedule":       {"daily", "cron(0 5 ? * * *)", "Europe/Paris", 30, 1800},
		"SnapshotRuleEvery6HoursSchedule": {"every-6-hours", "rate(6 hours)", "UTC", 60, 3600},
	}
	var got []string
	for _, id := range s.ofType("AWS::Scheduler::Schedule") {
		if strings.HasPrefix(id, "SnapshotRule") {
			got = append(got, id)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("snapshot schedules %v, want %d", got, len(want))
	}
	for id, w := range want {
		p := s.props(t, id)
		if p["ScheduleExpression"] != w.expr || p["ScheduleExpressionTimezone"] != w.tz || p["State"] != "ENABLED" {
			t.Errorf("%s: %s", id, render(p))
		}
		if got, want := render(p["FlexibleTimeWindow"]), `{"MaximumWindowInMinutes":`+render(w.flex)+`,"Mode":"FLEXIBLE"}`; got != want {
			t.Errorf("%s flexible window %s, want %s", id, got, want)
		}
		target := p["Target"].(map[string]any)
		if render(target["Arn"]) != "GetAtt:DispatchFunction.Arn" || render(target["RoleArn"]) != "GetAtt:SnapshotScheduleRole.Arn" ||
			render(target["RetryPolicy"]) != `{"MaximumEventAgeInSeconds":`+render(w.age)+`,"MaximumRetryAttempts":185}` {
			t.Errorf("%s target %s", id, render(target))
		}
		input := target["Input"].(string)
		// Scheduler replaces the placeholder only if it is spelled out.
		if !strings.Contains(input, `"scheduledAt":"<aws.scheduler.scheduled-time>"`) {
			t.Errorf("%s input %s: want the literal %s", id, input, schedule.ScheduledTimePlaceholder)
		}
		var req schedule.Request
		fired := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
		if err := json.Unmarshal([]byte(strings.Replace(input, schedule.ScheduledTimePlaceholder, fired.Format(time.RFC3339), 1)), &req); err != nil {
			t.Fatalf("%s input does not decode as the dispatch request: %v", id, err)
		}
		var rule *plan.Rule
		for i := range c.Plan.Rules {
			if c.Plan.Rules[i].RuleName == w.rule {
				rule = &c.Plan.Rules[i]
			}
		}
		wantReq := schedule.Request{
			ScheduledAt:     fired,
			StateMachineARN: "arn:aws:states:us-east-1:123456789012:stateMachine:BucketVault-snapshot-" + w.rule,
			Job:             snapshot.JobForRule(c.Plan, rule, c.Vault.BucketName, "", time.Time{}),
			Selections:      c.Selections,
		}
		if diff := cmp.Diff(wantReq, req); diff != "" {
			t.Errorf("%s dispatch request (-want +got):\n%s", id, diff)
		}
	}
	// The variant's plan has no selections: its rule backs up the
	// protected buckets.
	v := synth(t).variant
	in := v.props(t, "SnapshotRuleWeeklySchedule")["Target"].(map[string]any)["Input"].(string)
	var req schedule.Request
	if err := json.Unmarshal([]byte(strings.Replace(in, schedule.ScheduledTimePlaceholder, "2026-03-01T03:00:00Z", 1)), &req); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]plan.Selection{{SelectionName: "protectedBuckets", Resources: []string{"arn:aws:s3:::logs"}}}, req.Selections); diff != "" {
		t.Errorf("variant selections (-want +got):\n%s", diff)
	}
	if got := render(v.props(t, "SnapshotRuleWeeklySchedule")["FlexibleTimeWindow"]); got != `{"MaximumWindowInMinutes":240,"Mode":"FLEXIBLE"}` {
		t.Errorf("variant flexible window %s: want half of AWS Backup's default 8-hour start window", got)
	}
}

func TestSnapshotBuckets(t *testing.T) {
	sel := func(resources []string, tags bool) plan.Selection {
		s := plan.Selection{SelectionName: "s", Resources: resources}
		if tags {
			s.ListOfTags = []plan.Condition{{ConditionType: "STRINGEQUALS", ConditionKey: "Backup", ConditionValue: "daily"}}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		sels []plan.Selection
		want []string
	}{
		{"no selections: the protected buckets", nil, []string{"documents", "photos"}},
		{"named buckets and patterns", []plan.Selection{sel([]string{"arn:aws:s3:::logs", "arn:aws:s3:::prod-*"}, false)}, []string{"documents", "logs", "photos", "prod-*"}},
		{"other services take no bucket", []plan.Selection{sel([]string{"arn:aws:dynamodb:us-east-1:123456789012:table/t", "arn:aws:s3:::logs"}, false)}, []string{"documents", "logs", "photos"}},
		{"a selection by tags can take any bucket", []plan.Selection{sel([]string{"arn:aws:s3:::logs"}, true)}, []string{"*"}},
		{"no Resources: every bucket", []plan.Selection{sel(nil, false)}, []string{"*"}},
		{"a wildcard ARN", []plan.Selection{sel([]string{"arn:aws:*"}, false)}, []string{"*"}},
		{"*", []plan.Selection{sel([]string{"*"}, false)}, []string{"*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{ProtectedBuckets: []string{"photos", "documents"}, Selections: tc.sels}
			if diff := cmp.Diff(tc.want, snapshotBuckets(c, "aws")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuleID(t *testing.T) {
	for in, want := range map[string]string{"daily": "Daily", "every-6-hours": "Every6Hours", "Monthly_cold.1": "MonthlyCold1"} {
		if got := ruleID(in); got != want {
			t.Errorf("ruleID(%q) = %q, want %q", in, got, want)
		}
	}
}
