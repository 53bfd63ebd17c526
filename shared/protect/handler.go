package protect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Request is the protect function's scheduled input: the buckets to keep
// protected. On AWS the function turns on EventBridge delivery and checks
// versioning; the initial full backup is left to the reconcile schedule,
// which resumes across invocations however large the bucket.
type Request struct {
	Buckets []string `json:"buckets"`
}

// Result reports each bucket.
type Result struct {
	Protected []string          `json:"protected"`
	Refused   map[string]string `json:"refused,omitempty"` // bucket -> why (not versioned, denied, ...)
}

// CloudFormation custom resource types the protect function serves.
const (
	// ResourceVault writes the vault's descriptor (see Descriptor).
	// Properties: RetentionDays.
	ResourceVault = "Custom::BucketvaultVault"
	// ResourceProtect protects buckets. Properties: Buckets.
	ResourceProtect = "Custom::BucketvaultProtect"
)

// Handler serves the protect function: a scheduled Request, or a
// CloudFormation custom resource event, so that a stack deployment
// initializes its vault (ResourceVault) and protects its buckets
// (ResourceProtect). Deleting either resource leaves the vault and the
// buckets' protection alone: nothing backed up is ever removed by it.
//
// A custom resource event is always answered, to CloudFormation, with
// SUCCESS or FAILED and the reason, whatever fails (opening the vault
// included): a function that returned an error instead would leave the
// stack waiting for the resource's timeout.
type Handler struct {
	// Journal protects the buckets. When nil, OpenJournal makes it on
	// first need (the vault must exist by then).
	Journal     *journal.Journal
	OpenJournal func(ctx context.Context) (*journal.Journal, error)
	// S3 and Vault are the client and vault bucket ResourceVault writes
	// the descriptor with (when nil and empty: Journal's).
	S3    s3x.Client
	Vault string
	Log   *slog.Logger
	// Buckets are protected when a scheduled request names none.
	Buckets []string
}

// Handle decides which input it got.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	ev, isCFN, err := decodeCustomResource(raw)
	if err != nil {
		return nil, err
	}
	if isCFN {
		return cfn.LambdaWrap(h.customResource)(ctx, ev)
	}
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("protect: decode request: %w", err)
	}
	if len(req.Buckets) == 0 {
		req.Buckets = h.Buckets
	}
	j, err := h.journal(ctx)
	if err != nil {
		return nil, err
	}
	return h.protectAll(ctx, j, req.Buckets)
}

