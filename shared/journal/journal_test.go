package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
// SSE-C, archived storage classes, denied access, and crashes mid-copy. It
// counts the data objects stored in the vault (copies from other buckets,
// and PUTs of data keys that the server took: the relay's).
type faulty struct {
	s3x.Client
	head        func(key string) (types.StorageClass, error)
	stores      atomic.Int64 // data objects stored
	attempts    atomic.Int64 // data stores tried
	failStoreAt int64        // the n-th data store tried fails (0: never)
	failStoreOf string       // the data store of this source key fails
	stall       string       // HeadObject and GetObject of this key wait until their context ends
	afterHead   func(key string)
	get         func(key string) error // GetObject of key fails with this error, when not nil
}

func (f *faulty) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := f.stalled(ctx, aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	if f.get != nil {
		if err := f.get(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	return f.Client.GetObject(ctx, in, o...)
}

// stallWatchdog turns a test that would hang (a stalled capture nothing
// else ends) into a failure.
const stallWatchdog = 2 * time.Minute

// stalled waits until ctx ends when key is the stalled one.
func (f *faulty) stalled(ctx context.Context, key string) error {
	if f.stall == "" || key != f.stall {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(stallWatchdog):
		// Nothing overtook the stalled capture: a serial reconcile.
		return fmt.Errorf("the capture of %s stalled for %s and no other work ended it", f.stall, stallWatchdog)
	}
}

// tryStore counts a data store tried and fails it as told: the n-th one,
// or the one of source key failStoreOf (named by matches).
func (f *faulty) tryStore(matches func(srcKey string) bool) error {
	if n := f.attempts.Add(1); f.failStoreAt > 0 && n >= f.failStoreAt {
		return errors.New("injected crash")
	}
	if f.failStoreOf != "" && matches(f.failStoreOf) {
		return errors.New("injected crash")
	}
	return nil
}

// PutObject counts and fails the relay's PUTs of data keys (not the
// probe's).
func (f *faulty) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	k := aws.ToString(in.Key)
	if !strings.HasPrefix(k, "data/") || k == journal.ProbeKey(aws.ToString(in.Bucket)) {
		return f.Client.PutObject(ctx, in, o...)
	}
	if err := f.tryStore(func(src string) bool {
		return k == vault.DataKey(in.Metadata["bv-bucket"], src, in.Metadata["bv-version"], in.Metadata["bv-etag"], time.Time{})
	}); err != nil {
		return nil, err
	}
	out, err := f.Client.PutObject(ctx, in, o...)
	if err == nil {
		f.stores.Add(1)
	}
	return out, err
}

func (f *faulty) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if err := f.stalled(ctx, aws.ToString(in.Key)); err != nil {
		return nil, err
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
	out, err := f.Client.HeadObject(ctx, in, o...)
	if f.afterHead != nil {
		f.afterHead(aws.ToString(in.Key))
	}
	return out, err
}

// CopyObject counts and fails copies from other buckets into the vault
// (not the journal's probe, which copies within the vault).
func (f *faulty) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.CopySource), aws.ToString(in.Bucket)+"/") {
		return f.Client.CopyObject(ctx, in, o...)
	}
	if err := f.tryStore(func(src string) bool {
		return strings.Contains(aws.ToString(in.CopySource), "/"+src+"?")
	}); err != nil {
		return nil, err
	}
	out, err := f.Client.CopyObject(ctx, in, o...)
	if err == nil {
		f.stores.Add(1)
	}
	return out, err
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
	e := env{ctx: ctx, srv: srv, c: c, bucket: srv.NewBucket(t, true), v: v}
	e.protect(t, e.bucket)
	return e
}

