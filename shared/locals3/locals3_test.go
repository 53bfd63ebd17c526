package locals3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { Main(m) }

// recorder keeps the raw bodies of the responses its client received, so
// tests can check the wire format (such as LastModified's precision).
type recorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.bodies = append(r.bodies, string(b))
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bodies) == 0 {
		return ""
	}
	return r.bodies[len(r.bodies)-1]
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatalf("PutObject %s/%s: %v", bucket, key, err)
	}
	return out
}

func get(t *testing.T, c *s3.Client, in *s3.GetObjectInput) (string, *s3.GetObjectOutput) {
	t.Helper()
	out, err := c.GetObject(t.Context(), in)
	if err != nil {
		t.Fatalf("GetObject %s/%s version %q: %v", aws.ToString(in.Bucket), aws.ToString(in.Key), aws.ToString(in.VersionId), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), out
}

func TestServer(t *testing.T) {
	s := ForTest(t)
	if s2 := ForTest(t); s2 != s {
		t.Errorf("ForTest returned a second server")
	}
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Errorf("Endpoint = %q, want http://127.0.0.1:PORT", s.Endpoint)
	}
	if s.Region != "us-east-1" {
		t.Errorf("Region = %q", s.Region)
	}
	t.Logf("%s at %s, ready %s after exec", s.Kind, s.Endpoint, s.StartupTime)
	if _, err := s.Client(t.Context()).ListBuckets(t.Context(), &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
}

func TestEnvConfiguresSDK(t *testing.T) {
	s := ForTest(t)
	bucket := s.NewBucket(t, false)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := c.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("HeadBucket with the SDK configured from Env(): %v", err)
	}
}

func TestBucketName(t *testing.T) {
	s := ForTest(t)
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	seen := map[string]bool{}
	for _, name := range []string{"TestX", strings.Repeat("Long_Sub/Test Name ", 10), "///", "a--b"} {
		n := s.BucketName(namedTB{TB: t, name: name})
		if !valid.MatchString(n) || strings.Contains(n, "--") {
			t.Errorf("BucketName(%q) = %q: not a valid bucket name", name, n)
		}
		if seen[n] {
			t.Errorf("BucketName(%q) = %q twice", name, n)
		}
		seen[n] = true
	}
	// A maximal name is accepted by the server.
	long := s.BucketName(namedTB{TB: t, name: strings.Repeat("x", 100)})
	if len(long) != 63 {
		t.Errorf("long name %q has %d characters, want 63", long, len(long))
	}
	if err := s.CreateBucket(t.Context(), long, BucketOptions{}); err != nil {
		t.Error(err)
	}
}

type namedTB struct {
	TB
	name string
}

func (n namedTB) Name() string { return n.name }

