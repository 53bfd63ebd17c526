package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/config"
)

// There is no local EventBridge or SNS: these tests run the SDK's real
// clients against a hand-written HTTP server that records each request and
// answers as the service would, so the request shape on the wire is what
// is checked.

type request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

type fakeService struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
}

// newFakeService answers every request with status and body.
func newFakeService(t *testing.T, status int, contentType, body string) *fakeService {
	t.Helper()
	f := &fakeService{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: b})
		f.mu.Unlock()
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeService) only(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(f.requests))
	}
	return f.requests[0]
}

func (f *fakeService) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// awsConfig points the SDK at the fake service, with no retries.
func awsConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

var (
	when    = time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	busARN  = "arn:aws:events:eu-west-1:123456789012:event-bus/default"
	topic   = "arn:aws:sns:eu-west-1:123456789012:bucketvault-events"
	sampleE = Event{
		Type: RestoreJobCompleted, JobID: "restore-20260301T123000Z-0a1b2c3d", State: "PARTIAL",
		Vault: "acme-vault", Bucket: "acme-media", StatusMessage: "2 objects failed", Time: when,
		Detail: map[string]any{"targetBucket": "acme-media-restored", "failed": 2},
	}
)

// wantDocument is sampleE as every publisher sends it.
const wantDocument = `{"eventType":"RESTORE_JOB_COMPLETED","jobId":"restore-20260301T123000Z-0a1b2c3d","jobType":"RESTORE",
	"state":"PARTIAL","vault":"acme-vault","bucket":"acme-media","statusMessage":"2 objects failed","time":"2026-03-01T12:30:00Z",
	"details":{"targetBucket":"acme-media-restored","failed":2}}`

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return v
}

func TestEventBridgePutsEvent(t *testing.T) {
	srv := newFakeService(t, 200, "application/x-amz-json-1.1", `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`)
	p := &EventBridge{Client: eventbridge.NewFromConfig(awsConfig(srv.URL)), Bus: busARN}
	if err := p.Publish(context.Background(), sampleE); err != nil {
		t.Fatal(err)
	}
	r := srv.only(t)
	if r.Method != http.MethodPost || r.Path != "/" {
		t.Errorf("%s %s, want POST /", r.Method, r.Path)
	}
	for h, want := range map[string]string{"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(auth, "/eu-west-1/events/aws4_request") {
		t.Errorf("Authorization %q: want SigV4 for events in eu-west-1", auth)
	}
	var body struct {
		Entries []struct {
			Source, DetailType, Detail, EventBusName string
			Time                                     float64
			Resources                                []string
		}
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("body: %v: %s", err, r.Body)
	}
	if len(body.Entries) != 1 {
		t.Fatalf("entries: %s", r.Body)
	}
	en := body.Entries[0]
	if en.Source != "bucketvault" || en.DetailType != "Restore Job State Change" || en.EventBusName != busARN {
		t.Errorf("entry source %q detail-type %q bus %q", en.Source, en.DetailType, en.EventBusName)
	}
	if en.Time != float64(when.Unix()) {
		t.Errorf("time %v, want %d", en.Time, when.Unix())
	}
	if diff := cmp.Diff([]string{"arn:aws:s3:::acme-media", "arn:aws:s3:::acme-vault"}, en.Resources); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(decodeJSON(t, wantDocument), decodeJSON(t, en.Detail)); diff != "" {
		t.Errorf("detail (-want +got):\n%s", diff)
	}
}

