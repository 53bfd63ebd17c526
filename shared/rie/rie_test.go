package rie

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFunctionError(t *testing.T) {
	tests := []struct {
		body string
		want *FunctionError
	}{
		{`{"errorMessage":"no such vault","errorType":"NotAVaultError"}`, &FunctionError{Type: "NotAVaultError", Message: "no such vault"}},
		{`{"errorMessage":"boom","errorType":"wrapError","stackTrace":[]}`, &FunctionError{Type: "wrapError", Message: "boom"}},
		{`{"batchItemFailures":[]}`, nil},
		{`{"errorType":"x","state":"FAILED"}`, nil}, // a response that has an errorType field among others
		{`{}`, nil},
		{`null`, nil},
		{`"text"`, nil},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, functionError([]byte(tc.body))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.body, diff)
		}
	}
}

// The Makefile builds the stack's bootstraps with BuildFlags.
func TestMakefileBuildsWithBuildFlags(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var quoted []string
	for _, f := range BuildFlags {
		if name, value, ok := strings.Cut(f, "="); ok && strings.Contains(value, " ") {
			f = name + "='" + value + "'"
		}
		quoted = append(quoted, f)
	}
	want := "LAMBDA_BUILD_FLAGS := " + strings.Join(quoted, " ")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "LAMBDA_BUILD_FLAGS ") {
			if strings.TrimSpace(line) != want {
				t.Errorf("Makefile: %q; want %q", line, want)
			}
			return
		}
	}
	t.Errorf("Makefile: no LAMBDA_BUILD_FLAGS line; want %q", want)
}

func TestLambdaEnv(t *testing.T) {
	got := Lambda{FunctionName: "bucketvault-journal", Timeout: 90*time.Second + time.Millisecond}.env()
	for k, want := range map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "bucketvault-journal", "AWS_LAMBDA_FUNCTION_TIMEOUT": "91",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO",
	} {
		if got[k] != want {
			t.Errorf("%s=%q; want %q", k, got[k], want)
		}
	}
}

// A failed invocation's output is taken once it has settled: the lines
// that say why come through the pipes after the emulator's answer.
func TestSettledTailWaitsForLateLines(t *testing.T) {
	w := &tailWriter{max: 1 << 10}
	_, _ = w.Write([]byte("INIT START\n"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, line := range []string{"configuration BUCKETVAULT_VAULT: is required\n", "Runtime.ExitError\n"} {
			time.Sleep(50 * time.Millisecond)
			_, _ = w.Write([]byte(line))
		}
	}()
	got := w.settledTail(200*time.Millisecond, 5*time.Second)
	<-done
	if !strings.Contains(got, "BUCKETVAULT_VAULT") || !strings.HasSuffix(got, "Runtime.ExitError") {
		t.Errorf("settled tail = %q; want the late lines", got)
	}
	// A writer that never goes quiet is cut off at the limit.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				_, _ = w.Write([]byte("."))
			}
		}
	}()
	start := time.Now()
	w.settledTail(time.Second, 300*time.Millisecond)
	close(stop)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("settledTail of a busy writer took %v; want it cut off near its limit", took)
	}
}
