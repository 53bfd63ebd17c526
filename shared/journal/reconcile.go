package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
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
	versions map[string]bool // identities recorded as versions (with their bytes)
	live     map[string]vault.Record
	purged   map[string]bool // identities recorded, then purged by a purge no listing voided
	sequence map[string]bool // version ids whose record carries a sequencer
	orders   [][]string
}

func stateOf(recs []vault.Observed) keyState {
	s := keyState{known: map[string]bool{}, versions: map[string]bool{}, live: map[string]vault.Record{}, purged: map[string]bool{}, sequence: map[string]bool{}}
	var purges, listed []vault.Record
	for _, o := range recs {
		r := o.Record
		id := identity(r.VersionID, r.ETag, r.Time)
		switch r.Op {
		case vault.OpVersion, vault.OpDeleteMarker:
			s.known[id] = true
			if r.Op == vault.OpVersion {
				s.versions[id] = true
				s.live[id] = r
			} else if !s.versions[id] {
				s.live[id] = r
			}
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
			purges = append(purges, r)
		case vault.OpListed:
			listed = append(listed, r)
		case vault.OpOrder:
			s.orders = append(s.orders, r.Order)
		}
	}
	// The rule vault.StateAt follows: a purge is void when a later
	// listing still showed the version; a null version's purge deletes
	// the null version written before it (with its ETag, where named).
	for id, r := range s.live {
		for _, p := range purges {
			if p.VersionID != r.VersionID || r.VersionID == "null" && (r.Time.Unix() > p.Time.Unix() || p.ETag != "" && p.ETag != r.ETag) {
				continue
			}
			if !voided(p, listed, r) {
				delete(s.live, id)
				s.purged[id] = true
				break
			}
		}
	}
	return s
}

// voided reports whether a listing recorded at or after purge p still
// showed version r, which p would delete.
func voided(p vault.Record, listed []vault.Record, r vault.Record) bool {
	for _, l := range listed {
		if l.VersionID == r.VersionID && !l.Time.Before(p.Time) && (r.VersionID != "null" || l.ETag == r.ETag && l.Created.Unix() == r.Time.Unix()) {
			return true
		}
	}
	return false
}

// keyWork is one key's reconcile: the records the journal lacks, in
// listing order, some of them versions still being captured, then the
// purges and order records that follow them.
type keyWork struct {
	key      string
	listed   int64          // listing entries of the key
	recs     []vault.Record // one per entry the journal lacks; a capture fills its slot
	tail     []vault.Record // purges of versions no longer listed, order records
	captures []capture      // versions to capture into recs
	// beforeFloor counts listed versions superseded before the floor,
	// not journaled again.
	beforeFloor int64
	waiting     int // captures not yet finished
	done        bool
}

// capture is one version of a key to back up into slot of its keyWork.
type capture struct {
	slot  int
	entry s3x.Entry
	// tagCheck: not a capture but a check of a journaled version's tags
	// (ReconcileOptions.Tags): known are the tags the journal says it has
	// now, since the time they were last known to be so.
	tagCheck bool
	known    map[string]string
	since    time.Time
}

// records returns the key's records once every capture has finished.
func (w *keyWork) records() []vault.Record {
	out := w.recs[:0]
	for _, r := range w.recs {
		if r.Op != "" { // a tag check that found the tags unchanged
			out = append(out, r)
		}
	}
	return append(out, w.tail...)
}

// addTagChecks adds to w a check of the tags of each listed current
// version the journal holds with known tags: S3 lists no tags and keeps no
// tag history, so a tag change whose event was lost is found only by
// reading them again, and dated only to an interval: after the tags were
// last known (their record, or the last reconcile that read tags: since).
func addTagChecks(w *keyWork, entries []s3x.Entry, recs []vault.Observed, since *time.Time) {
	for _, e := range entries {
		if !e.IsLatest || e.IsDeleteMarker {
			continue
		}
		tags, from, ok := knownTags(recs, e)
		if !ok {
			continue
		}
		if since != nil && since.After(from) {
			from = since.UTC()
		}
		w.captures = append(w.captures, capture{slot: len(w.recs), entry: e, tagCheck: true, known: tags, since: from})
		w.recs = append(w.recs, vault.Record{})
		w.waiting++
	}
}

