package journal

import (
	"context"
	"time"

	"github.com/bucketvault/bucketvault/shared/obs"
)

// ReconcileRequest is the reconcile function's input; empty Buckets means
// every bucket the vault protects.
type ReconcileRequest struct {
	Buckets []string `json:"buckets,omitempty"`
	// Tags makes the runs that start read every current version's tags;
	// TagsEveryHours does so once the last reconcile that read them
	// started that many hours ago (ReconcileOptions).
	Tags           bool `json:"tags,omitempty"`
	TagsEveryHours int  `json:"tagsEveryHours,omitempty"`
}

// ReconcileResponse reports each bucket's progress; Complete is false when
// the deadline came first (the next invocation resumes).
type ReconcileResponse struct {
	Buckets  []Progress `json:"buckets"`
	Complete bool       `json:"complete"`
}

// deadlineMargin is left of an invocation for saving progress.
const deadlineMargin = 30 * time.Second

// HandleReconcile reconciles the requested buckets within the context's
// deadline.
func (j *Journal) HandleReconcile(ctx context.Context, req ReconcileRequest) (*ReconcileResponse, error) {
	buckets := req.Buckets
	if len(buckets) == 0 {
		pbs, err := j.Vault.Buckets(ctx)
		if err != nil {
			return nil, err
		}
		for _, b := range pbs {
			buckets = append(buckets, b.Bucket)
		}
	}
	var stopAt time.Time
	if d, ok := ctx.Deadline(); ok {
		stopAt = d.Add(-deadlineMargin)
	}
	resp := &ReconcileResponse{Complete: true}
	for _, b := range buckets {
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			resp.Complete = false
			break
		}
		p, err := j.Reconcile(ctx, b, ReconcileOptions{StopAt: stopAt, Tags: req.Tags, TagsEvery: time.Duration(req.TagsEveryHours) * time.Hour})
		if err != nil {
			return resp, err
		}
		resp.Buckets = append(resp.Buckets, p)
		if p.CompletedAt == nil {
			resp.Complete = false
		}
		obs.Metrics{}.Put(ctx, map[string]string{"Function": "reconcile", "Bucket": b}, map[string]obs.Value{
			"Listed": {V: float64(p.Listed), Unit: obs.Count}, "Added": {V: float64(p.Added), Unit: obs.Count},
			"Skipped": {V: float64(p.Skipped), Unit: obs.Count},
		})
	}
	return resp, nil
}
