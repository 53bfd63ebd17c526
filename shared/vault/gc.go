package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Garbage collection deletes what no record names, safely while backups
// and captures run (docs/vault-format.md, "Expiry", has the argument in
// full):
//
//   - References are streamed from every journal (its index's runs and the
//     segments after them), every live snapshot recovery point's manifest,
//     the manifest of every point a running snapshot job may carry records
//     from (its base, EXPIRED or not: livePoints), and every running
//     snapshot job's fragments, sorted through temporary files
//     (refSorter), and merge-joined against the listing of data/: memory
//     does not grow with the vault.
//   - Only objects last written more than GCGrace before the collection
//     began listing references are deleted. A writer that stores data
//     references an existing data object only if it was written within
//     ReuseLimit (it writes the version's bytes under a fresh key
//     instead, see StoreData), and records what it stored within
//     WriterBound of storing it. With GCGrace >= ReuseLimit + WriterBound,
//     any such reference to an object old enough to delete was written
//     before the collection began, so the collection read it.
//     (TestCollectionRacingWriters interleaves a capture.)
//   - A snapshot's scan also carries records over, naming data of any
//     age, from two sources. Its base: the job names it in its CREATING
//     record before the scan reads it, and carries from it only while it
//     reads it usable; expiry lists the points after it marks one
//     EXPIRED and keeps a point some CREATING point names (expirePoints),
//     and the collection reads it. The journal: only a record the
//     journal holds current at the scan round's start, which a fold
//     drops only once what superseded it is older than the bucket's
//     window (a day at least), long after the round wrote the record
//     into a fragment. (TestExpiryRacingASnapshotLosesNothing, in
//     shared/snapshot, interleaves a backup.)
//   - A journal that could not be read whole (a lost shard or segment)
//     stops the collection of data: what it referenced is unknown.

// CollectionSummary counts what a collection found.
type CollectionSummary struct {
	References     int64  `json:"references"`   // distinct data keys records name
	Live           int64  `json:"live"`         // data objects referenced
	LiveBytes      int64  `json:"liveBytes"`    // their bytes (every version)
	Young          int64  `json:"young"`        // unreferenced, but written within GCGrace: kept for now
	YoungBytes     int64  `json:"youngBytes"`   //
	Missing        int64  `json:"missing"`      // referenced data keys with no object (verify reports them)
	JournalLive    int64  `json:"journalLive"`  // journal objects (index, runs, segments) kept
	JournalBytes   int64  `json:"journalBytes"` //
	SkippedBecause string `json:"skippedBecause,omitempty"`
}

// GCGrace, ReuseLimit and WriterBound are the collection's safety margins
// (above). Tests shorten them.
var (
	ReuseLimit  = 24 * time.Hour
	WriterBound = time.Hour
	GCGrace     = ReuseLimit + WriterBound
)

