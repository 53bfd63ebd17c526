package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/handler"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/rie"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/schedule"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
	"github.com/bucketvault/bucketvault/shared/wiring"
)

// invokeFunctions are the Lambda functions invoke runs, with the timeout
// each has on AWS (infra/), which invoke applies as the deadline.
var invokeFunctions = map[string]time.Duration{
	"journal":     5 * time.Minute,
	"reconcile":   15 * time.Minute,
	"protect":     5 * time.Minute,
	"restore":     15 * time.Minute,
	"snapshot":    15 * time.Minute,
	"expire":      15 * time.Minute,
	"dispatch":    5 * time.Minute,
	"restoretest": 15 * time.Minute,
}

// snapshotEvent is the snapshot function's input, one step's request.
type snapshotEvent json.RawMessage

// restoreTestEvent is the restore test function's input: a step of its
// state machine, a sweep or one restore test.
type restoreTestEvent json.RawMessage

// invokeOptions are what a function would read from its environment.
type invokeOptions struct {
	function, eventFile, vault string
	concurrency                int
	buckets, restoreTargets    []string
	timeout                    time.Duration
	// bootstrap, when set, is run under the Lambda Runtime Interface
	// Emulator instead of calling the handler in-process.
	bootstrap string
}

func (a *app) invokeCommand() *cobra.Command {
	var o invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke --function journal|reconcile|restore|protect|snapshot|expire|dispatch --event FILE --vault V [--bootstrap FILE]",
		Short: "Run a Lambda function on an event, in-process or as Lambda runs it (events/ has one sample per function)",
		Long: `invoke runs a Lambda function on an event (journal: SQS batch; reconcile:
reconcile request; restore: restore request; protect: scheduled request or
custom resource event; snapshot: one step of the snapshot state machine;
expire: expiry request; dispatch: a backup rule's schedule), against the S3
endpoint of --endpoint-url (for example a running local-server), with the
function's AWS timeout as the deadline. The function's response is printed
as JSON on stdout; logs and metric lines go to stderr.

By default it calls the function's handler in-process (shared/handler, the
code the function's main starts). With --bootstrap it runs that file, the
function's bootstrap built for this machine (make invoke builds it), under
the AWS Lambda Runtime Interface Emulator (installed into the local
server's cache on first use), as Lambda runs it: a process of its own that
gets the event from the Lambda Runtime API.

Either way the function is configured as the stack configures it: the
variables the stack sets for that function, from these flags: --vault
(BUCKETVAULT_VAULT), --concurrency (BUCKETVAULT_CONCURRENCY), --bucket
(BUCKETVAULT_BUCKETS), --restore-target (BUCKETVAULT_RESTORE_TARGETS), and
--endpoint-url as BUCKETVAULT_ENDPOINT_URL. The events topic and bus are
left out: job events are logged. Under the emulator the function gets the
credentials and region of this command's AWS configuration, and the
AWS_ENDPOINT_URL_<SERVICE> variables of its environment but S3's (the
dispatch function starts executions on AWS_ENDPOINT_URL_SFN's).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.invoke(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.function, "function", "", "journal, reconcile, restore, protect, snapshot, expire or dispatch")
	f.StringVar(&o.eventFile, "event", "", "the event: a JSON file, or - for stdin")
	f.StringVar(&o.vault, "vault", "", "vault bucket name (BUCKETVAULT_VAULT)")
	f.IntVar(&o.concurrency, "concurrency", 16, "parallel copies (BUCKETVAULT_CONCURRENCY)")
	f.StringSliceVar(&o.buckets, "bucket", nil, "buckets a request naming none covers (BUCKETVAULT_BUCKETS; repeatable)")
	f.StringSliceVar(&o.restoreTargets, "restore-target", nil, "bucket patterns a restore may write to (BUCKETVAULT_RESTORE_TARGETS; repeatable; default any)")
	f.DurationVar(&o.timeout, "timeout", 0, "the invocation's deadline (default: the function's Lambda timeout)")
	f.StringVar(&o.bootstrap, "bootstrap", "", "run this bootstrap (the function built for linux and this machine) under the Lambda Runtime Interface Emulator")
	return cmd
}

func (a *app) invoke(ctx context.Context, o invokeOptions) error {
	limit, ok := invokeFunctions[o.function]
	if !ok {
		return usagef("--function %q: want journal, reconcile, restore, protect, snapshot, expire or dispatch", o.function)
	}
	if err := requireFlag("event", o.eventFile); err != nil {
		return err
	}
	if o.concurrency < 1 || o.concurrency > 1000 {
		return usagef("--concurrency %d: want 1 to 1000", o.concurrency)
	}
	raw, err := readEvent(o.eventFile)
	if err != nil {
		return err
	}
	input, err := decodeInvokeEvent(o.function, raw)
	if err != nil {
		return usagef("%s: %v", o.eventFile, err)
	}
	vaultName := o.vault
	if vaultName == "" {
		// A request that names its vault needs no --vault; the function's
		// configuration still names one, as the stack's always does.
		if vaultName = requestVault(input); vaultName == "" {
			return usagef("--vault is required")
		}
	}
	if o.timeout == 0 {
		o.timeout = limit
	}
	awsCfg, err := s3x.LoadConfig(ctx, s3x.ClientOptions{EndpointURL: a.endpointURL, Region: a.region, Profile: a.profile})
	if err != nil {
		return err
	}
	endpoint := a.endpointURL
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = aws.ToString(awsCfg.BaseEndpoint)
	}
	env, err := handler.LocalEnv(o.function, handler.Settings{
		Vault: vaultName, Concurrency: o.concurrency, Buckets: o.buckets, RestoreTargets: o.restoreTargets, EndpointURL: endpoint,
	})
	if err != nil {
		return err
	}
	var out json.RawMessage
	if o.bootstrap != "" {
		out, err = a.invokeEmulator(ctx, o, env, awsCfg, raw)
	} else {
		out, err = a.invokeInProcess(ctx, o, env, awsCfg, input)
	}
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		return fmt.Errorf("the function's response %q: %w", out, err)
	}
	pretty.WriteByte('\n')
	if _, err := a.stdout.Write(pretty.Bytes()); err != nil {
		return err
	}
	if partial := partialOf(input, out); partial != "" {
		return &partialError{msg: partial}
	}
	return nil
}

// invokeInProcess calls the function's handler (shared/handler) with the
// configuration env gives it, within the function's deadline.
func (a *app) invokeInProcess(ctx context.Context, o invokeOptions, env map[string]string, awsCfg aws.Config, input any) (json.RawMessage, error) {
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		return nil, usagef("%v", err)
	}
	f, err := wiring.New(cfg, awsCfg, a.log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// The functions write EMF metric lines to stdout (CloudWatch Logs on
	// AWS); here they go to stderr with the logs, so stdout is the response.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	defer func() { os.Stdout = stdout }()

	var out any
	switch in := input.(type) {
	case events.SQSEvent:
		out, err = handler.Journal(f)(ctx, in)
	case vault.ExpireRequest:
		out, err = handler.Expire(f)(ctx, in)
	case journal.ReconcileRequest:
		out, err = handler.Reconcile(f)(ctx, in)
	case restore.Request:
		raw, merr := json.Marshal(in)
		if merr != nil {
			return nil, merr
		}
		out, err = handler.Restore(f)(ctx, raw)
	case snapshotEvent:
		out, err = handler.Snapshot(f)(ctx, json.RawMessage(in))
	case restoreTestEvent:
		out, err = handler.RestoreTest(f)(ctx, json.RawMessage(in))
	case schedule.Request:
		out, err = handler.Dispatch(f)(ctx, in)
	case json.RawMessage:
		out, err = handler.Protect(f)(ctx, in)
	default:
		return nil, fmt.Errorf("invoke: no handler for %T", input)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// invokeEmulator runs the bootstrap under the Lambda Runtime Interface
// Emulator with env, this command's AWS credentials and region, and the
// service endpoints of its environment, and sends it the event as it is.
func (a *app) invokeEmulator(ctx context.Context, o invokeOptions, env map[string]string, awsCfg aws.Config, event []byte) (json.RawMessage, error) {
	if awsCfg.Credentials == nil {
		return nil, errors.New("invoke --bootstrap: no AWS credentials to give the function")
	}
	creds, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("invoke --bootstrap: the credentials to give the function: %w", err)
	}
	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = creds.AccessKeyID, creds.SecretAccessKey
	if creds.SessionToken != "" {
		env["AWS_SESSION_TOKEN"] = creds.SessionToken
	}
	env["AWS_REGION"], env["AWS_DEFAULT_REGION"] = awsCfg.Region, awsCfg.Region
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") && k != "AWS_ENDPOINT_URL_S3" {
			env[k] = v
		}
	}
	binDir, err := locals3.BinDir()
	if err != nil {
		return nil, err
	}
	bin, err := rie.Install(ctx, binDir)
	if err != nil {
		return nil, err
	}
	e, err := rie.Start(ctx, rie.Options{
		Emulator: bin, Bootstrap: o.bootstrap, Env: env, Output: a.stderr,
		Lambda: rie.Lambda{FunctionName: "bucketvault-" + o.function, Timeout: o.timeout},
	})
	if err != nil {
		return nil, err
	}
	defer e.Stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout+30*time.Second)
	defer cancel()
	return e.Invoke(ctx, event)
}

// partialOf says what of a response makes the command exit with
// exitPartial: an SQS batch with failed messages, a PARTIAL restore,
// buckets the protect function refused.
func partialOf(input any, out json.RawMessage) string {
	switch in := input.(type) {
	case events.SQSEvent:
		var resp events.SQSEventResponse
		if json.Unmarshal(out, &resp) == nil && len(resp.BatchItemFailures) > 0 {
			return fmt.Sprintf("%d of %d messages failed and would be delivered again", len(resp.BatchItemFailures), len(in.Records))
		}
	case restore.Request:
		var rep restore.Report
		if json.Unmarshal(out, &rep) == nil && rep.State == restore.StatePartial {
			return rep.StatusMessage
		}
	case json.RawMessage:
		var res protect.Result
		if json.Unmarshal(out, &res) == nil && len(res.Refused) > 0 {
			return fmt.Sprintf("%d buckets not protected", len(res.Refused))
		}
	}
	return ""
}

func readEvent(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// decodeInvokeEvent decodes raw into the input type of function, strictly,
// so that the event of another function is refused rather than read as an
// empty input: events.SQSEvent, journal.ReconcileRequest, restore.Request,
// vault.ExpireRequest, schedule.Request, the snapshot function's raw step
// request, or the protect function's raw input (scheduled request or
// CloudFormation custom resource event).
func decodeInvokeEvent(function string, raw []byte) (any, error) {
	strict := func(dst any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("not a %s event: %w", function, err)
		}
		return nil
	}
	switch function {
	case "journal":
		var ev events.SQSEvent
		if err := strict(&ev); err != nil {
			return nil, err
		}
		if len(ev.Records) == 0 {
			return nil, fmt.Errorf("not a journal event: an SQS event with no Records")
		}
		return ev, nil
	case "reconcile":
		var req journal.ReconcileRequest
		if err := strict(&req); err != nil {
			return nil, err
		}
		return req, nil
	case "restore":
		var req restore.Request
		if err := strict(&req); err != nil {
			return nil, err
		}
		return req, nil
	case "expire":
		var req vault.ExpireRequest
		if err := strict(&req); err != nil {
			return nil, err
		}
		return req, nil
	case "dispatch":
		var req schedule.Request
		if err := strict(&req); err != nil {
			return nil, err
		}
		return req, nil
	case "restoretest":
		if restoretest.IsStep(raw) {
			var step restoretest.StepRequest
			if err := strict(&step); err != nil {
				return nil, err
			}
		} else {
			if _, err := handler.DecodeRestoreTestRequest(raw); err != nil {
				return nil, fmt.Errorf("not a restoretest event: %w", err)
			}
		}
		return restoreTestEvent(raw), nil
	case "snapshot":
		var req snapshot.Request
		if err := strict(&req); err != nil {
			return nil, err
		}
		if req.Step == "" {
			return nil, fmt.Errorf("not a snapshot event: no step")
		}
		return snapshotEvent(raw), nil
	case "protect":
		var probe struct {
			RequestType string   `json:"RequestType"`
			ResponseURL string   `json:"ResponseURL"`
			Buckets     []string `json:"buckets"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("not a protect event: %w", err)
		}
		if probe.ResponseURL != "" && !loopbackURL(probe.ResponseURL) {
			// cfn.LambdaWrap would PUT the response to ResponseURL.
			return nil, fmt.Errorf("a custom resource event whose ResponseURL %q is not on this machine: invoke sends the response there", probe.ResponseURL)
		}
		return json.RawMessage(raw), nil
	}
	return nil, fmt.Errorf("unknown function %q", function)
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requestVault is the vault an input names itself, if any.
func requestVault(input any) string {
	switch in := input.(type) {
	case restore.Request:
		return in.Vault
	case restoreTestEvent:
		var probe struct {
			Vault     string `json:"vault"`
			Scheduled *struct {
				Vault string `json:"vault"`
			} `json:"scheduled"`
			Test *struct {
				Request struct {
					Vault string `json:"vault"`
				} `json:"request"`
			} `json:"test"`
		}
		if json.Unmarshal(in, &probe) != nil {
			return ""
		}
		switch {
		case probe.Scheduled != nil:
			return probe.Scheduled.Vault
		case probe.Test != nil:
			return probe.Test.Request.Vault
		}
		return probe.Vault
	case schedule.Request:
		return in.Job.Vault
	case snapshotEvent:
		var req snapshot.Request
		if json.Unmarshal(in, &req) != nil {
			return ""
		}
		if req.Job != nil && req.Job.Vault != "" {
			return req.Job.Vault
		}
		if req.BatchInput != nil {
			return req.BatchInput.Job.Vault
		}
	}
	return ""
}