// TestVersions: two PUTs of one key make two versions, and listings carry
// LastModified with millisecond precision.
func TestVersions(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewBucket(t, true)
	rec := &recorder{}
	c := s.Client(t.Context(), func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: rec} })
	v1 := put(t, c, bucket, "dir/key.txt", "one")
	v2 := put(t, c, bucket, "dir/key.txt", "two")
	if aws.ToString(v1.VersionId) == "" || aws.ToString(v1.VersionId) == aws.ToString(v2.VersionId) {
		t.Fatalf("PUT version ids %q, %q: want two distinct ones", aws.ToString(v1.VersionId), aws.ToString(v2.VersionId))
	}

	out, err := c.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	raw := rec.last()
	if len(out.Versions) != 2 {
		t.Fatalf("ListObjectVersions: %d versions, want 2:\n%s", len(out.Versions), raw)
	}
	got := []string{aws.ToString(out.Versions[0].VersionId), aws.ToString(out.Versions[1].VersionId)}
	if want := []string{aws.ToString(v2.VersionId), aws.ToString(v1.VersionId)}; !slices.Equal(got, want) {
		t.Errorf("versions %q, want newest first %q", got, want)
	}
	if !aws.ToBool(out.Versions[0].IsLatest) || aws.ToBool(out.Versions[1].IsLatest) {
		t.Errorf("IsLatest = %v, %v; want true, false", aws.ToBool(out.Versions[0].IsLatest), aws.ToBool(out.Versions[1].IsLatest))
	}
	listVersionsRaw := raw
	if _, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	listObjectsRaw := rec.last()
	t.Run("LastModifiedMilliseconds", func(t *testing.T) {
		lm := regexp.MustCompile(`<LastModified>[^<]*</LastModified>`)
		ms := regexp.MustCompile(`<LastModified>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</LastModified>`)
		t.Logf("ListObjectVersions: %q", lm.FindAllString(listVersionsRaw, -1))
		t.Logf("ListObjectsV2: %q", lm.FindAllString(listObjectsRaw, -1))
		if s.Kind == KindVersityGW && !ms.MatchString(listVersionsRaw) {
			t.Skipf("versitygw %s lists LastModified in whole seconds (its s3response formats it with time.RFC3339), so two PUTs in one second share a LastModified", Version(KindVersityGW))
		}
		if n := len(ms.FindAllString(listVersionsRaw, -1)); n != 2 {
			t.Errorf("ListObjectVersions: %d LastModified with milliseconds, want 2:\n%s", n, listVersionsRaw)
		}
		if !ms.MatchString(listObjectsRaw) {
			t.Errorf("ListObjectsV2 LastModified without milliseconds:\n%s", listObjectsRaw)
		}
	})

	// The old version stays readable by id.
	if body, _ := get(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("dir/key.txt"), VersionId: v1.VersionId}); body != "one" {
		t.Errorf("GET version 1 = %q, want one", body)
	}
	head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("dir/key.txt")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HeadObject LastModified %s (HTTP date header: whole seconds); listing has %s",
		head.LastModified.Format(time.RFC3339Nano), out.Versions[0].LastModified.Format(time.RFC3339Nano))

	// A delete makes a delete marker that is listed apart from versions.
	del, err := c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("dir/key.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) == "" {
		t.Errorf("DeleteObject: DeleteMarker %v, VersionId %q; want a delete marker with an id", aws.ToBool(del.DeleteMarker), aws.ToString(del.VersionId))
	}
	out, err = c.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions) != 2 || len(out.DeleteMarkers) != 1 || !aws.ToBool(out.DeleteMarkers[0].IsLatest) {
		t.Errorf("after delete: %d versions, %d delete markers; want 2, 1 (latest):\n%s", len(out.Versions), len(out.DeleteMarkers), rec.last())
	}
}

type versionKey struct{ Key, VersionID string }

