package journal_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// counting counts the calls a journal makes about versions: those on the
// source buckets and on the vault's data keys (not the probe object's, nor
// segments or records).
type counting struct {
	s3x.Client
	vault string
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) count(op, bucket, key string) {
	if bucket == c.vault && (!strings.HasPrefix(key, "data/") || key == journal.ProbeKey(bucket)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[op]++
}

func (c *counting) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	c.calls = nil
	return out
}

func (c *counting) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c.count("HeadObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	return c.Client.HeadObject(ctx, in, o...)
}

func (c *counting) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.count("GetObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	return c.Client.GetObject(ctx, in, o...)
}

func (c *counting) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.count("PutObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	return c.Client.PutObject(ctx, in, o...)
}

func (c *counting) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	c.count("CopyObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	return c.Client.CopyObject(ctx, in, o...)
}

func (c *counting) GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, o ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	c.count("GetObjectTagging", aws.ToString(in.Bucket), aws.ToString(in.Key))
	return c.Client.GetObjectTagging(ctx, in, o...)
}

func (c *counting) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, o ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	c.count("ListObjectVersions", aws.ToString(in.Bucket), "")
	return c.Client.ListObjectVersions(ctx, in, o...)
}

// journalOn returns a journal into a new vault of its own whose calls
// (source and vault alike) go through wrap(client).
func journalOn(t *testing.T, e env, relayMax int64, wrap func(s3x.Client) s3x.Client) *journal.Journal {
	t.Helper()
	v, err := vault.Create(e.ctx, e.c, e.srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	(env{ctx: e.ctx, c: e.c, v: v}).protect(t, e.bucket)
	var c s3x.Client = e.c
	if wrap != nil {
		c = wrap(e.c)
	}
	v.S3 = c
	return &journal.Journal{Vault: v, S3: c, RelayMax: relayMax}
}

// requireCreateOnlyPut skips a test of the relay on a server that does not
// honour a create-only PUT (the journal copies every version there).
func requireCreateOnlyPut(t *testing.T, e env) {
	t.Helper()
	ok, err := s3x.ProbeConditionalPut(e.ctx, e.c, e.srv.NewBucket(t, false), "probe", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		if e.srv.Kind == locals3.KindMinIO {
			t.Fatal("MinIO honours If-None-Match: * on PutObject, the probe says not")
		}
		t.Skipf("%s ignores If-None-Match on PutObject: the journal never relays there", e.srv.Kind)
	}
}

// created is the change an Object Created event of a version decodes to:
// with its size and ETag.
func created(bucket, key string, out *s3.PutObjectOutput, size int64) event.Change {
	return event.Change{Kind: event.Created, Bucket: bucket, Key: key, VersionID: aws.ToString(out.VersionId), Time: time.Now().UTC(),
		Size: size, ETag: s3x.TrimETag(aws.ToString(out.ETag)), Source: event.SourceS3, Name: "ObjectCreated:Put"}
}

// TestRelayRecordsAsCopy: versions journaled by the relay (GET, create-only
// PUT) get the same records as by the copy path (HEAD, HEAD of the data
// key, copy), DataETag aside, and their data objects hold the same bytes
// and metadata. The versions: plain, every system metadata field with gzip
// content, user metadata and tags, SHA-256 and CRC32C checksums, empty,
// a key to escape, a null version, and versions the relay hands to the
// copy path after its GET (a multipart ETag, more bytes than RelayMax
// against the event's word) or never GETs (over RelayMax by the event).
func TestRelayRecordsAsCopy(t *testing.T) {
	e := setup(t)
	requireCreateOnlyPut(t, e)
	const relayMax = 64 << 10
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("compressible ", 100)))
	zw.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), (relayMax+1024)/16)
	plain := e.srv.NewBucket(t, false) // versioning never enabled: null versions
	e.protect(t, plain)
	type version struct {
		bucket, key string
		in          *s3.PutObjectInput
		size        int64 // the event's word
		relayed     bool
		versionID   string
	}
	versions := []version{
		{key: "plain", in: &s3.PutObjectInput{Body: strings.NewReader("hello")}, size: 5, relayed: true},
		{key: "meta", in: &s3.PutObjectInput{Body: bytes.NewReader(gz.Bytes()),
			ContentType: aws.String("text/plain; charset=utf-8"), ContentEncoding: aws.String("gzip"),
			CacheControl: aws.String("max-age=60"), ContentDisposition: aws.String(`attachment; filename="a.txt"`),
			ContentLanguage: aws.String("de"), Expires: aws.Time(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)),
			Metadata: map[string]string{"owner": "team a", "Mixed-Case": "Value"}, Tagging: aws.String("a=1&b=two%20words"),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256}, size: int64(gz.Len()), relayed: true},
		{key: "crc32c", in: &s3.PutObjectInput{Body: strings.NewReader("checksummed"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}, size: 11, relayed: true},
		{key: "empty", in: &s3.PutObjectInput{Body: strings.NewReader("")}, size: 0, relayed: true},
		{key: "dir/a b+c%2F/ünï.txt", in: &s3.PutObjectInput{Body: strings.NewReader("escaped")}, size: 7, relayed: true},
		{bucket: plain, key: "null", in: &s3.PutObjectInput{Body: strings.NewReader("a null version")}, size: 14, relayed: true},
		{key: "over", in: &s3.PutObjectInput{Body: bytes.NewReader(big)}, size: int64(len(big))},
		{key: "liar", in: &s3.PutObjectInput{Body: bytes.NewReader(big)}, size: 100},
		{key: "multipart"}, // one part: ETag "…-1"
	}
	var changes []event.Change
	for i := range versions {
		v := &versions[i]
		if v.bucket == "" {
			v.bucket = e.bucket
		}
		if v.bucket == plain && !nullVersionReadable(t, e, plain) {
			continue
		}
		var out *s3.PutObjectOutput
		if v.key == "multipart" {
			out = multipartObject(t, e, v.bucket, v.key, []byte("one part of a multipart upload"))
			v.size = 30
		} else {
			v.in.Bucket, v.in.Key = aws.String(v.bucket), aws.String(v.key)
			var err error
			if out, err = e.c.PutObject(e.ctx, v.in); err != nil {
				t.Fatalf("put %s: %v", v.key, err)
			}
		}
		ch := created(v.bucket, v.key, out, v.size)
		if v.bucket == plain {
			ch.VersionID = "null"
		}
		v.versionID = ch.VersionID
		changes = append(changes, ch)
	}

	cc, rc := &counting{}, &counting{}
	copier := journalOn(t, e, -1, func(c s3x.Client) s3x.Client { cc.Client = c; return cc })
	relay := journalOn(t, e, relayMax, func(c s3x.Client) s3x.Client { rc.Client = c; return rc })
	for _, j := range []*journal.Journal{copier, relay} {
		(env{ctx: e.ctx, c: e.c, v: &vault.Vault{S3: e.c, Bucket: j.Vault.Bucket}}).protect(t, plain)
	}
	cc.vault, rc.vault = copier.Vault.Bucket, relay.Vault.Bucket
	records := func(j *journal.Journal, c *counting) (map[string]vault.Record, map[string]map[string]int) {
		recs := map[string]vault.Record{}
		calls := map[string]map[string]int{}
		for _, ch := range changes { // one at a time, to count each one's calls
			res, _, err := j.Ingest(e.ctx, []event.Change{ch})
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if r.Err != nil || len(r.Records) != 1 || r.Records[0].Op != vault.OpVersion || r.Records[0].DataETag == "" {
				t.Fatalf("%s: %v, %+v", ch.Key, r.Err, r.Records)
			}
			recs[ch.Key] = r.Records[0]
			calls[ch.Key] = c.snapshot()
		}
		return recs, calls
	}
	want, _ := records(copier, cc)
	got, calls := records(relay, rc)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(vault.Record{}, "DataETag", "TagsAt")); diff != "" {
		t.Errorf("records, copy path against relay (-copy +relay):\n%s", diff)
	}
	if want["multipart"].PartSize == 0 {
		t.Errorf("the multipart version's record has no part size: %+v", want["multipart"])
	}
	for _, v := range versions {
		c, ok := calls[v.key]
		if !ok {
			continue
		}
		switch {
		case v.relayed && (c["GetObject"] != 1 || c["PutObject"] != 1 || c["CopyObject"] != 0 || c["HeadObject"] != 0):
			t.Errorf("%s: calls %v, want it relayed: one GET, one PUT", v.key, c)
		case !v.relayed && (c["CopyObject"] != 1 || c["PutObject"] != 0):
			t.Errorf("%s: calls %v, want it copied", v.key, c)
		case v.key == "liar" && c["GetObject"] != 1:
			t.Errorf("%s: calls %v, want one GET (the event said %d bytes)", v.key, c, v.size)
		case v.key == "over" && c["GetObject"] != 0:
			t.Errorf("%s: calls %v, want no GET (the event said %d bytes)", v.key, c, v.size)
		}
		// The source is read once: by the GET, or by the HEAD (the
		// multipart version's part-size HEAD aside).
		if reads := c["GetObject"] + c["HeadObject"] - c["CopyObject"]; reads != 1 && v.key != "multipart" {
			t.Errorf("%s: calls %v: the source read %d times", v.key, c, reads)
		}
		// The data objects: the version's bytes, with the same metadata.
		src := getObject(t, e, v.bucket, v.key, v.versionID)
		a, b := getObject(t, e, copier.Vault.Bucket, want[v.key].Data, ""), getObject(t, e, relay.Vault.Bucket, got[v.key].Data, "")
		if !bytes.Equal(a.body, src.body) || !bytes.Equal(b.body, src.body) {
			t.Errorf("%s: data of %d (copy) and %d (relay) bytes, source %d", v.key, len(a.body), len(b.body), len(src.body))
		}
		if diff := cmp.Diff(a.meta, b.meta); diff != "" {
			t.Errorf("%s: data object metadata (-copy +relay):\n%s", v.key, diff)
		}
	}
}

