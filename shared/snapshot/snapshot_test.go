package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// faulty wraps the real server's client to inject what it will not
// produce: reads of versions denied for some keys, a crash after n reads,
// failed writes of some vault keys. A read is what backs a version up: a
// CopyObject from the source, or a GetObject of a source version (packs).
type faulty struct {
	s3x.Client
	copies    atomic.Int64 // reads of source versions, both kinds
	stores    atomic.Int64 // CopyObject and PutObject calls writing data/
	denied    func(src string) bool
	crashFrom int64                  // the n-th and later reads fail as cancelled (0: never)
	failPut   func(key string) error // an error for a PutObject of key, or nil
}

func (f *faulty) read(src string) error {
	n := f.copies.Add(1)
	if f.crashFrom > 0 && n >= f.crashFrom {
		return fmt.Errorf("injected crash: %w", context.Canceled)
	}
	if f.denied != nil && f.denied(src) {
		return &smithy.GenericAPIError{Code: "AccessDenied", Message: "injected: access denied"}
	}
	return nil
}

func (f *faulty) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if !strings.HasPrefix(aws.ToString(in.Key), "data/") || aws.ToString(in.Key) == vault.ProbeKey(aws.ToString(in.Bucket)) {
		return f.Client.CopyObject(ctx, in, o...) // the vault's own files (a seal adopting fragments, the capability probe)
	}
	if err := f.read(aws.ToString(in.CopySource)); err != nil {
		return nil, err
	}
	out, err := f.Client.CopyObject(ctx, in, o...)
	if err == nil {
		f.stores.Add(1) // a store: a create-only copy refused stores nothing
	}
	return out, err
}

func (f *faulty) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if in.VersionId != nil { // a source version (the vault's own objects are read without)
		if err := f.read(aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	return f.Client.GetObject(ctx, in, o...)
}

func (f *faulty) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failPut != nil {
		if err := f.failPut(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	out, err := f.Client.PutObject(ctx, in, o...)
	if err == nil && strings.HasPrefix(aws.ToString(in.Key), "data/") && aws.ToString(in.Key) != vault.ProbeKey(aws.ToString(in.Bucket)) {
		f.stores.Add(1) // a store: a create-only put refused stores nothing
	}
	return out, err
}

// events records published job events.
type events struct {
	mu  sync.Mutex
	got []notify.Event
}

func (e *events) Publish(_ context.Context, ev notify.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
	return nil
}

func (e *events) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Type+":"+ev.State)
	}
	return out
}

// startScanCopy starts a backup of e's bucket with eng, scans it to the
// end and copies every work item: what the seal then finds.
func (e env) startScanCopy(t *testing.T, eng *snapshot.Engine) *snapshot.Job {
	t.Helper()
	j, err := eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for !j.Scan.Done {
		if j, err = eng.Scan(e.ctx, *j); err != nil {
			t.Fatal(err)
		}
	}
	e.copyAll(t, eng, j)
	return j
}

// copyAll copies every work item of the scanned job j.
func (e env) copyAll(t *testing.T, eng *snapshot.Engine, j *snapshot.Job) {
	t.Helper()
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	req := snapshot.CopyRequest{Items: items}
	req.BatchInput.Job = *j
	if _, err := eng.Copy(e.ctx, req); err != nil {
		t.Fatal(err)
	}
}

type env struct {
	ctx    context.Context
	srv    *locals3.Server
	c      *s3.Client
	bucket string
	v      *vault.Vault
	ev     *events
}

func setup(t *testing.T) env {
	t.Helper()
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return env{ctx: ctx, srv: srv, c: c, bucket: srv.NewBucket(t, true), v: v, ev: &events{}}
}

func (e env) engine(c s3x.Client) *snapshot.Engine {
	return &snapshot.Engine{S3: c, Concurrency: 8, ChunkSize: 7, Events: e.ev}
}

func (e env) put(t *testing.T, key, body string, opts ...func(*s3.PutObjectInput)) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body)}
	for _, o := range opts {
		o(in)
	}
	if _, err := e.c.PutObject(e.ctx, in); err != nil {
		t.Fatal(err)
	}
}

func (e env) del(t *testing.T, key string) {
	t.Helper()
	if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
}

func withMeta(in *s3.PutObjectInput) {
	in.ContentType = aws.String("text/csv")
	in.CacheControl = aws.String("max-age=60")
	in.ContentDisposition = aws.String(`attachment; filename="r.csv"`)
	in.Metadata = map[string]string{"owner": "finance", "run": "42"}
	in.Tagging = aws.String("Backup=daily&Team=data%20eng")
}

// workload writes a bucket with nested prefixes, metadata, tags, an
// overwrite, a delete, awkward keys and a multipart object.
func (e env) workload(t *testing.T) {
	t.Helper()
	for i := range 20 {
		e.put(t, fmt.Sprintf("logs/2026/11/%02d/app.log", i), strings.Repeat("line\n", i+1))
	}
	e.put(t, "reports/q3.csv", "a,b\n1,2\n", withMeta)
	e.put(t, "reports/q3.csv", "a,b\n1,3\n", withMeta) // overwrite
	e.put(t, "gone.txt", "bye")
	e.del(t, "gone.txt")
	e.put(t, "keys/with space+plus%percent/ünïcödé.txt", "odd")
	e.put(t, "empty", "")
	e.multipart(t, "big/parts.bin", 3, 5<<20)
}

