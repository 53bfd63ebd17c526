// Package rie runs a Lambda function's bootstrap under the AWS Lambda
// Runtime Interface Emulator (aws-lambda-rie, the emulator SAM CLI runs
// inside its containers) and invokes it over HTTP, as Lambda invokes it:
// the emulator starts the bootstrap with AWS_LAMBDA_RUNTIME_API pointing
// at its Runtime API, hands it each event through that API, and returns
// the function's response or error.
//
// Install puts the pinned emulator in a directory (the local server's
// cache); Build builds bootstraps as the stack does, for this machine;
// Start runs one.
package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// Options configure Start.
type Options struct {
	// Emulator is the aws-lambda-rie binary (Install's path).
	Emulator string
	// Bootstrap is the function's bootstrap; it runs in its directory,
	// as a function runs in /var/task.
	Bootstrap string
	// Env is the function's environment, and all of it: nothing of this
	// process's environment is passed on. Start adds what Lambda sets
	// itself (Lambda below); AWS credentials and region are the caller's
	// to give.
	Env map[string]string
	// Lambda is the function's Lambda settings.
	Lambda Lambda
	// Output receives the emulator's log and the function's (its stdout
	// and stderr); nil: discarded.
	Output io.Writer
}

// Lambda are the settings Lambda gives a function in variables of its own.
type Lambda struct {
	FunctionName string        // AWS_LAMBDA_FUNCTION_NAME (and the last part of the invoked ARN)
	Timeout      time.Duration // AWS_LAMBDA_FUNCTION_TIMEOUT, whole seconds; 0: 5 minutes
	MemoryMB     int           // AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 0: 128
	// LogFormat and LogLevel are the function's logging configuration
	// (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL); empty: JSON and INFO,
	// the stack's.
	LogFormat, LogLevel string
}

// env is what Lambda sets for l, besides what the emulator sets itself
// (AWS_LAMBDA_RUNTIME_API, the log group and version).
func (l Lambda) env() map[string]string {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	secs := int64((timeout + time.Second - 1) / time.Second)
	mem, format, level := l.MemoryMB, l.LogFormat, l.LogLevel
	if mem == 0 {
		mem = 128
	}
	if format == "" {
		format = "JSON"
	}
	if level == "" {
		level = "INFO"
	}
	return map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        l.FunctionName,
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.FormatInt(secs, 10),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(mem),
		"AWS_LAMBDA_LOG_FORMAT":           format,
		"AWS_LAMBDA_LOG_LEVEL":            level,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"TZ":                              ":UTC",
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
	}
}

// Emulator is a running emulator with its function.
type Emulator struct {
	// URL is the invocation endpoint, on loopback.
	URL string

	cmd    *exec.Cmd
	out    *tailWriter
	exited chan struct{}
	stop   sync.Once
}

// startAttempts bounds Start's retries when a picked port is taken
// before the emulator binds it.
const startAttempts = 3

