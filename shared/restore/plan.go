package restore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The plan of a restore: the selection as of T, streamed in key order
// from the snapshot's shards and the journal (and, for a rollback, the
// target's listing), as one task per key to write and one per key to
// mark deleted. In-process restores hand the tasks straight to their
// workers; the restore state machine's plan step writes them to work
// items in the vault, in key ranges, for its Distributed Map (workflow.go).
// Both stream the same plan, and both run the rollback's delete markers
// after every write.

// planRound is one pass of the plan, from after (exclusive; "" from the
// first key) until the end or until stop says to stop at a key boundary.
type planRound struct {
	after string
	// write and mark take the tasks: a key to write, a key to mark
	// deleted.
	write, mark func(task) error
	// stop, asked after each key, ends the round there.
	stop func() bool
}

// planResult is where a round stopped: the last key it finished ("" when
// it finished none) and whether it reached the end of the selection.
type planResult struct {
	last string
	done bool
}

// plan streams one round of the plan. What the plan itself learns (keys
// absent at T, keys left uncertain, requested keys never seen, damaged
// journal objects) goes into rep.
func (r *Restorer) plan(ctx context.Context, v *vault.Vault, req Request, base *vault.SnapshotPoint, rep *Report, round planRound) (planResult, error) {
	sel := newSelection(req)
	var m *vault.Merger
	var err error
	switch {
	case req.RecoveryPointID != "":
		m, err = vault.NewMerger([]vault.RecordSource{v.OpenShardsAfter(ctx, base.Shards, sel.scope(), round.after)})
	default:
		// The journal, and the newest snapshot before T as the starting
		// state of keys the journal lacks (those of a bucket backed up
		// only by snapshots, or from before it was protected).
		var extra []vault.RecordSource
		if base != nil {
			extra = append(extra, v.OpenShards(ctx, base.Shards, sel.scope()))
		}
		m, err = v.OpenJournalAfter(ctx, req.Bucket, sel.scope(), round.after, extra...)
	}
	if err != nil {
		return planResult{}, err
	}
	defer m.Close()
	var target *targetLister
	if req.Mode == Rollback && !(req.DryRun && req.CreateBucket) { // a bucket a dry run would create holds nothing
		target = newTargetLister(r.S3, req.TargetBucket, sel, round.after)
	}
	res, err := r.produce(ctx, m, target, sel, req, rep, round)
	rep.mu.Lock() // a heartbeat reads the report
	defer rep.mu.Unlock()
	for _, d := range m.Damage() {
		var w string
		if d.Lost {
			if !slices.ContainsFunc(rep.Unvouched, func(u vault.Damage) bool { return u.Object == d.Object }) {
				rep.Unvouched = append(rep.Unvouched, d)
			}
			switch {
			case d.InSnapshot():
				// The snapshot's manifest is the restore's only source:
				// the keys that shard held are unknown, none is named.
				w = d.String() + "; the keys it held are unknown to this restore and none of them is written: restore them from another recovery point (`bucketvault recovery-points`)"
			case req.IncludeUncertain:
				w = d.String() + "; the keys in that range the rest of the vault knows are restored as it knows them, and named uncertain"
			default:
				w = d.String() + "; the keys in that range the rest of the vault knows are not written, and named uncertain (--include-uncertain restores them as it knows them)"
			}
		} else {
			w = d.String() + "; run `bucketvault vault repair --vault " + v.Bucket + "` to put it back"
		}
		// A later round of the same plan finds the same damage.
		if !slices.Contains(rep.Warnings, w) {
			rep.Warnings = append(rep.Warnings, w)
		}
	}
	return res, err
}

