package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// Scheduler runs a backup plan's snapshot rules on their schedules, the
// local stand-in for EventBridge Scheduler and the snapshot state machine:
// at each rule's fire time it resolves the selections against the server's
// buckets (plan.ResolveBackups, the dispatch function's resolver) and takes
// a snapshot of each selected bucket, in-process.
// Continuous rules are served by the journal (Runner), not here.
type Scheduler struct {
	Plan       *plan.Plan
	Selections []plan.Selection
	Engine     *snapshot.Engine
	// S3 resolves the selections (ListBuckets, tags, whether a bucket is a
	// vault, versioning).
	S3 s3x.Client
	// Vault, when set, is the vault of every rule (else each rule's
	// TargetBackupVaultName names the vault bucket).
	Vault string
	Log   *slog.Logger
	// Now and Sleep are the clock (nil: the real one).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Done, when set, is called with every finished job.
	Done func(snapshot.Job)
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scheduler) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Run fires the rules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	type due struct {
		rule  *plan.Rule
		sched plan.Schedule
		next  time.Time
	}
	var rules []*due
	start := s.now()
	for i := range s.Plan.Rules {
		r := &s.Plan.Rules[i]
		if r.Continuous() {
			s.log().InfoContext(ctx, "continuous rule: served by the journal, not by snapshots", "rule", r.RuleName)
			continue
		}
		sched, err := r.Schedule()
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.RuleName, err)
		}
		next := sched.Next(start)
		if next.IsZero() {
			return fmt.Errorf("rule %s: schedule %s never fires after %s", r.RuleName, sched, start.Format(time.RFC3339))
		}
		rules = append(rules, &due{rule: r, sched: sched, next: next})
		s.log().InfoContext(ctx, "rule scheduled", "rule", r.RuleName, "schedule", sched.String(), "next", next)
	}
	if len(rules) == 0 {
		<-ctx.Done()
		return nil
	}
	for {
		sort.Slice(rules, func(i, j int) bool { return rules[i].next.Before(rules[j].next) })
		d := rules[0]
		if wait := d.next.Sub(s.now()); wait > 0 {
			if err := s.sleep(ctx, wait); err != nil {
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return nil
				}
				return err
			}
		}
		if _, err := s.Fire(ctx, d.rule, d.next); err != nil {
			s.log().ErrorContext(ctx, "scheduled backup failed", "rule", d.rule.RuleName, "error", err)
		}
		d.next = d.sched.Next(d.next)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Fire runs one rule now as if scheduled at scheduledAt: one snapshot job
// per bucket the selections take, resolved by plan.ResolveBackups as the
// dispatch function resolves them. Buckets a selection takes but that are
// not backed up (no versioning, unreadable, a vault) are logged with the
// reason.
func (s *Scheduler) Fire(ctx context.Context, r *plan.Rule, scheduledAt time.Time) ([]snapshot.Job, error) {
	ruleVault := s.Vault
	if ruleVault == "" {
		ruleVault = r.TargetBackupVaultName
	}
	res, err := plan.ResolveBackups(ctx, s.S3, s.Selections, ruleVault)
	if err != nil {
		return nil, err
	}
	for _, b := range res.NotBackedUp {
		s.log().WarnContext(ctx, "selected bucket not backed up", "rule", r.RuleName, "bucket", b.Name, "reason", b.Reason)
	}
	var jobs []snapshot.Job
	var errs []error
	for _, b := range res.Buckets {
		j, err := s.Engine.Run(ctx, snapshot.JobForRule(s.Plan, r, s.Vault, b.Name, scheduledAt))
		if err != nil {
			errs = append(errs, fmt.Errorf("snapshot of %s: %w", b.Name, err))
			continue
		}
		jobs = append(jobs, *j)
		if s.Done != nil {
			s.Done(*j)
		}
	}
	return jobs, errors.Join(errs...)
}
