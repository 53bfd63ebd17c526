package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The end-to-end tests of the synthesized state machines: the definition
// CloudFormation would get (DefinitionString with its
// DefinitionSubstitutions applied) runs in aws-local-stepfunctions 3.0.0
// (infra/_sfn, npm), every Task state answered by the test's HTTP server
// (sfnHarness) with the function's own handler on the local S3 server.
// The snapshot state machine, answered by snapshot.Engine.Handle, must
// make the same recovery point as the in-process runner, Engine.Run; the
// restore state machine (restore_sfn_test.go), answered by
// restore.Restorer.Handle, the same restore as Restorer.Run; the restore
// test state machine (restoretest_sfn_test.go), answered by
// restoretest.Tester.Handle, the same runs as restoretest.LocalExecution.
//
// What it does not run as AWS would (infra/_sfn/run.mjs says how each is
// stood in for): the Distributed Map's ItemReader and ItemBatcher, which
// aws-local-stepfunctions does not implement, are done by this test — it
// reads the items list the ItemReader names from the local S3 server and
// batches it as the ItemBatcher would (handleItemReader) — and its
// ToleratedFailurePercentage is applied by run.mjs; Retry pauses are
// shortened (the retries themselves run as synthesized); Lambda is not
// involved (no payload limits, cold starts or timeouts), nor are IAM, the
// ResultWriter (there is none), Map Run redrives or Standard's exactly-once
// state transitions. Every other state, path, Choice, Retry and Catch runs
// as synthesized.

const sfnDir = "_sfn"

// requireLocalStepFunctions fails when node is missing (-short: skips) and installs the
// pinned aws-local-stepfunctions (npm ci, from package-lock.json) when it
// is not installed yet.
func requireLocalStepFunctions(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if testing.Short() {
			t.Skip("node is not installed: the state machines run in aws-local-stepfunctions (npm), which needs Node.js 20 or later")
		}
		t.Fatal("node is not installed: the state machines run in aws-local-stepfunctions (npm), which needs Node.js 20 or later (go test -short skips these tests)")
	}
	data, err := os.ReadFile(filepath.Join(sfnDir, "node_modules", "aws-local-stepfunctions", "package.json"))
	var pkg struct{ Version string }
	if err == nil && json.Unmarshal(data, &pkg) == nil && pkg.Version == "3.0.0" {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("aws-local-stepfunctions is not installed in %s and npm is missing: %v", sfnDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = sfnDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in infra/%s: %v\n%s", sfnDir, err, out)
	}
}

// sfnHarness answers the Task states of one execution.
type sfnHarness struct {
	t *testing.T
	// handle is the function's handler every Task state invokes
	// (snapshot.Engine.Handle, restore.Restorer.Handle): the Task's input
	// in, its result or a Lambda error (its type's name) out.
	handle func(ctx context.Context, input json.RawMessage) (any, error)
	s3     s3x.Client
	// inject, when set, fails the n-th call (from 0) of a state with the
	// Lambda error errorType instead of running the step; input is the
	// Task's input.
	inject func(state string, input json.RawMessage, n int) (errorType string, fail bool)
	// context, when set, is merged into the execution's Context Object
	// (the execution's ARN: {"Execution": {"Id": ...}}).
	context map[string]any
	// waitMs, when set, makes the Wait states it names wait that many
	// milliseconds (run.mjs's waitMs).
	waitMs map[string]int

	mu      sync.Mutex
	calls   []taskCall
	counts  map[string]int
	batches int
}

// taskCall is one Task invocation.
type taskCall struct {
	State, Step string
	Caught      string // the fail step's error.Error
	ErrorType   string // what it answered, "" for a result
}

func (h *sfnHarness) handleTask(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State string          `json:"state"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The step and what the fail step caught, as every engine's step
	// payload spells them; the handler reports what does not decode.
	var req struct {
		Step  string `json:"step"`
		Error *struct {
			Error string `json:"Error"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body.Input, &req)
	call := taskCall{State: body.State, Step: req.Step}
	if req.Error != nil {
		call.Caught = req.Error.Error
	}
	h.mu.Lock()
	n := h.counts[body.State]
	h.counts[body.State]++
	h.mu.Unlock()
	answer := func(v any) {
		h.mu.Lock()
		h.calls = append(h.calls, call)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	if h.inject != nil {
		if typ, fail := h.inject(body.State, body.Input, n); fail {
			call.ErrorType = typ
			answer(map[string]string{"errorType": typ, "errorMessage": "injected by the test"})
			return
		}
	}
	out, err := h.handle(r.Context(), body.Input)
	if err != nil {
		call.ErrorType = lambdaErrorType(err)
		answer(map[string]string{"errorType": call.ErrorType, "errorMessage": err.Error()})
		return
	}
	answer(map[string]any{"output": out})
}