// collect deletes journal objects no index names and data nothing
// references (steps 3 and 4 of Expire).
func (v *Vault) collect(ctx context.Context, o ExpireOptions, rep *ExpireReport) error {
	start := time.Now()
	cutoff := start.Add(-GCGrace)
	refs := newRefSorter()
	defer refs.Close()
	// Journals: every bucket with an index or journal objects.
	buckets, err := v.journalBuckets(ctx)
	if err != nil {
		return err
	}
	sound := true
	// A dry run folds nothing: it reads each journal as the fold it
	// would make leaves it.
	folds := map[string]time.Time{}
	if o.DryRun {
		for _, f := range rep.Folds {
			folds[f.Bucket] = f.Floor
		}
	}
	for _, b := range buckets {
		ok, err := v.collectJournal(ctx, b, o, cutoff, folds[b], refs, rep)
		if err != nil {
			return err
		}
		sound = sound && ok
	}
	// Snapshot recovery points that are not expired (in a dry run, not
	// due to expire either), the points running snapshot jobs may carry
	// records from, and running jobs' fragments.
	snapBuckets, err := v.SnapshotBuckets(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{} // jobs of points still CREATING
	for _, b := range snapBuckets {
		points, err := v.livePoints(ctx, b, o, running)
		if err != nil {
			return err
		}
		for _, lp := range points {
			sp := lp.point
			m, err := NewMerger([]RecordSource{v.OpenShards(ctx, sp.Shards, nil)})
			if err != nil {
				return err
			}
			tier := refWarm
			if lp.cold {
				tier = refCold
			}
			err = readAll(m, func(_ string, recs []Observed) error {
				for _, r := range recs {
					if r.Data != "" {
						if err := refs.Add(r.Data + tier); err != nil {
							return err
						}
					}
				}
				return nil
			})
			for _, d := range m.Damage() {
				if d.Lost {
					sound = false
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("snapshot %s of %s: %s", sp.RecoveryPointID, b, d))
				}
			}
			m.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := v.jobReferences(ctx, running, refs); err != nil {
		return err
	}
	rep.Collected.References = refs.n
	if err := expireStep("references"); err != nil {
		return err
	}
	if !sound {
		rep.Collected.SkippedBecause = "a journal or manifest could not be read whole (see warnings): what it references is unknown, so no data was collected; run `bucketvault vault repair`"
		return nil
	}
	sorted, err := refs.Sorted()
	if err != nil {
		return err
	}
	defer sorted.Close()
	// Merge-join the data objects against the references.
	groups := &refGroups{it: sorted}
	ref, cold, more := groups.Next()
	// Repair records go with the data object they vouch for: deleted
	// with it, retained while it is referenced. They are few (one per
	// version repair wrote again), so they are held in memory.
	repairs, err := v.repairRecordsByData(ctx)
	if err != nil {
		return err
	}
	d := v.newDeleter(ctx, o)
	d.step = "data-delete"
	dr := v.newDeleter(ctx, o)
	dr.step = "repair-delete"
	ret := v.newRetainer(ctx, o)
	ret.step = "data-retain"
	tag := v.newTagger(ctx, o)
	probe := ProbeKey(v.Bucket)
	err = v.listData(ctx, func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time, class string) error {
		if key == probe {
			return nil // the vault's own, not a version's: kept
		}
		records := repairs[key]
		delete(repairs, key)
		for more && ref < key {
			rep.Collected.Missing++
			ref, cold, more = groups.Next()
		}
		if more && ref == key {
			rep.Collected.Live++
			rep.Collected.LiveBytes += size
			allCold := cold
			ref, cold, more = groups.Next()
			switch {
			case isColdClass(class):
				rep.Cold.InColdClass++
				rep.Cold.ColdBytes += size
			case allCold && newest.Before(cutoff) && size/int64(max(1, len(vs))) < ColdMinSize:
				rep.Cold.TooSmall++
			case allCold && newest.Before(cutoff):
				// Only COLD points reference it, and no writer can come to.
				if err := tag.add(key, vs, size); err != nil {
					return err
				}
			}
			for _, r := range records {
				if err := ret.add(r.key, r.newest); err != nil {
					return err
				}
			}
			return ret.add(key, newest)
		}
		if !newest.Before(cutoff) {
			rep.Collected.Young++
			rep.Collected.YoungBytes += size
			return nil
		}
		for _, r := range records {
			if err := dr.add(r.key, r.versions, r.size); err != nil {
				return err
			}
		}
		return d.add(key, vs, size)
	})
	for more && err == nil {
		if strings.HasPrefix(ref, dataPrefix) {
			rep.Collected.Missing++
		}
		ref, cold, more = groups.Next()
	}
	// Repair records of a data key with no object left (deleted by an
	// earlier collection stopped before them), once they are as old as
	// anything a collection deletes.
	for _, records := range repairs {
		for _, r := range records {
			if r.newest.Before(cutoff) && err == nil {
				err = dr.add(r.key, r.versions, r.size)
			}
		}
	}
	n, derr := d.close()
	rep.Data.add(n)
	nr, drerr := dr.close()
	rep.RepairRecords.add(nr)
	if derr == nil {
		derr = drerr
	}
	rerr := ret.close()
	rep.Extended += ret.extended
	tagged, terr := tag.close()
	rep.Cold.Tagged += tagged.Tagged
	rep.Cold.TaggedBytes += tagged.TaggedBytes
	rep.Cold.Pending += tagged.Pending
	rep.Cold.KeptWarm += tagged.KeptWarm
	for _, e := range []error{err, derr, rerr, terr} {
		if e != nil {
			return e
		}
	}
	return sorted.Err()
}

// livePoint is a recovery point whose manifest a collection reads, and
// whether its references are cold (only COLD points' may be).
type livePoint struct {
	point SnapshotPoint
	cold  bool
}

// livePoints lists the recovery points of bucket whose data a collection
// keeps, and adds the jobs of its CREATING points to running: every
// point not EXPIRED (in a dry run, not due to expire either), and every
// point a running job may carry records from (BaseOf), EXPIRED or not.
//
// The points are listed twice. A listing reads each record after it
// lists their keys, so a point it reads EXPIRED may have been marked
// after a job that carries from it wrote its CREATING record and after
// the keys were listed: the job's record is then missing from that
// listing. The second listing starts after the first has read every
// record, so it has every such job (the job wrote its record before its
// scan read the base usable, which was before the mark, which was before
// the first listing read it EXPIRED). Whether a point is live, and
// whether it is cold, is what the first listing read; which jobs run and
// what they carry from, what the second read.
func (v *Vault) livePoints(ctx context.Context, bucket string, o ExpireOptions, running map[string]bool) ([]livePoint, error) {
	first, err := v.Snapshots(ctx, bucket)
	if err != nil {
		return nil, err
	}
	second, err := v.Snapshots(ctx, bucket)
	if err != nil {
		return nil, err
	}
	held := carriersOf(second)
	gone := func(sp SnapshotPoint) bool {
		if sp.Status == PointExpired {
			return true
		}
		// A dry run reads the vault as its expiry of points would leave it.
		cl := sp.CalculatedLifecycle
		return o.DryRun && cl != nil && cl.DeleteAt != nil && !cl.DeleteAt.After(o.Now) && sp.Status != PointCreating && v.lockHolds(sp.CreationDate, o.Now) == ""
	}
	type seen struct {
		first, second *SnapshotPoint
	}
	var order []string
	byID := map[string]*seen{}
	for i, list := range [][]SnapshotPoint{first, second} {
		for j := range list {
			id := list[j].RecoveryPointID
			s := byID[id]
			if s == nil {
				s = &seen{}
				byID[id] = s
				order = append(order, id)
			}
			if i == 0 {
				s.first = &list[j]
			} else {
				s.second = &list[j]
			}
		}
	}
	var out []livePoint
	for _, id := range order {
		s := byID[id]
		cur := s.second // the newest record: a point sealed in between has its shards
		if cur == nil {
			cur = s.first
		}
		if cur.Status == PointCreating {
			running[cur.BackupJobID] = true
		}
		carried := held.of(id) != ""
		liveFirst := s.first != nil && !gone(*s.first)
		liveSecond := s.second != nil && !gone(*s.second)
		if !carried && !liveFirst && !liveSecond {
			continue
		}
		// Cold only as the first listing read it (a point turns COLD once
		// and stays), and never while a job may carry from it.
		cold := s.first != nil && s.first.coldTagged(o.Now) && !carried
		out = append(out, livePoint{point: *cur, cold: cold})
	}
	return out, nil
}

// RetainMargin is how long before an object's S3 Object Lock retention
// would end that expiry extends it while the object is referenced (expiry
// runs daily; the margin covers missed days).
var RetainMargin = 3 * 24 * time.Hour

// retainer extends, in a locked vault, the retention of objects still
// referenced whose retention is about to end. Their retention started at
// their write (the bucket's default retention: the lock's minimum) and is
// extended by whole periods of the minimum: an object written at w is
// retained until the first w + k*min beyond now + RetainMargin, and is
// looked at only when that end comes within twice the margin (about three
// requests per object per period, none in between).
type retainer struct {
	ctx      context.Context
	v        *Vault
	dry      bool
	all      bool   // every object, not only those near their retention's end (a new lock)
	step     string // the expiry step each Retain call is (expireFault), if any
	batch    map[string]time.Time
	extended int64
	err      error
}

// retainBatch is how many objects a retainer hands Retain at a time.
// Tests shorten it.
var retainBatch = 1000

func (v *Vault) newRetainer(ctx context.Context, o ExpireOptions) *retainer {
	return &retainer{ctx: ctx, v: v, dry: o.DryRun && !o.retainAll, all: o.retainAll, batch: map[string]time.Time{}}
}

func (r *retainer) add(key string, written time.Time) error {
	l := r.v.Lock
	if l == nil || r.dry || r.err != nil {
		return r.err
	}
	period := time.Duration(l.MinRetentionDays) * 24 * time.Hour
	now := time.Now()
	k := now.Add(RetainMargin).Sub(written)/period + 1
	until := written.Add(k * period)
	if until.Sub(now) > 2*RetainMargin && !r.all {
		return nil
	}
	r.batch[key] = until
	if len(r.batch) >= retainBatch {
		r.flush()
	}
	return r.err
}

func (r *retainer) flush() {
	byUntil := map[time.Time][]string{}
	for k, u := range r.batch {
		byUntil[u] = append(byUntil[u], k)
	}
	for u, keys := range byUntil {
		if r.step != "" {
			if err := expireStep(r.step); err != nil {
				if r.err == nil {
					r.err = err
				}
				break
			}
		}
		if err := r.v.Retain(r.ctx, keys, u, 16); err != nil && r.err == nil {
			r.err = err
		}
		r.extended += int64(len(keys))
	}
	clear(r.batch)
}

func (r *retainer) close() error {
	r.flush()
	return r.err
}

// journalBuckets lists the buckets that have a journal (protected or
// not: a journal outlives the bucket's protection).
func (v *Vault) journalBuckets(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, prefix := range []string{journalPrefix, runsPfx} {
		p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list journals: %w", err)
			}
			for _, cp := range page.CommonPrefixes {
				b := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
				if !seen[b] {
					seen[b] = true
					out = append(out, b)
				}
			}
		}
	}
	return out, nil
}

