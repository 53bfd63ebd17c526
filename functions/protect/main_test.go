package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
)

// runAsFunction makes the test binary run main(), as Lambda would run the
// function's bootstrap.
const runAsFunction = "BUCKETVAULT_TEST_RUN_PROTECT_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsFunction) == "1" {
		main()
		return
	}
	locals3.Main(m)
}

// lambdaService is a hand-written Lambda Runtime API (what the function
// polls for invocations and answers to) that serves one event, and
// CloudFormation's response endpoint, which the function answers a custom
// resource event on.
type lambdaService struct {
	runtime, cloudFormation *httptest.Server
	event                   []byte
	mu                      sync.Mutex
	served                  bool
	invocationResult        chan string // "response: ..." or "error: ..."
	cfnResponse             chan cfn.Response
	done                    chan struct{}
}

func newLambdaService(t *testing.T, event func(responseURL string) []byte) *lambdaService {
	t.Helper()
	s := &lambdaService{invocationResult: make(chan string, 4), cfnResponse: make(chan cfn.Response, 4), done: make(chan struct{})}
	s.cloudFormation = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp cfn.Response
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Errorf("CloudFormation response %s: %v", body, err)
		}
		s.cfnResponse <- resp
	}))
	s.event = event(s.cloudFormation.URL + "/cfn-response")
	s.runtime = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/2018-06-01/runtime/invocation/next":
			s.mu.Lock()
			first := !s.served
			s.served = true
			s.mu.Unlock()
			if !first {
				// Block the function's next poll until the test ends.
				select {
				case <-s.done:
				case <-r.Context().Done():
				}
				w.WriteHeader(http.StatusGone)
				return
			}
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd")
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:bucketvault-protect")
			_, _ = w.Write(s.event)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/response"):
			b, _ := io.ReadAll(r.Body)
			s.invocationResult <- "response: " + string(b)
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/error"):
			b, _ := io.ReadAll(r.Body)
			s.invocationResult <- "error: " + string(b)
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(func() {
		close(s.done)
		s.runtime.Close()
		s.cloudFormation.Close()
	})
	return s
}

// start runs the function (this test binary's main) against the fake
// runtime with env.
func (s *lambdaService) start(t *testing.T, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(cleanEnv(), runAsFunction+"=1",
		"AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(s.runtime.URL, "http://"),
		"AWS_LAMBDA_LOG_FORMAT=JSON", "AWS_LAMBDA_LOG_LEVEL=INFO"), env...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("function output:\n%s", out.String())
		}
	})
}

// cleanEnv is the environment without anything that configures AWS or
// bucketvault, so the function sees only what a test gives it.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "BUCKETVAULT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func customResourceEvent(resourceType string, props map[string]any) func(string) []byte {
	return func(responseURL string) []byte {
		b, _ := json.Marshal(cfn.Event{
			RequestType: cfn.RequestCreate, RequestID: "3d7e5d8b-0d6e-4b59-a1f8-8cbd3ba3c1d0", ResponseURL: responseURL,
			ResourceType: resourceType, LogicalResourceID: "ProtectBuckets",
			StackID:            "arn:aws:cloudformation:eu-west-1:123456789012:stack/BucketVault/0a1b2c3d",
			ResourceProperties: props,
		})
		return b
	}
}

func (s *lambdaService) wait(t *testing.T) (cfn.Response, string) {
	t.Helper()
	timeout := time.After(time.Minute)
	var resp cfn.Response
	select {
	case resp = <-s.cfnResponse:
	case <-timeout:
		t.Fatal("the function never answered CloudFormation")
	}
	select {
	case result := <-s.invocationResult:
		return resp, result
	case <-timeout:
		t.Fatal("the function never finished the invocation")
	}
	return resp, ""
}

// A function whose configuration is broken still answers a custom
// resource event: FAILED, with the reason, at once.
func TestStartupFailureAnswersCloudFormation(t *testing.T) {
	s := newLambdaService(t, customResourceEvent(protect.ResourceVault, map[string]any{"RetentionDays": "35"}))
	s.start(t, config.EnvConcurrency+"=many") // and no BUCKETVAULT_VAULT
	resp, result := s.wait(t)
	if resp.Status != cfn.StatusFailed || !strings.Contains(resp.Reason, "protect function cannot start") ||
		!strings.Contains(resp.Reason, config.EnvVault) {
		t.Errorf("CloudFormation was told %+v, want FAILED naming %s", resp, config.EnvVault)
	}
	if !strings.HasPrefix(result, "response: ") {
		t.Errorf("invocation ended with %s, want a response", result)
	}
}

// A vault without its descriptor fails the protect resource with the
// reason instead of failing the invocation (which left CloudFormation
// waiting an hour).
func TestVaultFailureAnswersCloudFormation(t *testing.T) {
	srv := locals3.ForTest(t)
	vaultBucket := srv.NewObjectLockBucket(t)
	bucket := srv.NewBucket(t, true)
	s := newLambdaService(t, customResourceEvent(protect.ResourceProtect, map[string]any{"Buckets": []any{bucket}}))
	s.start(t, append(srv.Env(), config.EnvVault+"="+vaultBucket, config.EnvEndpointURL+"="+srv.Endpoint)...)
	resp, result := s.wait(t)
	if resp.Status != cfn.StatusFailed || !strings.Contains(resp.Reason, "not a bucketvault vault") {
		t.Errorf("CloudFormation was told %+v, want FAILED: not a bucketvault vault", resp)
	}
	if !strings.HasPrefix(result, "response: ") {
		t.Errorf("invocation ended with %s, want a response", result)
	}
}
