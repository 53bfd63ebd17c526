package lambdatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/handler"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/rie"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(removeBootstraps{m}) }

// removeBootstraps removes the bootstraps the tests built after they ran.
type removeBootstraps struct{ m *testing.M }

func (r removeBootstraps) Run() int {
	code := r.m.Run()
	if shared != nil {
		os.RemoveAll(shared.bootstraps)
	}
	return code
}

// functionTimeout is the Lambda timeout every function gets here: its
// deadline, and the bound of a test that hangs.
const functionTimeout = 2 * time.Minute

// scenarios run each function under the emulator on its events/ sample.
// Every function (handler.Names) has one: a function without fails the
// test, never skips.
var scenarios = map[string]func(*testing.T, *harness){
	"dispatch":    testDispatch,
	"expire":      testExpire,
	"journal":     testJournal,
	"protect":     testProtect,
	"reconcile":   testReconcile,
	"restore":     testRestore,
	"restoretest": testRestoreTest,
	"snapshot":    testSnapshot,
}

// TestFunctionsUnderEmulator builds every function's bootstrap once, then
// runs each under the Lambda Runtime Interface Emulator, with the
// environment the stack gives it, on its events/ sample (the buckets and
// the vault renamed to ones made here), against the local server.
func TestFunctionsUnderEmulator(t *testing.T) {
	h := newHarness(t)
	for _, name := range handler.Names {
		run, ok := scenarios[name]
		if !ok {
			t.Errorf("function %s has no scenario under the emulator", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, h)
		})
	}
	t.Run("startup failure", func(t *testing.T) {
		t.Parallel()
		// No BUCKETVAULT_VAULT: the bootstrap exits at init, and the
		// invocation fails with the reason in the function's log.
		e := h.start(t, "journal", handler.Settings{}, nil)
		_, err := e.Invoke(context.Background(), []byte(`{"Records": []}`))
		var fe *rie.FunctionError
		if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), config.EnvVault) {
			t.Errorf("invoke = %v; want the emulator's failure naming %s", err, config.EnvVault)
		}
	})
}

// harness is the local server, the emulator and the built bootstraps.
type harness struct {
	srv        *locals3.Server
	emulator   string
	bootstraps string
}

var (
	harnessOnce sync.Once
	shared      *harness
	harnessErr  error
)

// newHarness installs the emulator and builds every bootstrap, once per
// test binary. Failing either fails the test with the reason.
func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := locals3.ForTest(t)
	harnessOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		binDir, err := locals3.BinDir()
		if err != nil {
			harnessErr = err
			return
		}
		bin, err := rie.Install(ctx, binDir)
		if err != nil {
			harnessErr = err
			return
		}
		t.Logf("emulator %s ready in %s", bin, time.Since(start).Round(time.Millisecond))
		dir, err := os.MkdirTemp("", "bucketvault-bootstraps-")
		if err != nil {
			harnessErr = err
			return
		}
		start = time.Now()
		if err := rie.Build(ctx, "../..", dir, handler.Names...); err != nil {
			harnessErr = err
			return
		}
		t.Logf("%d bootstraps built in %s", len(handler.Names), time.Since(start).Round(time.Millisecond))
		shared = &harness{srv: srv, emulator: bin, bootstraps: dir}
	})
	if harnessErr != nil {
		t.Fatalf("the functions cannot run under the Lambda Runtime Interface Emulator: %v", harnessErr)
	}
	return shared
}

// start runs function fn's bootstrap under the emulator with the stack's
// environment for fn (values from s; the local server's endpoint), the
// local server's credentials and region, and extra; the emulator stops
// when the test ends, which logs its output if the test failed.
func (h *harness) start(t *testing.T, fn string, s handler.Settings, extra map[string]string) *rie.Emulator {
	t.Helper()
	s.EndpointURL = h.srv.Endpoint
	env, err := handler.LocalEnv(fn, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range h.srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if k != "AWS_ENDPOINT_URL" { // S3's is BUCKETVAULT_ENDPOINT_URL; other services are not on the local server
			env[k] = v
		}
	}
	for k, v := range extra {
		env[k] = v
	}
	var out bytes.Buffer
	var mu sync.Mutex
	e, err := rie.Start(context.Background(), rie.Options{
		Emulator: h.emulator, Bootstrap: filepath.Join(h.bootstraps, fn, "bootstrap"), Env: env,
		Lambda: rie.Lambda{FunctionName: "bucketvault-" + fn, Timeout: functionTimeout, MemoryMB: 1024},
		Output: lockedWriter{&mu, &out},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s under the emulator:\n%s", fn, out.String())
			mu.Unlock()
		}
	})
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// invoke sends event (JSON-encoded unless raw bytes) and decodes the
// response into out; a function error fails the test.
func invoke(t *testing.T, e *rie.Emulator, event, out any) {
	t.Helper()
	if err := tryInvoke(e, event, out); err != nil {
		t.Fatal(err)
	}
}