// TestListPagination lists versions and objects one page at a time and
// compares with single-page listings.
func TestListPagination(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewBucket(t, true)
	c := s.Client(t.Context())
	keys := []string{"a", "b/1", "b/2", "c d+e", "z"}
	for _, k := range keys {
		put(t, c, bucket, k, "1")
		put(t, c, bucket, k, "2")
	}
	if _, err := c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("b/1")}); err != nil {
		t.Fatal(err)
	}

	// all lists every version and delete marker, maxKeys at a time. On
	// versitygw an entry that repeats the previous page's marker is
	// dropped and counted in dups (see below).
	all := func(t *testing.T, maxKeys int32) (versions, markers []versionKey, pages, dups int) {
		t.Helper()
		in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)}
		if maxKeys > 0 {
			in.MaxKeys = aws.Int32(maxKeys)
		}
		var last versionKey
		for {
			out, err := c.ListObjectVersions(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			fresh := 0
			add := func(list *[]versionKey, e versionKey) {
				if pages > 1 && e == last && s.Kind == KindVersityGW {
					dups++
					return
				}
				*list = append(*list, e)
				fresh++
			}
			for _, v := range out.Versions {
				add(&versions, versionKey{aws.ToString(v.Key), aws.ToString(v.VersionId)})
			}
			for _, m := range out.DeleteMarkers {
				add(&markers, versionKey{aws.ToString(m.Key), aws.ToString(m.VersionId)})
			}
			if n := len(out.Versions) + len(out.DeleteMarkers); maxKeys > 0 && n > int(maxKeys) {
				t.Errorf("page of %d entries with MaxKeys %d", n, maxKeys)
			}
			if !aws.ToBool(out.IsTruncated) {
				return versions, markers, pages, dups
			}
			if fresh == 0 {
				if s.Kind == KindVersityGW {
					t.Skipf("versitygw %s ListObjectVersions treats a VersionIdMarker naming the latest version of a key as inclusive: the next page starts with that version again, so MaxKeys=%d never gets past %s", Version(KindVersityGW), maxKeys, last)
				}
				t.Fatalf("page %d brought nothing new (marker %s/%s)", pages, aws.ToString(in.KeyMarker), aws.ToString(in.VersionIdMarker))
			}
			if pages > 100 {
				t.Fatal("more than 100 pages")
			}
			last = versionKey{aws.ToString(out.NextKeyMarker), aws.ToString(out.NextVersionIdMarker)}
			in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
		}
	}
	wantV, wantM, _, _ := all(t, 0)
	if len(wantV) != 2*len(keys) || len(wantM) != 1 {
		t.Fatalf("single listing: %d versions, %d delete markers; want %d, 1", len(wantV), len(wantM), 2*len(keys))
	}
	for _, n := range []int32{1, 2, 3} {
		t.Run(fmt.Sprintf("MaxKeys=%d", n), func(t *testing.T) {
			v, m, pages, dups := all(t, n)
			if diff := cmp.Diff(wantV, v); diff != "" {
				t.Errorf("versions (-single +paged):\n%s", diff)
			}
			if diff := cmp.Diff(wantM, m); diff != "" {
				t.Errorf("delete markers (-single +paged):\n%s", diff)
			}
			t.Logf("%d pages for %d entries; %d pages repeated the previous marker", pages, len(v)+len(m), dups)
		})
	}

	// ListObjectsV2 with continuation tokens, and with a delimiter.
	var listed []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			listed = append(listed, aws.ToString(o.Key))
		}
	}
	if want := []string{"a", "b/2", "c d+e", "z"}; !slices.Equal(listed, want) {
		t.Errorf("ListObjectsV2 paged = %q, want %q", listed, want)
	}
	out, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CommonPrefixes) != 1 || aws.ToString(out.CommonPrefixes[0].Prefix) != "b/" {
		t.Errorf("CommonPrefixes = %v, want [b/]", out.CommonPrefixes)
	}
}

func TestCopyObjectSourceVersion(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewBucket(t, true)
	c := s.Client(t.Context())
	const src = "dir/src key+1&x=%.txt"
	v1 := put(t, c, bucket, src, "one")
	put(t, c, bucket, src, "two")
	copySource := CopySource(bucket, src, aws.ToString(v1.VersionId))
	t.Logf("CopySource %s", copySource)
	out, err := c.CopyObject(t.Context(), &s3.CopyObjectInput{
		Bucket:     aws.String(bucket),
		Key:        aws.String("dst"),
		CopySource: aws.String(copySource),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.CopySourceVersionId); got != aws.ToString(v1.VersionId) {
		t.Errorf("CopySourceVersionId = %q, want %q", got, aws.ToString(v1.VersionId))
	}
	if aws.ToString(out.VersionId) == "" {
		t.Errorf("CopyObject to a versioned bucket returned no VersionId")
	}
	if body, _ := get(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("dst")}); body != "one" {
		t.Errorf("copy of version 1 reads %q, want one", body)
	}
	// Without a version id the latest version is copied.
	if _, err := c.CopyObject(t.Context(), &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("dst2"), CopySource: aws.String(CopySource(bucket, src, "")),
	}); err != nil {
		t.Fatal(err)
	}
	if body, _ := get(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("dst2")}); body != "two" {
		t.Errorf("copy of the latest version reads %q, want two", body)
	}
}

