package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// scanProgress is the scan's saved progress (vault.SnapshotScanKey): the
// state and which chunks are work-item files, as ranges of chunk numbers.
// It is saved at most every progressEvery while a round lists (and when
// the round ends), so a scan of a billion objects rewrites it thousands
// of times, not once per chunk; a round that crashes lists again from the
// last save, rewriting the same chunks.
type scanProgress struct {
	State ScanState  `json:"state"`
	Items itemRanges `json:"itemRanges"`
}

// loadProgress reads a job's saved scan progress; found is false when
// the scan has saved none yet.
func loadProgress(ctx context.Context, v *vault.Vault, jobID string) (prog scanProgress, found bool, err error) {
	switch err := v.GetJSON(ctx, vault.SnapshotScanKey(jobID), &prog); {
	case s3x.IsNotFound(err):
		return prog, false, nil
	case err != nil:
		return prog, false, err
	}
	return prog, true, nil
}

// lostProgress is the error of a job whose scan ran but whose saved
// progress is gone. Every scan round saves it before it returns, so
// either the vault's lifecycle expired it (it is a scratch file), or the
// job's earlier steps ran under a writer of format 1, which keeps a job's
// working files under jobs/<job>/ (a job running across an upgrade). Its
// work-item files and fragments cannot be found either: the job cannot go
// on, and a seal without them would leave objects out of the snapshot
// unsaid.
func lostProgress(job Job) error {
	return invalid("job %s: the scan's saved progress %s is missing after %d rounds (the vault's lifecycle expired the job's scratch files, or a writer of format 1 kept them under jobs/%s/: a snapshot job started before an upgrade cannot go on after it): start a new backup",
		job.JobID, vault.SnapshotScanKey(job.JobID), job.Scan.Rounds, job.JobID)
}

// progressEvery is how often a listing round saves its progress.
const progressEvery = 5 * time.Second

// itemRanges are the chunks that are work-item files: inclusive ranges
// of chunk numbers, ascending. A full snapshot is one range; an
// incremental one a range per run of changed chunks.
type itemRanges [][2]int

func (r *itemRanges) add(n int) {
	if k := len(*r); k > 0 && (*r)[k-1][1] == n-1 {
		(*r)[k-1][1] = n
		return
	}
	*r = append(*r, [2]int{n, n})
}

// has reports whether chunk n is a work-item file.
func (r itemRanges) has(n int) bool {
	i := sort.Search(len(r), func(i int) bool { return r[i][1] >= n })
	return i < len(r) && r[i][0] <= n
}

// refs are the Distributed Map's items: the work-item files, in order.
func (r itemRanges) refs(jobID string) []ItemRef {
	out := []ItemRef{}
	for _, x := range r {
		for n := x[0]; n <= x[1]; n++ {
			out = append(out, ItemRef{N: n, Key: vault.SnapshotItemKey(jobID, n)})
		}
	}
	return out
}

