package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// invokeFunctions are the Lambda functions invoke runs, with the timeout
// each has on AWS (infra/), which invoke applies as the deadline.
var invokeFunctions = map[string]time.Duration{
	"journal":   5 * time.Minute,
	"reconcile": 15 * time.Minute,
	"protect":   5 * time.Minute,
	"restore":   15 * time.Minute,
	"snapshot":  15 * time.Minute,
	"expire":    15 * time.Minute,
}

// snapshotEvent is the snapshot function's input, one step's request.
type snapshotEvent json.RawMessage

// invokeOptions are what a function would read from its environment.
type invokeOptions struct {
	function, eventFile, vault string
	concurrency                int
	buckets, restoreTargets    []string
	timeout                    time.Duration
}

func (a *app) invokeCommand() *cobra.Command {
	var o invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke --function journal|reconcile|restore|protect|snapshot --event FILE --vault V",
		Short: "Run a Lambda function's handler in-process on an event (events/ has one sample per function)",
		Long: `invoke decodes the event into the function's input type and calls the same
handler the Lambda function calls (journal: SQS batch; reconcile: reconcile
request; restore: restore request; protect: scheduled request; snapshot:
one step of the snapshot state machine), against the
S3 endpoint of --endpoint-url (for example a running local-server), with the
function's AWS timeout as the deadline. The function's response is printed
as JSON on stdout; logs and metric lines go to stderr.

The flags stand for the function's environment: --vault (BUCKETVAULT_VAULT),
--concurrency (BUCKETVAULT_CONCURRENCY), --bucket (BUCKETVAULT_BUCKETS),
--restore-target (BUCKETVAULT_RESTORE_TARGETS).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.invoke(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.function, "function", "", "journal, reconcile, restore, protect or snapshot")
	f.StringVar(&o.eventFile, "event", "", "the event: a JSON file, or - for stdin")
	f.StringVar(&o.vault, "vault", "", "vault bucket name (BUCKETVAULT_VAULT)")
	f.IntVar(&o.concurrency, "concurrency", 16, "parallel copies (BUCKETVAULT_CONCURRENCY)")
	f.StringSliceVar(&o.buckets, "bucket", nil, "buckets a request naming none covers (BUCKETVAULT_BUCKETS; repeatable)")
	f.StringSliceVar(&o.restoreTargets, "restore-target", nil, "bucket patterns a restore may write to (BUCKETVAULT_RESTORE_TARGETS; repeatable; default any)")
	f.DurationVar(&o.timeout, "timeout", 0, "the invocation's deadline (default: the function's Lambda timeout)")
	return cmd
}

func (a *app) invoke(ctx context.Context, o invokeOptions) error {
	limit, ok := invokeFunctions[o.function]
	if !ok {
		return usagef("--function %q: want journal, reconcile, restore, protect or snapshot", o.function)
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
	if o.vault == "" && !namesVault(input) {
		return usagef("--vault is required")
	}
	if o.timeout == 0 {
		o.timeout = limit
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	// The functions write EMF metric lines to stdout (CloudWatch Logs on
	// AWS); here they go to stderr with the logs, so stdout is the response.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	defer func() { os.Stdout = stdout }()

	openJournal := func() (*journal.Journal, error) {
		v, err := vault.Open(ctx, c, o.vault)
		if err != nil {
			return nil, err
		}
		return &journal.Journal{Vault: v, S3: c, Concurrency: o.concurrency, Log: a.log}, nil
	}
	var out any
	var partial string
	switch in := input.(type) {
	case events.SQSEvent:
		j, err := openJournal()
		if err != nil {
			return err
		}
		resp, err := j.HandleSQS(ctx, in)
		if err != nil {
			return err
		}
		out = resp
		if n := len(resp.BatchItemFailures); n > 0 {
			partial = fmt.Sprintf("%d of %d messages failed and would be delivered again", n, len(in.Records))
		}
	case vault.ExpireRequest:
		v, err := vault.Open(ctx, c, o.vault)
		if err != nil {
			return err
		}
		rep, err := v.Expire(ctx, vault.ExpireOptions{DryRun: in.DryRun})
		if err != nil {
			return err
		}
		out = rep
	case journal.ReconcileRequest:
		j, err := openJournal()
		if err != nil {
			return err
		}
		if len(in.Buckets) == 0 {
			in.Buckets = o.buckets
		}
		resp, err := j.HandleReconcile(ctx, in)
		if err != nil {
			return err
		}
		out = resp
	case restore.Request:
		if in.Vault == "" {
			in.Vault = o.vault
		}
		if in.Concurrency == 0 {
			in.Concurrency = o.concurrency
		}
		r := &restore.Restorer{S3: c, AllowedTargets: o.restoreTargets, Log: a.log}
		rep, err := r.Run(ctx, in)
		if err != nil {
			return err
		}
		out = rep
		if rep.State == restore.StatePartial {
			partial = rep.StatusMessage
		}
	case snapshotEvent:
		e := &snapshot.Engine{S3: c, DefaultVault: o.vault, Concurrency: o.concurrency, Log: a.log, Events: notify.Log{Logger: a.log}}
		res, err := e.Handle(ctx, json.RawMessage(in))
		if err != nil {
			return err
		}
		out = res
	case json.RawMessage:
		j, err := openJournal()
		if err != nil {
			return err
		}
		h := &protect.Handler{Journal: j, Log: a.log, Buckets: o.buckets}
		res, err := h.Handle(ctx, in)
		if err != nil {
			return err
		}
		out = res
		if r, ok := res.(*protect.Result); ok && len(r.Refused) > 0 {
			partial = fmt.Sprintf("%d buckets not protected", len(r.Refused))
		}
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	if partial != "" {
		return &partialError{msg: partial}
	}
	return nil
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
// or the protect function's raw input (scheduled request or CloudFormation
// custom resource event).
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

// namesVault reports whether an input names its vault itself.
func namesVault(input any) bool {
	switch in := input.(type) {
	case restore.Request:
		return in.Vault != ""
	case snapshotEvent:
		var req snapshot.Request
		if json.Unmarshal(in, &req) != nil {
			return false
		}
		return (req.Job != nil && req.Job.Vault != "") || (req.BatchInput != nil && req.BatchInput.Job.Vault != "")
	}
	return false
}