// produce merges the journal (and, for a rollback, the target's listing)
// in key order and hands out one task per key to restore or mark deleted.
func (r *Restorer) produce(ctx context.Context, m *vault.Merger, target *targetLister, sel selection, req Request, rep *Report, round planRound) (planResult, error) {
	at := req.At
	res := planResult{last: round.after}
	markDeleted := func(k string) error {
		if d, ok := vault.Covered(m.Damage(), k); ok {
			// The key may have existed at T: leave it as it is, and say so.
			rep.addUncertain(Mapping{Key: k, Action: ActionAbsent, Uncertain: "left in the target: journal object " + d.Object + " that may hold records of this key is lost: " + d.Reason})
			return nil
		}
		return round.mark(task{key: k, marker: true})
	}
	// Requested keys the journal never saw, from those after the round's
	// start: each is unknown once the round has passed it.
	var unseen []string
	for k := range sel.keys {
		if k > round.after {
			unseen = append(unseen, k)
		}
	}
	sort.Strings(unseen)
	seen := map[string]bool{}
	defer func() {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		for _, k := range unseen {
			if !seen[k] && (res.done || k <= res.last) {
				rep.Unknown = append(rep.Unknown, k)
			}
		}
		sort.Strings(rep.Unknown)
	}()
	for {
		if round.stop != nil && res.last != round.after && round.stop() {
			return res, nil
		}
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		if !sel.has(key) {
			continue
		}
		if sel.keys[key] {
			seen[key] = true // requested keys only: the rest need no memory
		}
		if target != nil {
			if err := target.before(ctx, key, markDeleted); err != nil {
				return res, err
			}
		}
		if err := r.planKey(key, recs, m, target, at, req.IncludeUncertain, rep, round); err != nil {
			return res, err
		}
		res.last = key
	}
	if target != nil {
		// The target's keys after the journal's last: none existed at T.
		for {
			if round.stop != nil && res.last != round.after && round.stop() {
				return res, nil
			}
			k, ok, err := target.next(ctx)
			if err != nil {
				return res, err
			}
			if !ok {
				break
			}
			if err := markDeleted(k); err != nil {
				return res, err
			}
			res.last = k
		}
	}
	res.done = true
	return res, nil
}

// planKey decides one key of the journal: a write, a delete marker, or
// nothing (and what the report says of it).
func (r *Restorer) planKey(key string, recs []vault.Observed, m *vault.Merger, target *targetLister, at time.Time, includeUncertain bool, rep *Report, round planRound) error {
	uncertain := ""
	obj, ok, cur := vault.StateOf(recs, at)
	if d, lost := vault.CoveredAt(m.Damage(), key, cur); lost {
		uncertain = "journal object " + d.Object + " that may hold records of this key is lost: " + d.Reason
		if !d.JournaledBy.IsZero() {
			uncertain += " (it held changes made by " + d.JournaledBy.Format(time.RFC3339) + ")"
		}
		if !includeUncertain {
			rep.addUncertain(Mapping{Key: key, Action: ActionSkipped, Uncertain: uncertain + "; not written (--include-uncertain restores it as the rest of the vault knows it)"})
			return nil
		}
	}
	if u := vault.UncertainFor(recs, at, cur); u != "" {
		if uncertain != "" {
			uncertain += "; "
		}
		uncertain += u
	}
	if !ok {
		rep.addAbsent()
		switch {
		case uncertain != "":
			// It may have existed: never delete what cannot be known.
			rep.addUncertain(Mapping{Key: key, Action: ActionAbsent, Uncertain: uncertain})
		case target != nil && target.has(key):
			return round.mark(task{key: key, marker: true})
		}
		return nil
	}
	return round.write(task{key: key, obj: obj, uncertain: uncertain})
}

// markerSpool holds a plan's delete markers on local disk until every
// write is done (an in-process restore's rollback step): one JSON string
// per line, whatever the keys hold.
type markerSpool struct {
	f *os.File
	w *bufio.Writer
	n int
}

func (s *markerSpool) add(t task) error {
	if s.f == nil {
		f, err := os.CreateTemp("", "bucketvault-restore-markers-*")
		if err != nil {
			return fmt.Errorf("spool delete markers: %w", err)
		}
		s.f, s.w = f, bufio.NewWriter(f)
	}
	b, err := json.Marshal(t.key)
	if err != nil {
		return err
	}
	s.n++
	_, _ = s.w.Write(b)
	return s.w.WriteByte('\n')
}

// each calls fn with every spooled key, in the order added.
func (s *markerSpool) each(fn func(task) error) error {
	if s.f == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool delete markers: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(s.f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		var k string
		if err := json.Unmarshal(sc.Bytes(), &k); err != nil {
			return fmt.Errorf("spooled delete markers: %w", err)
		}
		if err := fn(task{key: k, marker: true}); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (s *markerSpool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// isDeleteMarked reports whether key's current version in bucket is a
// delete marker (a rollback run again finds its own markers).
func isDeleteMarked(ctx context.Context, c s3x.Client, bucket, key string) (bool, error) {
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	switch {
	case err == nil:
		return false, nil
	case s3x.IsDeleteMarker(err):
		return true, nil
	case s3x.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("head s3://%s/%s: %w", bucket, key, err)
}