// Scan lists the bucket from where the last round stopped and writes its
// current objects as chunks: a chunk the vault already holds entirely (the
// previous snapshot or the journal has every version) becomes a manifest
// fragment at once; any other becomes a work-item file for the copy step.
// It returns with Scan.Done false when its budget runs out (call it again)
// and true when the listing ended or the completion window stopped it.
func (e *Engine) Scan(ctx context.Context, job Job) (*Job, error) {
	if err := job.started(); err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, e.S3, job.Vault)
	if err != nil {
		return nil, classify(err)
	}
	prog, found, err := loadProgress(ctx, v, job.JobID)
	if err != nil {
		return nil, classify(err)
	}
	if !found {
		if job.Scan.Rounds > 0 && !job.Scan.Done {
			return nil, lostProgress(job)
		}
		prog.State = job.Scan
	}
	if prog.State.Done {
		job.Scan = prog.State
		return &job, nil
	}
	prog.State.Rounds++
	chunk := e.chunkSize()
	st := &prog.State
	var lister pager
	if job.Inventory == nil {
		// The first page is listed while the vault's snapshots and journal
		// are opened.
		pf := newPrefetch(ctx, s3x.NewVersionLister(e.S3, job.Bucket, "", st.KeyMarker, st.VersionIDMarker, int32(min(chunk, 1000))))
		defer pf.close()
		lister = pf
	}
	known, err := e.openKnown(ctx, v, job)
	if err != nil {
		return nil, classify(err)
	}
	defer known.close()
	deadline := e.scanDeadline(ctx, job)
	if job.Inventory != nil {
		// The inventory's rows, sorted into runs in earlier rounds (or
		// this one), merged: the same key order as a listing.
		done, err := e.sortInventory(ctx, v, job, st, deadline)
		if err != nil {
			return nil, classify(err)
		}
		if stop := job.stopAt(); !done && !stop.IsZero() && !e.now().Before(stop) {
			// The window ended before the inventory was read: nothing is
			// in the snapshot.
			st.Done, st.Stopped, st.EndedAt, st.ItemsKey = true, true, e.now(), vault.SnapshotItemsListKey(job.JobID)
			if err := v.PutJSON(ctx, st.ItemsKey, []ItemRef{}); err != nil {
				return nil, classify(err)
			}
			if err := v.PutJSON(ctx, vault.SnapshotScanKey(job.JobID), prog); err != nil {
				return nil, classify(err)
			}
			job.Scan = *st
			return &job, nil
		}
		if !done { // more data files next round
			if err := v.PutJSON(ctx, vault.SnapshotScanKey(job.JobID), prog); err != nil {
				return nil, classify(err)
			}
			job.Scan = *st
			return &job, nil
		}
		il, err := e.inventoryPager(ctx, v, st, chunk)
		if err != nil {
			return nil, classify(err)
		}
		defer il.close()
		lister = il
	}
	var recs []vault.Record
	toCopy := 0
	saved := time.Now()
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		st.Files++
		n := st.Files
		if toCopy == 0 {
			if err := v.WriteRecords(ctx, job.Bucket, vault.JobFragmentKey(job.JobID, n), recs, summarize(recs, CopyResult{}, stepScan).meta()); err != nil {
				return err
			}
		} else {
			// An attempt of this round that crashed after its last save
			// may have written this chunk as a fragment, when the bucket
			// held other versions: the scan's fragments say so (stepScan),
			// and neither the copy step nor the seal takes one for a
			// work-item chunk's.
			if err := v.WriteRecords(ctx, job.Bucket, vault.SnapshotItemKey(job.JobID, n), recs, nil); err != nil {
				return err
			}
			prog.Items.add(n)
			st.ItemFiles++
		}
		st.KeyMarker, st.VersionIDMarker = lister.Markers()
		recs, toCopy = recs[:0], 0
		if job.Inventory != nil || !lister.HasMorePages() || time.Since(saved) < progressEvery {
			// The merge of an inventory's runs restarts whole, and the
			// listing's last chunk is followed by the end of the scan:
			// progress is saved there, so a restart rewrites the same chunks.
			return nil
		}
		saved = time.Now()
		return v.PutJSON(ctx, vault.SnapshotScanKey(job.JobID), prog)
	}
	now := e.now()
	stop := job.stopAt()
	for pages := 0; lister.HasMorePages(); pages++ {
		// A listing resumes from its markers; an inventory merge runs to
		// its end. Each call lists at least one page, so rounds progress.
		if job.Inventory == nil && ((!stop.IsZero() && !e.now().Before(stop)) ||
			(pages > 0 && (e.now().After(deadline) || (e.ScanPages > 0 && pages >= e.ScanPages)))) {
			break
		}
		entries, err := lister.Next(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("list s3://%s: %w", job.Bucket, err))
		}
		for _, en := range entries {
			if !en.IsLatest || en.IsDeleteMarker {
				continue // a snapshot holds current objects only
			}
			rec, have, err := known.lookup(en, job.Bucket, now)
			if err != nil {
				return nil, classify(err)
			}
			if !have {
				toCopy++
				st.ToCopy++
			}
			st.Current++
			recs = append(recs, rec)
		}
		if e.Progress != nil {
			e.Progress(Progress{Listed: st.Current})
		}
		if len(recs) >= chunk || !lister.HasMorePages() {
			if err := flush(); err != nil {
				return nil, classify(err)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, classify(err)
	}
	if lister.HasMorePages() {
		if stop := job.stopAt(); !stop.IsZero() && !e.now().Before(stop) {
			st.Done, st.Stopped = true, true
		}
	} else {
		st.Done = true
		st.KeyMarker, st.VersionIDMarker = "", ""
	}
	for _, w := range known.damage() {
		if !slices.Contains(st.Warnings, w) {
			st.Warnings = append(st.Warnings, w)
			e.log().WarnContext(ctx, "snapshot scan read around a damaged vault object", "job", job.JobID, "damage", w)
		}
	}
	if st.Done {
		st.EndedAt = e.now()
		st.ItemsKey = vault.SnapshotItemsListKey(job.JobID)
		if err := v.PutJSON(ctx, st.ItemsKey, prog.Items.refs(job.JobID)); err != nil {
			return nil, classify(err)
		}
	}
	if job.Inventory == nil || st.Done {
		if err := v.PutJSON(ctx, vault.SnapshotScanKey(job.JobID), prog); err != nil {
			return nil, classify(err)
		}
	}
	job.Scan = *st
	e.log().InfoContext(ctx, "snapshot scan", "job", job.JobID, "round", st.Rounds, "done", st.Done, "current", st.Current, "toCopy", st.ToCopy, "files", st.Files)
	return &job, nil
}

