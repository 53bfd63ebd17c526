// Package runner is the local runner behind `bucketvault serve`: it takes
// the bucket event notifications an S3-compatible server POSTs to its
// webhook, journals them in batches, and reconciles every protected bucket
// on an interval, as the journal function and the reconcile schedule do on
// AWS.
package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
)

// Runner journals webhook events and reconciles.
type Runner struct {
	Journal *journal.Journal
	// ReconcileEvery is the reconcile interval; 0 means 5 minutes, <0 never.
	ReconcileEvery time.Duration
	// ReconcileTagsEvery: a reconcile also reads every current version's
	// tags once the last one that did started this long ago (a tag change
	// whose event was lost is found no other way); 0 means a week, <0 never.
	ReconcileTagsEvery time.Duration
	// BatchSize and BatchWait bound a batch (defaults 500 changes, 500ms).
	BatchSize int
	BatchWait time.Duration
	Log       *slog.Logger

	mu        sync.Mutex
	queue     []event.Change
	wake      chan struct{}
	busy      bool
	stats     Stats
	idle      *sync.Cond
	startOnce sync.Once
}

// Stats count what the runner did.
type Stats struct {
	Received, Journaled, Failed, Skipped int64
	Reconciles                           int64
	LastReconcile                        time.Time
}

func (r *Runner) init() {
	r.startOnce.Do(func() {
		r.wake = make(chan struct{}, 1)
		r.idle = sync.NewCond(&r.mu)
		if r.BatchSize == 0 {
			r.BatchSize = 500
		}
		if r.BatchWait == 0 {
			r.BatchWait = 500 * time.Millisecond
		}
		if r.ReconcileEvery == 0 {
			r.ReconcileEvery = 5 * time.Minute
		}
		if r.ReconcileTagsEvery == 0 {
			r.ReconcileTagsEvery = 7 * 24 * time.Hour
		}
		if r.Log == nil {
			r.Log = slog.Default()
		}
	})
}

// Handle takes one webhook body. It decodes it and queues its changes; a
// body that does not decode is logged and acknowledged (a retry would not
// fix it). A crash loses at most the queue, which the next reconcile fills.
func (r *Runner) Handle(ctx context.Context, body []byte) error {
	r.init()
	changes, err := event.Decode(body)
	if err != nil {
		r.Log.ErrorContext(ctx, "undecodable event", "error", err)
		return nil
	}
	if len(changes) == 0 {
		return nil
	}
	r.mu.Lock()
	r.queue = append(r.queue, changes...)
	r.stats.Received += int64(len(changes))
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// Stats returns a copy of the counters.
func (r *Runner) Stats() Stats {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// WaitIdle blocks until the queue is empty and no batch is running.
func (r *Runner) WaitIdle() {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) > 0 || r.busy {
		r.idle.Wait()
	}
}

// Run journals queued changes and reconciles on the interval until ctx
// ends. It reconciles every protected bucket once at the start.
func (r *Runner) Run(ctx context.Context) error {
	r.init()
	if r.ReconcileEvery > 0 {
		r.reconcileAll(ctx)
	}
	var tick <-chan time.Time
	if r.ReconcileEvery > 0 {
		t := time.NewTicker(r.ReconcileEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			r.reconcileAll(ctx)
		case <-r.wake:
			r.drain(ctx)
		}
	}
}

// drain journals the queue in batches, waiting BatchWait for a batch to fill.
func (r *Runner) drain(ctx context.Context) {
	timer := time.NewTimer(r.BatchWait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.idle.Broadcast()
			r.mu.Unlock()
			return
		}
		if len(r.queue) < r.BatchSize {
			r.mu.Unlock()
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			r.mu.Lock()
		}
		n := min(len(r.queue), r.BatchSize)
		batch := append([]event.Change(nil), r.queue[:n]...)
		r.queue = r.queue[n:]
		r.busy = true
		r.mu.Unlock()

		results, st, err := r.Journal.Ingest(ctx, batch)
		r.mu.Lock()
		r.busy = false
		if err != nil {
			r.queue = append(batch, r.queue...) // the context ended: keep them
			r.idle.Broadcast()
			r.mu.Unlock()
			return
		}
		var retry []event.Change
		for _, res := range results {
			if res.Err != nil {
				retry = append(retry, res.Change)
			}
		}
		r.stats.Journaled += int64(st.Changes - st.Failed)
		r.stats.Failed += int64(st.Failed)
		r.stats.Skipped += int64(st.Skipped)
		r.queue = append(r.queue, retry...)
		r.idle.Broadcast()
		r.mu.Unlock()
		if len(retry) > 0 {
			select { // back off before trying failures again
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(r.BatchWait)
	}
}

func (r *Runner) reconcileAll(ctx context.Context) {
	buckets, err := r.Journal.Vault.Buckets(ctx)
	if err != nil {
		r.Log.ErrorContext(ctx, "reconcile: list protected buckets", "error", err)
		return
	}
	for _, b := range buckets {
		p, err := r.Journal.Reconcile(ctx, b.Bucket, journal.ReconcileOptions{TagsEvery: max(r.ReconcileTagsEvery, 0)})
		if err != nil {
			r.Log.ErrorContext(ctx, "reconcile", "bucket", b.Bucket, "error", err)
			continue
		}
		r.Log.InfoContext(ctx, "reconciled", "bucket", b.Bucket, "listed", p.Listed, "added", p.Added)
	}
	r.mu.Lock()
	r.stats.Reconciles++
	r.stats.LastReconcile = time.Now().UTC()
	r.mu.Unlock()
}