// knownTags are the tags the journal says version e has now: its latest
// tags record, else its version record's; false when the journal has no
// version record of it yet, or does not know its tags (a snapshot's copy
// carries them in its data object).
func knownTags(recs []vault.Observed, e s3x.Entry) (map[string]string, time.Time, bool) {
	var tags map[string]string
	var at time.Time
	have := false
	for _, o := range recs {
		r := o.Record
		if r.VersionID != e.VersionID || e.VersionID == "null" && r.Op == vault.OpVersion && (r.ETag != e.ETag || r.Time.Unix() != e.LastModified.Unix()) {
			continue
		}
		switch r.Op {
		case vault.OpVersion:
			if !have {
				tags, at, have = r.Tags, r.Time, r.Tags != nil
			}
		case vault.OpTags:
			if !r.Time.Before(at) {
				tags, at, have = r.Tags, r.Time, true
			}
		}
	}
	return tags, at.UTC(), have && tags != nil
}

// planKey compares one key's listing (newest first) with the journal's
// records of it and returns the work to bring the journal up to date:
// versions and delete markers it never saw (the versions to be captured),
// purges of versions no longer listed, and the true order of versions that
// share a second. It makes no S3 call.
//
// since is the completeness watermark before this reconcile (nil: none):
// a version it finds gone was deleted after both it and the version's own
// time, which the purge records (Record.Since).
//
// floor is the journal's floor (zero: never folded): see beforeFloor.
func planKey(key string, entries []s3x.Entry, recs []vault.Observed, now time.Time, since *time.Time, floor time.Time) *keyWork {
	st := stateOf(recs)
	w := &keyWork{key: key, listed: int64(len(entries))}
	listed := map[string]bool{}
	for _, e := range entries {
		id := identity(e.VersionID, e.ETag, e.LastModified)
		listed[id] = true
		if beforeFloor(e, since, floor) && !st.known[id] {
			w.beforeFloor++
			continue
		}
		if st.purged[id] {
			// The journal says it was deleted for good, the listing shows
			// it: the listing is the truth.
			w.tail = append(w.tail, vault.Record{Op: vault.OpListed, Key: key, VersionID: e.VersionID, ETag: e.ETag, Created: e.LastModified.UTC(), Time: now, Origin: vault.OriginReconcile})
		}
		if !e.IsDeleteMarker && st.known[id] && !st.versions[id] && e.VersionID != "null" {
			// Known only as a delete marker (a wrong event's): capture the
			// version the listing shows.
			w.captures = append(w.captures, capture{slot: len(w.recs), entry: e})
			w.recs = append(w.recs, vault.Record{})
			continue
		}
		if st.known[id] || st.known[e.VersionID] && e.VersionID != "null" {
			continue
		}
		if e.IsDeleteMarker {
			w.recs = append(w.recs, vault.Record{Op: vault.OpDeleteMarker, Key: key, VersionID: e.VersionID, Time: e.LastModified.UTC(), Origin: vault.OriginReconcile})
			continue
		}
		w.captures = append(w.captures, capture{slot: len(w.recs), entry: e})
		w.recs = append(w.recs, vault.Record{})
	}
	w.waiting = len(w.captures)
	var gone []string
	for id := range st.live {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		r := st.live[id]
		known := r.Time.UTC()
		if since != nil && since.After(known) {
			known = since.UTC()
		}
		w.tail = append(w.tail, vault.Record{Op: vault.OpPurge, Key: key, VersionID: r.VersionID, ETag: r.ETag, Time: now, Since: known, Origin: vault.OriginReconcile})
	}
	w.tail = append(w.tail, orderRecords(key, entries, st)...)
	return w
}

// beforeFloor reports whether a listed version or marker the journal
// does not know is one the fold left out, not to be journaled again: it
// was written at or before the floor, is not current, and the journal was
// complete at the floor (a reconcile had vouched for a time at or after
// it), so the fold kept every entry current at any second from the floor
// on. (Its place in the listing says too little: an entry deleted for
// good between it and its successor may have been current instead.) A
// version that is current now, or one the journal may never have seen, is
// journaled.
func beforeFloor(e s3x.Entry, since *time.Time, floor time.Time) bool {
	return !floor.IsZero() && since != nil && !since.Before(floor) && !e.IsLatest && e.LastModified.Unix() <= floor.Unix()
}

