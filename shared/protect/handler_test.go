package protect_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// cloudFormation stands in for CloudFormation's response endpoint (the
// pre-signed S3 URL a custom resource answers with a PUT): it records each
// response.
type cloudFormation struct {
	*httptest.Server
	mu        sync.Mutex
	responses []cfn.Response
}

func newCloudFormation(t *testing.T) *cloudFormation {
	t.Helper()
	c := &cloudFormation{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			t.Errorf("response sent with %s, want PUT", r.Method)
		}
		var resp cfn.Response
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Errorf("response %s: %v", body, err)
		}
		c.mu.Lock()
		c.responses = append(c.responses, resp)
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

// event is a custom resource event whose response goes to c.
func (c *cloudFormation) event(t *testing.T, requestType cfn.RequestType, resourceType string, props map[string]any) json.RawMessage {
	t.Helper()
	ev := cfn.Event{
		RequestType: requestType, RequestID: "req-" + string(requestType), ResponseURL: c.URL + "/response",
		ResourceType: resourceType, LogicalResourceID: "Resource",
		StackID:            "arn:aws:cloudformation:eu-west-1:123456789012:stack/BucketVault/0a1b2c3d",
		ResourceProperties: props,
	}
	if requestType != cfn.RequestCreate {
		ev.PhysicalResourceID = "physical-1"
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// last is the one response sent since the previous call.
func (c *cloudFormation) last(t *testing.T) cfn.Response {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.responses) != 1 {
		t.Fatalf("%d responses sent to CloudFormation, want 1", len(c.responses))
	}
	r := c.responses[0]
	c.responses = nil
	return r
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// handle runs the handler on a custom resource event and returns what
// CloudFormation was told.
func handle(t *testing.T, c *cloudFormation, h func(context.Context, json.RawMessage) (any, error), raw json.RawMessage) cfn.Response {
	t.Helper()
	if _, err := h(context.Background(), raw); err != nil {
		t.Fatalf("the handler returned %v: a custom resource event must be answered, not failed", err)
	}
	return c.last(t)
}

func descriptorVersions(t *testing.T, c *s3.Client, bucket string) int {
	t.Helper()
	out, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(vault.DescriptorKey)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Versions)
}

// The vault resource writes the descriptor once, into a bucket the stack
// made (Object Lock on), never rewrites it, refuses a different window
// clearly, and leaves it alone when deleted.
func TestVaultResource(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewObjectLockBucket(t)
	cf := newCloudFormation(t)
	h := &protect.Handler{S3: c, Vault: bucket, Log: quiet}

	// CloudFormation passes numbers as strings.
	r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, protect.ResourceVault, map[string]any{"RetentionDays": "30"}))
	if r.Status != cfn.StatusSuccess || r.PhysicalResourceID != "bucketvault-vault-"+bucket {
		t.Fatalf("create: %+v", r)
	}
	if r.Data["Created"] != "true" || r.Data["RetentionDays"] != "30" || r.Data["Format"] != vault.FormatName || r.Data["FormatVersion"] != strconv.Itoa(vault.FormatVersion) {
		t.Errorf("create data %v", r.Data)
	}
	v, err := vault.Open(ctx, c, bucket)
	if err != nil {
		t.Fatalf("the vault does not open after create: %v", err)
	}
	if v.Descriptor.RetentionDays != 30 || v.Descriptor.Name != bucket {
		t.Errorf("descriptor %+v", v.Descriptor)
	}

	r = handle(t, cf, h.Handle, cf.event(t, cfn.RequestUpdate, protect.ResourceVault, map[string]any{"RetentionDays": 30.0}))
	if r.Status != cfn.StatusSuccess || r.Data["Created"] != "false" || r.Data["CreatedAt"] != v.Descriptor.CreatedAt.UTC().Format(time.RFC3339) {
		t.Errorf("update: %+v", r)
	}

	r = handle(t, cf, h.Handle, cf.event(t, cfn.RequestUpdate, protect.ResourceVault, map[string]any{"RetentionDays": "35"}))
	if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, "30-day point-in-time window") || !strings.Contains(r.Reason, "ask for 30") {
		t.Errorf("update to another window: %+v, want FAILED naming the vault's window", r)
	}

	r = handle(t, cf, h.Handle, cf.event(t, cfn.RequestDelete, protect.ResourceVault, map[string]any{"RetentionDays": "30"}))
	if r.Status != cfn.StatusSuccess {
		t.Errorf("delete: %+v", r)
	}
	if n := descriptorVersions(t, c, bucket); n != 1 {
		t.Errorf("descriptor has %d versions, want the one written at create", n)
	}
}