func TestEventBridgeDetailTypes(t *testing.T) {
	for typ, want := range map[string]string{
		BackupJobStarted: DetailTypeBackup, BackupJobCompleted: DetailTypeBackup, BackupJobFailed: DetailTypeBackup,
		S3BackupObjectFailed: DetailTypeBackup,
		RestoreJobStarted:    DetailTypeRestore, RestoreJobCompleted: DetailTypeRestore, RestoreJobFailed: DetailTypeRestore,
		RestoreTestingJobStarted: DetailTypeRestore, RestoreTestingJobCompleted: DetailTypeRestore, RestoreTestingJobFailed: DetailTypeRestore,
	} {
		t.Run(typ, func(t *testing.T) {
			srv := newFakeService(t, 200, "application/x-amz-json-1.1", `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`)
			// A bus by name: no partition, so no resources.
			p := &EventBridge{Client: eventbridge.NewFromConfig(awsConfig(srv.URL)), Bus: "default", Now: func() time.Time { return when }}
			if err := p.Publish(context.Background(), Event{Type: typ, Bucket: "b"}); err != nil {
				t.Fatal(err)
			}
			var body struct {
				Entries []map[string]any
			}
			if err := json.Unmarshal(srv.only(t).Body, &body); err != nil {
				t.Fatal(err)
			}
			en := body.Entries[0]
			if en["DetailType"] != want || en["Resources"] != nil || en["Time"] != float64(when.Unix()) {
				t.Errorf("entry %v: want detail-type %q, no resources, the publisher's time", en, want)
			}
		})
	}
}

// PutEvents answers 200 when entries fail; FailedEntryCount says so.
func TestEventBridgeFailedEntries(t *testing.T) {
	srv := newFakeService(t, 200, "application/x-amz-json-1.1",
		`{"FailedEntryCount":1,"Entries":[{"ErrorCode":"NotAuthorizedForSourceException","ErrorMessage":"Not authorized for the source."}]}`)
	p := &EventBridge{Client: eventbridge.NewFromConfig(awsConfig(srv.URL)), Bus: busARN}
	err := p.Publish(context.Background(), sampleE)
	var pe *PutEventsError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish() = %v, want a *PutEventsError", err)
	}
	want := PutEventsError{Bus: busARN, FailedCount: 1, Code: "NotAuthorizedForSourceException", Message: "Not authorized for the source."}
	if diff := cmp.Diff(want, *pe); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestEventBridgeServiceError(t *testing.T) {
	srv := newFakeService(t, 400, "application/x-amz-json-1.1",
		`{"__type":"ResourceNotFoundException","message":"Event bus nope does not exist."}`)
	p := &EventBridge{Client: eventbridge.NewFromConfig(awsConfig(srv.URL)), Bus: "nope"}
	err := p.Publish(context.Background(), sampleE)
	if err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") || !strings.Contains(err.Error(), "bus nope") {
		t.Errorf("Publish() = %v, want the service's error with the bus named", err)
	}
}

func TestSNSPublishes(t *testing.T) {
	srv := newFakeService(t, 200, "text/xml", `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult>
  <ResponseMetadata><RequestId>f187a3c1-376f-11df-8963-01868b7c937a</RequestId></ResponseMetadata>
</PublishResponse>`)
	p := &SNS{Client: sns.NewFromConfig(awsConfig(srv.URL)), TopicARN: topic}
	if err := p.Publish(context.Background(), sampleE); err != nil {
		t.Fatal(err)
	}
	r := srv.only(t)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("%s with %q, want a form POST", r.Method, r.Header.Get("Content-Type"))
	}
	if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "/eu-west-1/sns/aws4_request") {
		t.Errorf("Authorization %q: want SigV4 for sns", auth)
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Action": "Publish", "Version": "2010-03-31", "TopicArn": topic,
		"Subject": "bucketvault RESTORE_JOB_COMPLETED s3://acme-media PARTIAL",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if diff := cmp.Diff(decodeJSON(t, wantDocument), decodeJSON(t, form.Get("Message"))); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	want := map[string]string{"EventType": "RESTORE_JOB_COMPLETED", "JobType": "RESTORE", "State": "PARTIAL", "Vault": "acme-vault", "Bucket": "acme-media"}
	if diff := cmp.Diff(want, messageAttributes(t, form)); diff != "" {
		t.Errorf("message attributes (-want +got):\n%s", diff)
	}
}