func (e env) multipart(t *testing.T, key string, parts int, size int) {
	t.Helper()
	up, err := e.c.CreateMultipartUpload(e.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(key),
		ContentType: aws.String("application/x-parts"), Metadata: map[string]string{"kind": "multipart"}})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for p := 1; p <= parts; p++ {
		out, err := e.c.UploadPart(e.ctx, &s3.UploadPartInput{Bucket: aws.String(e.bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(p)), Body: bytes.NewReader(bytes.Repeat([]byte{byte('a' + p)}, size))})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(p)), ETag: out.ETag})
	}
	if _, err := e.c.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
}

// restoreInto restores a recovery point (or a time) into a new bucket and
// returns what it holds.
func (e env) restoreInto(t *testing.T, rp string, at time.Time) (map[string]inspect.Object, *restore.Report) {
	t.Helper()
	target := e.srv.BucketName(t)
	r := &restore.Restorer{S3: e.c, Copy: s3x.CopyOptions{Threshold: 5 << 20}}
	rep, err := r.Run(e.ctx, restore.Request{Vault: e.v.Bucket, Bucket: e.bucket, RecoveryPointID: rp, At: at, TargetBucket: target, CreateBucket: true})
	if err != nil {
		t.Fatalf("restore %s%s: %v", rp, at, err)
	}
	got, err := inspect.Capture(e.ctx, e.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	return got, rep
}

func (e env) capture(t *testing.T) map[string]inspect.Object {
	t.Helper()
	want, err := inspect.Capture(e.ctx, e.c, e.bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func (e env) run(t *testing.T, eng *snapshot.Engine, job snapshot.Job) *snapshot.Job {
	t.Helper()
	job.Vault, job.Bucket = e.v.Bucket, e.bucket
	j, err := eng.Run(e.ctx, job)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return j
}

func TestFullThenIncrementalSnapshot(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want1 := e.capture(t)
	f := &faulty{Client: e.c}
	j1 := e.run(t, e.engine(f), snapshot.Job{Lifecycle: &vault.Lifecycle{DeleteAfterDays: 35},
		CreatedBy: &vault.CreatedBy{BackupPlanID: "plan-1", BackupRuleName: "daily", BackupRuleCron: "cron(0 5 ? * * *)"}})
	if j1.State != snapshot.StateCompleted {
		t.Fatalf("first snapshot: %s %s", j1.State, j1.StatusMessage)
	}
	if n := int64(len(want1)); j1.Totals.Objects != n || j1.Totals.Copied != n || f.copies.Load() != n {
		t.Fatalf("first snapshot: %+v, %d CopyObject calls; want %d objects all copied once", j1.Totals, f.copies.Load(), n)
	}
	sp1, err := e.v.Snapshot(e.ctx, e.bucket, j1.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if sp1.Status != vault.PointAvailable || sp1.ObjectCount != int64(len(want1)) || sp1.CalculatedLifecycle == nil ||
		sp1.CalculatedLifecycle.DeleteAt.Sub(sp1.CreationDate) != 35*24*time.Hour || sp1.CreatedBy.BackupRuleName != "daily" || len(sp1.Shards) == 0 {
		t.Fatalf("recovery point: %+v", sp1)
	}

	// A second snapshot of the unchanged bucket copies nothing.
	f.copies.Store(0)
	j2 := e.run(t, e.engine(f), snapshot.Job{})
	if j2.State != snapshot.StateCompleted || j2.Totals.Copied != 0 || f.copies.Load() != 0 || j2.Scan.ItemFiles != 0 {
		t.Fatalf("unchanged bucket: %+v, scan %+v, %d copies; want none", j2.Totals, j2.Scan, f.copies.Load())
	}

	// Change a few objects: only those are copied.
	e.put(t, "logs/2026/11/03/app.log", "rewritten\n")
	e.put(t, "new/object.txt", "new")
	e.del(t, "logs/2026/11/04/app.log")
	e.put(t, "reports/q3.csv", "a,b\n9,9\n", withMeta)
	want3 := e.capture(t)
	f.copies.Store(0)
	j3 := e.run(t, e.engine(f), snapshot.Job{})
	if j3.State != snapshot.StateCompleted || j3.Totals.Copied != 3 || f.copies.Load() != 3 || j3.Totals.Objects != int64(len(want3)) {
		t.Fatalf("incremental: %+v, %d copies; want 3 copied of %d", j3.Totals, f.copies.Load(), len(want3))
	}

	// Each recovery point restores the bucket as it was scanned.
	for _, c := range []struct {
		rp   string
		want map[string]inspect.Object
	}{{j1.RecoveryPointID, want1}, {j3.RecoveryPointID, want3}} {
		got, rep := e.restoreInto(t, c.rp, time.Time{})
		if d := inspect.Diff(c.want, got); len(d) > 0 {
			t.Errorf("restore of %s differs:\n%s", c.rp, strings.Join(d, "\n"))
		}
		if rep.State != restore.StateCompleted || rep.Restored != int64(len(c.want)) {
			t.Errorf("restore of %s: %s, %d restored, want %d", c.rp, rep.State, rep.Restored, len(c.want))
		}
	}
	// Events: started and completed for each job.
	got := strings.Join(e.ev.types(), " ")
	if strings.Count(got, "BACKUP_JOB_STARTED:RUNNING") != 3 || strings.Count(got, "BACKUP_JOB_COMPLETED:COMPLETED") != 3 {
		t.Errorf("events: %s", got)
	}
}

func TestPartialListsFailedObjects(t *testing.T) {
	e := setup(t)
	e.workload(t)
	f := &faulty{Client: e.c, denied: func(src string) bool { return strings.Contains(src, "/logs/2026/11/1") }}
	j := e.run(t, e.engine(f), snapshot.Job{})
	if j.State != snapshot.StatePartial || j.Totals.Failed != 10 {
		t.Fatalf("job: %s %+v; want PARTIAL with 10 failed", j.State, j.Totals)
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Status != vault.PointPartial || sp.FailedObjects != 10 || len(sp.Failures) != 10 || len(sp.FailureShards) != 1 {
		t.Fatalf("recovery point: %s %q failed=%d inline=%d", sp.Status, sp.StatusMessage, sp.FailedObjects, len(sp.Failures))
	}
	for _, fl := range sp.Failures {
		if !strings.HasPrefix(fl.Key, "logs/2026/11/1") || fl.Reason != vault.SkipAccessDenied || fl.VersionID == "" {
			t.Errorf("failure %+v: want an access-denied logs/2026/11/1x key with its version", fl)
		}
	}
	if got := strings.Join(e.ev.types(), " "); !strings.Contains(got, "S3_BACKUP_OBJECT_FAILED:PARTIAL") {
		t.Errorf("events %s: want S3_BACKUP_OBJECT_FAILED", got)
	}
	// The objects that failed are copied by the next snapshot; the rest not again.
	f.denied, f.copies = nil, atomic.Int64{}
	j2 := e.run(t, e.engine(f), snapshot.Job{})
	if j2.State != snapshot.StateCompleted || j2.Totals.Copied != 10 {
		t.Fatalf("next snapshot: %s %+v; want the 10 failed copied", j2.State, j2.Totals)
	}
	// A PARTIAL point restores what it has, and says it is partial.
	got, rep := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	want := e.capture(t)
	for k := range want {
		if strings.HasPrefix(k, "logs/2026/11/1") {
			delete(want, k)
		}
	}
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore of the partial point differs:\n%s", strings.Join(d, "\n"))
	}
	if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "PARTIAL") {
		t.Errorf("warnings %q: want the partial point named", rep.Warnings)
	}
}

func TestStartWindowExpired(t *testing.T) {
	e := setup(t)
	e.put(t, "a", "x")
	f := &faulty{Client: e.c}
	j := e.run(t, e.engine(f), snapshot.Job{ScheduledAt: time.Now().Add(-3 * time.Hour), StartWindowMinutes: 60})
	if j.State != snapshot.StateExpired || j.RecoveryPointID != "" || f.copies.Load() != 0 {
		t.Fatalf("job %+v, %d copies: want EXPIRED, no recovery point, nothing copied", j, f.copies.Load())
	}
	if pts, err := e.v.Snapshots(e.ctx, e.bucket); err != nil || len(pts) != 0 {
		t.Fatalf("snapshots %v %v: want none", pts, err)
	}
	var rec snapshot.Job
	if err := e.v.GetJSON(e.ctx, vault.JobKey(j.JobID), &rec); err != nil || rec.State != snapshot.StateExpired {
		t.Fatalf("job record %+v %v", rec, err)
	}
	if got := e.ev.types(); len(got) != 1 || got[0] != "BACKUP_JOB_FAILED:EXPIRED" {
		t.Errorf("events %v", got)
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestCompletionWindow(t *testing.T) {
	e := setup(t)
	e.workload(t)
	clk := &clock{t: time.Now()}
	f := &faulty{Client: e.c}
	eng := e.engine(f)
	eng.Now = clk.now
	job := snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket, CompletionWindowMinutes: 60}

	// The window ends while the copies run: what finished is kept, the
	// rest is listed, and the point is PARTIAL.
	j, err := eng.Start(e.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || !j.Scan.Done {
		t.Fatalf("scan: %+v %v", j, err)
	}
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil || len(items) < 2 {
		t.Fatalf("items %v %v: want several files", items, err)
	}
	req := snapshot.CopyRequest{Items: items[:1]}
	req.BatchInput.Job = *j
	first, err := eng.Copy(e.ctx, req)
	if err != nil || first.Copied == 0 || first.Failed != 0 {
		t.Fatalf("copy of the first file: %+v %v", first, err)
	}
	clk.advance(time.Hour)
	req.Items = items[1:]
	if _, err := eng.Copy(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	sealed, err := eng.Seal(e.ctx, *j)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.State != snapshot.StatePartial || sealed.Totals.Copied != first.Copied || sealed.Totals.Failed != j.Scan.Current-first.Copied {
		t.Fatalf("sealed %s %+v; want PARTIAL with the first file's %d copied", sealed.State, sealed.Totals, first.Copied)
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil || sp.Failures[0].Reason != vault.SkipWindowEnded {
		t.Fatalf("failures %+v %v", sp.Failures, err)
	}

	// The window ends during the scan: the job is ABORTED and its point
	// PARTIAL with the keys before where the scan stopped.
	eng.ScanPages = 1
	eng.ChunkSize = 1
	j, err = eng.Start(e.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || j.Scan.Done {
		t.Fatalf("first round: %+v %v; want not done", j.Scan, err)
	}
	clk.advance(time.Hour)
	if j, err = eng.Scan(e.ctx, *j); err != nil || !j.Scan.Done || !j.Scan.Stopped {
		t.Fatalf("second round: %+v %v; want stopped", j.Scan, err)
	}
	if sealed, err = eng.Seal(e.ctx, *j); err != nil || sealed.State != snapshot.StateAborted {
		t.Fatalf("sealed %+v %v: want ABORTED", sealed, err)
	}
	if sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID); err != nil || sp.Status != vault.PointPartial || !strings.Contains(sp.StatusMessage, "completion window") {
		t.Fatalf("point %+v %v", sp, err)
	}
}

func TestResumeAfterCrashCopiesNothingTwice(t *testing.T) {
	e := setup(t)
	e.workload(t)
	n := int64(len(e.capture(t)))
	f := &faulty{Client: e.c, crashFrom: 9}
	eng := e.engine(f)
	eng.Concurrency = 1
	eng.PackMax = -1 // one copy per version (TestPacks resumes packs)
	job := snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket}
	if _, err := eng.Run(e.ctx, job); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashed run: %v", err)
	}
	// The local runner records the failure as the state machine's Catch
	// does: the point is STOPPED, so nothing uses it.
	pts, err := e.v.Snapshots(e.ctx, e.bucket)
	if err != nil || len(pts) != 1 || pts[0].Status != vault.PointStopped {
		t.Fatalf("points after the crash: %+v %v", pts, err)
	}

	// Within one job, the state machine retries the failed step with the
	// same payload. (A fresh bucket: the crashed job's copies above would
	// be found, rightly, and blur the count.)
	e.bucket = e.srv.NewBucket(t, true)
	e.workload(t)
	job.Bucket = e.bucket
	f2 := &faulty{Client: e.c}
	eng2 := e.engine(f2)
	eng2.PackMax = -1
	j, err := eng2.Start(e.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	j, err = eng2.Scan(e.ctx, *j)
	if err != nil {
		t.Fatal(err)
	}
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	req := snapshot.CopyRequest{Items: items}
	req.BatchInput.Job = *j
	// First attempt of this job crashes after 5 copies (one at a time, so
	// exactly 5 completed)...
	f2.crashFrom, eng2.Concurrency = 6, 1
	if _, err := eng2.Copy(e.ctx, req); err == nil {
		t.Fatal("want the injected crash")
	}
	// ...the retry copies only what is left.
	f2.crashFrom, eng2.Concurrency = 0, 8
	f2.copies.Store(0)
	res, err := eng2.Copy(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if f2.copies.Load() != n-5 {
		t.Errorf("retry made %d copies; want %d (the 5 done before the crash not again)", f2.copies.Load(), n-5)
	}
	// And a retry of a finished batch does nothing.
	f2.copies.Store(0)
	again, err := eng2.Copy(e.ctx, req)
	if err != nil || f2.copies.Load() != 0 || again.FilesSkipped != len(items) {
		t.Fatalf("second retry: %+v %v, %d copies", again, err, f2.copies.Load())
	}
	sealed, err := eng2.Seal(e.ctx, *j)
	if err != nil || sealed.State != snapshot.StateCompleted || sealed.Totals.Objects != n || sealed.Totals.Copied != n {
		t.Fatalf("sealed %+v %v (copy result %+v); want all %d copied", sealed.Totals, err, res, n)
	}
	got, _ := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	if d := inspect.Diff(e.capture(t), got); len(d) > 0 {
		t.Errorf("restore differs:\n%s", strings.Join(d, "\n"))
	}
}

func TestSharesDataWithTheJournal(t *testing.T) {
	e := setup(t)
	e.workload(t)
	j := &journal.Journal{Vault: e.v, S3: e.c}
	if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	f := &faulty{Client: e.c}
	job := e.run(t, e.engine(f), snapshot.Job{})
	if job.State != snapshot.StateCompleted || f.copies.Load() != 0 || job.Totals.Copied != 0 {
		t.Fatalf("snapshot after the journal's full backup: %+v, %d copies; want none", job.Totals, f.copies.Load())
	}
	got, _ := e.restoreInto(t, job.RecoveryPointID, time.Time{})
	if d := inspect.Diff(e.capture(t), got); len(d) > 0 {
		t.Errorf("restore differs:\n%s", strings.Join(d, "\n"))
	}
}

func TestPointInTimeFromSnapshotOnly(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want := e.capture(t)
	job := e.run(t, e.engine(e.c), snapshot.Job{})
	time.Sleep(1100 * time.Millisecond)
	at := time.Now()
	// A bucket backed up only by snapshots restores as of any time after
	// its newest snapshot to that snapshot's state.
	got, rep := e.restoreInto(t, "", at)
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore as of %s differs:\n%s", at, strings.Join(d, "\n"))
	}
	if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], job.RecoveryPointID) {
		t.Errorf("warnings %q: want the snapshot used named", rep.Warnings)
	}
	if rep.State != restore.StateCompleted {
		t.Errorf("restore from the snapshot: %s (%s); want COMPLETED (no journal to vouch for)", rep.State, rep.StatusMessage)
	}
}

func TestHandlerSteps(t *testing.T) {
	e := setup(t)
	e.put(t, "a", "x")
	eng := e.engine(e.c)
	call := func(payload any) (json.RawMessage, error) {
		raw, _ := json.Marshal(payload)
		out, err := eng.Handle(e.ctx, raw)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	}
	out, err := call(map[string]any{"step": "start", "job": map[string]any{"vault": e.v.Bucket, "bucket": e.bucket}})
	if err != nil {
		t.Fatal(err)
	}
	var job snapshot.Job
	for step := "scan"; ; {
		if err := json.Unmarshal(out, &job); err != nil {
			t.Fatal(err)
		}
		if step == "" {
			break
		}
		if out, err = call(map[string]any{"step": step, "job": job}); err != nil {
			t.Fatal(err)
		}
		step = ""
	}
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, job.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	if _, err := call(map[string]any{"step": "copy", "Items": items, "BatchInput": map[string]any{"job": job}}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"seal", "notify"} {
		if out, err = call(map[string]any{"step": step, "job": job}); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &job); err != nil {
			t.Fatal(err)
		}
	}
	if job.State != snapshot.StateCompleted || job.Totals.Objects != 1 {
		t.Fatalf("job %+v", job)
	}
	// Bad input is an InvalidJobError, the name the state machine catches.
	for _, bad := range []any{
		map[string]any{"step": "launch", "job": job},
		map[string]any{"step": "scan"},
		map[string]any{"step": "scan", "job": map[string]any{"vault": e.v.Bucket, "bucket": e.bucket}},
		map[string]any{"step": "start", "job": map[string]any{"vault": e.bucket, "bucket": e.bucket}},
	} {
		_, err := call(bad)
		var inv *snapshot.InvalidJobError
		if !errors.As(err, &inv) {
			t.Errorf("%v: error %v (%T); want InvalidJobError", bad, err, err)
		}
	}
	// The fail step records a running job FAILED and stops its recovery
	// point; a finished job and its sealed point stay as they were sealed
	// (TestFinishedBackupJobNeverChangesState).
	fail := func(job snapshot.Job) (snapshot.Job, *vault.SnapshotPoint) {
		t.Helper()
		out, err := call(map[string]any{"step": "fail", "job": job, "error": map[string]any{"Error": "States.Timeout", "Cause": "took too long"}})
		if err != nil {
			t.Fatal(err)
		}
		var failed snapshot.Job
		_ = json.Unmarshal(out, &failed)
		sp, err := e.v.Snapshot(e.ctx, e.bucket, job.RecoveryPointID)
		if err != nil {
			t.Fatal(err)
		}
		return failed, sp
	}
	if failed, sp := fail(job); failed.State != snapshot.StateCompleted || sp.Status != vault.PointAvailable {
		t.Fatalf("failed after its seal: job %+v, point %+v", failed, sp)
	}
	if out, err = call(map[string]any{"step": "start", "job": map[string]any{"vault": e.v.Bucket, "bucket": e.bucket}}); err != nil {
		t.Fatal(err)
	}
	var running snapshot.Job
	if err := json.Unmarshal(out, &running); err != nil {
		t.Fatal(err)
	}
	if failed, sp := fail(running); failed.State != snapshot.StateFailed || sp.Status != vault.PointStopped || !strings.Contains(sp.StatusMessage, "States.Timeout") {
		t.Fatalf("failed while running: job %+v, point %+v", failed, sp)
	}
}

// TestVerifyCoversSnapshots: vault verify checks the data of snapshot
// manifests too, and finds a data object that was damaged.
func TestVerifyCoversSnapshots(t *testing.T) {
	e := setup(t)
	e.workload(t)
	eng := e.engine(e.c)
	eng.PackMax = -1 // a data object per version (TestPacks damages a pack)
	j := e.run(t, eng, snapshot.Job{})
	rep, err := e.v.Verify(e.ctx, 8, true, nil)
	if err != nil || !rep.OK() || rep.Snapshots != 1 || rep.Data != j.Totals.Objects {
		t.Fatalf("verify: %+v %v; want OK with %d data objects of 1 snapshot", rep, err, j.Totals.Objects)
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	src := e.v.OpenShards(e.ctx, sp.Shards, nil)
	var o vault.Observed
	for o.Key != "reports/q3.csv" {
		if o, err = src.Next(); err != nil {
			t.Fatalf("manifest has no reports/q3.csv: %v", err)
		}
	}
	src.Close()
	// Same size, other bytes: only the deep check can tell.
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(o.Data),
		Body: strings.NewReader(strings.Repeat("x", int(o.Size)))}); err != nil {
		t.Fatal(err)
	}
	rep, err = e.v.Verify(e.ctx, 8, true, nil)
	if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "reports/q3.csv") {
		t.Fatalf("verify after damage: %+v %v; want the damaged object named", rep.Problems, err)
	}
}

// dataObjects counts the vault's data objects (packs among them) and
// their bytes.
func (e env) dataObjects(t *testing.T) (n, packs, size int64) {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(e.c, &s3.ListObjectsV2Input{Bucket: aws.String(e.v.Bucket), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			if aws.ToString(o.Key) == vault.ProbeKey(e.v.Bucket) {
				continue // the vault's capability probe, not data
			}
			n++
			size += aws.ToInt64(o.Size)
			if strings.HasSuffix(aws.ToString(o.Key), ".pack") {
				packs++
			}
		}
	}
	return n, packs, size
}

// manifest reads a snapshot's manifest records.
func (e env) manifest(t *testing.T, rp string) []vault.Record {
	t.Helper()
	sp, err := e.v.Snapshot(e.ctx, e.bucket, rp)
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, e.v.OpenShards(e.ctx, sp.Shards, nil))
}