// nullVersionReadable reports whether the server answers a HEAD of
// version "null" in an unversioned bucket (versitygw does not).
func nullVersionReadable(t *testing.T, e env, bucket string) bool {
	t.Helper()
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("null-probe"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("null-probe"), VersionId: aws.String("null")})
	if err != nil {
		t.Logf("%s answers a HEAD of version null with %v: no null version in this test", e.srv.Kind, err)
	}
	return err == nil
}

type object struct {
	body []byte
	meta map[string]string // Content-Type and user metadata
}

func getObject(t *testing.T, e env, bucket, key, versionID string) object {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := e.c.GetObject(e.ctx, in)
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"Content-Type": aws.ToString(out.ContentType)}
	for k, v := range out.Metadata {
		meta[k] = v
	}
	return object{body: body, meta: meta}
}

// multipartObject writes body as a multipart upload of one part.
func multipartObject(t *testing.T, e env, bucket, key string, body []byte) *s3.PutObjectOutput {
	t.Helper()
	up, err := e.c.CreateMultipartUpload(e.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	part, err := e.c.UploadPart(e.ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.c.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(done.ETag), "-") {
		t.Fatalf("multipart ETag %s", aws.ToString(done.ETag))
	}
	return &s3.PutObjectOutput{ETag: done.ETag, VersionId: done.VersionId}
}

// TestRelayStoresDuplicatesOnce: deliveries of one small version, twice in
// a batch, in batches one after another, and by two journals at once (two
// invocations), store its data once: the data key keeps a single version
// in the (versioned) vault, and every record names its ETag.
func TestRelayStoresDuplicatesOnce(t *testing.T) {
	e := setup(t)
	requireCreateOnlyPut(t, e)
	ch := created(e.bucket, "k", e.put(t, "k", "hello"), 5)
	v := *e.v
	j1 := &journal.Journal{Vault: &v, S3: e.c}
	j2 := &journal.Journal{Vault: &v, S3: e.c}
	var mu sync.Mutex
	etags := map[string]bool{}
	deliver := func(j *journal.Journal, batch ...event.Change) {
		res, _, err := j.Ingest(e.ctx, batch)
		if err != nil {
			t.Error(err)
			return
		}
		// A batch's duplicate change shares its first's outcome and
		// records (Ingest journals them once).
		if r := res[0]; r.Err != nil || res[len(res)-1].Err != nil || len(r.Records) != 1 || r.Records[0].DataETag == "" {
			t.Errorf("delivery: %v, %+v", r.Err, r.Records)
		} else {
			etags[r.Records[0].DataETag] = true
		}
	}
	for range 3 {
		deliver(j1, ch, ch)
	}
	for range 3 {
		var wg sync.WaitGroup
		for _, j := range []*journal.Journal{j1, j2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _, err := j.Ingest(e.ctx, []event.Change{ch})
				if err != nil || res[0].Err != nil || len(res[0].Records) != 1 || res[0].Records[0].DataETag == "" {
					t.Errorf("concurrent delivery: %v, %+v", err, res)
					return
				}
				mu.Lock()
				etags[res[0].Records[0].DataETag] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if got := dataVersions(t, e); got != 1 {
		t.Errorf("the vault holds %d data versions after 12 deliveries, want 1", got)
	}
	if len(etags) != 1 {
		t.Errorf("records name data ETags %v, want one", etags)
	}
}

// tamper alters the body of every GET of a source version (not of vault
// keys): a fault no real server produces.
type tamper struct {
	s3x.Client
	vault string
	how   string // flip: same length, one byte changed; short; long
}

func (c *tamper) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.Client.GetObject(ctx, in, o...)
	if err != nil || aws.ToString(in.Bucket) == c.vault {
		return out, err
	}
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, err
	}
	switch c.how {
	case "flip":
		body[len(body)/2] ^= 0x20
	case "short":
		body = body[:len(body)-1]
	case "long":
		body = append(body, '!')
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	return out, nil
}

// TestRelayRefusesCorruptBody: bytes that do not match their headers (one
// byte changed, one missing, one too many) fail the capture with
// ErrCorruptBody; nothing is stored or journaled, and a later delivery
// stores the version.
func TestRelayRefusesCorruptBody(t *testing.T) {
	for _, how := range []string{"flip", "short", "long"} {
		t.Run(how, func(t *testing.T) {
			e := setup(t)
			requireCreateOnlyPut(t, e)
			ch := created(e.bucket, "k", e.put(t, "k", "the bytes of k"), 14)
			tc := &tamper{Client: e.c, vault: e.v.Bucket, how: how}
			j := &journal.Journal{Vault: e.v, S3: tc}
			res, st, err := j.Ingest(e.ctx, []event.Change{ch})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(res[0].Err, journal.ErrCorruptBody) || len(res[0].Records) != 0 {
				t.Errorf("result %v, %+v; want ErrCorruptBody and no record", res[0].Err, res[0].Records)
			}
			if st.Failed != 1 || len(st.Segments) != 0 {
				t.Errorf("stats %+v, want 1 failed, nothing written", st)
			}
			if got := dataVersions(t, e); got != 0 {
				t.Errorf("the vault holds %d data versions, want none", got)
			}
			tc.how = ""
			res, _, err = j.Ingest(e.ctx, []event.Change{ch})
			if err != nil || res[0].Err != nil || len(res[0].Records) != 1 {
				t.Fatalf("redelivery: %v, %+v", err, res)
			}
			if data := getObject(t, e, e.v.Bucket, res[0].Records[0].Data, ""); string(data.body) != "the bytes of k" {
				t.Errorf("stored %q", data.body)
			}
		})
	}
}

// TestRelayCallsPerVersion counts the calls per new small version about
// the version (on the source and the vault's data keys; segments, records
// and the probe aside): 2 relayed (GET, PUT) by event and by reconcile
// (plus its listing), against 3 copied where the server ignores a
// create-only copy (HEAD, HEAD of the data key, COPY). A Created change
// whose size is unknown (0 with the ETag of non-empty content) is copied.
func TestRelayCallsPerVersion(t *testing.T) {
	e := setup(t)
	requireCreateOnlyPut(t, e)
	const n = 20
	var changes []event.Change
	for i := range n {
		k := fmt.Sprintf("obj/%02d", i)
		body := strings.Repeat("x", i) // one empty
		changes = append(changes, created(e.bucket, k, e.put(t, k, body), int64(len(body))))
	}
	for _, c := range []struct {
		name     string
		relayMax int64
		want     map[string]int
	}{
		{"relay", 0, map[string]int{"GetObject": n, "PutObject": n}},
		{"copy", -1, map[string]int{"HeadObject": 2 * n, "CopyObject": n}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc := &counting{}
			j := journalOn(t, e, c.relayMax, func(s s3x.Client) s3x.Client { cc.Client = s; return cc })
			cc.vault = j.Vault.Bucket
			if c.relayMax < 0 {
				if ok, err := s3x.ProbeConditionalCopy(e.ctx, e.c, j.Vault.Bucket, vault.DescriptorKey, journal.ProbeKey(j.Vault.Bucket), nil); err != nil || ok {
					t.Skipf("%s honours a create-only copy (%v, %v): the copy path makes 2 calls there", e.srv.Kind, ok, err)
				}
			}
			res, _, err := j.Ingest(e.ctx, changes)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil || len(r.Records) != 1 || r.Records[0].DataETag == "" {
					t.Fatalf("%s: %v, %+v", r.Change.Key, r.Err, r.Records)
				}
			}
			if diff := cmp.Diff(c.want, cc.snapshot()); diff != "" {
				t.Errorf("calls for %d new versions by event (-want +got):\n%s", n, diff)
			}
			// The same versions by reconcile, into a vault of their own.
			cc2 := &counting{}
			j2 := journalOn(t, e, c.relayMax, func(s s3x.Client) s3x.Client { cc2.Client = s; return cc2 })
			cc2.vault = j2.Vault.Bucket
			if err := j2.Vault.PutJSON(e.ctx, vault.BucketKey(e.bucket), vault.ProtectedBucket{Bucket: e.bucket}); err != nil {
				t.Fatal(err)
			}
			cc2.snapshot()
			if p, err := j2.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil || p.Added != n {
				t.Fatalf("reconcile: %+v, %v", p, err)
			}
			want := map[string]int{"ListObjectVersions": 1}
			for k, v := range c.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, cc2.snapshot()); diff != "" {
				t.Errorf("calls for %d new versions by reconcile (-want +got):\n%s", n, diff)
			}
		})
	}
	// An event whose size is unknown: copied.
	cc := &counting{}
	j := journalOn(t, e, 0, func(s s3x.Client) s3x.Client { cc.Client = s; return cc })
	cc.vault = j.Vault.Bucket
	unknown := changes[5]
	unknown.Size = 0
	if res, _, err := j.Ingest(e.ctx, []event.Change{unknown}); err != nil || res[0].Err != nil {
		t.Fatalf("%v, %+v", err, res)
	}
	if got := cc.snapshot(); got["GetObject"] != 0 || got["CopyObject"] != 1 {
		t.Errorf("calls for a version of unknown size: %v, want it copied", got)
	}
}