// Start runs the emulator with the bootstrap on two free loopback ports:
// the invocation endpoint (--runtime-interface-emulator-address; the
// emulator would listen on every interface by default) and the Runtime
// API (--runtime-api-address; 9001 by default). The emulator starts the
// bootstrap on the first invocation, as Lambda starts a function on its
// first event. Stop it with Stop.
func Start(ctx context.Context, o Options) (*Emulator, error) {
	if o.Lambda.FunctionName == "" {
		return nil, errors.New("rie: Lambda.FunctionName is required")
	}
	bootstrap, err := filepath.Abs(o.Bootstrap)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(bootstrap); err != nil {
		return nil, fmt.Errorf("rie: bootstrap: %w", err)
	} else if st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("rie: bootstrap %s is not executable", bootstrap)
	}
	env := map[string]string{}
	for k, v := range o.Env {
		env[k] = v
	}
	for k, v := range o.Lambda.env() {
		env[k] = v
	}
	env["LAMBDA_TASK_ROOT"] = filepath.Dir(bootstrap)
	var last error
	for range startAttempts {
		e, err := start(ctx, o, bootstrap, env)
		if err == nil {
			return e, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

func start(ctx context.Context, o Options, bootstrap string, env map[string]string) (*Emulator, error) {
	ports, err := locals3.FreePorts(2)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	api := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	cmd := exec.Command(o.Emulator, "--runtime-interface-emulator-address", addr, "--runtime-api-address", api, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	out := &tailWriter{w: o.Output, max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rie: start %s: %w", o.Emulator, err)
	}
	e := &Emulator{URL: "http://" + addr + "/2015-03-31/functions/function/invocations", cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(e.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return e, nil
		}
		select {
		case <-e.exited:
			return nil, fmt.Errorf("rie: the emulator exited at start (%s):\n%s", cmd.ProcessState, out.tail())
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("rie: the emulator does not listen on %s after 10s:\n%s", addr, out.tail())
		}
	}
}

// Invoke sends payload to the function and returns its response. A
// function error (what the handler returned, with aws-lambda-go's
// errorType) is a *FunctionError; a function that crashed, exited or ran
// out of time is an error that says so, with the tail of its output.
func (e *Emulator) Invoke(ctx context.Context, payload []byte) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rie: invoke: %w\n%s", err, e.out.settledTail(outputQuiet, outputSettle))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("rie: invoke: read the response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("rie: invoke: %s: %s\n%s", resp.Status, bytes.TrimSpace(body), e.out.settledTail(outputQuiet, outputSettle))
	}
	if bytes.HasPrefix(body, []byte("Task timed out")) {
		return nil, &FunctionError{Type: "TimeoutError", Message: string(body)}
	}
	if fe := functionError(body); fe != nil {
		return nil, fe
	}
	return body, nil
}

// How long a failed invocation's output must be quiet before its tail is
// taken, and the longest it waits for that.
const (
	outputQuiet  = 200 * time.Millisecond
	outputSettle = 3 * time.Second
)

// FunctionError is an invocation that ended with the function's error:
// what Lambda returns with X-Amz-Function-Error (the emulator returns the
// body alone).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// functionError recognizes the body of a function error: an object of
// errorType and errorMessage (and, maybe, stackTrace), nothing else.
func functionError(body []byte) *FunctionError {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil
	}
	for k := range fields {
		if k != "errorType" && k != "errorMessage" && k != "stackTrace" {
			return nil
		}
	}
	var fe FunctionError
	if json.Unmarshal(body, &fe) != nil || fe.Type == "" && fe.Message == "" {
		return nil
	}
	return &fe
}

// Stop kills the emulator and the function it runs (which the emulator
// starts in a process group of its own). It is safe to call more than once.
func (e *Emulator) Stop() {
	e.stop.Do(func() {
		pid := e.cmd.Process.Pid
		// The function's process: the emulator's child, leading a group.
		for _, child := range children(pid) {
			_ = syscall.Kill(-child, syscall.SIGKILL)
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
		}
	})
}

// Output returns the tail of the emulator's and the function's output.
func (e *Emulator) Output() string { return e.out.tail() }

// children are the pids of pid's children, whichever of its threads
// started them (Linux's /proc; none elsewhere).
func children(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				out = append(out, n)
			}
		}
	}
	return out
}

// tailWriter passes writes on to w (when set) and keeps the last max bytes.
type tailWriter struct {
	mu   sync.Mutex
	w    io.Writer
	max  int
	buf  []byte
	last time.Time // of the last write
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		_, _ = t.w.Write(p)
	}
	t.last = time.Now()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// settledTail is the tail once the output has been quiet for quiet, or
// after at most limit. The emulator answers a failed invocation before the
// function's last lines (the reason it failed) have always come through
// its pipes: an error's output waits for them.
func (t *tailWriter) settledTail(quiet, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		since := time.Since(t.last)
		t.mu.Unlock()
		if since >= quiet {
			break
		}
		time.Sleep(min(quiet-since, time.Until(deadline)))
	}
	return t.tail()
}

func (t *tailWriter) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
