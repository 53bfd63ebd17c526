package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// faulty wraps the real server's client to inject what it will not produce:
// SSE-C, archived storage classes, denied access, and crashes mid-copy.
type faulty struct {
	s3x.Client
	head       func(key string) (types.StorageClass, error)
	copies     atomic.Int64
	failCopyAt int64  // the n-th CopyObject fails (0: never)
	failCopyOf string // CopyObject of this source key fails
	stall      string // HeadObject of this key waits until its context ends
}

// stallWatchdog turns a test that would hang (a stalled capture nothing
// else ends) into a failure.
const stallWatchdog = 2 * time.Minute

func (f *faulty) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if f.stall != "" && aws.ToString(in.Key) == f.stall {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(stallWatchdog):
			// Nothing overtook the stalled capture: a serial reconcile.
			return nil, fmt.Errorf("the capture of %s stalled for %s and no other work ended it", f.stall, stallWatchdog)
		}
	}
	if f.head != nil {
		if sc, err := f.head(aws.ToString(in.Key)); err != nil {
			return nil, err
		} else if sc != "" {
			out, err := f.Client.HeadObject(ctx, in, o...)
			if out != nil {
				out.StorageClass = sc
			}
			return out, err
		}
	}
	return f.Client.HeadObject(ctx, in, o...)
}

func (f *faulty) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if n := f.copies.Add(1); f.failCopyAt > 0 && n >= f.failCopyAt {
		return nil, errors.New("injected crash")
	}
	if f.failCopyOf != "" && strings.Contains(aws.ToString(in.CopySource), "/"+f.failCopyOf+"?") {
		return nil, errors.New("injected crash")
	}
	return f.Client.CopyObject(ctx, in, o...)
}

func apiError(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "HeadObject", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
		Err:      &smithy.GenericAPIError{Code: code, Message: code},
	}}
}

type env struct {
	ctx    context.Context
	srv    *locals3.Server
	c      *s3.Client
	bucket string
	v      *vault.Vault
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
	return env{ctx: ctx, srv: srv, c: c, bucket: srv.NewBucket(t, true), v: v}
}

func (e env) put(t *testing.T, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSkipsAreRecorded(t *testing.T) {
	e := setup(t)
	f := &faulty{Client: e.c, head: func(key string) (types.StorageClass, error) {
		switch key {
		case "ssec":
			return "", apiError(400, "BadRequest")
		case "denied":
			return "", apiError(403, "AccessDenied")
		case "glacier":
			return types.StorageClassGlacier, nil
		case "deep":
			return types.StorageClassDeepArchive, nil
		}
		return "", nil
	}}
	want := map[string]string{"ssec": vault.SkipSSEC, "denied": vault.SkipAccessDenied, "glacier": vault.SkipArchived, "deep": vault.SkipArchived, "ok": ""}
	var changes []event.Change
	for k := range want {
		out := e.put(t, k, "x")
		changes = append(changes, event.Change{Kind: event.Created, Bucket: e.bucket, Key: k, VersionID: aws.ToString(out.VersionId), Time: time.Now()})
	}
	out := e.put(t, "gone", "x")
	if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("gone"), VersionId: out.VersionId}); err != nil {
		t.Fatal(err)
	}
	changes = append(changes, event.Change{Kind: event.Created, Bucket: e.bucket, Key: "gone", VersionID: aws.ToString(out.VersionId), Time: time.Now()})
	want["gone"] = vault.SkipGone

	j := &journal.Journal{Vault: e.v, S3: f}
	results, st, err := j.Ingest(e.ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Change.Key, r.Err)
		}
		for _, rec := range r.Records {
			got[rec.Key] = rec.Reason
			if rec.Op == vault.OpVersion && rec.Data == "" {
				t.Errorf("%s: a version record without data", rec.Key)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("skip reasons (-want +got):\n%s", diff)
	}
	if st.Skipped != 5 || len(st.Segments) != 1 {
		t.Errorf("stats %+v: want 5 skipped in 1 segment", st)
	}
}