func TestTagging(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewBucket(t, true)
	c := s.Client(t.Context())
	ctx := t.Context()
	v1, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("one"),
		Tagging: aws.String("a=1&b=x%20y"),
	})
	if err != nil {
		t.Fatal(err)
	}
	v2 := put(t, c, bucket, "k", "two")
	tags := func(version *string) map[string]string {
		t.Helper()
		out, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: version})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tg := range out.TagSet {
			m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return m
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "x y"}, tags(v1.VersionId)); diff != "" {
		t.Errorf("tags from PutObject (-want +got):\n%s", diff)
	}
	if got := tags(nil); len(got) != 0 {
		t.Errorf("latest version has tags %v, want none", got)
	}
	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: v2.VersionId,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("c"), Value: aws.String("3")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"c": "3"}, tags(v2.VersionId)); diff != "" {
		t.Errorf("tags after PutObjectTagging (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "x y"}, tags(v1.VersionId)); diff != "" {
		t.Errorf("tags of the other version changed (-want +got):\n%s", diff)
	}
	if _, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: v1.VersionId}); err != nil {
		t.Fatal(err)
	}
	if got := tags(v1.VersionId); len(got) != 0 {
		t.Errorf("after DeleteObjectTagging: %v", got)
	}
	_, head := get(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if aws.ToInt32(head.TagCount) != 1 {
		t.Errorf("GetObject TagCount = %d, want 1", aws.ToInt32(head.TagCount))
	}
}