// protect records bucket as protected by the vault (the journal refuses
// events of buckets it does not protect).
func (e env) protect(t *testing.T, bucket string) {
	t.Helper()
	if err := e.v.PutJSON(e.ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
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
	f := &faulty{Client: e.c, get: func(key string) error {
		if key == "ssec" { // S3's answer to a GET without the customer key
			return apiError(400, "InvalidRequest")
		}
		return nil
	}, head: func(key string) (types.StorageClass, error) {
		switch key {
		case "ssec": // a HEAD's answer has no body
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

// TestInvalidVersionIsNotSSEC: a change naming a version id the server
// rejects as malformed fails with InvalidVersionError, not a recorded
// sse-c skip, though its HEAD gets the same bare 400 as an SSE-C object's
// (TestSkipsAreRecorded). Nothing is journaled for it.
func TestInvalidVersionIsNotSSEC(t *testing.T) {
	e := setup(t)
	e.put(t, "k", "x")
	const bad = "not-a-version-id"
	_, err := e.c.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), VersionId: aws.String(bad)})
	if !s3x.IsBareBadRequest(err) {
		t.Skipf("%s answers a HEAD with version id %q with %v, not a bare 400", e.srv.Kind, bad, err)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	for _, kind := range []event.Kind{event.Created, event.DeleteMarkerCreated} {
		res, st, err := j.Ingest(e.ctx, []event.Change{{Kind: kind, Bucket: e.bucket, Key: "k", VersionID: bad, Time: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		var ive *journal.InvalidVersionError
		if !errors.As(res[0].Err, &ive) || ive.VersionID != bad || len(res[0].Records) != 0 {
			t.Errorf("%s: result %v, %+v; want an InvalidVersionError and no record", kind, res[0].Err, res[0].Records)
		}
		if st.Failed != 1 || st.Skipped != 0 || len(st.Segments) != 0 {
			t.Errorf("%s: stats %+v, want 1 failed, nothing skipped or written", kind, st)
		}
	}
}

// createOnly is the real server as one that honours If-None-Match: * on
// CopyObject (Amazon S3 does, MinIO ignores it): a conditional copy onto
// an existing key fails with 412. It counts the copies it made of other
// buckets' objects and the HEADs of data keys (but the probe's).
type createOnly struct {
	s3x.Client
	mu     sync.Mutex // one conditional copy at a time: check, then copy
	copies atomic.Int64
	heads  atomic.Int64
}

func (c *createOnly) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if k := aws.ToString(in.Key); strings.HasPrefix(k, "data/") && k != journal.ProbeKey(aws.ToString(in.Bucket)) {
		c.heads.Add(1)
	}
	return c.Client.HeadObject(ctx, in, o...)
}

func (c *createOnly) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if aws.ToString(in.IfNoneMatch) == "*" {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, err := c.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: in.Bucket, Key: in.Key})
		if err == nil {
			return nil, apiError(http.StatusPreconditionFailed, "PreconditionFailed")
		}
		if !s3x.IsNotFound(err) {
			return nil, err
		}
	}
	out, err := c.Client.CopyObject(ctx, in, o...)
	if err == nil && !strings.HasPrefix(aws.ToString(in.CopySource), aws.ToString(in.Bucket)+"/") {
		c.copies.Add(1)
	}
	return out, err
}

// probeVersions counts the versions of the journal's probe object.
func probeVersions(t *testing.T, e env) int {
	t.Helper()
	out, err := e.c.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String(journal.ProbeKey(e.v.Bucket))})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Versions)
}

// TestConditionalCopyProbe: the probe tells a server that honours a
// create-only copy from one that ignores it (MinIO), and once it knows,
// later probes of the same vault write nothing more.
func TestConditionalCopyProbe(t *testing.T) {
	for _, c := range []struct {
		name     string
		honours  bool
		versions int
	}{{"real server", false, 2}, {"create-only", true, 1}} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t)
			var client s3x.Client = e.c
			if c.honours {
				client = &createOnly{Client: e.c}
			}
			if e.srv.Kind != locals3.KindMinIO && !c.honours {
				t.Skipf("whether %s honours a conditional copy is its own business", e.srv.Kind)
			}
			for range 3 {
				got, err := s3x.ProbeConditionalCopy(e.ctx, client, e.v.Bucket, vault.DescriptorKey, journal.ProbeKey(e.v.Bucket), nil)
				if err != nil || got != c.honours {
					t.Fatalf("probe = %v, %v; want %v", got, err, c.honours)
				}
			}
			if got := probeVersions(t, e); got != c.versions {
				t.Errorf("3 probes left %d versions of the probe object, want %d", got, c.versions)
			}
		})
	}
}