// drain reads a record source to its end and closes it.
func drain(t *testing.T, src vault.RecordSource) []vault.Record {
	t.Helper()
	defer src.Close()
	var out []vault.Record
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o.Record)
	}
}

// TestPacks: small versions are read once each and stored in packs, the
// rest copied; every byte is stored once; the snapshot restores the
// bucket exactly (metadata, tags, empty objects, awkward keys); a retried
// copy step finds its packs instead of writing them again; deep verify
// finds one damaged member of a pack.
func TestPacks(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want := e.capture(t)
	n := int64(len(want))
	f := &faulty{Client: e.c}
	eng := e.engine(f)
	eng.PackBytes = 64 // several packs per work-item file
	j := e.run(t, eng, snapshot.Job{})
	if j.State != snapshot.StateCompleted || j.Totals.Objects != n || j.Totals.Copied != n || f.copies.Load() != n {
		t.Fatalf("snapshot: %s %+v, %d reads; want %d objects each read once", j.State, j.Totals, f.copies.Load(), n)
	}
	recs := e.manifest(t, j.RecoveryPointID)
	packedKeys := 0
	for _, r := range recs {
		multipart := strings.Contains(r.ETag, "-")
		switch {
		case multipart && (r.Packed || !r.MetaInData):
			t.Errorf("%s: a multipart version must be copied on its own: %+v", r.Key, r)
		case !multipart && (!r.Packed || r.Meta == nil || !strings.HasSuffix(r.Data, ".pack")):
			t.Errorf("%s: a small version must be packed with its metadata: %+v", r.Key, r)
		case r.Key == "reports/q3.csv" && (r.Meta.User["owner"] != "finance" || r.Tags["Team"] != "data eng"):
			t.Errorf("%s: metadata %+v, tags %v; want the object's", r.Key, r.Meta, r.Tags)
		case !multipart:
			packedKeys++
		}
	}
	stored, packs, size := e.dataObjects(t)
	if packs < 4 || stored != packs+1 || size != j.Totals.Bytes || f.stores.Load() != stored {
		t.Errorf("vault data: %d objects (%d packs, %d bytes), %d stores; want the %d packed in several packs plus 1 copy, %d bytes, each stored once",
			stored, packs, size, f.stores.Load(), packedKeys, j.Totals.Bytes)
	}
	got, rep := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore differs:\n%s", strings.Join(d, "\n"))
	}
	if rep.Restored != n || rep.Failed != 0 {
		t.Errorf("restore report: %d restored, %d failed; want %d, 0", rep.Restored, rep.Failed, n)
	}
	vr, err := e.v.Verify(e.ctx, 8, true, nil)
	if err != nil || !vr.OK() || vr.Data != n {
		t.Fatalf("verify: %+v %v; want OK with %d versions' data", vr, err, n)
	}

	// A retried copy step: the first attempt wrote the last file's packs
	// but failed to write its fragment; the retry finds the packs and
	// stores nothing.
	e.bucket = e.srv.NewBucket(t, true)
	e.workload(t)
	var lastFragment string
	f2 := &faulty{Client: e.c, failPut: func(key string) error {
		if lastFragment != "" && strings.HasSuffix(key, lastFragment) {
			return &smithy.GenericAPIError{Code: "InternalError", Message: "injected"}
		}
		return nil
	}}
	eng2 := e.engine(f2)
	eng2.PackBytes = 64
	job, err := eng2.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if job, err = eng2.Scan(e.ctx, *job); err != nil {
		t.Fatal(err)
	}
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, job.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	// The other files first (a failing file cancels the files in flight
	// beside it), then the last one, whose fragment fails.
	req := snapshot.CopyRequest{Items: items[:len(items)-1]}
	req.BatchInput.Job = *job
	if _, err := eng2.Copy(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Items = items
	lastFragment = fmt.Sprintf("/fragments/%06d.jsonl.zst", items[len(items)-1].N)
	if _, err := eng2.Copy(e.ctx, req); err == nil {
		t.Fatal("want the injected fragment failure")
	}
	before := f2.stores.Load()
	f2.failPut = nil
	if _, err := eng2.Copy(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	sealed, err := eng2.Seal(e.ctx, *job)
	if err != nil || sealed.State != snapshot.StateCompleted || sealed.Totals.Copied != n {
		t.Fatalf("sealed %+v %v; want all %d copied", sealed, err, n)
	}
	if again := f2.stores.Load() - before; before == 0 || again != 0 {
		t.Errorf("first attempt stored %d, the retry %d more; want the retry to store nothing", before, again)
	}
	_, _, size2 := e.dataObjects(t)
	if size2 != size+sealed.Totals.Bytes {
		t.Errorf("vault data %d bytes after the second bucket; want %d + %d (every byte once)", size2, size, sealed.Totals.Bytes)
	}
	got, _ = e.restoreInto(t, job.RecoveryPointID, time.Time{})
	if d := inspect.Diff(e.capture(t), got); len(d) > 0 {
		t.Errorf("restore after the retry differs:\n%s", strings.Join(d, "\n"))
	}

	// One damaged byte of a pack: the deep verify names that member only.
	var q3 vault.Record
	for _, r := range e.manifest(t, job.RecoveryPointID) {
		if r.Key == "reports/q3.csv" {
			q3 = r
		}
	}
	out, err := e.c.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(q3.Data)})
	if err != nil {
		t.Fatal(err)
	}
	pack, _ := io.ReadAll(out.Body)
	out.Body.Close()
	pack[q3.DataOffset] ^= 0xff
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(q3.Data), Body: bytes.NewReader(pack)}); err != nil {
		t.Fatal(err)
	}
	vr, err = e.v.Verify(e.ctx, 8, true, nil)
	if err != nil || vr.OK() {
		t.Fatalf("verify after damage: %+v %v; want problems", vr, err)
	}
	for _, p := range vr.Problems {
		if strings.Contains(p, "MD5") != strings.Contains(p, "reports/q3.csv") && !strings.Contains(p, "ETag") {
			t.Errorf("problem %q: want MD5 problems of reports/q3.csv only", p)
		}
	}
	if !strings.Contains(strings.Join(vr.Problems, "\n"), "reports/q3.csv@") {
		t.Errorf("problems %q: want reports/q3.csv named", vr.Problems)
	}
}