func tryInvoke(e *rie.Emulator, event, out any) error {
	payload, ok := event.([]byte)
	if !ok {
		var err error
		if payload, err = json.Marshal(event); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), functionTimeout+30*time.Second)
	defer cancel()
	resp, err := e.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return errors.New("response " + string(resp) + ": " + err.Error())
	}
	return nil
}

// sample reads events/<file> as generic JSON, with every string equal to
// a key of names replaced by its value (bucket and vault names, ARNs,
// version ids).
func sample(t *testing.T, file string, names map[string]string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", file))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return rename(v, names).(map[string]any)
}

func rename(v any, names map[string]string) any {
	switch v := v.(type) {
	case string:
		if n, ok := names[v]; ok {
			return n
		}
	case []any:
		for i := range v {
			v[i] = rename(v[i], names)
		}
	case map[string]any:
		for k := range v {
			v[k] = rename(v[k], names)
		}
	}
	return v
}

// newVault creates a vault on the local server (in-process).
func (h *harness) newVault(t *testing.T) (*vault.Vault, string) {
	t.Helper()
	name := h.srv.BucketName(t)
	v, err := vault.Create(context.Background(), h.srv.Client(context.Background()), name, vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v, name
}

// protectBucket protects bucket in v (in-process), with its first full
// backup unless skipped.
func (h *harness) protectBucket(t *testing.T, v *vault.Vault, bucket string, skipInitialBackup bool) {
	t.Helper()
	j := &journal.Journal{Vault: v, S3: h.srv.Client(context.Background())}
	if _, _, err := protect.Protect(context.Background(), j, bucket, protect.Options{SkipInitialBackup: skipInitialBackup}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) put(t *testing.T, bucket, key, body string, tags string) *s3.PutObjectOutput {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
	if tags != "" {
		in.Tagging = aws.String(tags)
	}
	out, err := h.srv.Client(context.Background()).PutObject(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *harness) get(t *testing.T, bucket, key string) (string, bool) {
	t.Helper()
	out, err := h.srv.Client(context.Background()).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", false
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// journaled returns, per key, the journal's records of bucket as
// "op versionId".
func journaled(t *testing.T, v *vault.Vault, bucket string) map[string][]string {
	t.Helper()
	m, err := v.OpenJournal(context.Background(), bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]string{}
	for {
		key, recs, err := m.NextKey()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out[key] = append(out[key], string(r.Op)+" "+r.VersionID)
		}
	}
}

func arn(bucket string) string { return "arn:aws:s3:::" + bucket }

// The journal function journals an SQS batch of EventBridge S3 events
// (the sample's four: created, delete marker, permanently deleted, tags
// added, each made real here) and reports the poison message added to it
// in batchItemFailures, and only it.
func testJournal(t *testing.T, h *harness) {
	ctx := context.Background()
	c := h.srv.Client(ctx)
	v, vaultName := h.newVault(t)
	src := h.srv.NewBucket(t, true)
	h.protectBucket(t, v, src, false)

	// The sample's keys, decoded ("+" is a space; the first has "+",
	// "%2F" and non-ASCII characters once decoded).
	k1, k2, k3, k4 := "photos/2024/café résumé+1%2F2.jpg", "reports/2024-q2/summary.csv", "tmp/upload-7f3a.bin", "contracts/2024/acme globex (signed).pdf"
	p1 := h.put(t, src, k1, "a photo", "")
	h.put(t, src, k2, "a,b\n1,2\n", "")
	dm, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String(k2)})
	if err != nil {
		t.Fatal(err)
	}
	p3 := h.put(t, src, k3, "temporary", "")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String(k3), VersionId: p3.VersionId}); err != nil {
		t.Fatal(err)
	}
	p4 := h.put(t, src, k4, "signed", "signed=yes")
	names := map[string]string{
		"acme-prod-media": src, arn("acme-prod-media"): arn(src),
		"3HL4kqtJvjVBH40Nrjfkd0qy0kS3Zb.e": aws.ToString(p1.VersionId), "7c9d2b4e1f0a8c6d3e5b7a9f1c2d4e6b": strings.Trim(aws.ToString(p1.ETag), `"`),
		"Kx2bY7rT0qN.9vLm4ZsPdE1uWc8hAo3F": aws.ToString(dm.VersionId),
		"pQ4.rS8tU2vW6xY0zA3bC7dE1fG5hI9j": aws.ToString(p3.VersionId), "9e107d9d372bb6826bd81d3542a419d6": strings.Trim(aws.ToString(p3.ETag), `"`),
		"Zr1.aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT": aws.ToString(p4.VersionId), "3b5d7f9a1c3e5a7b9d1f3a5c7e9b1d3f": strings.Trim(aws.ToString(p4.ETag), `"`),
	}
	ev := sample(t, "journal-sqs-eventbridge.json", nil)
	records := ev["Records"].([]any)
	if len(records) != 4 {
		t.Fatalf("the sample has %d records; this test makes 4 real", len(records))
	}
	for i, r := range records {
		r := r.(map[string]any)
		var body map[string]any
		if err := json.Unmarshal([]byte(r["body"].(string)), &body); err != nil {
			t.Fatal(err)
		}
		rename(body, names)
		if i == 0 {
			body["detail"].(map[string]any)["object"].(map[string]any)["size"] = len("a photo")
		}
		b, _ := json.Marshal(body)
		r["body"] = string(b)
	}
	poison := map[string]any{}
	for k, v := range records[0].(map[string]any) {
		poison[k] = v
	}
	poison["messageId"], poison["body"] = "poison-1", "not an S3 event"
	ev["Records"] = append(records, poison)

	e := h.start(t, "journal", handler.Settings{Vault: vaultName, Concurrency: 4}, nil)
	var resp events.SQSEventResponse
	invoke(t, e, ev, &resp)
	if diff := cmp.Diff([]events.SQSBatchItemFailure{{ItemIdentifier: "poison-1"}}, resp.BatchItemFailures); diff != "" {
		t.Errorf("batchItemFailures (-want +got):\n%s", diff)
	}
	got := journaled(t, v, src)
	for key, want := range map[string]string{
		k1: string(vault.OpVersion) + " " + aws.ToString(p1.VersionId),
		k2: string(vault.OpDeleteMarker) + " " + aws.ToString(dm.VersionId),
		k3: string(vault.OpPurge) + " " + aws.ToString(p3.VersionId),
		k4: string(vault.OpTags) + " " + aws.ToString(p4.VersionId),
	} {
		if !slices.Contains(got[key], want) {
			t.Errorf("journal of %q holds %q; want %q among them", key, got[key], want)
		}
	}
}