// TestRelayFallsBackOnGetErrors: where the relay's GET fails, the version
// is classified by the HEAD as on the copy path: SSE-C (a GET without the
// key is refused, a HEAD gets a bare 400), archived (a GET of an archived
// object answers InvalidObjectState), denied, deleted, a delete marker.
func TestRelayFallsBackOnGetErrors(t *testing.T) {
	e := setup(t)
	requireCreateOnlyPut(t, e)
	f := &faulty{Client: e.c, get: func(key string) error {
		switch key {
		case "ssec":
			return apiError(400, "InvalidRequest")
		case "denied":
			return apiError(403, "AccessDenied")
		case "glacier", "deep":
			return apiError(403, "InvalidObjectState")
		}
		return nil
	}, head: func(key string) (types.StorageClass, error) {
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
	want := map[string]string{"ssec": vault.SkipSSEC, "denied": vault.SkipAccessDenied, "glacier": vault.SkipArchived, "deep": vault.SkipArchived, "ok": "", "gone": vault.SkipGone}
	var changes []event.Change
	for k := range want {
		out := e.put(t, k, "x")
		if k == "gone" {
			if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k), VersionId: out.VersionId}); err != nil {
				t.Fatal(err)
			}
		}
		changes = append(changes, created(e.bucket, k, out, 1))
	}
	del, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("ok")})
	if err != nil {
		t.Fatal(err)
	}
	// A Created change naming a delete marker (of ok): journaled as the
	// marker.
	changes = append(changes, event.Change{Kind: event.Created, Bucket: e.bucket, Key: "ok", VersionID: aws.ToString(del.VersionId), Time: time.Now(), Size: 1})
	cc := &counting{Client: f}
	j := journalOn(t, e, 0, func(s3x.Client) s3x.Client { return cc })
	cc.vault = j.Vault.Bucket
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
			switch rec.Op {
			case vault.OpDeleteMarker:
				got["marker"] = string(rec.Op)
			case vault.OpVersion:
				if rec.Data == "" || rec.DataETag == "" {
					t.Errorf("%s: a version record without data", rec.Key)
				}
				got[rec.Key] = ""
			default:
				got[rec.Key] = rec.Reason
			}
		}
	}
	want["marker"] = string(vault.OpDeleteMarker)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if st.Skipped != 5 {
		t.Errorf("stats %+v: want 5 skipped", st)
	}
	// ok was relayed; each other version was tried by GET once, then
	// HEADed (and ssec's first byte GET to tell SSE-C from a bad id).
	calls := cc.snapshot()
	if want := map[string]int{"GetObject": 8, "HeadObject": 6, "PutObject": 1}; !cmp.Equal(want, calls) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}
