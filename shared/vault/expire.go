package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Expiry ages a vault (docs/vault-format.md, "Expiry"):
//
//  1. each protected bucket's journal is folded at its window's floor
//     (Fold), at most every FoldEvery of the window, and never past the
//     point in time of a restore still running;
//  2. snapshot recovery points whose CalculatedLifecycle.DeleteAt has
//     come become EXPIRED (If-Match) and their manifests are deleted, then
//     their records; those whose MoveToColdStorageAt has come become COLD
//     (If-Match; cold.go);
//  3. journal objects no index names (runs merged or dropped, a crashed
//     or losing compaction's shards, segments a sound run holds) are
//     deleted;
//  4. data objects (whole versions and packs) that nothing references
//     are deleted: not a live recovery point, not a journal record, not a
//     running snapshot job's fragment (garbage collection, gc.go); data
//     that only COLD points reference is tagged for the cold tier.
//
// Every step can be stopped anywhere and run again: it only ever deletes
// what the vault's records no longer name, and a state change is an
// If-Match write.

// ExpireRequest is the expire function's input: the schedule's (how
// often to collect), or a dry run.
type ExpireRequest struct {
	DryRun bool `json:"dryRun,omitempty"`
	// CollectEveryHours: collect only when the last collection finished
	// this many hours ago or more (ExpireOptions.CollectEvery); 0 every run.
	CollectEveryHours int `json:"collectEveryHours,omitempty"`
}

// ExpireOptions shape one expiry run.
type ExpireOptions struct {
	// Now is the time windows and lifecycles are measured at (zero: the
	// clock). It exists for tests and what-if runs; what concurrent
	// writers may be doing is always judged by the clock (GCGrace).
	Now time.Time
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// Concurrency bounds parallel requests (default 16).
	Concurrency int
	// Progress, when set, is called as the run goes.
	Progress func(ExpireReport)
	// StopAt, when set, ends the folds at the first shard after it (a
	// Lambda invocation's deadline): the run reports Incomplete, expires
	// recovery points and collects nothing, and the next run resumes the
	// fold where it stopped.
	StopAt time.Time
	// CollectEvery, when set, skips the collection (steps 3 and 4) when
	// the last one finished less than this long ago by the clock, so
	// expiry can run often for its folds and points while the collection,
	// which lists every data object, runs once a day.
	CollectEvery time.Duration

	retainAll bool // RetainReferenced
}