// waitEvent reads webhook bodies until one has a record satisfying match.
func waitEvent(t *testing.T, ch <-chan []byte, what string, match func(EventRecord) bool) (EventRecord, string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var seen []string
	for {
		select {
		case body, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed while waiting for %s", what)
			}
			seen = append(seen, string(body))
			recs, err := ParseEvents(body)
			if err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			for _, r := range recs {
				if match(r) {
					return r, string(body)
				}
			}
		case <-timeout:
			t.Fatalf("no webhook event for %s within 30s; received:\n%s", what, strings.Join(seen, "\n"))
		}
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewBucket(t, true)
	c := s.Client(t.Context())
	ctx := t.Context()
	events, cancel := s.Subscribe(bucket)
	defer cancel()
	if err := s.EnableEvents(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableEvents(ctx, bucket); err != nil {
		t.Fatalf("second EnableEvents: %v", err)
	}
	if s.Kind == KindMinIO {
		nc, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		if len(nc.QueueConfigurations) != 1 || aws.ToString(nc.QueueConfigurations[0].QueueArn) != s.WebhookARN {
			t.Errorf("after two EnableEvents: queue configurations %+v, want one for %s", nc.QueueConfigurations, s.WebhookARN)
		}
	}

	const key = "dir/a b+c.txt"
	isKey := func(r EventRecord) bool {
		k, err := s.EventKey(r)
		return err == nil && k == key
	}
	// versitygw leaves versionId out (null) of its events; the checks of
	// versionId are skipped for it at the end, after all the rest.
	var noVersionID []string
	checkVersion := func(what string, rec EventRecord, body, want string) {
		t.Helper()
		if s.Kind == KindVersityGW && rec.S3.Object.VersionID == "" {
			noVersionID = append(noVersionID, what)
			return
		}
		if rec.S3.Object.VersionID != want || !strings.Contains(body, want) {
			t.Errorf("%s event versionId %q, want %q:\n%s", what, rec.S3.Object.VersionID, want, body)
		}
	}
	// Event names per server: MinIO reports tagging as s3:ObjectCreated:
	// events and delete markers as DeleteMarkerCreated; versitygw uses AWS's
	// s3:ObjectTagging:Put and says s3:ObjectRemoved:Delete for both.
	putTagging, deleteTagging, deleteMarker := "s3:ObjectCreated:PutTagging", "s3:ObjectCreated:DeleteTagging", "s3:ObjectRemoved:DeleteMarkerCreated"
	if s.Kind == KindVersityGW {
		putTagging, deleteTagging, deleteMarker = "s3:ObjectTagging:Put", "s3:ObjectTagging:Delete", "s3:ObjectRemoved:Delete"
	}

	start := time.Now()
	v := put(t, c, bucket, key, "hello")
	rec, body := waitEvent(t, events, "PutObject", func(r EventRecord) bool {
		return isKey(r) && r.EventName == "s3:ObjectCreated:Put"
	})
	t.Logf("PutObject event after %s: %s", time.Since(start).Round(time.Millisecond), body)
	if rec.S3.Object.Size != 5 {
		t.Errorf("event size %d, want 5", rec.S3.Object.Size)
	}
	if strings.Trim(rec.S3.Object.ETag, `"`) != strings.Trim(aws.ToString(v.ETag), `"`) {
		t.Errorf("event eTag %s, PutObject ETag %s", rec.S3.Object.ETag, aws.ToString(v.ETag))
	}
	if _, err := time.Parse(time.RFC3339, rec.EventTime); err != nil {
		t.Errorf("eventTime: %v", err)
	}
	t.Logf("event key %q, eTag %s, eventTime %s, sequencer %q", rec.S3.Object.Key, rec.S3.Object.ETag, rec.EventTime, rec.S3.Object.Sequencer)
	checkVersion("PutObject", rec, body, aws.ToString(v.VersionId))

	_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket: aws.String(bucket), Key: aws.String(key), VersionId: v.VersionId,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("t"), Value: aws.String("1")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, body = waitEvent(t, events, "PutObjectTagging", func(r EventRecord) bool {
		return isKey(r) && r.EventName == putTagging
	})
	t.Logf("tagging event: %s", body)
	checkVersion("PutObjectTagging", rec, body, aws.ToString(v.VersionId))

	if _, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: v.VersionId}); err != nil {
		t.Fatal(err)
	}
	rec, body = waitEvent(t, events, "DeleteObjectTagging", func(r EventRecord) bool {
		return isKey(r) && r.EventName == deleteTagging
	})
	checkVersion("DeleteObjectTagging", rec, body, aws.ToString(v.VersionId))

	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("copy"),
		CopySource: aws.String(CopySource(bucket, key, aws.ToString(v.VersionId))),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, body = waitEvent(t, events, "CopyObject", func(r EventRecord) bool {
		k, err := s.EventKey(r)
		return err == nil && k == "copy" && r.EventName == "s3:ObjectCreated:Copy"
	})
	t.Logf("copy event: %s", body)
	checkVersion("CopyObject", rec, body, aws.ToString(cp.VersionId))

	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	rec, body = waitEvent(t, events, "DeleteObject", func(r EventRecord) bool {
		return isKey(r) && r.EventName == deleteMarker
	})
	t.Logf("delete event: %s", body)
	checkVersion("DeleteObject (delete marker)", rec, body, aws.ToString(del.VersionId))

	if len(noVersionID) > 0 {
		t.Skipf("versitygw %s sends no versionId (JSON null) in its %s events: its handlers do not pass the version id to the event sender, so events cannot name the version they are about", Version(KindVersityGW), strings.Join(noVersionID, ", "))
	}
}

func TestObjectLockBucket(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	bucket := s.NewObjectLockBucket(t)
	c := s.Client(t.Context())
	ctx := t.Context()
	lc, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		t.Fatalf("object lock configuration %+v, want Enabled", lc.ObjectLockConfiguration)
	}
	vc, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if vc.Status != types.BucketVersioningStatusEnabled {
		t.Errorf("versioning %q on an Object Lock bucket, want Enabled", vc.Status)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	v, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("locked"), Body: strings.NewReader("x"),
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String("locked"), VersionId: v.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	if r.Retention.Mode != types.ObjectLockRetentionModeGovernance || !aws.ToTime(r.Retention.RetainUntilDate).Equal(until) {
		t.Errorf("retention %s until %s, want GOVERNANCE until %s", r.Retention.Mode, aws.ToTime(r.Retention.RetainUntilDate), until)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("locked"), VersionId: v.VersionId})
	if err == nil {
		t.Errorf("deleting a version under governance retention succeeded")
	} else {
		t.Logf("delete of a retained version: %v", err)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("locked"), VersionId: v.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	if err != nil {
		t.Errorf("delete with BypassGovernanceRetention: %v", err)
	}
}