// decodeCustomResource recognizes a CloudFormation custom resource event:
// a RequestType and the ResponseURL to answer on.
func decodeCustomResource(raw json.RawMessage) (cfn.Event, bool, error) {
	var probe struct {
		RequestType string `json:"RequestType"`
		ResponseURL string `json:"ResponseURL"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return cfn.Event{}, false, fmt.Errorf("protect: decode input: %w", err)
	}
	if probe.RequestType == "" || probe.ResponseURL == "" {
		return cfn.Event{}, false, nil
	}
	var ev cfn.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return ev, false, fmt.Errorf("protect: decode custom resource event: %w", err)
	}
	return ev, true, nil
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

func (h *Handler) journal(ctx context.Context) (*journal.Journal, error) {
	if h.Journal != nil {
		return h.Journal, nil
	}
	if h.OpenJournal == nil {
		return nil, errors.New("protect: no journal to protect buckets with")
	}
	return h.OpenJournal(ctx)
}

func (h *Handler) vaultTarget() (s3x.Client, string) {
	c, name := h.S3, h.Vault
	if j := h.Journal; j != nil && j.Vault != nil {
		if c == nil {
			c = j.S3
		}
		if name == "" {
			name = j.Vault.Bucket
		}
	}
	return c, name
}

// UnknownResourceError refuses a custom resource type this function does
// not serve.
type UnknownResourceError struct{ Type string }

func (e *UnknownResourceError) Error() string {
	return fmt.Sprintf("protect: custom resource type %q is not served here (want %s or %s)", e.Type, ResourceVault, ResourceProtect)
}

func (h *Handler) customResource(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	switch ev.ResourceType {
	case ResourceVault:
		return h.vaultResource(ctx, ev)
	case ResourceProtect:
		return h.protectResource(ctx, ev)
	}
	// Deleting what was never created (a rollback) must not fail.
	if ev.RequestType == cfn.RequestDelete {
		return ev.PhysicalResourceID, nil, nil
	}
	return "", nil, &UnknownResourceError{Type: ev.ResourceType}
}

func (h *Handler) vaultResource(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	c, name := h.vaultTarget()
	id := "bucketvault-vault-" + name
	if ev.RequestType == cfn.RequestDelete {
		return id, nil, nil // the vault outlives the stack
	}
	days, err := intProperty(ev.ResourceProperties, "RetentionDays")
	if err != nil {
		return id, nil, err
	}
	if c == nil || name == "" {
		return id, nil, errors.New("protect: no vault bucket configured")
	}
	d, created, err := Descriptor(ctx, c, name, days)
	if err != nil {
		return id, nil, err
	}
	h.log().InfoContext(ctx, "vault descriptor", "vault", name, "created", created, "retentionDays", d.RetentionDays)
	// Fn::GetAtt reads these; CloudFormation's attributes are strings.
	return id, map[string]any{
		"Format": d.Format, "FormatVersion": strconv.Itoa(d.FormatVersion), "RetentionDays": strconv.Itoa(d.RetentionDays),
		"CreatedAt": d.CreatedAt.UTC().Format(time.RFC3339), "Created": strconv.FormatBool(created),
	}, nil
}

func (h *Handler) protectResource(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	_, name := h.vaultTarget()
	id := "bucketvault-protect-" + name
	if ev.RequestType == cfn.RequestDelete {
		return id, nil, nil
	}
	var buckets []string
	if list, ok := ev.ResourceProperties["Buckets"].([]any); ok {
		for _, b := range list {
			if s, ok := b.(string); ok {
				buckets = append(buckets, s)
			}
		}
	}
	j, err := h.journal(ctx)
	if err != nil {
		return id, nil, err
	}
	res, err := h.protectAll(ctx, j, buckets)
	if err != nil {
		return id, nil, err
	}
	if len(res.Refused) > 0 {
		return id, nil, fmt.Errorf("buckets not protected: %v", res.Refused)
	}
	return id, map[string]any{"Protected": strconv.Itoa(len(res.Protected))}, nil
}

// intProperty reads a whole number property; CloudFormation passes every
// scalar property to a custom resource as a string.
func intProperty(props map[string]any, name string) (int, error) {
	switch v := props[name].(type) {
	case nil:
		return 0, nil
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("protect: property %s: %v is not a whole number", name, props[name])
}

func (h *Handler) protectAll(ctx context.Context, j *journal.Journal, buckets []string) (*Result, error) {
	res := &Result{Refused: map[string]string{}}
	for _, b := range buckets {
		_, _, err := Protect(ctx, j, b, Options{EventBridge: true, SkipInitialBackup: true})
		var nv *NotVersionedError
		switch {
		case err == nil:
			res.Protected = append(res.Protected, b)
		case errors.As(err, &nv):
			res.Refused[b] = err.Error()
			h.log().ErrorContext(ctx, "bucket not protected", "bucket", b, "error", err)
		default:
			return res, err
		}
	}
	return res, nil
}

// Unavailable is the handler of a protect function that could not start
// (its configuration or its clients failed): err is the reason. A custom
// resource Create or Update is answered FAILED with that reason at once,
// so the deployment fails with it rather than waiting an hour for an
// answer; a Delete is answered SUCCESS, because deleting either resource
// never does anything (and a failed Delete would leave a rolled-back stack
// stuck in DELETE_FAILED). Any other input fails with err.
func Unavailable(err error) func(context.Context, json.RawMessage) (any, error) {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		ev, isCFN, derr := decodeCustomResource(raw)
		if derr != nil || !isCFN {
			return nil, err
		}
		return cfn.LambdaWrap(func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
			if ev.RequestType == cfn.RequestDelete {
				slog.WarnContext(ctx, "custom resource deleted while the function cannot start; deleting does nothing", "error", err)
				return ev.PhysicalResourceID, nil, nil
			}
			return "", nil, err
		})(ctx, ev)
	}
}