// A bucket holding a descriptor of another format fails the resource
// with vault's reason, and the descriptor is left as it was.
func TestVaultResourceUnknownFormat(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewObjectLockBucket(t)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(vault.DescriptorKey),
		Body: strings.NewReader(`{"format":"bucketvault","formatVersion":9,"name":"x","retentionDays":35}`)}); err != nil {
		t.Fatal(err)
	}
	cf := newCloudFormation(t)
	h := &protect.Handler{S3: c, Vault: bucket, Log: quiet}
	r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, protect.ResourceVault, map[string]any{"RetentionDays": "35"}))
	if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, `version 9`) || !strings.Contains(r.Reason, "upgrade bucketvault") {
		t.Errorf("create over an unknown format: %+v, want FAILED with the format named", r)
	}
	_, _, err := protect.Descriptor(ctx, c, bucket, 35)
	var uf *vault.UnknownFormatError
	if !errors.As(err, &uf) || uf.Version != 9 {
		t.Errorf("Descriptor() = %v, want an *UnknownFormatError", err)
	}
	if n := descriptorVersions(t, c, bucket); n != 1 {
		t.Errorf("descriptor has %d versions, want the foreign one only", n)
	}
}

// Descriptors written at once by several callers: exactly one writes, all
// agree, and the bucket holds one version.
func TestDescriptorConcurrent(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewObjectLockBucket(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([]struct {
		d       vault.Descriptor
		created bool
		err     error
	}, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.d, r.created, r.err = protect.Descriptor(ctx, c, bucket, 0)
		}()
	}
	wg.Wait()
	created := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.created {
			created++
		}
		if r.d.RetentionDays != vault.DefaultRetentionDays {
			t.Errorf("caller %d: %d days, want the default", i, r.d.RetentionDays)
		}
	}
	if created != 1 {
		t.Errorf("%d callers wrote the descriptor, want 1", created)
	}
	if v := descriptorVersions(t, c, bucket); v != 1 {
		t.Errorf("descriptor has %d versions, want 1", v)
	}
}

// Protecting buckets before the vault has a descriptor is answered FAILED
// with vault's reason (returning the error would leave CloudFormation
// waiting an hour); once the vault resource has run, the
// same event protects the buckets.
func TestProtectResourceAnswersVaultFailure(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewObjectLockBucket(t)
	versioned, plain := srv.NewBucket(t, true), srv.NewBucket(t, false)
	cf := newCloudFormation(t)
	h := &protect.Handler{S3: c, Vault: bucket, Log: quiet,
		OpenJournal: func(ctx context.Context) (*journal.Journal, error) {
			v, err := vault.Open(ctx, c, bucket)
			if err != nil {
				return nil, err
			}
			return &journal.Journal{Vault: v, S3: c, Log: quiet}, nil
		}}
	props := map[string]any{"Buckets": []any{versioned}}
	r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, protect.ResourceProtect, props))
	if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, "not a bucketvault vault") {
		t.Fatalf("protect before the descriptor: %+v, want FAILED with the reason", r)
	}
	if r.PhysicalResourceID != "bucketvault-protect-"+bucket {
		t.Errorf("physical id %q", r.PhysicalResourceID)
	}

	if r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, protect.ResourceVault, map[string]any{"RetentionDays": "35"})); r.Status != cfn.StatusSuccess {
		t.Fatalf("vault resource: %+v", r)
	}
	r = handle(t, cf, h.Handle, cf.event(t, cfn.RequestUpdate, protect.ResourceProtect, props))
	if r.Status != cfn.StatusSuccess || r.Data["Protected"] != "1" {
		t.Errorf("protect after the descriptor: %+v", r)
	}
	v, err := vault.Open(ctx, c, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Protected(ctx, versioned); err != nil {
		t.Errorf("%s is not recorded as protected: %v", versioned, err)
	}
	// A bucket without versioning fails the deployment with the reason.
	r = handle(t, cf, h.Handle, cf.event(t, cfn.RequestUpdate, protect.ResourceProtect, map[string]any{"Buckets": []any{plain}}))
	if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, plain) || !strings.Contains(r.Reason, "versioning") {
		t.Errorf("protect an unversioned bucket: %+v", r)
	}
}