// floor is the floor of bucket's journal (zero: never folded).
func (j *Journal) floor(ctx context.Context, bucket string) (time.Time, error) {
	idx, err := j.Vault.Index(ctx, bucket)
	if err != nil {
		return time.Time{}, err
	}
	return idx.Floor, nil
}

// captureEntry backs up one listed version for a reconcile.
func (j *Journal) captureEntry(ctx context.Context, bucket, key string, e s3x.Entry) (vault.Record, error) {
	rec, err := j.captureVersion(ctx, bucket, key, e.VersionID, &e, e.Size)
	if err != nil {
		return vault.Record{}, err
	}
	rec.Origin = vault.OriginReconcile
	return rec, nil
}

// checkTags reads a journaled version's tags again and returns a tags
// record, dated now with the interval it is known to lie in, where they
// differ from the journal's (a zero record where they do not, or where the
// version is gone: its purge is the reconcile's business).
func (j *Journal) checkTags(ctx context.Context, bucket, key string, c capture) (vault.Record, error) {
	tags, err := j.tags(ctx, bucket, key, c.entry.VersionID)
	switch {
	case err != nil && s3x.IsNotFound(err):
		return vault.Record{}, nil
	case err != nil:
		return vault.Record{}, fmt.Errorf("reconcile s3://%s/%s: %w", bucket, key, err)
	case tags == nil || maps.Equal(tags, c.known):
		return vault.Record{}, nil
	}
	now := time.Now().UTC()
	return vault.Record{Op: vault.OpTags, Key: key, VersionID: c.entry.VersionID, Time: now, Since: c.since, Tags: tags, TagsAt: now, Origin: vault.OriginReconcile}, nil
}