// lambdaErrorType is the errorType aws-lambda-go reports for err: its
// type's name; or, for a Task that is no Lambda function (a nested
// execution), the error name Step Functions reports, which an error gives
// by an ErrorName method.
func lambdaErrorType(err error) string {
	var named interface{ ErrorName() string }
	if errors.As(err, &named) {
		return named.ErrorName()
	}
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// handleItemReader does what the Distributed Map's ItemReader (s3:getObject,
// InputType JSON) and ItemBatcher do, which aws-local-stepfunctions does
// not: it reads the JSON array the ItemReader names and cuts it into
// batches of MaxItemsPerBatch items, each {"Items": [...], "BatchInput":
// <the evaluated BatchInput>}.
func (h *sfnHarness) handleItemReader(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Resource     string `json:"resource"`
		ReaderConfig struct {
			InputType string `json:"InputType"`
		} `json:"readerConfig"`
		Parameters struct {
			Bucket string `json:"Bucket"`
			Key    string `json:"Key"`
		} `json:"parameters"`
		MaxItemsPerBatch int             `json:"maxItemsPerBatch"`
		BatchInput       json.RawMessage `json:"batchInput"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if body.Resource != "arn:aws:states:::s3:getObject" || body.ReaderConfig.InputType != "JSON" || body.MaxItemsPerBatch < 1 {
		http.Error(w, fmt.Sprintf("unexpected ItemReader/ItemBatcher: %+v", body), http.StatusBadRequest)
		return
	}
	out, err := h.s3.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(body.Parameters.Bucket), Key: aws.String(body.Parameters.Key)})
	if err != nil {
		http.Error(w, fmt.Sprintf("ItemReader: s3://%s/%s: %v", body.Parameters.Bucket, body.Parameters.Key, err), http.StatusBadGateway)
		return
	}
	defer out.Body.Close()
	var items []json.RawMessage
	if err := json.NewDecoder(out.Body).Decode(&items); err != nil {
		http.Error(w, fmt.Sprintf("ItemReader: s3://%s/%s is not a JSON array: %v", body.Parameters.Bucket, body.Parameters.Key, err), http.StatusBadGateway)
		return
	}
	batches := []any{}
	for chunk := range slices.Chunk(items, body.MaxItemsPerBatch) {
		batches = append(batches, map[string]any{"Items": chunk, "BatchInput": body.BatchInput})
	}
	h.mu.Lock()
	h.batches += len(batches)
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"batches": batches})
}

// sfnResult is run.mjs's report of an execution.
type sfnResult struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  string          `json:"error"`
	Cause  string          `json:"cause"`
	Events []struct {
		Type    string `json:"type"`
		State   string `json:"state"`
		Error   string `json:"error"`
		Attempt int    `json:"attempt"`
	} `json:"events"`
}

func (r *sfnResult) has(typ, state, errorName string) bool {
	for _, e := range r.Events {
		if e.Type == typ && e.State == state && (errorName == "" || e.Error == errorName) {
			return true
		}
	}
	return false
}

// run executes definition on input with aws-local-stepfunctions.
func (h *sfnHarness) run(definition map[string]any, input any) *sfnResult {
	t := h.t
	t.Helper()
	h.counts = map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /task", h.handleTask)
	mux.HandleFunc("POST /itemreader", h.handleItemReader)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	req, err := json.Marshal(map[string]any{"definition": definition, "input": input, "endpoint": "http://" + ln.Addr().String(), "retryPauseMs": 10, "context": h.context, "waitMs": h.waitMs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "run.mjs")
	cmd.Dir = sfnDir
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node run.mjs: %v\n%s", err, stderr.String())
	}
	var res sfnResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("run.mjs output %q: %v\n%s", out, err, stderr.String())
	}
	return &res
}

// steps lists the calls' states in order, failed calls marked "!".
func (h *sfnHarness) steps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		s := c.State
		if c.ErrorType != "" {
			s += "!" + c.ErrorType
		}
		out = append(out, s)
	}
	return out
}

// eventLog records published job events.
type eventLog struct {
	mu  sync.Mutex
	got []notify.Event
}

func (e *eventLog) Publish(_ context.Context, ev notify.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
	return nil
}

func (e *eventLog) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Type+":"+ev.State)
	}
	return out
}

// snapshotDefinitionFor is a snapshot state machine's definition as
// CloudFormation would deploy it: the template's DefinitionString with its
// DefinitionSubstitutions applied, the function's ARN made up and the vault
// the test's.
func snapshotDefinitionFor(t *testing.T, s *stackUnderTest, logicalID, vaultName string) map[string]any {
	t.Helper()
	return deployedDefinition(t, s, logicalID, substFunction, "SnapshotFunction",
		"arn:aws:lambda:us-east-1:123456789012:function:bucketvault-snapshot", vaultName)
}

// deployedDefinition is a state machine's definition as CloudFormation
// would deploy it: the template's DefinitionString with its
// DefinitionSubstitutions applied, which must be exactly the function
// (subst, the ARN of the function resource fn, made up as fnARN here) and
// the vault (substVault, the test's vault here).
func deployedDefinition(t *testing.T, s *stackUnderTest, logicalID, subst, fn, fnARN, vaultName string) map[string]any {
	t.Helper()
	p := s.props(t, logicalID)
	def, ok := p["DefinitionString"].(string)
	if !ok {
		t.Fatalf("%s DefinitionString is %s, want a string", logicalID, render(p["DefinitionString"]))
	}
	substs := p["DefinitionSubstitutions"].(map[string]any)
	want := map[string]string{subst: "GetAtt:" + fn + ".Arn", substVault: s.config.Vault.BucketName}
	got := map[string]string{}
	for k, v := range substs {
		got[k] = render(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s definition substitutions (-want +got):\n%s", logicalID, diff)
	}
	def = strings.NewReplacer("${"+subst+"}", fnARN, "${"+substVault+"}", vaultName).Replace(def)
	var m map[string]any
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def, "${") {
		t.Fatalf("%s: a substitution is left in the definition: %s", logicalID, def)
	}
	return m
}

// manifest is a recovery point's manifest as (key, version, size, etag).
func manifest(t *testing.T, ctx context.Context, c s3x.Client, vaultName, bucket, rp string) (*vault.SnapshotPoint, []string) {
	t.Helper()
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := v.Snapshot(ctx, bucket, rp)
	if err != nil {
		t.Fatal(err)
	}
	src := v.OpenShards(ctx, sp.Shards, nil)
	defer src.Close()
	var out []string
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s@%s %d %s", o.Key, o.VersionID, o.Size, o.ETag))
	}
	return sp, out
}

func TestSnapshotStateMachineRuns(t *testing.T) {
	requireLocalStepFunctions(t)
	s := synth(t).main
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)

	// A bucket with versions, an overwrite, a delete marker, metadata and
	// tags: 21 current objects, at most 5 per work-item file, 3 files per
	// batch.
	bucket := srv.NewBucket(t, true)
	put := func(key, body string, tagging string) {
		t.Helper()
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		if tagging != "" {
			in.Tagging, in.Metadata, in.ContentType = aws.String(tagging), map[string]string{"owner": "test"}, aws.String("text/plain")
		}
		if _, err := c.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		put(fmt.Sprintf("photos/2026/%02d.jpg", i), strings.Repeat("x", i+1), "")
	}
	put("photos/2026/03.jpg", "overwritten", "Backup=daily")
	put("gone.txt", "bye", "")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("gone.txt")}); err != nil {
		t.Fatal(err)
	}
	put("keys/with space+plus%percent/ünïcödé.txt", "odd", "Team=data%20eng")

	var rule *plan.Rule
	for i := range s.config.Plan.Rules {
		if s.config.Plan.Rules[i].RuleName == "daily" {
			rule = &s.config.Plan.Rules[i]
		}
	}
	if rule == nil {
		t.Fatal("testdata/backup-plan.json has no rule daily")
	}
	engine := func(vaultName string, ev *eventLog) *snapshot.Engine {
		// ScanPages 1 with pages of 5 makes the scan loop through its
		// Choice several times.
		return &snapshot.Engine{S3: c, DefaultVault: vaultName, Concurrency: 4, ChunkSize: 5, ScanPages: 1, Events: ev,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	newVault := func() string {
		name := srv.BucketName(t)
		if _, err := vault.Create(ctx, c, name, vault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return name
	}

	// The in-process runner's recovery point, in its own vault (the same
	// vault would make the second snapshot incremental).
	local := newVault()
	want, err := engine(local, &eventLog{}).Run(ctx, snapshot.JobForRule(s.config.Plan, rule, local, bucket, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	wantPoint, wantManifest := manifest(t, ctx, c, local, bucket, want.RecoveryPointID)

	t.Run("same recovery point as the local runner, retries retried", func(t *testing.T) {
		sv := newVault()
		ev := &eventLog{}
		h := &sfnHarness{t: t, handle: engine(sv, ev).Handle, s3: c}
		// The first Scan and the first Copy fail as transient engine
		// errors, the first Seal as Lambda throttling: each is retried.
		h.inject = func(state string, _ json.RawMessage, n int) (string, bool) {
			switch {
			case state == stateScan && n == 0, state == stateCopy && n == 0:
				return snapshot.ErrorNames.Retryable[0], true
			case state == stateSeal && n == 0:
				return "Lambda.TooManyRequestsException", true
			}
			return "", false
		}
		def := snapshotDefinitionFor(t, s, "SnapshotRuleDailyStateMachine", sv)
		job := snapshot.JobForRule(s.config.Plan, rule, sv, bucket, time.Now())
		res := h.run(def, job)
		if res.Status != "SUCCEEDED" {
			t.Fatalf("execution %s: %s: %s (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		var got snapshot.Job
		if err := json.Unmarshal(res.Output, &got); err != nil {
			t.Fatal(err)
		}
		if got.State != snapshot.StateCompleted || got.RecoveryPointID == "" {
			t.Fatalf("job %s, recovery point %q", got.State, got.RecoveryPointID)
		}
		gotPoint, gotManifest := manifest(t, ctx, c, sv, bucket, got.RecoveryPointID)
		if diff := cmp.Diff(wantManifest, gotManifest); diff != "" {
			t.Errorf("manifest (-local runner +state machine):\n%s", diff)
		}
		type counts struct {
			Status                                              string
			Objects, Bytes, Copied, CopiedBytes, Failed, Shards int64
		}
		countsOf := func(p *vault.SnapshotPoint) counts {
			return counts{p.Status, p.ObjectCount, p.BackupSizeInBytes, p.CopiedObjects, p.CopiedBytes, p.FailedObjects, int64(len(p.Shards))}
		}
		if diff := cmp.Diff(countsOf(wantPoint), countsOf(gotPoint)); diff != "" {
			t.Errorf("recovery point (-local runner +state machine):\n%s", diff)
		}
		if gotPoint.Status != vault.PointAvailable || gotPoint.ObjectCount != 21 {
			t.Errorf("recovery point %s with %d objects, want AVAILABLE with 21", gotPoint.Status, gotPoint.ObjectCount)
		}
		if diff := cmp.Diff(want.Totals, got.Totals); diff != "" {
			t.Errorf("job totals (-local runner +state machine):\n%s", diff)
		}
		if diff := cmp.Diff(want.CreatedBy, got.CreatedBy); diff != "" {
			t.Errorf("CreatedBy (-local runner +state machine):\n%s", diff)
		}

		// The steps, in the local runner's order: start, scan until done,
		// the copies, seal, notify; the injected failures retried.
		steps := h.steps()
		var order []string
		for _, st := range steps {
			if i := strings.IndexByte(st, '!'); i < 0 && (len(order) == 0 || order[len(order)-1] != st) {
				order = append(order, st)
			}
		}
		if diff := cmp.Diff([]string{stateStart, stateScan, stateCopy, stateSeal, stateNotify}, order); diff != "" {
			t.Errorf("steps %v (-want +got):\n%s", steps, diff)
		}
		wantScans := got.Scan.Rounds + 1 // the injected failure
		if n := h.counts[stateScan]; n != wantScans || got.Scan.Rounds < 3 {
			t.Errorf("%d Scan calls for %d rounds: want the rounds (at least 3, through the ScanDone choice) and one retry", n, got.Scan.Rounds)
		}
		wantBatches := (got.Scan.ItemFiles + 2) / 3
		if h.batches != wantBatches || h.counts[stateCopy] != wantBatches+1 {
			t.Errorf("%d batches, %d Copy calls; want %d batches of 3 of the %d work-item files, and one retry", h.batches, h.counts[stateCopy], wantBatches, got.Scan.ItemFiles)
		}
		for _, st := range []string{stateScan, stateCopy, stateSeal} {
			if !res.has("StateRetried", st, "") {
				t.Errorf("no StateRetried event for %s: %+v", st, res.Events)
			}
		}
		if diff := cmp.Diff([]string{"BACKUP_JOB_STARTED:RUNNING", "BACKUP_JOB_COMPLETED:COMPLETED"}, ev.types()); diff != "" {
			t.Errorf("job events (-want +got):\n%s", diff)
		}
	})

	t.Run("a failed batch is tolerated and the point is PARTIAL", func(t *testing.T) {
		sv := newVault()
		h := &sfnHarness{t: t, handle: engine(sv, &eventLog{}).Handle, s3: c}
		var failedFiles []snapshot.ItemRef
		var mu sync.Mutex
		h.inject = func(state string, input json.RawMessage, n int) (string, bool) {
			// The batch holding work-item file 1 fails every attempt
			// with an error no retrier matches.
			var req snapshot.Request
			_ = json.Unmarshal(input, &req)
			if state == stateCopy && len(req.Items) > 0 && req.Items[0].N == 1 {
				mu.Lock()
				defer mu.Unlock()
				if failedFiles == nil {
					failedFiles = req.Items
				}
				return "Lambda.Unknown", true
			}
			return "", false
		}
		res := h.run(snapshotDefinitionFor(t, s, "SnapshotRuleDailyStateMachine", sv), snapshot.JobForRule(s.config.Plan, rule, sv, bucket, time.Now()))
		if res.Status != "SUCCEEDED" {
			t.Fatalf("execution %s: %s: %s (steps %v)", res.Status, res.Error, res.Cause, h.steps())
		}
		var got snapshot.Job
		if err := json.Unmarshal(res.Output, &got); err != nil {
			t.Fatal(err)
		}
		var lost int64
		for _, f := range failedFiles {
			lost += itemCount(t, ctx, c, sv, f.Key)
		}
		p, _ := manifest(t, ctx, c, sv, bucket, got.RecoveryPointID)
		if got.State != snapshot.StatePartial || p.Status != vault.PointPartial || p.FailedObjects != lost || lost == 0 {
			t.Errorf("job %s, point %s with %d failed objects; want PARTIAL with the %d objects of the failed batch", got.State, p.Status, p.FailedObjects, lost)
		}
		if h.counts[stateCopy] != h.batches {
			t.Errorf("%d Copy calls for %d batches: Lambda.Unknown is retried by no retrier", h.counts[stateCopy], h.batches)
		}
	})

	t.Run("an invalid job reaches the fail task", func(t *testing.T) {
		ev := &eventLog{}
		// The protected bucket is no vault: the job cannot run.
		h := &sfnHarness{t: t, handle: engine(bucket, ev).Handle, s3: c}
		res := h.run(snapshotDefinitionFor(t, s, "SnapshotRuleDailyStateMachine", bucket), snapshot.JobForRule(s.config.Plan, rule, bucket, bucket, time.Now()))
		if res.Status != "FAILED" || res.Error != snapshot.ErrorNames.Fatal[0] {
			t.Fatalf("execution %s with error %q, want FAILED with %s", res.Status, res.Error, snapshot.ErrorNames.Fatal[0])
		}
		if !strings.Contains(res.Cause, "is not a bucketvault vault") {
			t.Errorf("cause %q does not say why", res.Cause)
		}
		if diff := cmp.Diff([]string{stateStart + "!InvalidJobError", stateRecordFailure}, h.steps()); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if h.calls[1].Step != snapshot.StepFail || h.calls[1].Caught != "InvalidJobError" {
			t.Errorf("the fail task got step %q and error %q", h.calls[1].Step, h.calls[1].Caught)
		}
		if !res.has("StateCaught", stateStart, "") || res.has("StateRetried", stateStart, "") {
			t.Errorf("want Start caught, not retried: %+v", res.Events)
		}
		if diff := cmp.Diff([]string{"BACKUP_JOB_FAILED:FAILED"}, ev.types()); diff != "" {
			t.Errorf("job events (-want +got):\n%s", diff)
		}
	})

	t.Run("a job past its start window ends EXPIRED", func(t *testing.T) {
		sv := newVault()
		ev := &eventLog{}
		h := &sfnHarness{t: t, handle: engine(sv, ev).Handle, s3: c}
		late := time.Now().Add(-rule.StartWindow() - time.Minute)
		res := h.run(snapshotDefinitionFor(t, s, "SnapshotRuleDailyStateMachine", sv), snapshot.JobForRule(s.config.Plan, rule, sv, bucket, late))
		var got snapshot.Job
		if res.Status != "SUCCEEDED" || json.Unmarshal(res.Output, &got) != nil || got.State != snapshot.StateExpired {
			t.Fatalf("execution %s (%s), job %s: want SUCCEEDED with the job EXPIRED", res.Status, res.Error, got.State)
		}
		if diff := cmp.Diff([]string{stateStart, stateNotify}, h.steps()); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"BACKUP_JOB_FAILED:EXPIRED"}, ev.types()); diff != "" {
			t.Errorf("job events (-want +got):\n%s", diff)
		}
	})
}

// itemCount is how many records a snapshot work-item file holds.
func itemCount(t *testing.T, ctx context.Context, c s3x.Client, vaultName, key string) int64 {
	t.Helper()
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	src, err := v.OpenSegmentFile(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var n int64
	for {
		_, err := src.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