// A function that cannot start answers Create and Update FAILED with the
// reason and Delete SUCCESS (deleting does nothing, and a failed Delete
// would block a rollback); other input fails with the reason.
func TestUnavailable(t *testing.T) {
	cf := newCloudFormation(t)
	startErr := errors.New("protect function cannot start: configuration BUCKETVAULT_VAULT: is required")
	h := protect.Unavailable(startErr)
	for _, rt := range []cfn.RequestType{cfn.RequestCreate, cfn.RequestUpdate} {
		for _, typ := range []string{protect.ResourceVault, protect.ResourceProtect} {
			r := handle(t, cf, h, cf.event(t, rt, typ, map[string]any{"RetentionDays": "35"}))
			if r.Status != cfn.StatusFailed || r.Reason != startErr.Error() {
				t.Errorf("%s %s: %+v, want FAILED with the start-up error", rt, typ, r)
			}
			if rt == cfn.RequestCreate && r.PhysicalResourceID != "req-Create" {
				t.Errorf("%s %s: physical id %q, want the request id", rt, typ, r.PhysicalResourceID)
			}
		}
	}
	r := handle(t, cf, h, cf.event(t, cfn.RequestDelete, protect.ResourceVault, nil))
	if r.Status != cfn.StatusSuccess || r.PhysicalResourceID != "physical-1" {
		t.Errorf("delete: %+v, want SUCCESS keeping the physical id", r)
	}
	if _, err := h(context.Background(), json.RawMessage(`{}`)); !errors.Is(err, startErr) {
		t.Errorf("scheduled invocation: %v, want the start-up error", err)
	}
}

func TestUnknownResourceType(t *testing.T) {
	cf := newCloudFormation(t)
	h := &protect.Handler{Vault: "v", Log: quiet}
	r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, "Custom::Other", nil))
	if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, `"Custom::Other"`) {
		t.Errorf("create: %+v", r)
	}
	if r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestDelete, "Custom::Other", nil)); r.Status != cfn.StatusSuccess {
		t.Errorf("delete: %+v", r)
	}
}

func TestVaultResourceBadRetention(t *testing.T) {
	cf := newCloudFormation(t)
	h := &protect.Handler{Vault: "v", Log: quiet}
	for _, days := range []any{"thirty", 1.5, true} {
		r := handle(t, cf, h.Handle, cf.event(t, cfn.RequestCreate, protect.ResourceVault, map[string]any{"RetentionDays": days}))
		if r.Status != cfn.StatusFailed || !strings.Contains(r.Reason, "RetentionDays") {
			t.Errorf("RetentionDays %v: %+v", days, r)
		}
	}
}

// The scheduled path still reports refusals per bucket.
func TestScheduledRequest(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	versioned, plain := srv.NewBucket(t, true), srv.NewBucket(t, false)
	h := &protect.Handler{Journal: &journal.Journal{Vault: v, S3: c, Log: quiet}, Log: quiet, Buckets: []string{versioned, plain}}
	out, err := h.Handle(ctx, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res := out.(*protect.Result)
	if diff := cmp.Diff([]string{versioned}, res.Protected); diff != "" {
		t.Errorf("protected (-want +got):\n%s", diff)
	}
	if _, ok := res.Refused[plain]; !ok || len(res.Refused) != 1 {
		t.Errorf("refused %v, want %s", res.Refused, plain)
	}
}

// TestProtectNamesAMissingEventTarget: protect toward a queue ARN the
// server has no target for says so and how to fix it, not the server's
// raw "destination ARN does not exist".
func TestProtectNamesAMissingEventTarget(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, true)
	_, _, err = protect.Protect(ctx, &journal.Journal{Vault: v, S3: c}, bucket, protect.Options{QueueARN: "arn:minio:sqs::nosuchtarget:webhook"})
	var missing *protect.EventTargetMissingError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "local-server --webhook") || !strings.Contains(err.Error(), "--events none") {
		t.Fatalf("protect toward a missing target: %v; want an EventTargetMissingError that says how to fix it", err)
	}
}