// messageAttributes decodes the query protocol's
// MessageAttributes.entry.N.{Name,Value.DataType,Value.StringValue}.
func messageAttributes(t *testing.T, form url.Values) map[string]string {
	t.Helper()
	out := map[string]string{}
	for n := 1; ; n++ {
		p := "MessageAttributes.entry." + strconv.Itoa(n) + "."
		name := form.Get(p + "Name")
		if name == "" {
			return out
		}
		if dt := form.Get(p + "Value.DataType"); dt != "String" {
			t.Errorf("attribute %s has data type %q, want String", name, dt)
		}
		out[name] = form.Get(p + "Value.StringValue")
	}
}

// Empty fields are left out of the attributes (SNS refuses empty values),
// and the subject stays within SNS's 100 printable ASCII characters.
func TestSNSSparseEvent(t *testing.T) {
	srv := newFakeService(t, 200, "text/xml", `<PublishResponse><PublishResult><MessageId>m</MessageId></PublishResult></PublishResponse>`)
	p := &SNS{Client: sns.NewFromConfig(awsConfig(srv.URL)), TopicARN: topic, Now: func() time.Time { return when }}
	long := strings.Repeat("b", 63)
	if err := p.Publish(context.Background(), Event{Type: S3BackupObjectFailed, Bucket: long, State: "FAILÉ", StatusMessage: "x"}); err != nil {
		t.Fatal(err)
	}
	form, err := url.ParseQuery(string(srv.only(t).Body))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"EventType": "S3_BACKUP_OBJECT_FAILED", "JobType": "BACKUP", "Bucket": long, "State": "FAILÉ"}
	if diff := cmp.Diff(want, messageAttributes(t, form)); diff != "" {
		t.Errorf("message attributes (-want +got):\n%s", diff)
	}
	subj := form.Get("Subject")
	if len(subj) != 100 || !strings.HasPrefix(subj, "bucketvault S3_BACKUP_OBJECT_FAILED s3://bbb") || !strings.HasSuffix(subj, "...") {
		t.Errorf("subject %q (%d bytes): want it cut to 100", subj, len(subj))
	}
	if got := subject(Event{Type: S3BackupObjectFailed, Bucket: "b", State: "FAILÉ\n"}); got != "bucketvault S3_BACKUP_OBJECT_FAILED s3://b FAIL??" {
		t.Errorf("subject %q: want printable ASCII only", got)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(form.Get("Message")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["time"] != "2026-03-01T12:30:00Z" {
		t.Errorf("time %v, want the publisher's clock", doc["time"])
	}
}

func TestSNSServiceError(t *testing.T) {
	srv := newFakeService(t, 403, "text/xml", `<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code><Message>not authorized</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
	p := &SNS{Client: sns.NewFromConfig(awsConfig(srv.URL)), TopicARN: topic}
	err := p.Publish(context.Background(), sampleE)
	if err == nil || !strings.Contains(err.Error(), "AuthorizationError") || !strings.Contains(err.Error(), topic) {
		t.Errorf("Publish() = %v, want the service's error with the topic named", err)
	}
}

// A malformed event is refused before anything is sent.
func TestInvalidEvents(t *testing.T) {
	srv := newFakeService(t, 200, "application/x-amz-json-1.1", `{"FailedEntryCount":0,"Entries":[{"EventId":"e"}]}`)
	snsSrv := newFakeService(t, 200, "text/xml", `<PublishResponse/>`)
	pubs := map[string]Publisher{
		"eventbridge": &EventBridge{Client: eventbridge.NewFromConfig(awsConfig(srv.URL)), Bus: "default"},
		"sns":         &SNS{Client: sns.NewFromConfig(awsConfig(snsSrv.URL)), TopicARN: topic},
		"log":         Log{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
	}
	for name, p := range pubs {
		for _, e := range []Event{{}, {Type: "BACKUP_JOB_EXPLODED"}, {Type: RestoreJobStarted, JobType: JobTypeBackup}} {
			var ie *InvalidEventError
			if err := p.Publish(context.Background(), e); !errors.As(err, &ie) {
				t.Errorf("%s: Publish(%+v) = %v, want an *InvalidEventError", name, e, err)
			}
		}
	}
	if srv.count()+snsSrv.count() != 0 {
		t.Errorf("invalid events reached the services")
	}
}

type recorder struct {
	err    error
	events []Event
}

func (r *recorder) Publish(_ context.Context, e Event) error {
	r.events = append(r.events, e)
	return r.err
}

func TestMultiPublishesToAll(t *testing.T) {
	errA, errC := errors.New("a down"), errors.New("c down")
	a, b, c := &recorder{err: errA}, &recorder{}, &recorder{err: errC}
	err := Multi{a, b, c}.Publish(context.Background(), sampleE)
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("Publish() = %v, want both failures", err)
	}
	for i, r := range []*recorder{a, b, c} {
		if len(r.events) != 1 || r.events[0].Type != sampleE.Type {
			t.Errorf("publisher %d got %v", i, r.events)
		}
	}
	if err := (Multi{b}).Publish(context.Background(), sampleE); err != nil {
		t.Errorf("Publish() = %v with no failure", err)
	}
}

func TestLogPublisher(t *testing.T) {
	var buf bytes.Buffer
	p := Log{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	if err := p.Publish(context.Background(), sampleE); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	for k, want := range map[string]any{
		"msg": "job event", "eventType": "RESTORE_JOB_COMPLETED", "jobType": "RESTORE", "job": sampleE.JobID,
		"state": "PARTIAL", "vault": "acme-vault", "bucket": "acme-media", "statusMessage": "2 objects failed",
		"time": "2026-03-01T12:30:00Z",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if d, _ := got["details"].(map[string]any); d["targetBucket"] != "acme-media-restored" {
		t.Errorf("details %v", got["details"])
	}
}

func TestFromEnv(t *testing.T) {
	cfg := awsConfig("http://127.0.0.1:1")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	if _, ok := FromEnv(cfg, env(nil)).(Log); !ok {
		t.Errorf("nothing configured: want the Log publisher")
	}
	eb, ok := FromEnv(cfg, env(map[string]string{config.EnvEventBus: busARN})).(*EventBridge)
	if !ok || eb.Bus != busARN {
		t.Errorf("bus only: want an EventBridge publisher on %s, got %#v", busARN, eb)
	}
	sp, ok := FromEnv(cfg, env(map[string]string{config.EnvEventsTopic: topic})).(*SNS)
	if !ok || sp.TopicARN != topic {
		t.Errorf("topic only: want an SNS publisher to %s, got %#v", topic, sp)
	}
	m, ok := FromEnv(cfg, env(map[string]string{config.EnvEventBus: busARN, config.EnvEventsTopic: topic})).(Multi)
	if !ok || len(m) != 2 {
		t.Fatalf("both: want a Multi of two, got %#v", m)
	}
	if eb, ok := m[0].(*EventBridge); !ok || eb.Bus != busARN {
		t.Errorf("both: first %#v, want the bus", m[0])
	}
	if sp, ok := m[1].(*SNS); !ok || sp.TopicARN != topic {
		t.Errorf("both: second %#v, want the topic", m[1])
	}
}

// Send logs a failure instead of returning it, and publishes even when the
// job's context is done.
func TestSend(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var seen error
	p := publisherFunc(func(ctx context.Context, e Event) error {
		seen = ctx.Err()
		return errors.New("topic gone")
	})
	var buf bytes.Buffer
	Send(ctx, p, sampleE, slog.New(slog.NewJSONHandler(&buf, nil)))
	if seen != nil {
		t.Errorf("published with a done context: %v", seen)
	}
	if !strings.Contains(buf.String(), `"msg":"job event not published"`) || !strings.Contains(buf.String(), "topic gone") {
		t.Errorf("log %s: want the failure", buf.String())
	}
}

type publisherFunc func(context.Context, Event) error

func (f publisherFunc) Publish(ctx context.Context, e Event) error { return f(ctx, e) }
