package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// identity names one version or delete marker: its id, and for the "null"
// version (which S3 overwrites in place) also its ETag and second.
func identity(versionID, etag string, t time.Time) string {
	if versionID != "null" && versionID != "" {
		return versionID
	}
	return "null|" + etag + "|" + strconv.FormatInt(t.Unix(), 10)
}

// keyState is what the journal knows of one key.
type keyState struct {
	known    map[string]bool // identities recorded as version, marker or final skip
	live     map[string]vault.Record
	sequence map[string]bool // version ids whose record carries a sequencer
	orders   [][]string
}

func stateOf(recs []vault.Observed) keyState {
	s := keyState{known: map[string]bool{}, live: map[string]vault.Record{}, sequence: map[string]bool{}}
	purged := map[string]bool{}
	for _, o := range recs {
		r := o.Record
		id := identity(r.VersionID, r.ETag, r.Time)
		switch r.Op {
		case vault.OpVersion, vault.OpDeleteMarker:
			s.known[id] = true
			s.live[id] = r
			if r.Sequencer != "" {
				s.sequence[r.VersionID] = true
			}
		case vault.OpSkip:
			// SSE-C and archived versions stay skipped until an event (a
			// restore completing) says otherwise; others are tried again.
			if r.Reason == vault.SkipSSEC || r.Reason == vault.SkipArchived {
				s.known[r.VersionID] = true
			}
		case vault.OpPurge:
			purged[id] = true
		case vault.OpOrder:
			s.orders = append(s.orders, r.Order)
		}
	}
	for id := range purged {
		delete(s.live, id)
	}
	return s
}