func TestSSEKMS(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	if s.KMSKeyID == "" {
		t.Skipf("%s has no KMS: it cannot store SSE-KMS objects", s.Kind)
	}
	bucket := s.NewBucket(t, true)
	c := s.Client(t.Context())
	ctx := t.Context()
	v, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("secret"), Body: strings.NewReader("classified"),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(s.KMSKeyID),
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		t.Errorf("PutObject ServerSideEncryption = %q", v.ServerSideEncryption)
	}
	body, out := get(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("secret")})
	if body != "classified" {
		t.Errorf("GetObject = %q", body)
	}
	if out.ServerSideEncryption != types.ServerSideEncryptionAwsKms || !strings.HasSuffix(aws.ToString(out.SSEKMSKeyId), s.KMSKeyID) {
		t.Errorf("GetObject ServerSideEncryption %q key %q, want aws:kms %s", out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId), s.KMSKeyID)
	}
	t.Logf("SSE-KMS key id reported as %q", aws.ToString(out.SSEKMSKeyId))

	// SSE-S3 works too once a KMS is configured.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("s3-managed"), Body: strings.NewReader("x"),
		ServerSideEncryption: types.ServerSideEncryptionAes256,
	}); err != nil {
		t.Errorf("SSE-S3 PutObject: %v", err)
	}
	// An unknown key is refused.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("other"), Body: strings.NewReader("x"),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("no-such-key"),
	})
	if err == nil {
		t.Errorf("PutObject with an unknown KMS key succeeded")
	}
}

func TestStopRemovesDataDir(t *testing.T) {
	t.Parallel()
	s, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s ready %s after exec", s.Kind, s.StartupTime)
	if _, err := os.Stat(s.DataDir); err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %s", time.Since(start))
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(s.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir %s still there after Stop (%v)", s.DataDir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := http.Get(s.Endpoint); err == nil {
		t.Errorf("%s still answers after Stop", s.Endpoint)
	}
}

// TestRestartKeepsData: a caller's DataDir survives Stop (a graceful one)
// and a new server on it serves the old objects, SSE-KMS ones included.
func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	kind, err := KindFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log bytes.Buffer
	opts := Options{DataDir: dir, KMS: kind == KindMinIO, Stdout: &log}
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := s.Client(t.Context())
	if err := s.CreateBucket(t.Context(), "keep", BucketOptions{Versioned: true}); err != nil {
		t.Fatal(err)
	}
	in := &s3.PutObjectInput{Bucket: aws.String("keep"), Key: aws.String("k"), Body: strings.NewReader("kept")}
	if s.KMSKeyID != "" {
		in.ServerSideEncryption, in.SSEKMSKeyId = types.ServerSideEncryptionAwsKms, aws.String(s.KMSKeyID)
	}
	if _, err := c.PutObject(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful Stop took %s", time.Since(start))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("caller's data dir removed by Stop: %v", err)
	}
	s2, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if body, _ := get(t, s2.Client(t.Context()), &s3.GetObjectInput{Bucket: aws.String("keep"), Key: aws.String("k")}); body != "kept" {
		t.Errorf("after restart GetObject = %q, want kept", body)
	}
	if err := s2.Stop(); err != nil {
		t.Fatal(err)
	}
	logged, err := os.ReadFile(s2.LogPath)
	if err != nil {
		t.Fatalf("stderr goes to LogPath %q: %v", s2.LogPath, err)
	}
	if len(logged)+log.Len() == 0 {
		t.Errorf("no server output in Stdout nor in %s", s2.LogPath)
	}
	t.Logf("%d bytes on stdout, %d in %s", log.Len(), len(logged), s2.LogPath)
}