// reconcileKey brings one key's journal up to date (see planKey), its
// versions captured in parallel, and returns the records to journal.
func (j *Journal) reconcileKey(ctx context.Context, bucket, key string, entries []s3x.Entry, recs []vault.Observed, now time.Time, since *time.Time) ([]vault.Record, error) {
	floor, err := j.floor(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w := planKey(key, entries, recs, now, since, floor)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.concurrency())
	for _, c := range w.captures {
		g.Go(func() error {
			rec, err := j.captureEntry(gctx, bucket, key, c.entry)
			w.recs[c.slot] = rec // each capture owns its slot
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return w.records(), nil
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
	Bucket    string    `json:"bucket"`
	StartedAt time.Time `json:"startedAt"`
	// KeyMarker: every key up to and including this one is done. Keys
	// after it may be done too (their records are in the journal), so a
	// resumed run finds them known and captures nothing of them again.
	KeyMarker   string     `json:"keyMarker,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Listed      int64      `json:"listed"`
	Added       int64      `json:"added"`
	Skipped     int64      `json:"skipped"`
	// CompleteThrough is the completeness watermark: the time the last
	// reconcile that finished started listing. Every version and delete
	// marker the bucket held then is in the journal (each key was listed
	// after it, and the listing is the truth); later changes are known
	// only by their events, which S3 does not guarantee. Carried over by
	// the runs that follow until one finishes.
	CompleteThrough *time.Time `json:"completeThrough,omitempty"`
	// TagsThrough is the same for tags: the second before the last
	// finished reconcile that read them (ReconcileOptions.Tags) started.
	// A listing shows no tags, so CompleteThrough does not cover them.
	TagsThrough *time.Time `json:"tagsThrough,omitempty"`
	// ReadsTags: this run reads the tags of every current version (it
	// started with ReconcileOptions.Tags, or TagsEvery had passed). Fixed
	// when the run starts, so a resumed run never claims TagsThrough for
	// keys its first part did not read.
	ReadsTags bool `json:"readsTags,omitempty"`
	// Warnings name the damaged journal objects the reconcile read around
	// (see vault.Damage): it protects what the bucket holds either way.
	Warnings []string `json:"warnings,omitempty"`
}

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	// PageSize of ListObjectVersions; 0 means 1000.
	PageSize int32
	// FlushRecords: write a segment (and save progress) once this many
	// records are pending; 0 means 5000. It also bounds the records held
	// by keys whose captures are in flight, to itself or 16 per unit of
	// the journal's concurrency, whichever is more (one key with more
	// versions than that is still taken whole).
	FlushRecords int
	// Tags also reads the tags of every current version the journal holds
	// (one GetObjectTagging each) and journals those that changed without
	// an event: S3 lists no tags, so nothing else finds such a change.
	// Off by default: at a billion current versions that is a billion
	// requests (about $400) per reconcile.
	Tags bool
	// TagsEvery makes a run read tags (as Tags) when the last finished
	// reconcile that read them started this long ago or more, or none did:
	// the scheduled reconcile reads tags weekly by default, at the cost
	// above once a week. 0 leaves it to Tags.
	TagsEvery time.Duration
	// Progress, when set, is called after each listed page.
	Progress func(Progress)
	// StopAt, when set, ends the run at the first key boundary after it,
	// with progress saved and CompletedAt unset: the next run resumes there
	// (a Lambda invocation's deadline, say).
	StopAt time.Time
}

// windowKeysPerWorker bounds the keys a reconcile has listed but not
// retired (finished, and every key before them too), per unit of the
// journal's concurrency: one slow capture holds back the progress marker,
// not the work behind it, but only this far.
const windowKeysPerWorker = 16

// Reconcile walks ListObjectVersions of bucket and adds to the journal
// every version and delete marker it lacks, purges of versions that are
// gone, and order records. The first reconcile of a bucket is its full
// backup. It resumes an unfinished earlier run where that one stopped.
//
// Versions are captured in parallel across keys, at most the journal's
// Concurrency at once. A key's records are journaled together once all of
// its captures have finished, in listing order; the saved progress marker
// is the last key below which every key has finished, so it never claims a
// key whose capture is still running.
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
		now := time.Now().UTC()
		p = Progress{Bucket: bucket, StartedAt: now, CompleteThrough: p.CompleteThrough, TagsThrough: p.TagsThrough}
		p.ReadsTags = o.Tags || o.TagsEvery > 0 && (p.TagsThrough == nil || now.Sub(*p.TagsThrough) >= o.TagsEvery)
	}
	// The watermarks before this run: what it finds gone was deleted
	// after the one, a tag change it finds was made after the other.
	since, tagsSince := p.CompleteThrough, p.TagsThrough
	floor, err := j.floor(ctx, bucket)
	if err != nil {
		return p, err
	}
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		return p, err
	}
	defer m.Close()
	jk, jrecs, jerr := m.NextKey()
	for jerr == nil && jk <= p.KeyMarker && p.KeyMarker != "" {
		jk, jrecs, jerr = m.NextKey()
	}
	if jerr != nil && !errors.Is(jerr, io.EOF) {
		return p, jerr
	}

	r := newReconciler(ctx, j, bucket, &p, o)
	defer r.stop()
	// gone queues every journal key before upTo that the listing no
	// longer has (all its versions purged); "" means every one left.
	gone := func(upTo string) error {
		now := time.Now().UTC()
		for jerr == nil && (upTo == "" || jk < upTo) {
			if err := r.submit(planKey(jk, nil, jrecs, now, since, floor)); err != nil {
				return err
			}
			jk, jrecs, jerr = m.NextKey()
		}
		if jerr != nil && !errors.Is(jerr, io.EOF) {
			return jerr
		}
		return nil
	}
	// handle queues one listed key, after the journal keys before it.
	handle := func(key string, entries []s3x.Entry) error {
		if err := gone(key); err != nil {
			return err
		}
		var known []vault.Observed
		if jerr == nil && jk == key {
			known = jrecs
			jk, jrecs, jerr = m.NextKey()
			if jerr != nil && !errors.Is(jerr, io.EOF) {
				return jerr
			}
		}
		w := planKey(key, entries, known, time.Now().UTC(), since, floor)
		if p.ReadsTags {
			addTagChecks(w, entries, known, tagsSince)
		}
		return r.submit(w)
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
			if e.Key != curKey && cur != nil {
				if err := handle(curKey, cur); err != nil {
					return p, err
				}
				cur = nil
				if !o.StopAt.IsZero() && time.Now().After(o.StopAt) {
					if err := r.drain(); err != nil {
						return p, err
					}
					return p, r.flush()
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
	if err := gone(""); err != nil {
		return p, err
	}
	if err := r.drain(); err != nil {
		return p, err
	}
	done := time.Now().UTC()
	p.CompletedAt = &done
	// Listing started at StartedAt (a resumed run's first part started
	// it): the journal is complete through the second before.
	through := p.StartedAt.Truncate(time.Second).Add(-time.Second)
	if p.CompleteThrough == nil || through.After(*p.CompleteThrough) {
		p.CompleteThrough = &through
	}
	if p.ReadsTags && (p.TagsThrough == nil || through.After(*p.TagsThrough)) {
		p.TagsThrough = &through
	}
	for _, d := range m.Damage() {
		p.Warnings = append(p.Warnings, d.String())
		j.log().WarnContext(ctx, "damaged journal object", "bucket", bucket, "object", d.Object, "lost", d.Lost, "reason", d.Reason)
	}
	r.marker = ""
	if err := r.flush(); err != nil {
		return p, err
	}
	m.Close()
	if err := j.compactIfDue(ctx, bucket); err != nil {
		return p, err
	}
	return p, nil
}

// reconciler runs the captures of a reconcile: keys come in listing order
// (submit), their versions are captured by as many workers as the
// journal's concurrency, and keys retire in order once finished, moving
// the progress marker. Only the goroutine that calls its methods touches
// its state; the capture workers hand their results back over a channel.
type reconciler struct {
	j      *Journal
	ctx    context.Context // of the whole run: segment and progress writes
	cctx   context.Context // of the captures, canceled on the first failure
	cancel context.CancelFunc
	bucket string
	p      *Progress
	o      ReconcileOptions

	slots    int // captures at most in flight
	inflight int
	jobs     chan job // to the capture workers, started with the first job
	results  chan captured

	window  []*keyWork // submitted, not retired, in key order
	maxKeys int        // bound of len(window)
	held    int        // records of unfinished keys in the window
	maxHeld int        // bound of held, unless one key alone has more
	ready   []vault.Record
	marker  string // every key up to and including it is finished
	err     error  // the first capture failure
}

// job is one capture for a worker: version c of key w.
type job struct {
	w *keyWork
	c capture
}

// captured is the outcome of one capture.
type captured struct {
	w    *keyWork
	slot int
	rec  vault.Record
	err  error
}

func newReconciler(ctx context.Context, j *Journal, bucket string, p *Progress, o ReconcileOptions) *reconciler {
	cctx, cancel := context.WithCancel(ctx)
	slots := j.concurrency()
	return &reconciler{
		j: j, ctx: ctx, cctx: cctx, cancel: cancel, bucket: bucket, p: p, o: o,
		slots: slots, results: make(chan captured, slots), marker: p.KeyMarker,
		maxKeys: windowKeysPerWorker * slots, maxHeld: max(o.FlushRecords, windowKeysPerWorker*slots),
	}
}

// submit queues one key's work and starts its captures, waiting while the
// window is full or every slot is taken.
func (r *reconciler) submit(w *keyWork) error {
	if r.err != nil {
		return r.err
	}
	size := len(w.recs) + len(w.tail)
	for len(r.window) > 0 && (len(r.window) >= r.maxKeys || r.held+size > r.maxHeld) {
		if err := r.wait(); err != nil {
			return err
		}
	}
	r.window = append(r.window, w)
	r.held += size
	for _, c := range w.captures {
		for r.inflight >= r.slots {
			if err := r.wait(); err != nil {
				return err
			}
		}
		r.inflight++
		r.startWorkers()
		r.jobs <- job{w: w, c: c}
	}
	w.captures = nil
	if w.waiting == 0 {
		return r.finish(w)
	}
	return nil
}

// startWorkers starts the capture workers on first use: a fixed set, not
// a goroutine per capture, because a capture runs deep in the SDK's
// middleware and a new goroutine grows its stack there each time (see
// Ingest). A worker is free whenever fewer than slots captures are in
// flight, since results holds every finished capture's result.
func (r *reconciler) startWorkers() {
	if r.jobs != nil {
		return
	}
	r.jobs = make(chan job)
	for range r.slots {
		go func() {
			for jb := range r.jobs {
				if jb.c.tagCheck {
					rec, err := r.j.checkTags(r.cctx, r.bucket, jb.w.key, jb.c)
					r.results <- captured{w: jb.w, slot: jb.c.slot, rec: rec, err: err}
					continue
				}
				rec, err := r.j.captureEntry(r.cctx, r.bucket, jb.w.key, jb.c.entry)
				if err != nil {
					err = fmt.Errorf("reconcile s3://%s/%s: %w", r.bucket, jb.w.key, err)
				}
				r.results <- captured{w: jb.w, slot: jb.c.slot, rec: rec, err: err}
			}
		}()
	}
}

// wait takes one capture's result. On the first failure it cancels the
// other captures and returns the failure from then on.
func (r *reconciler) wait() error {
	c := <-r.results
	r.inflight--
	if r.err != nil {
		return r.err
	}
	if c.err != nil {
		r.err = c.err
		r.cancel()
		return r.err
	}
	c.w.recs[c.slot] = c.rec
	c.w.waiting--
	if c.w.waiting == 0 {
		return r.finish(c.w)
	}
	return nil
}

// finish takes a key whose captures are all done: its records join the
// next segment, keys retire from the head of the window, and a segment is
// written once enough records are ready.
func (r *reconciler) finish(w *keyWork) error {
	w.done = true
	recs := w.records()
	r.held -= len(recs)
	for _, rec := range recs {
		if rec.Op == vault.OpSkip {
			r.p.Skipped++
		}
	}
	r.p.Added += int64(len(recs))
	r.ready = append(r.ready, recs...)
	w.recs, w.tail = nil, nil
	for len(r.window) > 0 && r.window[0].done {
		r.marker = r.window[0].key
		r.p.Listed += r.window[0].listed
		r.window[0] = nil
		r.window = r.window[1:]
	}
	if len(r.ready) >= r.o.FlushRecords {
		return r.flush()
	}
	return nil
}

// drain waits for every capture in flight; afterwards every submitted key
// has retired, unless a capture failed.
func (r *reconciler) drain() error {
	for r.inflight > 0 {
		if err := r.wait(); err != nil {
			return err
		}
	}
	return r.err
}

// flush journals the ready records as one segment and saves the progress
// marker (the segment first: a saved marker never gets ahead of the
// journal).
func (r *reconciler) flush() error {
	if len(r.ready) > 0 {
		if _, err := r.j.Vault.WriteSegment(r.ctx, r.bucket, r.ready); err != nil {
			return err
		}
		r.ready = r.ready[:0]
	}
	r.p.KeyMarker = r.marker
	return r.j.Vault.PutJSON(r.ctx, vault.ReconcileKey(r.bucket), *r.p)
}

// stop cancels what is still running and waits for it, so that no capture
// outlives the run, and ends the workers.
func (r *reconciler) stop() {
	r.cancel()
	for r.inflight > 0 {
		<-r.results
		r.inflight--
	}
	if r.jobs != nil {
		close(r.jobs)
	}
}

// CompactAfter is how many segments after the latest run make a reconcile
// compact the journal.
var CompactAfter = 256

func (j *Journal) compactIfDue(ctx context.Context, bucket string) error {
	js, err := j.Vault.Journal(ctx, bucket)
	if err != nil {
		return err
	}
	if js.Pending < CompactAfter {
		return nil
	}
	st, err := j.Vault.Compact(ctx, bucket, time.Now())
	if errors.As(err, new(*vault.CompactRefusedError)) || errors.As(err, new(*vault.UpgradeNeededError)) || errors.As(err, new(*vault.ConflictError)) {
		// The journal is read around the damage (or as format 1 reads
		// it, or another compaction got there first); reconcile goes on.
		j.log().WarnContext(ctx, "journal not compacted", "bucket", bucket, "reason", err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("compact journal of %s: %w", bucket, err)
	}
	j.log().InfoContext(ctx, "journal compacted", "bucket", bucket, "segments", st.Segments, "records", st.Records, "shards", st.Shards)
	return nil
}