// reconcileKey compares one key's listing (newest first) with the
// journal's records of it and returns the records the journal lacks:
// versions and delete markers it never saw, purges of versions no longer
// listed, and the true order of versions that share a second.
func (j *Journal) reconcileKey(ctx context.Context, bucket, key string, entries []s3x.Entry, recs []vault.Observed, now time.Time) ([]vault.Record, error) {
	st := stateOf(recs)
	var out []vault.Record
	listed := map[string]bool{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.concurrency())
	for i := range entries {
		e := entries[i]
		id := identity(e.VersionID, e.ETag, e.LastModified)
		listed[id] = true
		if st.known[id] || st.known[e.VersionID] && e.VersionID != "null" {
			continue
		}
		if e.IsDeleteMarker {
			out = append(out, vault.Record{Op: vault.OpDeleteMarker, Key: key, VersionID: e.VersionID, Time: e.LastModified.UTC(), Origin: vault.OriginReconcile})
			continue
		}
		g.Go(func() error {
			rec, err := j.captureVersion(gctx, bucket, key, e.VersionID, &e)
			if err != nil {
				return err
			}
			rec.Origin = vault.OriginReconcile
			mu.Lock()
			out = append(out, rec)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var gone []string
	for id := range st.live {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		r := st.live[id]
		out = append(out, vault.Record{Op: vault.OpPurge, Key: key, VersionID: r.VersionID, ETag: r.ETag, Time: now, Origin: vault.OriginReconcile})
	}
	out = append(out, orderRecords(key, entries, st)...)
	return out, nil
}

// orderRecords returns an OpOrder record for every group of two or more
// entries that share a second, unless sequencers or an earlier order
// record already order the group.
func orderRecords(key string, entries []s3x.Entry, st keyState) []vault.Record {
	var out []vault.Record
	for i := 0; i < len(entries); {
		sec := entries[i].LastModified.Unix()
		k := i
		for k < len(entries) && entries[k].LastModified.Unix() == sec {
			k++
		}
		group := entries[i:k]
		i = k
		if len(group) < 2 {
			continue
		}
		ids := make([]string, 0, len(group))
		sequenced := true
		for g := len(group) - 1; g >= 0; g-- { // oldest first
			ids = append(ids, group[g].VersionID)
			sequenced = sequenced && st.sequence[group[g].VersionID]
		}
		if sequenced || coveredBy(ids, st.orders) {
			continue
		}
		out = append(out, vault.Record{Op: vault.OpOrder, Key: key, Time: group[0].LastModified.UTC(), Order: ids, Origin: vault.OriginReconcile})
	}
	return out
}

func coveredBy(ids []string, orders [][]string) bool {
	for _, o := range orders {
		pos := map[string]int{}
		for i, id := range o {
			pos[id] = i
		}
		ok, last := true, -1
		for _, id := range ids {
			p, in := pos[id]
			if !in || p < last {
				ok = false
				break
			}
			last = p
		}
		if ok {
			return true
		}
	}
	return false
}

// Progress is a bucket's reconcile progress, kept in the vault so a crashed
// reconcile resumes after the last key it finished.
type Progress struct {
	Bucket      string     `json:"bucket"`
	StartedAt   time.Time  `json:"startedAt"`
	KeyMarker   string     `json:"keyMarker,omitempty"` // every key up to and including this one is done
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Listed      int64      `json:"listed"`
	Added       int64      `json:"added"`
	Skipped     int64      `json:"skipped"`
}

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	// PageSize of ListObjectVersions; 0 means 1000.
	PageSize int32
	// FlushRecords: write a segment (and save progress) once this many
	// records are pending; 0 means 5000.
	FlushRecords int
	// Progress, when set, is called after each listed page.
	Progress func(Progress)
	// StopAt, when set, ends the run at the first key boundary after it,
	// with progress saved and CompletedAt unset: the next run resumes there
	// (a Lambda invocation's deadline, say).
	StopAt time.Time
}

// Reconcile walks ListObjectVersions of bucket and adds to the journal
// every version and delete marker it lacks, purges of versions that are
// gone, and order records. The first reconcile of a bucket is its full
// backup. It resumes an unfinished earlier run where that one stopped.
func (j *Journal) Reconcile(ctx context.Context, bucket string, o ReconcileOptions) (Progress, error) {
	if o.PageSize == 0 {
		o.PageSize = 1000
	}
	if o.FlushRecords == 0 {
		o.FlushRecords = 5000
	}
	v := j.Vault
	var p Progress
	if err := v.GetJSON(ctx, vault.ReconcileKey(bucket), &p); err != nil && !s3x.IsNotFound(err) {
		return Progress{}, err
	}
	if p.CompletedAt != nil || p.Bucket == "" {
		p = Progress{Bucket: bucket, StartedAt: time.Now().UTC()}
	}
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		return p, err
	}
	defer m.Close()
	jk, jrecs, jerr := m.NextKey()
	advance := func(upTo string) error { // skip journal keys < upTo, purging them
		for jerr == nil && jk < upTo {
			jk, jrecs, jerr = m.NextKey()
		}
		if jerr != nil && !errors.Is(jerr, io.EOF) {
			return jerr
		}
		return nil
	}
	if err := advance(p.KeyMarker + "\x00"); err != nil {
		return p, err
	}

	var pending []vault.Record
	flush := func(marker string) error {
		if len(pending) > 0 {
			if _, err := v.WriteSegment(ctx, bucket, pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
		p.KeyMarker = marker
		return v.PutJSON(ctx, vault.ReconcileKey(bucket), p)
	}
	// handle reconciles one listed key, and first every journal key before
	// it that the listing no longer has (all its versions purged).
	handle := func(key string, entries []s3x.Entry) error {
		now := time.Now().UTC()
		for jerr == nil && jk < key {
			recs, err := j.reconcileKey(ctx, bucket, jk, nil, jrecs, now)
			if err != nil {
				return err
			}
			pending = append(pending, recs...)
			jk, jrecs, jerr = m.NextKey()
		}
		if jerr != nil && !errors.Is(jerr, io.EOF) {
			return jerr
		}
		var known []vault.Observed
		if jerr == nil && jk == key {
			known = jrecs
			jk, jrecs, jerr = m.NextKey()
		}
		recs, err := j.reconcileKey(ctx, bucket, key, entries, known, now)
		if err != nil {
			return fmt.Errorf("reconcile s3://%s/%s: %w", bucket, key, err)
		}
		for _, r := range recs {
			if r.Op == vault.OpSkip {
				p.Skipped++
			}
		}
		p.Added += int64(len(recs))
		pending = append(pending, recs...)
		return nil
	}

	l := s3x.NewVersionLister(j.S3, bucket, "", p.KeyMarker, "", o.PageSize)
	var curKey string
	var cur []s3x.Entry
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			return p, err
		}
		for _, e := range page {
			p.Listed++
			if e.Key != curKey && cur != nil {
				if err := handle(curKey, cur); err != nil {
					return p, err
				}
				if len(pending) >= o.FlushRecords {
					if err := flush(curKey); err != nil {
						return p, err
					}
				}
				cur = nil
				if !o.StopAt.IsZero() && time.Now().After(o.StopAt) {
					return p, flush(curKey)
				}
			}
			curKey = e.Key
			cur = append(cur, e)
		}
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	if cur != nil {
		if err := handle(curKey, cur); err != nil {
			return p, err
		}
	}
	// Journal keys after the last listed key are gone entirely.
	if err := j.purgeRest(ctx, bucket, m, &jk, &jrecs, &jerr, &pending); err != nil {
		return p, err
	}
	done := time.Now().UTC()
	p.CompletedAt = &done
	if err := flush(""); err != nil {
		return p, err
	}
	m.Close()
	if err := j.compactIfDue(ctx, bucket); err != nil {
		return p, err
	}
	return p, nil
}

// CompactAfter is how many segments after the latest run make a reconcile
// compact the journal.
var CompactAfter = 256

func (j *Journal) compactIfDue(ctx context.Context, bucket string) error {
	run, err := j.Vault.LatestRun(ctx, bucket)
	if err != nil {
		return err
	}
	refs, err := j.Vault.Segments(ctx, bucket)
	if err != nil {
		return err
	}
	after := 0
	for _, r := range refs {
		if run == nil || r.ID > run.Cut {
			after++
		}
	}
	if after < CompactAfter {
		return nil
	}
	st, err := j.Vault.Compact(ctx, bucket, time.Now())
	if err != nil {
		return fmt.Errorf("compact journal of %s: %w", bucket, err)
	}
	j.log().InfoContext(ctx, "journal compacted", "bucket", bucket, "segments", st.Segments, "records", st.Records, "shards", st.Shards)
	return nil
}

func (j *Journal) purgeRest(ctx context.Context, bucket string, m *vault.Merger, jk *string, jrecs *[]vault.Observed, jerr *error, pending *[]vault.Record) error {
	now := time.Now().UTC()
	for *jerr == nil {
		recs, err := j.reconcileKey(ctx, bucket, *jk, nil, *jrecs, now)
		if err != nil {
			return err
		}
		*pending = append(*pending, recs...)
		*jk, *jrecs, *jerr = m.NextKey()
	}
	if errors.Is(*jerr, io.EOF) {
		return nil
	}
	return *jerr
}