// TestDuplicateDeliveryStoresDataOnce, on the real server (MinIO: the
// journal checks data keys by HEAD) and as a server that honours a
// create-only copy (the copy is the check): six deliveries of one version,
// two at a time, store its data once. On the second, the first delivery
// makes one call to the vault for the data, the copy.
func TestDuplicateDeliveryStoresDataOnce(t *testing.T) {
	for _, honours := range []bool{false, true} {
		t.Run(fmt.Sprintf("create-only=%v", honours), func(t *testing.T) {
			e := setup(t)
			out := e.put(t, "k", "hello")
			co := &createOnly{Client: e.c}
			var client s3x.Client = e.c
			if honours {
				client = co
			}
			v := *e.v
			v.S3 = client
			j := &journal.Journal{Vault: &v, S3: client}
			ch := event.Change{Kind: event.Created, Bucket: e.bucket, Key: "k", VersionID: aws.ToString(out.VersionId), Time: time.Now()}
			for i := range 3 {
				res, _, err := j.Ingest(e.ctx, []event.Change{ch, ch})
				if err != nil {
					t.Fatal(err)
				}
				// The batch's second change is the first's duplicate: captured once.
				if r := res[0]; r.Err != nil || res[1].Err != nil || len(r.Records) != 1 || r.Records[0].DataETag == "" {
					t.Fatalf("delivery %d: %v, %v, %+v", i, r.Err, res[1].Err, r.Records)
				}
				if honours && i == 0 && (co.heads.Load() != 0 || co.copies.Load() != 1) {
					t.Errorf("the first delivery made %d HEADs of data keys and %d copies, want 0 and 1", co.heads.Load(), co.copies.Load())
				}
			}
			if got := dataVersions(t, e); got != 1 {
				t.Errorf("vault holds %d data versions after 6 deliveries, want 1", got)
			}
			if honours && co.copies.Load() != 1 {
				t.Errorf("%d copies, want 1", co.copies.Load())
			}
		})
	}
}

// TestOverwrittenNullVersionIsSkipped: a null version overwritten between
// its HEAD and its copy is recorded as gone, not stored under the wrong
// identity, whether the server refuses the copy for the source's ETag
// alone or also checks the data key (create-only: both answer 412).
func TestOverwrittenNullVersionIsSkipped(t *testing.T) {
	for _, honours := range []bool{false, true} {
		t.Run(fmt.Sprintf("create-only=%v", honours), func(t *testing.T) {
			e := setup(t)
			plain := e.srv.NewBucket(t, false)
			e.protect(t, plain)
			e.protect(t, plain)
			if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(plain), Key: aws.String("k"), Body: strings.NewReader("first")}); err != nil {
				t.Fatal(err)
			}
			var client s3x.Client = e.c
			if honours {
				client = &createOnly{Client: e.c}
			}
			f := &faulty{Client: client, afterHead: func(key string) {
				if key == "k" {
					if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(plain), Key: aws.String("k"), Body: strings.NewReader("second")}); err != nil {
						t.Error(err)
					}
				}
			}}
			v := *e.v
			v.S3 = f
			j := &journal.Journal{Vault: &v, S3: f}
			res, _, err := j.Ingest(e.ctx, []event.Change{{Kind: event.Created, Bucket: plain, Key: "k", VersionID: "null", Time: time.Now()}})
			if err != nil {
				t.Fatal(err)
			}
			if r := res[0]; r.Err != nil || len(r.Records) != 1 || r.Records[0].Op != vault.OpSkip || r.Records[0].Reason != vault.SkipGone {
				t.Fatalf("result %v, %+v: want one %s skip", r.Err, r.Records, vault.SkipGone)
			}
			if got := dataVersions(t, e); got != 0 {
				t.Errorf("the vault holds %d data versions, want none", got)
			}
		})
	}
}

