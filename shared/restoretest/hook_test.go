package restoretest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// TestRunRequestDurations: keep and rto read and written as durations.
func TestRunRequestDurations(t *testing.T) {
	var r restoretest.RunRequest
	if err := json.Unmarshal([]byte(`{"bucket":"b","keep":"24h","rto":3600000000000}`), &r); err != nil || r.Keep != 24*time.Hour || r.RTO != time.Hour || r.Bucket != "b" {
		t.Fatalf("%+v %v", r, err)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"keep":"24h0m0s"`) || !strings.Contains(string(b), `"rto":"1h0m0s"`) {
		t.Fatalf("%s %v", b, err)
	}
	for _, bad := range []string{`{"keep":"soon"}`, `{"rto":-5}`, `{"keep":"-1h"}`} {
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestParseVerdict: a function's answer in AWS Backup's words, in any
// case; nothing is VALIDATING; anything else is refused.
func TestParseVerdict(t *testing.T) {
	for in, want := range map[string]string{
		`{"ValidationStatus":"SUCCESSFUL"}`: "SUCCESSFUL", `{"validationStatus":"failed","validationStatusMessage":"x"}`: "FAILED",
		``: "VALIDATING", `null`: "VALIDATING", `{}`: "VALIDATING", `{"ValidationStatus":"VALIDATING"}`: "VALIDATING",
	} {
		v, err := restoretest.ParseVerdict([]byte(in))
		if err != nil || v.ValidationStatus != want {
			t.Errorf("%s: %+v %v; want %s", in, v, err, want)
		}
	}
	for _, in := range []string{`{"ValidationStatus":"GREAT"}`, `"ok"`, `[1]`} {
		if v, err := restoretest.ParseVerdict([]byte(in)); err == nil {
			t.Errorf("%s accepted as %+v", in, v)
		}
	}
}

// TestLambdaHook: the validation function is invoked with Lambda's Invoke
// API (RequestResponse) with the event; its answer is the verdict; a
// function error is an error naming the function.
func TestLambdaHook(t *testing.T) {
	var got restoretest.HookEvent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/functions/validate-photos/invocations") || r.Header.Get("X-Amz-Invocation-Type") != "RequestResponse" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if got.Detail.RunID == "crash" {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			_, _ = w.Write([]byte(`{"errorMessage":"boom","errorType":"Error"}`))
			return
		}
		_, _ = w.Write([]byte(`{"ValidationStatus":"FAILED","ValidationStatusMessage":"3 rows missing"}`))
	}))
	defer srv.Close()
	client := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
	h := restoretest.LambdaHook{Lambda: client}
	e := restoretest.HookEvent{DetailType: "Restore Job State Change", Detail: restoretest.HookDetail{RunID: "r1", TargetBucket: "restore-test-1"}}
	v, err := h.Invoke(context.Background(), "validate-photos", e)
	if err != nil || v.ValidationStatus != "FAILED" || v.ValidationStatusMessage != "3 rows missing" || got.Detail.TargetBucket != "restore-test-1" {
		t.Fatalf("verdict %+v %v (event %+v)", v, err, got)
	}
	e.Detail.RunID = "crash"
	if _, err := h.Invoke(context.Background(), "validate-photos", e); err == nil || !strings.Contains(err.Error(), "validate-photos failed") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("function error: %v", err)
	}
}