// The reconcile function fills the journal from ListObjectVersions of the
// sample's buckets (both renamed), which got no events.
func testReconcile(t *testing.T, h *harness) {
	v, vaultName := h.newVault(t)
	photos, documents := h.srv.NewBucket(t, true), h.srv.NewBucket(t, true)
	for _, b := range []string{photos, documents} {
		h.protectBucket(t, v, b, true)
	}
	h.put(t, photos, "albums/2024/a.jpg", "a", "")
	h.put(t, photos, "albums/2024/b.jpg", "b", "")
	h.put(t, documents, "q2.pdf", "q2", "")
	e := h.start(t, "reconcile", handler.Settings{Vault: vaultName, Concurrency: 4, Buckets: []string{photos, documents}}, nil)
	var resp journal.ReconcileResponse
	invoke(t, e, sample(t, "reconcile.request.json", map[string]string{"photos": photos, "documents": documents}), &resp)
	added := map[string]int64{}
	for _, p := range resp.Buckets {
		added[p.Bucket] = p.Added
		if p.CompleteThrough == nil {
			t.Errorf("%s: no completeness watermark after a finished reconcile", p.Bucket)
		}
	}
	if diff := cmp.Diff(map[string]int64{photos: 2, documents: 1}, added); !resp.Complete || diff != "" {
		t.Errorf("complete %v, records added per bucket (-want +got):\n%s", resp.Complete, diff)
	}
	if got := journaled(t, v, photos); len(got["albums/2024/a.jpg"]) == 0 || len(got["albums/2024/b.jpg"]) == 0 {
		t.Errorf("journal of %s: %v", photos, got)
	}
}

