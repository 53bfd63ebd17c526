package s3x_test

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestHeadOfGetCarriesEveryField: every field of a GetObject answer but
// its body reaches the HeadObject answer HeadOfGet makes (a field the SDK
// adds to both one day and HeadOfGet forgets fails here).
func TestHeadOfGetCarriesEveryField(t *testing.T) {
	var g s3.GetObjectOutput
	gv := reflect.ValueOf(&g).Elem()
	for i := range gv.NumField() {
		sf := gv.Type().Field(i)
		if !sf.IsExported() || sf.Name == "Body" || sf.Name == "ResultMetadata" {
			continue
		}
		setNonZero(t, sf.Name, gv.Field(i))
	}
	g.ResultMetadata.Set("k", "v")
	h := reflect.ValueOf(s3x.HeadOfGet(&g)).Elem()
	for i := range h.NumField() {
		name := h.Type().Field(i).Name
		if name == "ArchiveStatus" || !h.Type().Field(i).IsExported() {
			continue // HEAD only; not a field of the answer
		}
		gf := gv.FieldByName(name)
		if !gf.IsValid() {
			t.Errorf("HeadObjectOutput.%s has no GetObjectOutput twin", name)
			continue
		}
		if name == "ResultMetadata" {
			if h.Field(i).Interface().(interface{ Get(any) any }).Get("k") != "v" {
				t.Errorf("ResultMetadata not carried")
			}
			continue
		}
		if !reflect.DeepEqual(gf.Interface(), h.Field(i).Interface()) {
			t.Errorf("%s: GET %v, HEAD %v", name, gf.Interface(), h.Field(i).Interface())
		}
	}
}

// setNonZero gives v a value that is not its type's zero value.
func setNonZero(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		setNonZero(t, name, p.Elem())
		v.Set(p)
	case reflect.String:
		v.SetString(name)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int32, reflect.Int64:
		v.SetInt(int64(len(name)))
	case reflect.Map:
		v.Set(reflect.ValueOf(map[string]string{"k": name}))
	case reflect.Struct:
		if v.Type() != reflect.TypeOf(time.Time{}) {
			t.Fatalf("%s: unexpected struct %s", name, v.Type())
		}
		v.Set(reflect.ValueOf(time.Unix(int64(len(name)), 0)))
	default:
		t.Fatalf("%s: unexpected kind %s", name, v.Kind())
	}
}

// TestHeadOfGetMatchesHead, on the real server: a GET's headers make the
// same HeadObject answer as a HEAD of the version (but for request
// metadata), for an object with user and system metadata and tags.
func TestHeadOfGetMatchesHead(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	b := srv.NewBucket(t, true)
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b), Key: aws.String("k"), Body: strings.NewReader("hello"),
		ContentType: aws.String("text/plain"), ContentEncoding: aws.String("identity"), CacheControl: aws.String("no-cache"),
		ContentDisposition: aws.String("inline"), Metadata: map[string]string{"a": "1"}, Tagging: aws.String("t=1"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		t.Fatal(err)
	}
	bk, k, ver := aws.String(b), aws.String("k"), put.VersionId
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bk, Key: k, VersionId: ver, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bk, Key: k, VersionId: ver, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, %v", body, err)
	}
	got := s3x.HeadOfGet(get)
	// Request metadata differs between any two calls.
	ignore := cmp.Options{cmpopts.IgnoreFields(s3.HeadObjectOutput{}, "ResultMetadata"), cmpopts.IgnoreUnexported(s3.HeadObjectOutput{})}
	if diff := cmp.Diff(head, got, ignore); diff != "" {
		t.Errorf("HeadOfGet(GET) against HEAD (-head +get):\n%s", diff)
	}
}

// createOnlyPut is a server that ignores If-None-Match on PutObject made
// into one that honours it, or (ignore) one that honours it made into
// one that ignores it (the header is dropped).
type createOnlyPut struct {
	s3x.Client
	ignore bool
	mu     sync.Mutex
}

func (c *createOnlyPut) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if aws.ToString(in.IfNoneMatch) != "*" {
		return c.Client.PutObject(ctx, in, o...)
	}
	cp := *in
	cp.IfNoneMatch = nil
	if c.ignore {
		return c.Client.PutObject(ctx, &cp, o...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: in.Bucket, Key: in.Key}); err == nil {
		return nil, &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusPreconditionFailed, Header: http.Header{}}},
			Err:      &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "PreconditionFailed"},
		}}
	} else if !s3x.IsNotFound(err) {
		return nil, err
	}
	return c.Client.PutObject(ctx, &cp, o...)
}

// TestProbeConditionalPut: the probe tells a server that honours a
// create-only PUT (MinIO does) from one that ignores it, writes the probe
// object at most once (honoured) or twice (ignored), nothing more on later
// probes, and keeps the mark a copy probe left on a shared probe object.
func TestProbeConditionalPut(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	real := srv.Client(ctx)
	honoured, err := s3x.ProbeConditionalPut(ctx, real, srv.NewBucket(t, true), "probe", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind == locals3.KindMinIO && !honoured {
		t.Errorf("MinIO honours If-None-Match on PutObject, the probe says not")
	}
	t.Logf("%s honours a create-only PUT: %v", srv.Kind, honoured)
	for _, c := range []struct {
		name     string
		client   s3x.Client
		honours  bool
		versions int
	}{
		{"honours", &createOnlyPut{Client: real}, true, 1},
		{"ignores", &createOnlyPut{Client: real, ignore: true}, false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := srv.NewBucket(t, true)
			for range 3 {
				got, err := s3x.ProbeConditionalPut(ctx, c.client, b, "probe", []byte("{}"), map[string]string{"bv-bucket": b})
				if err != nil || got != c.honours {
					t.Fatalf("probe = %v, %v; want %v", got, err, c.honours)
				}
			}
			if got := versions(t, real, b, "probe"); got != c.versions {
				t.Errorf("3 probes left %d versions of the probe object, want %d", got, c.versions)
			}
			// A copy probe's mark on a shared probe object survives.
			shared := "shared"
			if _, err := real.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(shared), Body: strings.NewReader("{}"),
				Metadata: map[string]string{"bv-conditional-copy": "ignored"}}); err != nil {
				t.Fatal(err)
			}
			if got, err := s3x.ProbeConditionalPut(ctx, c.client, b, shared, []byte("{}"), nil); err != nil || got != c.honours {
				t.Fatalf("probe of an existing object = %v, %v; want %v", got, err, c.honours)
			}
			head, err := real.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(shared)})
			if err != nil {
				t.Fatal(err)
			}
			if head.Metadata["bv-conditional-copy"] != "ignored" {
				t.Errorf("the copy probe's mark is gone: %v", head.Metadata)
			}
			want := map[bool]int{true: 1, false: 2}[c.honours]
			if got := versions(t, real, b, shared); got != want {
				t.Errorf("a probe of an existing object left %d versions, want %d", got, want)
			}
		})
	}
}

func versions(t *testing.T, c s3x.Client, bucket, key string) int {
	t.Helper()
	out, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			n++
		}
	}
	return n
}