// collectJournal adds the data references of bucket's journal to refs and
// deletes its journal objects that no index names: runs not in the
// index (merged, set aside, or written by a compaction that crashed or
// lost a race) and, when the whole journal read sound, the segments its
// runs hold. It reports whether the journal read sound.
func (v *Vault) collectJournal(ctx context.Context, bucket string, o ExpireOptions, cutoff, fold time.Time, refs *refSorter, rep *ExpireReport) (bool, error) {
	jv, err := v.view(ctx, bucket)
	if err != nil {
		return false, err
	}
	m, err := v.openView(ctx, bucket, jv, nil)
	if err != nil {
		return false, err
	}
	err = readAll(m, func(_ string, recs []Observed) error {
		if !fold.IsZero() {
			recs = foldKey(recs, fold)
		}
		for _, r := range recs {
			if r.Data != "" {
				if err := refs.Add(r.Data + refWarm); err != nil {
					return err
				}
			}
		}
		return nil
	})
	damage := m.Damage()
	m.Close()
	if err != nil {
		return false, err
	}
	sound := true
	for _, d := range damage {
		if d.Lost {
			sound = false
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("journal of %s: %s", bucket, d))
		}
	}
	if jv.index.etag == "" {
		return sound, nil // no index (a format 1 journal): nothing to tell apart
	}
	// What the index names, and what a compaction in progress has
	// written (its progress record names its shards).
	keep := map[string]bool{IndexKey(bucket): true}
	for _, r := range jv.index.Runs {
		keep[r.Manifest] = true
		for _, sh := range r.Shards {
			keep[sh.Key] = true
		}
	}
	var prog compactProgress
	if err := v.GetJSON(ctx, compactProgressKey(bucket), &prog); err == nil {
		for _, sh := range prog.Shards {
			keep[sh.Key] = true
		}
	} else if !s3x.IsNotFound(err) {
		return false, err
	}
	d := v.newDeleter(ctx, o)
	d.step = "journal-delete"
	ret := v.newRetainer(ctx, o)
	ret.step = "journal-retain"
	visit := func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time) error {
		garbage := !keep[key] && newest.Before(cutoff)
		if id, ok := ParseSegmentKey(key); ok && strings.HasPrefix(key, SegmentPrefix(bucket)) {
			// A segment a run holds goes once the runs read sound.
			garbage = sound && id <= jv.index.Cut && newest.Before(cutoff)
		}
		if !garbage {
			rep.Collected.JournalLive++
			rep.Collected.JournalBytes += size
			return ret.add(key, newest)
		}
		return d.add(key, vs, size)
	}
	for _, prefix := range []string{runsPfx + bucket + "/", SegmentPrefix(bucket)} {
		if err := v.objectVersions(ctx, prefix, visit); err != nil {
			// Stopped: what it deleted and extended is reported all the same.
			n, _ := d.close()
			rep.Journal.add(n)
			ret.close()
			rep.Extended += ret.extended
			return false, err
		}
	}
	n, err := d.close()
	rep.Journal.add(n)
	rerr := ret.close()
	rep.Extended += ret.extended
	if err == nil {
		err = rerr
	}
	return sound, err
}