// TestReconcileResumesAfterCrash: a reconcile that dies mid-way resumes
// after the last key it saved and stores nothing twice; a third run adds
// nothing.
func TestReconcileResumesAfterCrash(t *testing.T) {
	e := setup(t)
	const n = 120
	for i := range n {
		e.put(t, fmt.Sprintf("obj/%04d", i), fmt.Sprint("body ", i))
	}
	f := &faulty{Client: e.c, failStoreAt: 70}
	v := *e.v
	v.S3 = f // stores into the vault go through the vault's client
	j := &journal.Journal{Vault: &v, S3: f, Concurrency: 4}
	opts := journal.ReconcileOptions{PageSize: 10, FlushRecords: 20}
	if _, err := j.Reconcile(e.ctx, e.bucket, opts); err == nil {
		t.Fatal("reconcile survived the injected crash")
	}
	// Every store that may have reached the server: one canceled by the
	// crash may have been written, and is then refused (412) on resume.
	crashed := f.attempts.Load()
	f.failStoreAt = 0
	f.stores.Store(0)
	p, err := j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.CompletedAt == nil {
		t.Fatal("reconcile did not complete")
	}
	resumed := f.stores.Load()
	if resumed >= n || resumed < n-crashed {
		t.Errorf("the resumed run stored %d versions; the crashed one tried %d of %d: want fewer than %d and at least %d", resumed, crashed, n, n, n-crashed)
	}
	f.stores.Store(0)
	p, err = j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Added != 0 || f.stores.Load() != 0 {
		t.Errorf("a third reconcile added %d records and stored %d versions, want none", p.Added, f.stores.Load())
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
	if got := dataVersions(t, e); got != n {
		t.Errorf("the vault holds %d data object versions, want one per source version: %d", got, n)
	}
}

// TestParallelReconcileResumesAfterCrash: a reconcile crashes while one
// key's capture is still running and many keys after it have finished. The
// saved progress claims nothing from that key on, yet the work after it is
// journaled; the resumed run stores only what the crashed one had not
// copied, every version and delete marker ends up journaled, and every
// version's data is in the vault exactly once.
func TestParallelReconcileResumesAfterCrash(t *testing.T) {
	e := setup(t)
	const n = 60
	const stalled, crash = "obj/0010", "obj/0040"
	// History: every third key has two versions, every seventh a delete
	// marker. versitygw's listings of such keys are not stable (a reconcile
	// adds records on every run there), so there every key has one
	// version.
	history := e.srv.Kind != locals3.KindVersityGW
	if !history {
		t.Logf("%s: one version per key, no delete markers", e.srv.Kind)
	}
	want := map[string]bool{} // key@version of every version and marker
	versions := 0
	for i := range n {
		k := fmt.Sprintf("obj/%04d", i)
		extra := 0
		if history {
			extra = i % 3 / 2
		}
		for range 1 + extra {
			want[k+"@"+aws.ToString(e.put(t, k, fmt.Sprint("body ", i)).VersionId)] = true
			versions++
		}
		if history && i%7 == 3 {
			out, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k)})
			if err != nil {
				t.Fatal(err)
			}
			want[k+"@"+aws.ToString(out.VersionId)] = true
		}
	}
	f := &faulty{Client: e.c, stall: stalled, failStoreOf: crash}
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

	f.stall, f.failStoreOf = "", ""
	f.stores.Store(0)
	p, err := j.Reconcile(e.ctx, e.bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.CompletedAt == nil {
		t.Fatal("the resumed reconcile did not complete")
	}
	if got := f.stores.Load(); got != int64(versions-stored) {
		t.Errorf("the resumed run stored %d versions; %d of %d were in the vault after the crash: want %d", got, stored, versions, versions-stored)
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
	f.stores.Store(0)
	if p, err := j.Reconcile(e.ctx, e.bucket, opts); err != nil || p.Added != 0 || f.stores.Load() != 0 {
		t.Errorf("a third reconcile: %v, added %d records and stored %d versions, want none", err, p.Added, f.stores.Load())
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

// dataVersions counts the object versions under the vault's data/, but
// for the journal's probe object.
func dataVersions(t *testing.T, e env) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectVersionsPaginator(e.c, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) != journal.ProbeKey(e.v.Bucket) {
				n++
			}
		}
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
	e.protect(t, plain)
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
	// The overwritten object's recorded bytes are still an older version
	// (repairable); the deleted one's too (behind a delete marker).
	if !strings.Contains(text, "has ETag") || !strings.Contains(text, "repairable") || !strings.Contains(text, "is missing") || len(rep.Problems) != 2 {
		t.Errorf("problems:\n%s\nwant a changed object and a missing one, both repairable", text)
	}
	// Once the recorded version is gone for good, verify says it is lost.
	vs, err := e.c.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String(data[2])})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range vs.Versions {
		if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.v.Bucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = e.v.Verify(e.ctx, 4, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	text = strings.Join(rep.Problems, "\n")
	if !strings.Contains(text, "lost from the vault") || len(rep.Problems) != 3 {
		t.Errorf("problems:\n%s\nwant the third data object lost", text)
	}
}