// copyThenSeal runs the copy step on items (a Distributed Map that
// leaves the others out: their batch failed) and seals the job.
func (e env) copyThenSeal(t *testing.T, eng *snapshot.Engine, j snapshot.Job, items []snapshot.ItemRef) *snapshot.Job {
	t.Helper()
	req := snapshot.CopyRequest{Items: items}
	req.BatchInput.Job = j
	if _, err := eng.Copy(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	sealed, err := eng.Seal(e.ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// runStarted runs a started job to its end and wants all n objects of
// the bucket copied.
func (e env) runStarted(t *testing.T, eng *snapshot.Engine, j snapshot.Job, n int64) *snapshot.Job {
	t.Helper()
	done, err := eng.Run(e.ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != snapshot.StateCompleted || done.Totals.Objects != n || done.Totals.Copied != n {
		t.Fatalf("snapshot: %s %+v; want all %d objects copied", done.State, done.Totals, n)
	}
	return done
}

// TestScanAfterACrashedRound: an attempt of a scan round that crashed
// after writing chunks it had not saved progress for leaves files the
// next attempt must not trust: a fragment of a chunk that has changed
// since (the bucket gained a version in it) would pass the chunk for
// copied, and a work-item file past the last chunk (the bucket lost
// objects) would copy what no chunk holds. The scan's progress stays
// small: its items are ranges of chunk numbers.
func TestScanAfterACrashedRound(t *testing.T) {
	e := setup(t)
	for i := range 30 {
		e.put(t, fmt.Sprintf("k/%02d", i), fmt.Sprint("v", i))
	}
	eng := e.engine(e.c)
	j, err := eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	// What the crashed attempt left: chunk 2 as complete (a fragment of
	// other versions), and an item file of a chunk 99.
	stale := vault.JobScratchKey(j.JobID, "fragments/000002.jsonl.zst")
	other := []vault.Record{{Op: vault.OpVersion, Key: "k/07", VersionID: "gone", Data: "data/elsewhere"}}
	if err := e.v.WriteRecords(e.ctx, e.bucket, stale, other, map[string]string{"bv-records": "1", "bv-bytes": "0", "bv-skips": "0", "bv-step": "scan"}); err != nil {
		t.Fatal(err)
	}
	if err := e.v.WriteRecords(e.ctx, e.bucket, vault.JobScratchKey(j.JobID, "items/000099.jsonl.zst"), nil, nil); err != nil {
		t.Fatal(err)
	}
	done := e.runStarted(t, eng, *j, 30)
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, done.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != done.Scan.Files || done.Scan.ItemFiles != done.Scan.Files || items[len(items)-1].N != done.Scan.Files {
		t.Errorf("items %+v of %d files (%d item files): want chunks 1..%d", items, done.Scan.Files, done.Scan.ItemFiles, done.Scan.Files)
	}
	var prog map[string]json.RawMessage
	if err := e.v.GetJSON(e.ctx, vault.JobScratchKey(j.JobID, "scan.json"), &prog); err != nil {
		t.Fatal(err)
	}
	var ranges [][2]int
	if err := json.Unmarshal(prog["itemRanges"], &ranges); err != nil || len(ranges) != 1 || ranges[0] != [2]int{1, done.Scan.Files} {
		t.Errorf("scan progress %s (%v): want the items as one range of chunk numbers", prog["itemRanges"], err)
	}
	got, _ := e.restoreInto(t, done.RecoveryPointID, time.Time{})
	if d := inspect.Diff(e.capture(t), got); len(d) > 0 {
		t.Errorf("restore differs:\n%s", strings.Join(d, "\n"))
	}

	// The same stale fragment, and chunk 2's copy batch never finishes:
	// the seal lists chunk 2's objects as failed, not the stale records.
	for i := range 30 {
		e.put(t, fmt.Sprintf("k/%02d", i), fmt.Sprint("w", i))
	}
	j, err = eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	stale = vault.JobScratchKey(j.JobID, "fragments/000002.jsonl.zst")
	if err := e.v.WriteRecords(e.ctx, e.bucket, stale, other, map[string]string{"bv-records": "1", "bv-bytes": "0", "bv-skips": "0", "bv-step": "scan"}); err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || !j.Scan.Done {
		t.Fatalf("scan: %+v %v", j, err)
	}
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	var run []snapshot.ItemRef
	for _, it := range items {
		if it.N != 2 {
			run = append(run, it)
		}
	}
	sealed := e.copyThenSeal(t, eng, *j, run)
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.State != snapshot.StatePartial || sealed.Totals.Failed == 0 || sealed.Totals.Objects+sealed.Totals.Failed != 30 || int64(len(sp.Failures)) != sealed.Totals.Failed {
		t.Fatalf("sealed %s %+v, %d failures; want PARTIAL, chunk 2's objects failed, 30 in all", sealed.State, sealed.Totals, len(sp.Failures))
	}
	for _, f := range sp.Failures {
		if f.Reason != vault.SkipBatchFailed {
			t.Errorf("failure %+v: want %s", f, vault.SkipBatchFailed)
		}
	}
	for _, r := range e.manifest(t, j.RecoveryPointID) {
		if r.VersionID == "gone" {
			t.Errorf("the stale fragment's record %+v is in the manifest", r)
		}
	}
}

// TestBackupGoesOnPastADamagedSnapshot: a lost shard of the previous
// snapshot stops no backup: the next one re-reads what it cannot vouch
// for from the bucket, completes, restores exactly, and says what it read
// around.
func TestBackupGoesOnPastADamagedSnapshot(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want := e.capture(t)
	j1 := e.run(t, e.engine(e.c), snapshot.Job{})
	sp1, err := e.v.Snapshot(e.ctx, e.bucket, j1.RecoveryPointID)
	if err != nil || len(sp1.Shards) < 2 {
		t.Fatalf("first snapshot: %+v, %v; want several shards", sp1, err)
	}
	shard := sp1.Shards[0].Key
	vs, err := e.c.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String(shard)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(shard), Body: strings.NewReader("damaged")}); err != nil {
		t.Fatal(err)
	}
	for _, o := range vs.Versions {
		if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.v.Bucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	j2 := e.run(t, e.engine(e.c), snapshot.Job{})
	if j2.State != snapshot.StateCompleted || j2.Totals.Objects != int64(len(want)) {
		t.Fatalf("backup after a lost shard: %s %s, %+v", j2.State, j2.StatusMessage, j2.Totals)
	}
	if !strings.Contains(j2.StatusMessage, shard) || !strings.Contains(j2.StatusMessage, "`bucketvault vault repair --vault "+e.v.Bucket+" --dry-run`") {
		t.Errorf("status %q; want the lost shard named, and how to learn what repair can rebuild", j2.StatusMessage)
	}
	got, rep := e.restoreInto(t, j2.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 || rep.State != restore.StateCompleted {
		t.Errorf("restore of the new snapshot: %s\n%s", rep.State, strings.Join(d, "\n"))
	}
}