// jobReferences adds the data references of running snapshot jobs'
// fragments: what a job has copied before its recovery point is sealed.
// A job runs while its recovery point is CREATING (its start writes the
// point before anything is copied); a finished job's fragments are
// scratch, referenced by nothing.
func (v *Vault) jobReferences(ctx context.Context, running map[string]bool, refs *refSorter) error {
	// A job's working files are under scratch/jobs/<job>/ (format 1's
	// jobs wrote them under jobs/<job>/, read too).
	var keys []string
	for _, prefix := range []string{scratchPrefix + "jobs/", jobsPrefix} {
		p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list jobs: %w", err)
			}
			for _, obj := range page.Contents {
				k := aws.ToString(obj.Key)
				job, _, _ := strings.Cut(strings.TrimPrefix(k, prefix), "/")
				if running[job] && strings.Contains(k, "/fragments/") && strings.HasSuffix(k, segmentSuffix) {
					keys = append(keys, k)
				}
			}
		}
	}
	for _, k := range keys {
		src, err := v.OpenSegmentFile(ctx, k)
		if s3x.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		for {
			o, err := src.Next()
			if errors.Is(err, io.EOF) {
				src.Close()
				break
			}
			if err != nil {
				src.Close()
				return fmt.Errorf("read job fragment %s: %w", k, err)
			}
			if o.Data != "" {
				if err := refs.Add(o.Data + refWarm); err != nil {
					src.Close()
					return err
				}
			}
		}
	}
	return nil
}