// The protect function protects the sample's buckets (renamed): each is
// versioned and recorded in the vault (its first full backup is the next
// reconcile's, as on AWS).
func testProtect(t *testing.T, h *harness) {
	v, vaultName := h.newVault(t)
	photos, documents := h.srv.NewBucket(t, true), h.srv.NewBucket(t, true)
	h.put(t, photos, "a.jpg", "a", "")
	e := h.start(t, "protect", handler.Settings{Vault: vaultName, Buckets: []string{photos, documents}}, nil)
	var res protect.Result
	invoke(t, e, sample(t, "protect.request.json", map[string]string{"photos": photos, "documents": documents}), &res)
	if diff := cmp.Diff(protect.Result{Protected: []string{photos, documents}}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	pbs, err := v.Buckets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pb := range pbs {
		got = append(got, pb.Bucket)
	}
	if want := []string{photos, documents}; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("protected buckets %v; want %v", got, want)
	}
}

// The restore function restores the sample's selection (prefixes, a key)
// as of a time before a change, into a new target bucket its
// BUCKETVAULT_RESTORE_TARGETS allows; a target it does not allow is the
// typed error Step Functions and the CLI see.
func testRestore(t *testing.T, h *harness) {
	ctx := context.Background()
	v, vaultName := h.newVault(t)
	photos := h.srv.NewBucket(t, true)
	want := map[string]string{
		"albums/2024/a.jpg":           "a v1",
		"café résumé+1%2F2/b.txt":     "b v1",
		"index.html":                  "index v1",
		"not-selected/c.txt":          "",
		"albums/2023/not-selected.jp": "",
	}
	for k, body := range want {
		h.put(t, photos, k, body+"!", "")
	}
	for k, body := range want {
		if body != "" {
			h.put(t, photos, k, body, "")
		}
	}
	h.protectBucket(t, v, photos, false)
	// The restore's time: after every first version, a second before the
	// change, two before the reconcile that vouches for it.
	at := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
	h.put(t, photos, "index.html", "index v2", "")
	time.Sleep(time.Until(at.Add(2100 * time.Millisecond)))
	j := &journal.Journal{Vault: v, S3: h.srv.Client(ctx)}
	if _, err := j.HandleReconcile(ctx, journal.ReconcileRequest{Buckets: []string{photos}}); err != nil {
		t.Fatal(err)
	}

	target, viaSteps := h.srv.BucketName(t), h.srv.BucketName(t)
	ev := sample(t, "restore.request.json", map[string]string{
		"bucketvault-vault-123456789012-us-east-1": vaultName, "photos": photos, "photos-restored": target,
	})
	ev["at"] = at.Format(time.RFC3339)
	e := h.start(t, "restore", handler.Settings{Vault: vaultName, Concurrency: 4, RestoreTargets: []string{target, viaSteps}}, nil)
	var rep restore.Report
	invoke(t, e, ev, &rep)
	if rep.State != restore.StateCompleted || rep.Restored != 3 || rep.Failed != 0 {
		t.Errorf("report: state %s, %d restored, %d failed (%s); want COMPLETED, 3, 0", rep.State, rep.Restored, rep.Failed, rep.StatusMessage)
	}
	for k, body := range want {
		got, ok := h.get(t, target, k)
		if body == "" && ok || body != "" && got != body {
			t.Errorf("%s/%s = %q (present %v); want %q", target, k, got, ok, body)
		}
	}

	// The same restore as the restore state machine runs it: every step
	// (plan, batch, report) an invocation of the bootstrap, with the
	// state machine's payloads.
	var req restore.Request
	if b, err := json.Marshal(ev); err != nil || json.Unmarshal(b, &req) != nil {
		t.Fatalf("the sample as a request: %v", err)
	}
	req.TargetBucket = viaSteps
	ex := &restore.LocalExecution{
		Restorer:  &restore.Restorer{S3: h.srv.Client(ctx)}, // the Distributed Map's ItemReader
		Execution: "arn:aws:states:us-east-1:123456789012:execution:bucketvault-restore:under-the-emulator",
		Invoke: func(ctx context.Context, raw json.RawMessage) (any, error) {
			out, err := e.Invoke(ctx, raw)
			var fe *rie.FunctionError
			if errors.As(err, &fe) && fe.Type == "RetryableError" {
				return nil, &restore.RetryableError{Err: err}
			}
			return out, err
		},
	}
	job, err := ex.Run(ctx, req)
	if err != nil || job.State != restore.StateCompleted {
		t.Errorf("the restore's steps under the emulator: %+v, %v", job, err)
	}
	for k, body := range want {
		got, ok := h.get(t, viaSteps, k)
		if body == "" && ok || body != "" && got != body {
			t.Errorf("%s/%s = %q (present %v); want %q", viaSteps, k, got, ok, body)
		}
	}

	ev["targetBucket"] = "not-" + target
	var fe *rie.FunctionError
	if err := tryInvoke(e, ev, &rep); !errors.As(err, &fe) || fe.Type != "InvalidRequestError" || !strings.Contains(fe.Message, "not in the allowed restore targets") {
		t.Errorf("restore into a target not allowed: %v; want InvalidRequestError", err)
	}
}