// pager yields a bucket's entries a page at a time, in key order.
type pager interface {
	HasMorePages() bool
	Next(ctx context.Context) ([]s3x.Entry, error)
	Markers() (keyMarker, versionMarker string)
}

// prefetch is a pager that lists the next page while its caller works on
// the one it has (diffs it, writes its chunk and the scan state), so the
// server's listing time overlaps the scan's own. HasMorePages and Markers
// speak of the pages handed out, never of one fetched ahead: a scan that
// stops between pages saves markers it has acted on.
type prefetch struct {
	ch     chan prefetched
	cancel context.CancelFunc
	cur    prefetched
}

type prefetched struct {
	entries []s3x.Entry
	err     error
	more    bool
	km, vm  string
}

func newPrefetch(ctx context.Context, inner pager) *prefetch {
	ctx, cancel := context.WithCancel(ctx)
	km, vm := inner.Markers()
	p := &prefetch{ch: make(chan prefetched, 1), cancel: cancel, cur: prefetched{more: inner.HasMorePages(), km: km, vm: vm}}
	go func() {
		defer close(p.ch)
		for inner.HasMorePages() {
			es, err := inner.Next(ctx)
			pg := prefetched{entries: es, err: err, more: inner.HasMorePages()}
			pg.km, pg.vm = inner.Markers()
			select {
			case p.ch <- pg:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *prefetch) HasMorePages() bool                         { return p.cur.more }
func (p *prefetch) Markers() (keyMarker, versionMarker string) { return p.cur.km, p.cur.vm }

func (p *prefetch) Next(ctx context.Context) ([]s3x.Entry, error) {
	select {
	case pg, ok := <-p.ch:
		if !ok {
			return nil, context.Cause(ctx) // only after close
		}
		p.cur = pg
		return pg.entries, pg.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the fetching (a page fetched ahead is dropped).
func (p *prefetch) close() { p.cancel() }

// scanDeadline is when this scan call stops listing: its budget, the
// context's deadline less a margin, or the completion window's stop.
func (e *Engine) scanDeadline(ctx context.Context, job Job) time.Time {
	budget := e.ScanBudget
	if budget <= 0 {
		budget = 10 * time.Minute
	}
	d := e.now().Add(budget)
	if cd, ok := ctx.Deadline(); ok && cd.Add(-90*time.Second).Before(d) {
		d = cd.Add(-90 * time.Second)
	}
	if stop := job.stopAt(); !stop.IsZero() && stop.Before(d) {
		d = stop
	}
	return d
}

// known is what the vault holds of a bucket already: the manifest of the
// snapshot's base (vault.BaseOf) and the journal, both read in key order
// alongside the listing.
type known struct {
	prev, journal *cursor
}

// openKnown opens the base and the journal. The base is the one the
// job's CREATING record names, read after that record was written and
// used only if it is still usable: expiry keeps a base for a CREATING
// point that names it, and a base expired before this read is not
// carried from (its versions are copied again). A COLD base is not
// carried from either: its data may be in a cold storage class, where a
// WARM point's never is.
func (e *Engine) openKnown(ctx context.Context, v *vault.Vault, job Job) (*known, error) {
	k := &known{}
	points, err := v.Snapshots(ctx, job.Bucket)
	if err != nil {
		return nil, err
	}
	if base := vault.BaseOf(points, job.RecoveryPointID); base != nil {
		m, err := vault.NewMerger([]vault.RecordSource{v.OpenShards(ctx, base.Shards, nil)})
		if err != nil {
			return nil, err
		}
		k.prev = &cursor{m: m}
	}
	m, err := v.OpenJournal(ctx, job.Bucket, nil)
	if err != nil {
		k.close()
		return nil, err
	}
	k.journal = &cursor{m: m}
	return k, nil
}

// damage names the damaged vault objects the readers went around.
func (k *known) damage() []string {
	var out []string
	for _, c := range []*cursor{k.prev, k.journal} {
		if c != nil {
			for _, d := range c.m.Damage() {
				out = append(out, d.String())
			}
		}
	}
	return out
}

func (k *known) close() {
	for _, c := range []*cursor{k.prev, k.journal} {
		if c != nil {
			c.m.Close()
		}
	}
}

// lookup returns the manifest record of a listed current version: the
// vault's own record when it holds the version's data (have), else a work
// item for the copy step.
func (k *known) lookup(en s3x.Entry, bucket string, now time.Time) (vault.Record, bool, error) {
	same := func(r vault.Record) bool {
		if r.Op != vault.OpVersion || r.Data == "" || r.VersionID != en.VersionID {
			return false
		}
		// A "null" version is overwritten in place: the same one has the
		// same ETag and second.
		return en.VersionID != "null" || (r.ETag == en.ETag && r.Time.Unix() == en.LastModified.Unix())
	}
	if k.journal != nil {
		recs, err := k.journal.at(en.Key)
		if err != nil {
			return vault.Record{}, false, err
		}
		if len(recs) > 0 {
			// The journal's state now carries later tag, ACL and storage
			// class changes of the version.
			if obj, ok := vault.StateAt(recs, now); ok && same(obj.Version) {
				r := obj.Version
				r.Tags, r.ACL, r.StorageClass = obj.Tags, obj.ACL, obj.StorageClass
				return r, true, nil
			}
			// A record of the version the journal does not hold current
			// at now is not carried: the journal disagrees with the
			// listing, and a fold may drop such a record while this scan
			// carries it (see vault/gc.go). Only one written after now (a
			// clock behind the server's) is.
			for _, o := range recs {
				if same(o.Record) && o.Time.After(now) {
					return o.Record, true, nil
				}
			}
		}
	}
	if k.prev != nil {
		recs, err := k.prev.at(en.Key)
		if err != nil {
			return vault.Record{}, false, err
		}
		for _, o := range recs {
			if same(o.Record) {
				return o.Record, true, nil
			}
		}
	}
	return vault.Record{
		Op: vault.OpVersion, Key: en.Key, VersionID: en.VersionID, Time: en.LastModified.UTC(),
		Size: en.Size, ETag: en.ETag, StorageClass: en.StorageClass, Origin: vault.OriginSnapshot,
	}, false, nil
}

// cursor reads a merger forward to the keys asked for, in order.
type cursor struct {
	m    *vault.Merger
	key  string
	recs []vault.Observed
	read bool // key/recs hold a read key
	eof  bool
}

// at returns the records of key (nil if none); keys must be asked for in
// ascending order.
func (c *cursor) at(key string) ([]vault.Observed, error) {
	for !c.eof && (!c.read || c.key < key) {
		k, recs, err := c.m.NextKey()
		if errors.Is(err, io.EOF) {
			c.eof = true
			break
		}
		if err != nil {
			return nil, err
		}
		c.key, c.recs, c.read = k, recs, true
	}
	if c.read && c.key == key {
		return c.recs, nil
	}
	return nil, nil
}