func TestDuplicateDeliveryStoresDataOnce(t *testing.T) {
	e := setup(t)
	out := e.put(t, "k", "hello")
	f := &faulty{Client: e.c}
	j := &journal.Journal{Vault: e.v, S3: f}
	ch := event.Change{Kind: event.Created, Bucket: e.bucket, Key: "k", VersionID: aws.ToString(out.VersionId), Time: time.Now()}
	for range 3 {
		if _, _, err := j.Ingest(e.ctx, []event.Change{ch, ch}); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := e.c.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String("data/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != 1 {
		t.Errorf("vault holds %d data versions after 6 deliveries, want 1", len(vs.Versions))
	}
}

// TestReconcileResumesAfterCrash: a reconcile that dies mid-way resumes
// after the last key it saved and copies nothing twice; a third run adds
// nothing.
func TestReconcileResumesAfterCrash(t *testing.T) {
	e := setup(t)
	const n = 120
	for i := range n {
		e.put(t, fmt.Sprintf("obj/%04d", i), fmt.Sprint("body ", i))
	}
	f := &faulty{Client: e.c, failCopyAt: 70}
	v := *e.v
	v.S3 = f // copies into the vault go through the vault's client
	j := &journal.Journal{Vault: &v, S3: f, Concurrency: 4}
	opts := journal.ReconcileOptions{PageSize: 10, FlushRecords: 20}
	if _, err := j.Reconcile(e.ctx, e.bucket, opts); err == nil {
		t.Fatal("reconcile survived the injected crash")
	}
	crashed := f.copies.Load()
	f.failCopyAt = 0
	f.copies.Store(0)
	p, err := j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.CompletedAt == nil {
		t.Fatal("reconcile did not complete")
	}
	resumed := f.copies.Load()
	if resumed >= n || resumed < n-crashed {
		t.Errorf("the resumed run copied %d versions; the crashed one got %d of %d done: want fewer than %d and at least %d", resumed, crashed, n, n, n-crashed)
	}
	f.copies.Store(0)
	p, err = j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Added != 0 || f.copies.Load() != 0 {
		t.Errorf("a third reconcile added %d records and copied %d versions, want none", p.Added, f.copies.Load())
	}
	// Every version is in the vault.
	m, err := e.v.OpenJournal(e.ctx, e.bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	keys := 0
	for {
		_, recs, err := m.NextKey()
		if err != nil {
			break
		}
		for _, r := range recs {
			if r.Op == vault.OpVersion && r.Data != "" {
				keys++
				break
			}
		}
	}
	if keys != n {
		t.Errorf("journal has versions of %d keys, want %d", keys, n)
	}
}

// TestParallelReconcileResumesAfterCrash: a reconcile crashes while one
// key's capture is still running and many keys after it have finished. The
// saved progress claims nothing from that key on, yet the work after it is
// journaled; the resumed run copies only what the crashed one had not
// copied, every version and delete marker ends up journaled, and every
// version's data is in the vault exactly once.
func TestParallelReconcileResumesAfterCrash(t *testing.T) {
	e := setup(t)
	const n = 60
	const stalled, crash = "obj/0010", "obj/0040"
	want := map[string]bool{} // key@version of every version and marker
	versions := 0
	for i := range n {
		k := fmt.Sprintf("obj/%04d", i)
		for range 1 + i%3/2 { // every third key has two versions
			want[k+"@"+aws.ToString(e.put(t, k, fmt.Sprint("body ", i)).VersionId)] = true
			versions++
		}
		if i%7 == 3 {
			out, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k)})
			if err != nil {
				t.Fatal(err)
			}
			want[k+"@"+aws.ToString(out.VersionId)] = true
		}
	}
	f := &faulty{Client: e.c, stall: stalled, failCopyOf: crash}
	v := *e.v
	v.S3 = f
	j := &journal.Journal{Vault: &v, S3: f, Concurrency: 4}
	opts := journal.ReconcileOptions{PageSize: 7, FlushRecords: 5}
	if _, err := j.Reconcile(e.ctx, e.bucket, opts); err == nil || !strings.Contains(err.Error(), crash) {
		t.Fatalf("reconcile = %v, want the injected crash at %s", err, crash)
	}
	var saved journal.Progress
	if err := e.v.GetJSON(e.ctx, vault.ReconcileKey(e.bucket), &saved); err != nil {
		t.Fatal(err)
	}
	if saved.KeyMarker >= stalled {
		t.Errorf("saved progress claims keys up to %q, but %q never finished", saved.KeyMarker, stalled)
	}
	beyond := 0
	for k := range journaled(t, e) {
		if k > stalled {
			beyond++
		}
	}
	if beyond == 0 {
		t.Errorf("nothing after %q was journaled while it stalled: the keys were not reconciled in parallel", stalled)
	}
	stored := dataVersions(t, e)

	f.stall, f.failCopyOf = "", ""
	f.copies.Store(0)
	p, err := j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.CompletedAt == nil {
		t.Fatal("the resumed reconcile did not complete")
	}
	if got := f.copies.Load(); got != int64(versions-stored) {
		t.Errorf("the resumed run copied %d versions; %d of %d were in the vault after the crash: want %d", got, stored, versions, versions-stored)
	}
	if got := dataVersions(t, e); got != versions {
		t.Errorf("the vault holds %d data object versions, want one per source version: %d", got, versions)
	}
	got := map[string]bool{}
	for k, recs := range journaled(t, e) {
		for _, r := range recs {
			if r.Op == vault.OpVersion && r.Data == "" {
				t.Errorf("%s@%s: a version record without data", k, r.VersionID)
			}
			if r.Op == vault.OpVersion || r.Op == vault.OpDeleteMarker {
				got[k+"@"+r.VersionID] = true
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journaled versions and markers (-want +got):\n%s", diff)
	}
	f.copies.Store(0)
	if p, err := j.Reconcile(e.ctx, e.bucket, opts); err != nil || p.Added != 0 || f.copies.Load() != 0 {
		t.Errorf("a third reconcile: %v, added %d records and copied %d versions, want none", err, p.Added, f.copies.Load())
	}
}

// journaled reads every record of the test bucket's journal, by key.
func journaled(t *testing.T, e env) map[string][]vault.Record {
	t.Helper()
	m, err := e.v.OpenJournal(e.ctx, e.bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]vault.Record{}
	for {
		k, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range recs {
			out[k] = append(out[k], o.Record)
		}
	}
}

// dataVersions counts the object versions under the vault's data/.
func dataVersions(t *testing.T, e env) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectVersionsPaginator(e.c, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Versions)
	}
	return n
}