// TestStartFailureQuotesLog: when the server exits at start, the error
// names the command and quotes its log.
func TestStartFailureQuotesLog(t *testing.T) {
	t.Parallel()
	kind, err := KindFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Kind: kind, DataDir: t.TempDir()}
	switch kind {
	case KindMinIO:
		// A corrupt format.json makes MinIO give up on its only drive.
		sys := filepath.Join(opts.DataDir, "storage", ".minio.sys")
		if err := os.MkdirAll(sys, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, "format.json"), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	case KindVersityGW:
		// versitygw exits when its webhook does not accept connections.
		opts.WebhookURL = "http://127.0.0.1:1/"
	}
	s, err := Start(t.Context(), opts)
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"exited before it was ready", "last lines of " + filepath.Join(opts.DataDir, "server.log"), pins[kind].binary} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q: %v", want, err)
		}
	}
	t.Logf("error: %v", err)
}

// TestStartRetriesBusyPort: a port taken between picking and binding
// makes Start try again with new ports.
func TestStartRetriesBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	calls := 0
	pickPorts = func(n int) ([]int, error) {
		calls++
		ports, err := FreePorts(n)
		if calls == 1 && err == nil {
			ports[0] = busy.Addr().(*net.TCPAddr).Port
		}
		return ports, err
	}
	defer func() { pickPorts = FreePorts }()
	s, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if calls != 2 || strings.HasSuffix(s.Endpoint, ":"+strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)) {
		t.Errorf("%d port picks, endpoint %s; want 2 picks and not the busy port", calls, s.Endpoint)
	}
	if _, err := s.Client(t.Context()).ListBuckets(t.Context(), &s3.ListBucketsInput{}); err != nil {
		t.Error(err)
	}
}

// TestVersityGWSidecar: where user xattrs do not work, versitygw keeps
// metadata in a sidecar directory, and versioning and tagging still work.
func TestVersityGWSidecar(t *testing.T) {
	if kind, err := KindFromEnv(); err != nil || kind != KindVersityGW {
		t.Skip("versitygw only (its posix backend's --sidecar); MinIO keeps metadata in its own files")
	}
	xattrOK = func(string) bool { return false }
	defer func() { xattrOK = xattrSupported }()
	s, err := Start(t.Context(), Options{Kind: KindVersityGW})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !s.sidecar {
		t.Fatal("sidecar not used")
	}
	c := s.Client(t.Context())
	if err := s.CreateBucket(t.Context(), "side", BucketOptions{Versioned: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("side"), Key: aws.String("k"), Body: strings.NewReader("1"), Tagging: aws.String("a=b")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "side", "k", "2")
	out, err := c.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String("side")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions) != 2 {
		t.Errorf("%d versions, want 2", len(out.Versions))
	}
	tags, err := c.GetObjectTagging(t.Context(), &s3.GetObjectTaggingInput{Bucket: aws.String("side"), Key: aws.String("k"), VersionId: out.Versions[1].VersionId})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.TagSet) != 1 {
		t.Errorf("tags %v, want a=b", tags.TagSet)
	}
	entries, _ := os.ReadDir(s.sidecarDir())
	if len(entries) == 0 {
		t.Errorf("sidecar directory %s is empty", s.sidecarDir())
	}
}