// The snapshot function runs the state machine's steps on the samples
// (bucket renamed): start, scan until done, copy the scan's items as one
// Distributed Map batch, seal, notify; the recovery point is AVAILABLE.
func testSnapshot(t *testing.T, h *harness) {
	ctx := context.Background()
	v, vaultName := h.newVault(t)
	photos := h.srv.NewBucket(t, true)
	h.put(t, photos, "a.jpg", "a", "")
	h.put(t, photos, "b/c.jpg", "c", "")
	h.put(t, photos, "big.bin", strings.Repeat("x", 300<<10), "") // above PackMax: copied on its own
	e := h.start(t, "snapshot", handler.Settings{Vault: vaultName, Concurrency: 4}, nil)

	start := sample(t, "snapshot-start.request.json", map[string]string{"photos": photos})
	start["job"].(map[string]any)["scheduledAt"] = time.Now().UTC().Format(time.RFC3339)
	var job snapshot.Job
	invoke(t, e, start, &job)
	if job.State != snapshot.StateRunning || job.Vault != vaultName || job.Bucket != photos {
		t.Fatalf("start: %+v", job)
	}
	for n := 0; !job.Scan.Done; n++ {
		if n == 10 {
			t.Fatalf("scan not done after %d steps: %+v", n, job.Scan)
		}
		invoke(t, e, map[string]any{"step": snapshot.StepScan, "job": job}, &job)
	}
	// The Distributed Map's ItemReader reads the items list the scan wrote.
	var items []snapshot.ItemRef
	if err := v.GetJSON(ctx, job.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	batch := sample(t, "snapshot-copy.request.json", nil)
	batch["Items"] = items
	batch["BatchInput"] = map[string]any{"job": job}
	var copied snapshot.CopyResult
	invoke(t, e, batch, &copied)
	if copied.Failed != 0 || copied.Copied+copied.Carried != 3 {
		t.Errorf("copy: %+v; want the 3 objects and no failure", copied)
	}
	invoke(t, e, map[string]any{"step": snapshot.StepSeal, "job": job}, &job)
	invoke(t, e, map[string]any{"step": snapshot.StepNotify, "job": job}, &job)
	if job.State != snapshot.StateCompleted || job.Totals == nil || job.Totals.Objects != 3 {
		t.Fatalf("after notify: state %s, totals %+v", job.State, job.Totals)
	}
	sp, err := v.Snapshot(ctx, photos, job.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Status != vault.PointAvailable {
		t.Errorf("recovery point %s is %s; want %s", sp.RecoveryPointID, sp.Status, vault.PointAvailable)
	}
}

// sfnStarts is a Step Functions endpoint that answers StartExecution and
// records each: there is no local Step Functions service to start the
// snapshot state machine on.
type sfnStarts struct {
	mu    sync.Mutex
	calls []startExecution
}

// startExecution is a StartExecution request's body.
type startExecution struct {
	StateMachineARN string `json:"stateMachineArn"`
	Name            string `json:"name"`
	Input           string `json:"input"`
}

func (s *sfnStarts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AWSStepFunctions.StartExecution" {
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var c startExecution
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.calls = append(s.calls, c)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"executionArn": strings.Replace(c.StateMachineARN, ":stateMachine:", ":execution:", 1) + ":" + c.Name,
		"startDate":    float64(time.Now().Unix()),
	})
}

