package protect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/bucketvault/bucketvault/shared/journal"
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

// Handler serves the protect function: a scheduled Request, or a
// CloudFormation custom resource event (ResourceProperties.Buckets) so that a
// stack deployment protects its buckets. Deleting the custom resource leaves
// protection and the vault alone: nothing backed up is ever removed by it.
type Handler struct {
	Journal *journal.Journal
	Log     *slog.Logger
	// Buckets are protected when a scheduled request names none.
	Buckets []string
}

// Handle decides which input it got.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		RequestType string `json:"RequestType"`
		ResponseURL string `json:"ResponseURL"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("protect: decode input: %w", err)
	}
	if probe.RequestType != "" && probe.ResponseURL != "" {
		var ev cfn.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("protect: decode custom resource event: %w", err)
		}
		return cfn.LambdaWrap(h.customResource)(ctx, ev)
	}
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("protect: decode request: %w", err)
	}
	if len(req.Buckets) == 0 {
		req.Buckets = h.Buckets
	}
	return h.protectAll(ctx, req.Buckets)
}

func (h *Handler) customResource(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	id := "bucketvault-protect-" + h.Journal.Vault.Bucket
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
	res, err := h.protectAll(ctx, buckets)
	if err != nil {
		return id, nil, err
	}
	if len(res.Refused) > 0 {
		return id, nil, fmt.Errorf("buckets not protected: %v", res.Refused)
	}
	return id, map[string]any{"Protected": len(res.Protected)}, nil
}

func (h *Handler) protectAll(ctx context.Context, buckets []string) (*Result, error) {
	res := &Result{Refused: map[string]string{}}
	for _, b := range buckets {
		_, _, err := Protect(ctx, h.Journal, b, Options{EventBridge: true, SkipInitialBackup: true})
		var nv *NotVersionedError
		switch {
		case err == nil:
			res.Protected = append(res.Protected, b)
		case errors.As(err, &nv):
			res.Refused[b] = err.Error()
			h.Log.ErrorContext(ctx, "bucket not protected", "bucket", b, "error", err)
		default:
			return res, err
		}
	}
	return res, nil
}