func TestHandleSQSFailsOnlyPoison(t *testing.T) {
	e := setup(t)
	out := e.put(t, "a b+c.txt", "x")
	classic := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-23T08:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":"a+b%%2Bc.txt","size":1,"versionId":%q,"sequencer":"0055AED6DCD90281E5"}}}]}`,
		e.bucket, aws.ToString(out.VersionId))
	ev := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "good", Body: classic, EventSource: "aws:sqs"},
		{MessageId: "poison", Body: `{"not":"an s3 event"`, EventSource: "aws:sqs"},
	}}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	resp, err := j.HandleSQS(e.ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	want := []events.SQSBatchItemFailure{{ItemIdentifier: "poison"}}
	if diff := cmp.Diff(want, resp.BatchItemFailures); diff != "" {
		t.Errorf("batch item failures (-want +got):\n%s", diff)
	}
	refs, err := e.v.Segments(e.ctx, e.bucket)
	if err != nil || len(refs) != 1 {
		t.Fatalf("segments %v, %v: want 1", refs, err)
	}
}

func TestProtectRefusesUnversionedBucket(t *testing.T) {
	e := setup(t)
	j := &journal.Journal{Vault: e.v, S3: e.c}
	plain := e.srv.NewBucket(t, false)
	_, _, err := protect.Protect(e.ctx, j, plain, protect.Options{})
	var nv *protect.NotVersionedError
	if !errors.As(err, &nv) || !strings.Contains(err.Error(), "versioning") {
		t.Fatalf("Protect(unversioned) = %v, want NotVersionedError", err)
	}
	if _, err := e.c.PutBucketVersioning(e.ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(plain),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := protect.Protect(e.ctx, j, plain, protect.Options{}); !errors.As(err, &nv) || nv.Status != "Suspended" {
		t.Fatalf("Protect(suspended) = %v, want NotVersionedError with status Suspended", err)
	}
}

// TestProtectKeepsNotificationConfiguration: turning on event delivery
// keeps what the bucket already had, and protect's initial backup takes
// what is already there.
func TestProtectKeepsNotificationConfiguration(t *testing.T) {
	e := setup(t)
	if e.srv.WebhookARN == "" {
		t.Skipf("the %s server takes no notification configuration", e.srv.Kind)
	}
	e.put(t, "before/1", "one")
	e.put(t, "before/2", "two")
	existing := &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
		Id: aws.String("theirs"), QueueArn: aws.String(e.srv.WebhookARN), Events: []types.Event{"s3:ObjectRemoved:*"},
		Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: "prefix", Value: aws.String("logs/")}}}},
	}}}
	if _, err := e.c.PutBucketNotificationConfiguration(e.ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(e.bucket), NotificationConfiguration: existing}); err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	_, p, err := protect.Protect(e.ctx, j, e.bucket, protect.Options{QueueARN: e.srv.WebhookARN})
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || p.Added != 2 {
		t.Errorf("initial backup %+v, want 2 records", p)
	}
	got, err := e.c.GetBucketNotificationConfiguration(e.ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(e.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, q := range got.QueueConfigurations {
		ids = append(ids, aws.ToString(q.Id))
	}
	if !bytes.Contains([]byte(strings.Join(ids, ",")), []byte("theirs")) {
		t.Errorf("notification configuration lost the existing entry: %v", ids)
	}
}

// TestVerifyFindsDamage: verify reports a data object that is missing or
// whose bytes changed; --deep checks the bytes themselves.
func TestVerifyFindsDamage(t *testing.T) {
	e := setup(t)
	for _, k := range []string{"a", "b", "c"} {
		e.put(t, k, "content of "+k)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	if err := e.v.PutJSON(e.ctx, vault.BucketKey(e.bucket), vault.ProtectedBucket{Bucket: e.bucket}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, deep := range []bool{false, true} {
		rep, err := e.v.Verify(e.ctx, 4, deep, nil)
		if err != nil || !rep.OK() || rep.Data != 3 {
			t.Fatalf("verify(deep=%v) of a sound vault: %+v, %v", deep, rep, err)
		}
	}
	m, err := e.v.OpenJournal(e.ctx, e.bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for {
		_, recs, err := m.NextKey()
		if err != nil {
			break
		}
		data = append(data, recs[0].Data)
	}
	m.Close()
	// Same size, other bytes: a new version of the data key.
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(data[0]), Body: strings.NewReader("CONTENT OF a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(data[1])}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.v.Verify(e.ctx, 4, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(rep.Problems, "\n")
	if !strings.Contains(text, "missing") || !strings.Contains(text, "MD5") || len(rep.Problems) < 2 {
		t.Errorf("problems:\n%s\nwant a missing object and an MD5 mismatch", text)
	}
}
