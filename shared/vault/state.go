package vault

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/bucketvault/bucketvault/shared/event"
)

// Object is what a key held at a point in time.
type Object struct {
	Version      Record // the OpVersion record of the current version
	Tags         map[string]string
	ACL          *ACL
	StorageClass string
}

// StateAt returns the object that was current for one key at the end of
// the second at, from all the journal's records of that key; false when the
// key was absent (never written, deleted, behind a delete marker, or its
// versions permanently deleted).
//
// Time has one-second resolution, as on S3: every change made during the
// second at is included, and several writes inside one second resolve to
// the last of them, ordered by the order records a reconcile wrote, then by
// event sequencers, then by the order the records were journaled.
func StateAt(recs []Observed, at time.Time) (Object, bool) {
	obj, ok, _ := StateOf(recs, at)
	return obj, ok
}

// StateOf is StateAt that also returns the record of the current entry
// (a version or a delete marker; zero when nothing is alive).
func StateOf(recs []Observed, at time.Time) (Object, bool, Record) {
	cut := at.Unix()
	type entry struct {
		Observed
		id string
	}
	var entries []entry
	byID := map[string]int{}
	purged := map[string]int64{} // version id -> second of the purge
	var nullPurges []nullPurge   // purges of a "null" version
	var purges, listed []Record
	var orders [][]string
	for _, o := range recs {
		r := o.Record
		switch r.Op {
		case OpVersion, OpDeleteMarker:
			id := identity(r)
			if i, ok := byID[id]; ok {
				// The same version or marker journaled twice (a duplicate
				// event, an event and a reconcile): the earliest time is
				// its creation; keep a sequencer wherever one came. A
				// version record, whose bytes were read under its id,
				// beats a delete marker record of the same id (a wrong
				// event's).
				e := &entries[i]
				switch {
				case e.Op == OpDeleteMarker && r.Op == OpVersion:
					e.Observed = o
					continue
				case e.Op == OpVersion && r.Op == OpDeleteMarker:
					continue
				}
				if r.Time.Before(e.Time) {
					seq := e.Sequencer
					e.Observed = o
					if e.Sequencer == "" {
						e.Sequencer = seq
					}
				} else if e.Sequencer == "" && r.Sequencer != "" {
					e.Sequencer = r.Sequencer
				}
				continue
			}
			byID[id] = len(entries)
			entries = append(entries, entry{Observed: o, id: id})
		case OpPurge:
			purges = append(purges, r)
		case OpListed:
			listed = append(listed, r)
		case OpOrder:
			orders = append(orders, r.Order)
		}
	}
	// A purge is void when a listing at or after it still showed the
	// version (OpListed); the others date each version's deletion.
	for _, p := range purges {
		if voided(p, listed) {
			continue
		}
		if p.VersionID == "null" {
			nullPurges = append(nullPurges, nullPurge{at: p.Time.Unix(), etag: p.ETag})
			continue
		}
		if t, ok := purged[p.VersionID]; !ok || p.Time.Unix() < t {
			purged[p.VersionID] = p.Time.Unix()
		}
	}
	var alive []entry
	for _, e := range entries {
		if e.Time.Unix() > cut {
			continue
		}
		if t, ok := purged[e.VersionID]; ok && t <= cut {
			continue
		}
		if e.VersionID == "null" && nullPurged(e.Time.Unix(), e.ETag, nullPurges, cut) {
			continue
		}
		alive = append(alive, e)
	}
	if len(alive) == 0 {
		return Object{}, false, Record{}
	}
	sort.SliceStable(alive, func(i, j int) bool {
		a, b := alive[i], alive[j]
		if a.Time.Unix() != b.Time.Unix() {
			return a.Time.Unix() < b.Time.Unix()
		}
		if less, ok := ordered(orders, a.VersionID, b.VersionID); ok {
			return less
		}
		if a.Sequencer != "" && b.Sequencer != "" {
			if c := event.CompareSequencer(a.Sequencer, b.Sequencer); c != 0 {
				return c < 0
			}
		}
		if a.Segment != b.Segment {
			return a.Segment < b.Segment
		}
		return a.Line < b.Line
	})
	// A "null" version is overwritten in place by a later null version, so
	// only the last null entry can be current; the order above already puts
	// it after the others, and the last entry is all that matters.
	last := alive[len(alive)-1]
	if last.Op == OpDeleteMarker {
		return Object{}, false, last.Record
	}
	obj := Object{Version: last.Record, Tags: last.Tags, ACL: last.ACL, StorageClass: last.StorageClass}
	var tagAt, aclAt, scAt Observed
	for _, o := range recs {
		r := o.Record
		if r.VersionID != last.VersionID || r.Time.Unix() > cut {
			continue
		}
		if last.VersionID == "null" && r.Time.Before(last.Time.Truncate(time.Second)) {
			continue // a change to an earlier null version
		}
		switch r.Op {
		case OpTags:
			if later(o, tagAt) {
				tagAt, obj.Tags = o, r.Tags
			}
		case OpACL:
			if later(o, aclAt) {
				aclAt, obj.ACL = o, r.ACL
			}
		case OpStorageClass:
			if later(o, scAt) {
				scAt, obj.StorageClass = o, r.StorageClass
			}
		}
	}
	return obj, true, last.Record
}