// ExpireReport says what an expiry run did (or, dry, would do).
type ExpireReport struct {
	Vault     string            `json:"vault"`
	Now       time.Time         `json:"now"`
	DryRun    bool              `json:"dryRun,omitempty"`
	Folds     []FoldReport      `json:"folds,omitempty"`
	Expired   []ExpiredPoint    `json:"expiredRecoveryPoints,omitempty"`
	Stopped   []StoppedPoint    `json:"stoppedRecoveryPoints,omitempty"`
	Journal   DeleteCount       `json:"journalObjects"`
	Data      DeleteCount       `json:"dataObjects"`
	Scratch   DeleteCount       `json:"scratchObjects"`
	Collected CollectionSummary `json:"collection"`
	Cold      ColdSummary       `json:"cold"`
	// Extended counts referenced objects whose S3 Object Lock retention
	// was looked at, and extended where it was about to end.
	Extended int64    `json:"retentionExtended,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Stage    string   `json:"stage,omitempty"` // where a running expiry is (progress)
	// Incomplete says what the run left for the next one (a fold stopped
	// at StopAt); "" when it did everything due.
	Incomplete string `json:"incomplete,omitempty"`

	// RepairRecords are the repair records deleted with their data
	// objects (rebuilt.go).
	RepairRecords DeleteCount `json:"repairRecords,omitzero"`
}

// FoldReport is one bucket's fold.
type FoldReport struct {
	Bucket     string    `json:"bucket"`
	WindowDays int       `json:"windowDays"`
	Floor      time.Time `json:"floor"`
	// Folded is how many records the fold left out; Records how many it
	// kept (dry: 0, unknown until it runs).
	Folded  int64  `json:"folded"`
	Records int64  `json:"records"`
	Reason  string `json:"reason,omitempty"` // why it did not fold
}

// ExpiredPoint is a snapshot recovery point expiry deleted.
type ExpiredPoint struct {
	Bucket          string    `json:"bucket"`
	RecoveryPointID string    `json:"recoveryPointId"`
	DeleteAt        time.Time `json:"deleteAt"`
	Objects         int       `json:"objects"` // its record and manifest objects
}

// DeleteCount counts deleted (or, dry, deletable) objects: every version
// of each.
type DeleteCount struct {
	Objects  int64 `json:"objects"`
	Versions int64 `json:"versions"`
	Bytes    int64 `json:"bytes"`
	// Retained are versions S3 Object Lock refused to delete (their
	// retention has not ended); they go on a later run.
	Retained int64 `json:"retained,omitempty"`
}

func (c *DeleteCount) add(o DeleteCount) {
	c.Objects += o.Objects
	c.Versions += o.Versions
	c.Bytes += o.Bytes
	c.Retained += o.Retained
}

// FoldEvery is how far a bucket's floor must be able to move before
// expiry folds its journal again, as a fraction of its window (at least a
// day): a fold rewrites the whole journal, so folding daily a 35-day
// window would rewrite it 35 times over its life; a tenth of the window
// rewrites it ten times and keeps at most a tenth more than the window.
// Tests shorten it.
var FoldEvery = func(windowDays int) time.Duration {
	return max(24*time.Hour, time.Duration(windowDays)*24*time.Hour/10)
}

// expireFault, when set (tests), is called at each step of an expiry run;
// an error it returns stops the run there, as a crash would.
var expireFault func(step string) error

func expireStep(step string) error {
	if expireFault != nil {
		return expireFault(step)
	}
	return nil
}

// Expire ages the vault: see the steps above.
func (v *Vault) Expire(ctx context.Context, o ExpireOptions) (*ExpireReport, error) {
	if v.Descriptor.FormatVersion < 2 {
		return nil, &UpgradeNeededError{Bucket: v.Bucket, Version: v.Descriptor.FormatVersion, Operation: "expiry"}
	}
	if err := v.loadLock(ctx); err != nil { // a lock set since the vault was opened
		return nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC()
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	rep := &ExpireReport{Vault: v.Bucket, Now: o.Now, DryRun: o.DryRun}
	progress := func(stage string) {
		rep.Stage = stage
		if o.Progress != nil {
			o.Progress(*rep)
		}
	}
	// 1. Folds.
	progress("fold")
	buckets, err := v.Buckets(ctx)
	if err != nil {
		return rep, err
	}
	running, err := v.runningRestores(ctx)
	if err != nil {
		return rep, err
	}
	fctx := ctx
	if !o.StopAt.IsZero() {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(ctx, o.StopAt)
		defer cancel()
	}
	for _, b := range buckets {
		f, err := v.foldBucket(fctx, b, o, running[b.Bucket])
		if err != nil && ctx.Err() == nil && errors.Is(fctx.Err(), context.DeadlineExceeded) {
			// Its progress is saved shard by shard: the next run goes on.
			rep.Incomplete = fmt.Sprintf("the fold of %s's journal stopped at the run's deadline (%s); the next run resumes it", b.Bucket, o.StopAt.UTC().Format(time.RFC3339))
			rep.Collected.SkippedBecause = "the run's time went to a fold; the next run collects"
			break
		}
		if err != nil {
			return rep, fmt.Errorf("fold the journal of %s: %w", b.Bucket, err)
		}
		if f != nil {
			rep.Folds = append(rep.Folds, *f)
		}
		if err := expireStep("fold"); err != nil {
			return rep, err
		}
	}
	// 2. Snapshot recovery points past DeleteAt.
	progress("recovery points")
	if err := v.stopAbandoned(ctx, o, rep); err != nil {
		return rep, err
	}
	if err := v.expirePoints(ctx, o, rep); err != nil {
		return rep, err
	}
	if err := v.coolPoints(ctx, o, rep); err != nil {
		return rep, err
	}
	// 3 and 4. Journal objects and data no record names.
	if rep.Incomplete != "" {
		progress("done")
		rep.Stage = ""
		return rep, nil
	}
	if last, ok := v.lastCollection(ctx); ok && o.CollectEvery > 0 && time.Since(last) < o.CollectEvery {
		rep.Collected.SkippedBecause = fmt.Sprintf("the last collection finished at %s; it runs every %s", last.UTC().Format(time.RFC3339), o.CollectEvery)
		progress("done")
		rep.Stage = ""
		return rep, nil
	}
	progress("collection")
	if err := v.collect(ctx, o, rep); err != nil {
		return rep, err
	}
	if !o.DryRun && rep.Collected.SkippedBecause == "" {
		v.noteCollection(ctx)
	}
	progress("done")
	rep.Stage = ""
	return rep, nil
}

// foldBucket folds one bucket's journal if its floor can move by
// FoldEvery; nil when nothing is due.
func (v *Vault) foldBucket(ctx context.Context, b ProtectedBucket, o ExpireOptions, runningAt time.Time) (*FoldReport, error) {
	days := v.Window(b)
	floor := o.Now.AddDate(0, 0, -days).Truncate(time.Second)
	idx, err := v.Index(ctx, b.Bucket)
	if err != nil {
		return nil, err
	}
	f := &FoldReport{Bucket: b.Bucket, WindowDays: days, Floor: floor}
	if !runningAt.IsZero() && runningAt.Before(floor) {
		// A restore as of an earlier time is running: its records stay.
		floor = runningAt.UTC().Truncate(time.Second)
		f.Floor = floor
		f.Reason = "held back to the point in time of a running restore"
	}
	if !idx.Floor.IsZero() && floor.Sub(idx.Floor) < FoldEvery(days) {
		return nil, nil
	}
	if o.DryRun {
		f.Reason = strings.TrimPrefix(f.Reason+"; would fold", "; ")
		return f, nil
	}
	st, err := v.Fold(ctx, b.Bucket, time.Now(), floor)
	if err != nil {
		return nil, err
	}
	if st.Floor == nil {
		return nil, nil // nothing written an hour ago or more to fold yet
	}
	f.Folded, f.Records = st.Folded, st.Records
	return f, nil
}

// runningRestores maps each bucket to the earliest point in time of a
// restore of it still running (heartbeat within StaleAfter).
func (v *Vault) runningRestores(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(jobsPrefix + "active/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list running jobs: %w", err)
		}
		for _, obj := range page.Contents {
			var active struct {
				JobID string `json:"jobId"`
			}
			if err := v.GetJSON(ctx, aws.ToString(obj.Key), &active); err != nil {
				if s3x.IsNotFound(err) {
					continue
				}
				return nil, err
			}
			var job struct {
				State     string    `json:"state"`
				UpdatedAt time.Time `json:"updatedAt"`
				Request   struct {
					Bucket string    `json:"bucket"`
					At     time.Time `json:"at"`
				} `json:"request"`
			}
			if err := v.GetJSON(ctx, JobKey(active.JobID), &job); err != nil {
				if s3x.IsNotFound(err) {
					continue
				}
				return nil, err
			}
			if job.State != "RUNNING" || time.Since(job.UpdatedAt) > JobStaleAfter || job.Request.At.IsZero() {
				continue
			}
			if t, ok := out[job.Request.Bucket]; !ok || job.Request.At.Before(t) {
				out[job.Request.Bucket] = job.Request.At
			}
		}
	}
	return out, nil
}

// JobStaleAfter is how long after its last heartbeat a RUNNING job is
// taken for dead (it beats every minute).
var JobStaleAfter = 5 * time.Minute

// expirePoints deletes the snapshot recovery points whose DeleteAt has
// come: EXPIRED first (If-Match, so a run stopped half way is finished
// by the next), then the manifest, then the record. A point a running
// snapshot job may carry records from (its base, see BaseOf) stays
// EXPIRED with its manifest, and its data stays referenced, until that
// job's point is no longer CREATING: the points are listed again after
// the marks, so every job whose scan read a point usable before its
// mark is in that listing.
func (v *Vault) expirePoints(ctx context.Context, o ExpireOptions, rep *ExpireReport) error {
	buckets, err := v.SnapshotBuckets(ctx)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		points, err := v.Snapshots(ctx, b)
		if err != nil {
			return err
		}
		var due []SnapshotPoint
		for _, sp := range points {
			cl := sp.CalculatedLifecycle
			if cl == nil || cl.DeleteAt == nil || cl.DeleteAt.After(o.Now) {
				continue
			}
			if sp.Status == PointCreating {
				continue // a job still running: its seal decides
			}
			if why := v.lockHolds(sp.CreationDate, o.Now); why != "" {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("recovery point %s of %s is past DeleteAt but %s", sp.RecoveryPointID, b, why))
				continue
			}
			if o.DryRun {
				if by := carriersOf(points).of(sp.RecoveryPointID); by != "" {
					rep.Warnings = append(rep.Warnings, heldWarning(b, sp.RecoveryPointID, by))
					continue
				}
				rep.Expired = append(rep.Expired, ExpiredPoint{Bucket: b, RecoveryPointID: sp.RecoveryPointID, DeleteAt: *cl.DeleteAt,
					Objects: 1 + len(sp.Shards) + len(sp.FailureShards)})
				continue
			}
			if sp.Status != PointExpired {
				exp := sp
				exp.Status, exp.StatusMessage = PointExpired, fmt.Sprintf("expired at %s (DeleteAt %s)", o.Now.Format(time.RFC3339), cl.DeleteAt.Format(time.RFC3339))
				if err := v.SetPoint(ctx, &exp); err != nil {
					return err
				}
			}
			if err := expireStep("point-expired"); err != nil {
				return err
			}
			due = append(due, sp)
		}
		if len(due) == 0 {
			continue
		}
		after, err := v.Snapshots(ctx, b)
		if err != nil {
			return err
		}
		held := carriersOf(after)
		for _, sp := range due {
			if by := held.of(sp.RecoveryPointID); by != "" {
				rep.Warnings = append(rep.Warnings, heldWarning(b, sp.RecoveryPointID, by))
				continue
			}
			ep := ExpiredPoint{Bucket: b, RecoveryPointID: sp.RecoveryPointID, DeleteAt: *sp.CalculatedLifecycle.DeleteAt}
			n, err := v.deletePrefix(ctx, snapshotsPrefix+b+"/"+sp.RecoveryPointID+"/", o)
			rep.Journal.add(n) // what it deleted, stopped or not
			if err != nil {
				return err
			}
			if err := expireStep("point-manifest"); err != nil {
				return err
			}
			rec, err := v.deleteKeys(ctx, []string{SnapshotKey(b, sp.RecoveryPointID)}, o)
			rep.Journal.add(rec)
			if err != nil {
				return err
			}
			ep.Objects = int(n.Objects + rec.Objects)
			rep.Expired = append(rep.Expired, ep)
		}
	}
	return nil
}

// heldWarning says why an expired point's manifest and data stay.
func heldWarning(bucket, id, by string) string {
	return fmt.Sprintf("recovery point %s of %s is EXPIRED, but its manifest and data stay while snapshot %s, whose scan may carry records from it, is CREATING", id, bucket, by)
}

// lockHolds says why the vault lock keeps a recovery point created at
// created ("" when it does not): the engine never deletes before the
// lock's minimum retention has passed, whatever S3 would allow.
func (v *Vault) lockHolds(created, now time.Time) string {
	l := v.Lock
	if l == nil || l.MinRetentionDays == 0 {
		return ""
	}
	until := created.AddDate(0, 0, l.MinRetentionDays)
	if now.Before(until) {
		return fmt.Sprintf("the vault lock's minimum retention (%d days) keeps it until %s", l.MinRetentionDays, until.UTC().Format(time.RFC3339))
	}
	return ""
}

// objectVersions lists every version and delete marker under prefix,
// grouped by key in key order.
func (v *Vault) objectVersions(ctx context.Context, prefix string, each func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time) error) error {
	return v.versionsWithClass(ctx, prefix, func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time, _ string) error {
		return each(key, vs, size, newest)
	})
}

// listData lists the data objects as objectVersions does, with the
// storage class of each one's newest version.
func (v *Vault) listData(ctx context.Context, each func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time, class string) error) error {
	return v.versionsWithClass(ctx, dataPrefix, each)
}

func (v *Vault) versionsWithClass(ctx context.Context, prefix string, each func(key string, vs []types.ObjectIdentifier, size int64, newest time.Time, class string) error) error {
	var cur, class string
	var ids []types.ObjectIdentifier
	var size int64
	var newest time.Time
	flush := func() error {
		if cur == "" {
			return nil
		}
		err := each(cur, ids, size, newest, class)
		cur, class, ids, size, newest = "", "", nil, 0, time.Time{}
		return err
	}
	p := s3.NewListObjectVersionsPaginator(v.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", v.Bucket, prefix, err)
		}
		// S3 lists versions and markers in two arrays, each in key order.
		type entry struct {
			key, id  string
			size     int64
			modified time.Time
			class    string
		}
		var all []entry
		for _, o := range page.Versions {
			all = append(all, entry{aws.ToString(o.Key), aws.ToString(o.VersionId), aws.ToInt64(o.Size), aws.ToTime(o.LastModified), string(o.StorageClass)})
		}
		for _, m := range page.DeleteMarkers {
			all = append(all, entry{aws.ToString(m.Key), aws.ToString(m.VersionId), 0, aws.ToTime(m.LastModified), ""})
		}
		slices.SortStableFunc(all, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		for _, e := range all {
			if e.key != cur {
				if err := flush(); err != nil {
					return err
				}
				cur = e.key
			}
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(e.key), VersionId: aws.String(e.id)})
			size += e.size
			if e.modified.After(newest) || newest.IsZero() {
				newest, class = e.modified, e.class
			}
		}
	}
	return flush()
}

// deletePrefix deletes every version of every object under prefix.
func (v *Vault) deletePrefix(ctx context.Context, prefix string, o ExpireOptions) (DeleteCount, error) {
	d := v.newDeleter(ctx, o)
	err := v.objectVersions(ctx, prefix, func(key string, vs []types.ObjectIdentifier, size int64, _ time.Time) error {
		return d.add(key, vs, size)
	})
	if err != nil {
		d.close()
		return d.count, err
	}
	return d.close()
}

// deleteKeys deletes every version of keys.
func (v *Vault) deleteKeys(ctx context.Context, keys []string, o ExpireOptions) (DeleteCount, error) {
	d := v.newDeleter(ctx, o)
	for _, k := range keys {
		err := v.objectVersions(ctx, k, func(key string, vs []types.ObjectIdentifier, size int64, _ time.Time) error {
			if key != k {
				return nil
			}
			return d.add(key, vs, size)
		})
		if err != nil {
			d.close()
			return d.count, err
		}
	}
	return d.close()
}

// deleteBatch is how many versions one DeleteObjects call deletes (S3's
// most). Tests shorten it.
var deleteBatch = 1000

// deleter batches version deletes into DeleteObjects calls of deleteBatch
// versions, several in flight.
type deleter struct {
	ctx   context.Context
	v     *Vault
	dry   bool
	step  string // the expiry step each DeleteObjects call is (expireFault), if any
	batch []types.ObjectIdentifier
	sizes map[string]int64 // of keys in the batch
	count DeleteCount
	mu    sync.Mutex
	sem   chan struct{}
	wg    sync.WaitGroup
	err   error
}

func (v *Vault) newDeleter(ctx context.Context, o ExpireOptions) *deleter {
	return &deleter{ctx: ctx, v: v, dry: o.DryRun, sizes: map[string]int64{}, sem: make(chan struct{}, max(1, o.Concurrency/4))}
}

// add queues every version of one object.
func (d *deleter) add(key string, vs []types.ObjectIdentifier, size int64) error {
	if d.dry {
		d.count.Objects++
		d.count.Versions += int64(len(vs))
		d.count.Bytes += size
		return nil
	}
	for _, id := range vs {
		if len(d.batch) == deleteBatch {
			d.flush()
		}
		d.batch = append(d.batch, id)
	}
	// The object (and its bytes) counts with the batch of its last
	// version, once that batch deletes it: a run stopped before then
	// does not count it, and the run that deletes it does.
	d.sizes[key] += size
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *deleter) flush() {
	if len(d.batch) == 0 {
		return
	}
	batch, sizes := d.batch, d.sizes
	d.batch, d.sizes = nil, map[string]int64{}
	d.mu.Lock()
	failed := d.err != nil
	d.mu.Unlock()
	if failed {
		return // the run stops: the next one deletes the rest
	}
	if d.step != "" {
		if err := expireStep(d.step); err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
			return
		}
	}
	d.sem <- struct{}{}
	d.wg.Add(1)
	go func() {
		defer func() { <-d.sem; d.wg.Done() }()
		out, err := d.v.S3.DeleteObjects(d.ctx, &s3.DeleteObjectsInput{Bucket: aws.String(d.v.Bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)}})
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			if d.err == nil {
				d.err = fmt.Errorf("delete %d versions from vault s3://%s: %w", len(batch), d.v.Bucket, err)
			}
			return
		}
		failed := map[string]bool{}
		for _, e := range out.Errors {
			k := aws.ToString(e.Key)
			failed[k] = true
			if retained(aws.ToString(e.Code), aws.ToString(e.Message)) {
				d.count.Retained++
				continue
			}
			if d.err == nil {
				d.err = fmt.Errorf("delete s3://%s/%s@%s: %s: %s", d.v.Bucket, k, aws.ToString(e.VersionId), aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
		d.count.Versions += int64(len(batch) - len(out.Errors))
		for k, n := range sizes {
			if !failed[k] {
				d.count.Objects++
				d.count.Bytes += n
			}
		}
	}()
}

// retained reports whether a DeleteObjects error is Object Lock keeping
// a version under retention or legal hold
// (Amazon S3: AccessDenied, "...protected by object lock"; MinIO:
// InvalidRequest, "Object is WORM protected...").
func retained(code, msg string) bool {
	msg = strings.ToLower(msg)
	return (code == "AccessDenied" || code == "InvalidRequest") && (strings.Contains(msg, "worm") || strings.Contains(msg, "retention") ||
		strings.Contains(msg, "legal hold") || strings.Contains(msg, "object lock"))
}

func (d *deleter) close() (DeleteCount, error) {
	d.flush()
	d.wg.Wait()
	return d.count, d.err
}

// readAll reads a merger to its end, calling each for every key.
func readAll(m *Merger, each func(key string, recs []Observed) error) error {
	for {
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := each(key, recs); err != nil {
			return err
		}
	}
}