// The dispatch function resolves the sample rule's selections (the
// "photos" resource renamed) and starts one snapshot execution per bucket
// they take, on the Step Functions endpoint AWS_ENDPOINT_URL_SFN names.
func testDispatch(t *testing.T, h *harness) {
	_, vaultName := h.newVault(t)
	photos := h.srv.NewBucket(t, true)
	sfn := &sfnStarts{}
	fake := httptest.NewServer(sfn)
	t.Cleanup(fake.Close)
	ev := sample(t, "dispatch.request.json", map[string]string{"bucketvault-vault-123456789012-us-east-1": vaultName, arn("photos"): arn(photos)})
	e := h.start(t, "dispatch", handler.Settings{Vault: vaultName}, map[string]string{"AWS_ENDPOINT_URL_SFN": fake.URL})
	var res schedule.Result
	invoke(t, e, ev, &res)
	at, err := time.Parse(time.RFC3339, ev["scheduledAt"].(string))
	if err != nil {
		t.Fatal(err)
	}
	name := schedule.ExecutionName(photos, at)
	if len(res.Started) != 1 || res.Started[0].Bucket != photos || res.Started[0].Name != name || res.Started[0].ExecutionARN == "" {
		t.Errorf("started %+v; want one execution %s for %s", res.Started, name, photos)
	}
	sfn.mu.Lock()
	defer sfn.mu.Unlock()
	if len(sfn.calls) != 1 || sfn.calls[0].StateMachineARN != ev["stateMachineArn"] || sfn.calls[0].Name != name {
		t.Fatalf("StartExecution calls %+v", sfn.calls)
	}
	var job snapshot.Job
	if err := json.Unmarshal([]byte(sfn.calls[0].Input), &job); err != nil || job.Bucket != photos || job.Vault != vaultName || !job.ScheduledAt.Equal(at) {
		t.Errorf("execution input %s (%v)", sfn.calls[0].Input, err)
	}
}

// The expire function's dry run (the sample) reports on the vault and
// deletes nothing.
func testExpire(t *testing.T, h *harness) {
	v, vaultName := h.newVault(t)
	photos := h.srv.NewBucket(t, true)
	h.put(t, photos, "a.jpg", "a", "")
	h.protectBucket(t, v, photos, false)
	before := journaled(t, v, photos)
	e := h.start(t, "expire", handler.Settings{Vault: vaultName, Concurrency: 4}, nil)
	var rep vault.ExpireReport
	invoke(t, e, sample(t, "expire.request.json", nil), &rep)
	if !rep.DryRun || rep.Vault != vaultName || rep.Now.IsZero() {
		t.Errorf("report: dry run %v, vault %q, now %v; want a dry run of %s", rep.DryRun, rep.Vault, rep.Now, vaultName)
	}
	if diff := cmp.Diff(before, journaled(t, v, photos)); diff != "" {
		t.Errorf("a dry run changed the journal (-before +after):\n%s", diff)
	}
}

// testRestoreTest runs one restore test in the function, on its sample
// (the bucket renamed): it restores the newest second into a
// restore-test-* bucket, validates it SUCCESSFUL, records the run in the
// vault and deletes the bucket; the sweep sample then finds nothing due.
func testRestoreTest(t *testing.T, h *harness) {
	ctx := context.Background()
	v, vaultName := h.newVault(t)
	photos := h.srv.NewBucket(t, true)
	h.put(t, photos, "albums/a.jpg", "a", "team=photos")
	h.put(t, photos, "index.html", "index", "")
	h.protectBucket(t, v, photos, false)
	// The completeness watermark: a reconcile a second after the last write.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	j := &journal.Journal{Vault: v, S3: h.srv.Client(ctx)}
	if _, err := j.HandleReconcile(ctx, journal.ReconcileRequest{Buckets: []string{photos}}); err != nil {
		t.Fatal(err)
	}
	e := h.start(t, "restoretest", handler.Settings{Vault: vaultName, Concurrency: 4}, nil)
	var run restoretest.Run
	invoke(t, e, sample(t, "restoretest.request.json", map[string]string{"bucketvault-vault-123456789012-us-east-1": vaultName, "photos": photos}), &run)
	if run.Status != restoretest.StatusSuccessful || run.Objects != 2 || run.Validation == nil || run.Validation.Verdict != "SUCCESSFUL" ||
		run.DeletedAt == nil || run.RTOMet == nil || !*run.RTOMet || run.PlanName != "photos-weekly" || run.Seed != 42 {
		t.Fatalf("run: %+v", run)
	}
	if _, ok := h.get(t, run.TargetBucket, "index.html"); ok {
		t.Errorf("the restored bucket %s is still there", run.TargetBucket)
	}
	hist, err := restoretest.History(ctx, v, photos)
	if err != nil || len(hist) != 1 || hist[0].ID != run.ID {
		t.Fatalf("history: %+v %v", hist, err)
	}
	var swept restoretest.Swept
	invoke(t, e, sample(t, "restoretest-sweep.request.json", nil), &swept)
	for _, b := range swept.Deleted {
		if b == run.TargetBucket {
			t.Errorf("swept %s, deleted already", b)
		}
	}
}