// UncertainAt says why the state StateAt gives for at cannot be vouched
// for ("" when it can): the current entry (version or delete marker) was
// deleted for good at a time only known to lie in an interval around at
// (a reconcile found it gone; no event said when). StateAt's rule keeps it
// until the reconcile that found it gone; it may have been gone already.
func UncertainAt(recs []Observed, at time.Time) string {
	_, _, cur := StateOf(recs, at)
	return UncertainFor(recs, at, cur)
}

// UncertainFor is UncertainAt given the current entry cur.
func UncertainFor(recs []Observed, at time.Time, cur Record) string {
	if cur.Op == "" {
		return ""
	}
	cut := at.Unix()
	var listed []Record
	for _, o := range recs {
		if o.Op == OpListed {
			listed = append(listed, o.Record)
		}
	}
	// An event's purge (no Since) says when: a listing's later purge of
	// the same entry adds no doubt.
	var exact []Record
	for _, o := range recs {
		p := o.Record
		if p.Op == OpPurge && p.Since.IsZero() && p.VersionID == cur.VersionID && !voided(p, listed) {
			exact = append(exact, p)
		}
	}
	if why := tagsUnread(recs, cut, cur); why != "" {
		return why
	}
	for _, o := range recs {
		p := o.Record
		if p.Op == OpTags && !p.Since.IsZero() && p.VersionID == cur.VersionID && cur.Op == OpVersion &&
			p.Since.Unix() < cut && cut < p.Time.Unix() && p.Time.After(cur.Time) {
			return fmt.Sprintf("its version %s's tags changed at an unknown time between %s and %s (a reconcile read them, no event said when): restored with the tags it had before",
				cur.VersionID, p.Since.UTC().Format(time.RFC3339), p.Time.UTC().Format(time.RFC3339))
		}
		if p.Op != OpPurge || p.Since.IsZero() || p.VersionID != cur.VersionID || voided(p, listed) {
			continue
		}
		if slices.ContainsFunc(exact, func(e Record) bool {
			return !e.Time.After(p.Time) && (cur.VersionID != "null" || e.Time.Unix() >= cur.Time.Unix() && (e.ETag == "" || e.ETag == cur.ETag))
		}) {
			continue
		}
		if cur.VersionID == "null" && p.ETag != "" && p.ETag != cur.ETag {
			continue
		}
		if p.Since.Unix() < cut && cut < p.Time.Unix() {
			what := "version"
			if cur.Op == OpDeleteMarker {
				what = "delete marker"
			}
			return fmt.Sprintf("its %s %s was deleted for good at an unknown time between %s and %s (a reconcile found it gone, no event said when): the restore keeps it until then",
				what, cur.VersionID, p.Since.UTC().Format(time.RFC3339), p.Time.UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// tagsUnread says why the tags StateOf gives for the second cut cannot be
// vouched for ("" when they can): the record they come from (the version's,
// or its latest tags record by cut) had them read at its TagsAt, and the
// journal knows of a tag change of that version after cut and by then. The
// tags read may be that change's, and those before it were never read: S3
// events carry no tag values and S3 keeps no tag history. This is a version
// whose event came late, or was lost and a reconcile found it, after its
// tags had changed again. A record without TagsAt (written before it
// existed) is not doubted.
func tagsUnread(recs []Observed, cut int64, cur Record) string {
	if cur.Op != OpVersion {
		return ""
	}
	from := cur
	var latest Observed
	for _, o := range recs {
		r := o.Record
		if r.Op != OpTags || r.VersionID != cur.VersionID || r.Time.Unix() > cut || r.Time.Before(cur.Time.Truncate(time.Second)) {
			continue
		}
		if later(o, latest) {
			latest = o
		}
	}
	if latest.Op != "" {
		from = latest.Record
	}
	if from.TagsAt.IsZero() {
		return ""
	}
	var next time.Time // the first known change after cut, by TagsAt
	for _, o := range recs {
		r := o.Record
		if r.Op == OpTags && r.VersionID == cur.VersionID && r.Time.Unix() > cut && r.Time.Unix() <= from.TagsAt.Unix() &&
			(next.IsZero() || r.Time.Before(next)) {
			next = r.Time
		}
	}
	if next.IsZero() {
		return ""
	}
	return fmt.Sprintf("its version %s's tags between %s and %s are unknown: they were read at %s, after they changed at %s (S3 keeps no tag history): restored with the tags read",
		cur.VersionID, from.Time.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339), from.TagsAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339))
}

// later reports whether change record a comes after b (zero b: always).
func later(a, b Observed) bool {
	if b.Op == "" {
		return true
	}
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Sequencer != "" && b.Sequencer != "" {
		if c := event.CompareSequencer(a.Sequencer, b.Sequencer); c != 0 {
			return c > 0
		}
	}
	if a.Segment != b.Segment {
		return a.Segment > b.Segment
	}
	return a.Line > b.Line
}

// ordered reports whether an order record holding both a and b puts a first.
func ordered(orders [][]string, a, b string) (less, ok bool) {
	if a == b {
		return false, false
	}
	for _, o := range orders {
		ia, ib := -1, -1
		for i, id := range o {
			if id == a {
				ia = i
			}
			if id == b {
				ib = i
			}
		}
		if ia >= 0 && ib >= 0 {
			return ia < ib, true
		}
	}
	return false, false
}

// nullPurge is a purge of a key's "null" version: its second, and the
// ETag of the null version it deleted where the journal knows it.
type nullPurge struct {
	at   int64
	etag string
}

// nullPurged reports whether a null version written in second t with etag
// was permanently deleted by the end of second cut.
func nullPurged(t int64, etag string, purges []nullPurge, cut int64) bool {
	for _, p := range purges {
		if t <= p.at && p.at <= cut && (p.etag == "" || p.etag == etag) {
			return true
		}
	}
	return false
}

// voided reports whether a listing recorded at or after purge p still
// showed the version p deletes, which makes p void.
func voided(p Record, listed []Record) bool {
	for _, l := range listed {
		if l.VersionID != p.VersionID || l.Time.Before(p.Time) {
			continue
		}
		// A null version listed voids only purges made while it was the
		// null version: after it was written, and of it where the purge
		// names its ETag.
		if p.VersionID != "null" || l.Created.Unix() <= p.Time.Unix() && (p.ETag == "" || p.ETag == l.ETag) {
			return true
		}
	}
	return false
}

func identity(r Record) string {
	if r.VersionID != "null" && r.VersionID != "" {
		return r.VersionID
	}
	return "null|" + r.ETag + "|" + r.Time.UTC().Format(time.RFC3339)
}

// foldKey keeps of one key's records only what decides its state as of
// floor or any later second: every record after floor; the entry current
// at floor (a version or a delete marker), and each entry a permanent
// deletion after floor makes current again; for each version kept, the
// latest change of its tags, ACL and storage class at or before floor
// (what it had at floor); and the skips that keep a reconcile from trying
// an SSE-C or archived version again; purges, listings and orders of what
// is kept. Everything else happened before floor and is overruled by what
// is kept: versions superseded or deleted by then (a key absent at floor
// keeps its delete marker, or nothing when its versions were deleted for
// good), and their changes, purges, listings and orders.
func foldKey(recs []Observed, floor time.Time) []Observed {
	cut := floor.Unix()
	// The entries from before the floor that are current at some second
	// from it on: the one current at the floor, and each one a later
	// permanent deletion makes current again (what superseded it gone).
	type head struct {
		op Op
		id string
		at time.Time
	}
	heads := map[head]bool{}
	addHead := func(at time.Time) {
		if _, _, cur := StateOf(recs, at); cur.Op != "" && cur.Time.Unix() <= cut {
			heads[head{cur.Op, identity(cur), cur.Time}] = true
		}
	}
	addHead(floor)
	for _, o := range recs {
		if o.Op == OpPurge && o.Time.Unix() > cut {
			addHead(o.Time)
		}
	}
	keep := make([]bool, len(recs))
	versions := map[string]bool{} // entries kept, by version id
	for i, o := range recs {
		r := o.Record
		switch h := (head{r.Op, identity(r), r.Time}); {
		case r.Time.Unix() > cut:
			keep[i] = true
		case heads[h]:
			keep[i] = true
			delete(heads, h) // one record of it
		default:
			continue
		}
		if r.Op == OpVersion || r.Op == OpDeleteMarker {
			versions[r.VersionID] = true
		}
	}
	// A purge or listing of a kept entry, and an order of two of them,
	// before the floor: only a voided purge leaves an entry alive, so
	// these are rare; kept, the rules read them as before.
	for i, o := range recs {
		r := o.Record
		if keep[i] || r.Time.Unix() > cut {
			continue
		}
		switch r.Op {
		case OpPurge, OpListed:
			keep[i] = versions[r.VersionID]
		case OpOrder:
			n := 0
			for _, id := range r.Order {
				if versions[id] {
					n++
				}
			}
			keep[i] = n >= 2
		}
	}
	type change struct {
		op Op
		id string
	}
	latest := map[change]int{}
	for i, o := range recs {
		r := o.Record
		if r.Time.Unix() > cut {
			continue
		}
		switch r.Op {
		case OpTags, OpACL, OpStorageClass:
			if !versions[r.VersionID] {
				continue
			}
		case OpSkip:
			if r.Reason != SkipSSEC && r.Reason != SkipArchived {
				continue
			}
		default:
			continue
		}
		c := change{r.Op, r.VersionID}
		if j, ok := latest[c]; !ok || later(o, recs[j]) {
			latest[c] = i
		}
	}
	for _, i := range latest {
		keep[i] = true
	}
	var out []Observed
	for i, o := range recs {
		if keep[i] {
			out = append(out, o)
		}
	}
	return out
}