func TestInstallIdempotent(t *testing.T) {
	kind, err := KindFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Install(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	// No go command can run now: a second Install must not need one.
	t.Setenv("PATH", t.TempDir())
	start := time.Now()
	bin2, err := Install(t.Context(), kind)
	if err != nil {
		t.Fatalf("second Install without go in PATH: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Install took %s", d)
	}
	if bin2 != bin {
		t.Errorf("second Install = %s, first %s", bin2, bin)
	}
	stamp, err := os.ReadFile(bin + ".version")
	if err != nil || !strings.Contains(string(stamp), Version(kind)) {
		t.Errorf("stamp file: %q, %v; want the version %s", stamp, err, Version(kind))
	}
}

// TestInstallAdoptsBinary: a binary of the pinned version without a stamp
// (as left by a plain go install) is accepted from its build info, once,
// by concurrent callers, with no go command.
func TestInstallAdoptsBinary(t *testing.T) {
	kind, err := KindFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	real, err := Install(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv(EnvCacheDir, cache)
	t.Setenv("PATH", t.TempDir())
	if err := os.MkdirAll(cache+"/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, cache+"/bin/"+pins[kind].binary); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Install(t.Context(), kind) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(cache + "/bin/" + pins[kind].binary + ".version"); err != nil {
		t.Errorf("no stamp written: %v", err)
	}
}

func TestInstallFailureNamesCommand(t *testing.T) {
	t.Setenv(EnvCacheDir, t.TempDir())
	t.Run("no go", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := Install(t.Context(), KindMinIO)
		if err == nil || !strings.Contains(err.Error(), "go install github.com/minio/minio@"+Version(KindMinIO)) || !strings.Contains(err.Error(), "no Go toolchain") {
			t.Fatalf("Install without go: %v", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("go fails", func(t *testing.T) {
		// A module that cannot be fetched, with the proxy off: go fails
		// at once, and its output must be in the error.
		pins["bogus"] = pin{binary: "bogus", module: "example.invalid/bogus", pkg: "example.invalid/bogus", version: "v1.0.0"}
		defer delete(pins, "bogus")
		t.Setenv("GOPROXY", "off")
		_, err := Install(t.Context(), "bogus")
		if err == nil || !strings.Contains(err.Error(), "go install example.invalid/bogus@v1.0.0") || !strings.Contains(err.Error(), "GOPROXY=off") {
			t.Fatalf("Install of a module that cannot be fetched: %v", err)
		}
		t.Logf("error: %v", err)
	})
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": KindMinIO, "minio": KindMinIO, " VersityGW ": KindVersityGW} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("ceph"); err == nil {
		t.Errorf("ParseKind(ceph) succeeded")
	}
}

func TestReceiver(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	post := func(body string) int {
		resp, err := http.Post(r.URL(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != 200 {
		t.Errorf("empty POST: %d", code)
	}
	if code := post(`{"Event":"s3:TestEvent"}`); code != 200 {
		t.Errorf("test event POST: %d", code)
	}
	if got := string(<-r.Bodies()); got != `{"Event":"s3:TestEvent"}` {
		t.Errorf("body %q", got)
	}
	resp, err := http.Get(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET: %d", resp.StatusCode)
	}

	fail, err := NewReceiverFunc(func(context.Context, []byte) error { return errors.New("not now") })
	if err != nil {
		t.Fatal(err)
	}
	defer fail.Close()
	resp, err = http.Post(fail.URL(), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handler error answered %d, want 503", resp.StatusCode)
	}
}

func TestRouter(t *testing.T) {
	r := newRouter()
	a, cancelA := r.subscribe("a")
	b, cancelB := r.subscribe("b")
	defer cancelB()
	event := func(bucket string) []byte {
		var n struct{ Records []EventRecord }
		var rec EventRecord
		rec.S3.Bucket.Name = bucket
		n.Records = []EventRecord{rec}
		body, _ := json.Marshal(n)
		return body
	}
	for range 100 { // more than any channel buffer: delivery must not block
		_ = r.deliver(t.Context(), event("a"))
	}
	_ = r.deliver(t.Context(), event("b"))
	_ = r.deliver(t.Context(), []byte("not json"))
	for i := range 100 {
		if got := <-a; !bytes.Equal(got, event("a")) {
			t.Fatalf("a got %s at %d", got, i)
		}
	}
	if got := <-b; !bytes.Equal(got, event("b")) {
		t.Fatalf("b got %s", got)
	}
	cancelA()
	cancelA()
	if _, ok := <-a; ok {
		t.Errorf("channel open after cancel")
	}
	r.close()
	if _, ok := <-b; ok {
		t.Errorf("channel open after router close")
	}
}