// RetainReferenced extends the S3 Object Lock retention of everything the
// vault references (data, journal objects, and each live recovery point's
// manifest and data to its DeleteAt), deleting nothing: what a new lock
// applies to what the vault held before it. Its cost is a collection's
// reads and a retention request per object.
func (v *Vault) RetainReferenced(ctx context.Context) (int64, error) {
	if v.Lock == nil {
		return 0, nil
	}
	rep := &ExpireReport{Vault: v.Bucket, Now: time.Now().UTC(), DryRun: true}
	if err := v.collect(ctx, ExpireOptions{Now: rep.Now, DryRun: true, Concurrency: 16, retainAll: true}, rep); err != nil {
		return rep.Extended, err
	}
	buckets, err := v.SnapshotBuckets(ctx)
	if err != nil {
		return rep.Extended, err
	}
	for _, b := range buckets {
		points, err := v.Snapshots(ctx, b)
		if err != nil {
			return rep.Extended, err
		}
		for _, sp := range points {
			if sp.Status == PointAvailable || sp.Status == PointPartial {
				if err := v.RetainPoint(ctx, &sp, rep.Now, 16); err != nil {
					return rep.Extended, err
				}
			}
		}
	}
	return rep.Extended, nil
}

// Usage is what the vault holds, as a collection finds it.
type Usage struct {
	CollectionSummary
	// Awaiting is what the next collection would delete: data and
	// journal objects nothing references (Young are not in it yet).
	AwaitingData    DeleteCount `json:"awaitingData"`
	AwaitingJournal DeleteCount `json:"awaitingJournal"`
	// Cold is the cold tier: data in a cold storage class, and what the
	// next expiry would tag for it.
	Cold     ColdSummary `json:"cold"`
	Warnings []string    `json:"warnings,omitempty"`
}

// Usage reads every reference and lists every object, as a collection
// does, and deletes nothing: its cost is a collection's reads.
func (v *Vault) Usage(ctx context.Context) (*Usage, error) {
	rep := &ExpireReport{Vault: v.Bucket, Now: time.Now().UTC(), DryRun: true}
	if err := v.collect(ctx, ExpireOptions{Now: rep.Now, DryRun: true, Concurrency: 16}, rep); err != nil {
		return nil, err
	}
	return &Usage{CollectionSummary: rep.Collected, AwaitingData: rep.Data, AwaitingJournal: rep.Journal, Cold: rep.Cold, Warnings: rep.Warnings}, nil
}

// repairEntry is one repair record's versions, as a listing gives them.
type repairEntry struct {
	key      string
	versions []types.ObjectIdentifier
	size     int64
	newest   time.Time
}

// repairRecordsByData lists every repair record, by the data key it
// vouches for (its key names it).
func (v *Vault) repairRecordsByData(ctx context.Context) (map[string][]repairEntry, error) {
	out := map[string][]repairEntry{}
	err := v.objectVersions(ctx, repairsPrefix, func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time) error {
		if data, ok := repairRecordData(key); ok {
			out[data] = append(out[data], repairEntry{key: key, versions: vs, size: size, newest: newest})
		}
		return nil
	})
	return out, err
}
