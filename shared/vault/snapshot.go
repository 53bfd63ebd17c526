package vault

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// A snapshot recovery point is every object that was current in a bucket
// when a snapshot job scanned it:
//
//	snapshots/<bucket>/<id>.json                 the recovery point record
//	snapshots/<bucket>/<id>/<n>.jsonl.zst        manifest shards (segment format,
//	                                             OpVersion records in key order,
//	                                             disjoint ascending key ranges)
//	snapshots/<bucket>/<id>/failed-<n>.jsonl.zst objects not backed up (OpSkip)
//
// Manifest records point at data objects shared with the journal and with
// other snapshots: data is copied once per source version, whichever path
// copies it first.
const snapshotsPrefix = "snapshots/"

// Snapshot recovery point states (AWS Backup's).
const (
	PointCreating  = "CREATING"
	PointAvailable = "AVAILABLE"
	PointPartial   = "PARTIAL"
	PointExpired   = "EXPIRED"
	PointStopped   = "STOPPED"
)

// SnapshotPoint is a snapshot recovery point record. Field names follow
// AWS Backup's DescribeRecoveryPoint where they apply.
type SnapshotPoint struct {
	Format              string               `json:"Format"` // "bucketvault-snapshot"
	FormatVersion       int                  `json:"FormatVersion"`
	RecoveryPointID     string               `json:"RecoveryPointId"`
	ResourceName        string               `json:"ResourceName"` // the protected bucket
	ResourceArn         string               `json:"ResourceArn"`
	ResourceType        string               `json:"ResourceType"` // "S3"
	BackupVaultName     string               `json:"BackupVaultName"`
	Status              string               `json:"Status"`
	StatusMessage       string               `json:"StatusMessage,omitempty"`
	CreationDate        time.Time            `json:"CreationDate"`
	CompletionDate      *time.Time           `json:"CompletionDate,omitempty"`
	ScanCompletionDate  *time.Time           `json:"ScanCompletionDate,omitempty"` // the listing's end: the state the manifest holds
	BackupSizeInBytes   int64                `json:"BackupSizeInBytes"`
	ObjectCount         int64                `json:"ObjectCount"`
	CopiedObjects       int64                `json:"CopiedObjects"` // objects this job copied (the rest the vault had)
	CopiedBytes         int64                `json:"CopiedBytes"`
	FailedObjects       int64                `json:"FailedObjects"`
	Failures            []Record             `json:"Failures,omitempty"` // the first MaxInlineFailures
	Lifecycle           *Lifecycle           `json:"Lifecycle,omitempty"`
	CalculatedLifecycle *CalculatedLifecycle `json:"CalculatedLifecycle,omitempty"`
	CreatedBy           *CreatedBy           `json:"CreatedBy,omitempty"`
	RecoveryPointTags   map[string]string    `json:"RecoveryPointTags,omitempty"`
	IsEncrypted         bool                 `json:"IsEncrypted"`
	// StorageClass is AWS Backup's: WARM ("" in records written before
	// the cold tier), then COLD from MoveToColdStorageAt on, when expiry
	// moves the point (ColdSince); see cold.go.
	StorageClass     string     `json:"StorageClass,omitempty"`
	ColdSince        *time.Time `json:"ColdSince,omitempty"`
	EncryptionKeyArn string     `json:"EncryptionKeyArn,omitempty"`
	BackupJobID      string     `json:"BackupJobId"`
	// BaseRecoveryPointID is the point whose records the snapshot's scan
	// may carry over (its incremental base), chosen when its job starts
	// (IncrementalBase): "" for none. A record without it (nil) was
	// written before bases were recorded, and its job may carry from any
	// usable point of the bucket. While a point is CREATING, expiry keeps
	// the manifest and the data of the point it names (carriers).
	BaseRecoveryPointID *string `json:"BaseRecoveryPointId,omitempty"`
	// JobDeadline is when the point's job has ended whatever became of
	// it (BackupJobDeadline), set when it starts: a point still CREATING
	// after it was abandoned, and expiry stops it (StopAbandoned). A
	// record without it (written before deadlines were recorded) takes
	// its job record's, or its CreationDate's with the default window.
	JobDeadline   *time.Time `json:"JobDeadline,omitempty"`
	Shards        []RunShard `json:"Shards"`
	FailureShards []RunShard `json:"FailureShards,omitempty"`
}

// Lifecycle is AWS Backup's lifecycle of a recovery point, in days.
type Lifecycle struct {
	MoveToColdStorageAfterDays int64 `json:"MoveToColdStorageAfterDays,omitempty"`
	DeleteAfterDays            int64 `json:"DeleteAfterDays,omitempty"`
}

// MinColdDays is AWS Backup's rule: a recovery point stays in cold
// storage at least 90 days, so DeleteAfterDays is at least
// MoveToColdStorageAfterDays + 90.
const MinColdDays = 90

// Validate checks the lifecycle's rules, naming the field at fault.
func (l *Lifecycle) Validate() error {
	switch {
	case l == nil:
		return nil
	case l.MoveToColdStorageAfterDays < 0 && l.MoveToColdStorageAfterDays != -1:
		return fmt.Errorf("Lifecycle.MoveToColdStorageAfterDays %d: want a number of days (or -1, never)", l.MoveToColdStorageAfterDays)
	case l.DeleteAfterDays < 0:
		return fmt.Errorf("Lifecycle.DeleteAfterDays %d: want a number of days", l.DeleteAfterDays)
	case l.MoveToColdStorageAfterDays > 0 && l.DeleteAfterDays > 0 && l.DeleteAfterDays < l.MoveToColdStorageAfterDays+MinColdDays:
		return fmt.Errorf("Lifecycle.DeleteAfterDays %d must be at least %d days after MoveToColdStorageAfterDays (%d): cold storage keeps a recovery point at least %d days",
			l.DeleteAfterDays, MinColdDays, l.MoveToColdStorageAfterDays, MinColdDays)
	}
	return nil
}

// CalculatedLifecycle is when a recovery point moves to cold storage and
// when it expires.
type CalculatedLifecycle struct {
	MoveToColdStorageAt *time.Time `json:"MoveToColdStorageAt,omitempty"`
	DeleteAt            *time.Time `json:"DeleteAt,omitempty"`
}

// Calculate applies the lifecycle to a creation date.
func (l *Lifecycle) Calculate(created time.Time) *CalculatedLifecycle {
	if l == nil || (l.DeleteAfterDays == 0 && l.MoveToColdStorageAfterDays == 0) {
		return nil
	}
	c := &CalculatedLifecycle{}
	if l.MoveToColdStorageAfterDays > 0 {
		t := created.AddDate(0, 0, int(l.MoveToColdStorageAfterDays)).UTC()
		c.MoveToColdStorageAt = &t
	}
	if l.DeleteAfterDays > 0 {
		t := created.AddDate(0, 0, int(l.DeleteAfterDays)).UTC()
		c.DeleteAt = &t
	}
	return c
}

// CreatedBy says which plan and rule made a recovery point (empty for an
// on-demand backup).
type CreatedBy struct {
	BackupPlanID       string `json:"BackupPlanId,omitempty"`
	BackupPlanName     string `json:"BackupPlanName,omitempty"`
	BackupRuleID       string `json:"BackupRuleId,omitempty"`
	BackupRuleName     string `json:"BackupRuleName,omitempty"`
	BackupRuleCron     string `json:"BackupRuleCron,omitempty"`
	BackupRuleTimezone string `json:"BackupRuleTimezone,omitempty"`
}

// MaxInlineFailures bounds the failures a recovery point record lists
// inline; every failure is in its failure shards.
const MaxInlineFailures = 1000

const (
	snapshotFormat  = "bucketvault-snapshot"
	snapshotVersion = 1
)

// SnapshotKey is the vault key of a snapshot recovery point record.
func SnapshotKey(bucket, id string) string { return snapshotsPrefix + bucket + "/" + id + ".json" }

// SnapshotShardKey is the vault key of manifest shard n of a snapshot
// (failed: of its failure list).
func SnapshotShardKey(bucket, id string, n int, failed bool) string {
	name := fmt.Sprintf("%06d", n)
	if failed {
		name = "failed-" + name
	}
	return snapshotsPrefix + bucket + "/" + id + "/" + name + segmentSuffix
}

// NewSnapshotPoint returns a recovery point record in state CREATING.
func (v *Vault) NewSnapshotPoint(bucket, id, jobID string, created time.Time) *SnapshotPoint {
	return &SnapshotPoint{
		Format: snapshotFormat, FormatVersion: snapshotVersion, RecoveryPointID: id, ResourceName: bucket,
		ResourceArn: "arn:aws:s3:::" + bucket, ResourceType: "S3", BackupVaultName: v.Bucket,
		Status: PointCreating, CreationDate: created.UTC(), BackupJobID: jobID,
	}
}

// SnapshotShardRecords bounds the records of one manifest shard the
// writer encodes, and so the memory of a seal (a shard is buffered whole
// before it is compressed). Adopted shards (Adopt) are never buffered.
var SnapshotShardRecords = 10000

// AdoptConcurrency bounds the server-side copies of adopted shards in
// flight for one writer.
var AdoptConcurrency = 16

// ShardWriter writes records (in key order) as numbered shards of at most
// SnapshotShardRecords records, a key never split across two shards, and
// adopts whole segment-format files as shards of their own.
type ShardWriter struct {
	v      *Vault
	bucket string
	key    func(n int) string
	buf    []Record
	Shards []RunShard
	// Records and Bytes count what was written and adopted.
	Records, Bytes int64

	// Adopted shards' copies run in the background.
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	fail  error
	etags map[int]string // adopted shards' ETags, by index in Shards
}

// NewShardWriter writes shards named by key(n), n from 1.
func (v *Vault) NewShardWriter(bucket string, key func(n int) string) *ShardWriter {
	return &ShardWriter{v: v, bucket: bucket, key: key}
}

// last is the last key written, buffered or adopted ("" before any).
func (w *ShardWriter) last() string {
	if n := len(w.buf); n > 0 {
		return w.buf[n-1].Key
	}
	if n := len(w.Shards); n > 0 {
		return w.Shards[n-1].LastKey
	}
	return ""
}

// Add appends one record; records must come in key order.
func (w *ShardWriter) Add(ctx context.Context, r Record) error {
	if n := len(w.buf); n >= SnapshotShardRecords && w.buf[n-1].Key != r.Key {
		if err := w.Flush(ctx); err != nil {
			return err
		}
	}
	if n := len(w.buf); n > 0 && w.buf[n-1].Key > r.Key {
		return fmt.Errorf("shard writer: %q after %q: records out of key order", r.Key, w.buf[n-1].Key)
	}
	if len(w.buf) == 0 && len(w.Shards) > 0 && r.Key <= w.last() {
		return fmt.Errorf("shard writer: %q after shard %s ending at %q: records out of key order", r.Key, w.Shards[len(w.Shards)-1].Key, w.last())
	}
	w.buf = append(w.buf, r)
	w.Records++
	w.Bytes += r.Size
	return nil
}

// Flush writes the buffered records as one shard, with PutObject: a seal
// retried before its point was sealed writes the same shard again (with
// its own header time, so its own ETag). A sealed point's shards are
// never written again: the seal of a point that is no longer CREATING
// writes none (snapshot.Engine.Seal).
func (w *ShardWriter) Flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	n := len(w.Shards) + 1
	key := w.key(n)
	body, err := EncodeSegment(w.bucket, key, w.buf, time.Now())
	if err != nil {
		return err
	}
	etag, err := w.v.putBytes(ctx, key, body, "application/zstd")
	if err != nil {
		return err
	}
	w.Shards = append(w.Shards, RunShard{Key: key, FirstKey: w.buf[0].Key, LastKey: w.buf[len(w.buf)-1].Key, Records: len(w.buf), ETag: etag})
	w.buf = w.buf[:0]
	return nil
}

// Adopt makes the vault's segment-format file src (its ETag etag) the
// next shard, by a server-side copy: its records are neither read nor
// re-encoded. The caller vouches for sh.FirstKey, sh.LastKey and
// sh.Records (sh.Key is ignored) and for size, the sum of the records'
// sizes: the file holds sh.Records records, sorted, from sh.FirstKey to
// sh.LastKey. Records buffered before it are flushed first, so shards
// stay disjoint and ascending; a first key at or before the last key
// written is an error. The copy keeps src's header (whose segment id
// names src: readers identify a shard by its key) and metadata, and is
// conditional on etag, so a file rewritten since its summary was read is
// an error, not a wrong shard. Copies run in the background, at most
// AdoptConcurrency at once; Close waits for them.
func (w *ShardWriter) Adopt(ctx context.Context, src, etag string, sh RunShard, size int64) error {
	if err := w.err(); err != nil {
		return err
	}
	if err := w.Flush(ctx); err != nil {
		return err
	}
	if sh.Records <= 0 || sh.FirstKey > sh.LastKey {
		return fmt.Errorf("shard writer: adopt %s: %d records from %q to %q", src, sh.Records, sh.FirstKey, sh.LastKey)
	}
	if len(w.Shards) > 0 && sh.FirstKey <= w.last() {
		return fmt.Errorf("shard writer: adopt %s: its first key %q is not after %q: shards out of key order", src, sh.FirstKey, w.last())
	}
	sh.Key = w.key(len(w.Shards) + 1)
	if w.sem == nil {
		w.sem = make(chan struct{}, max(1, AdoptConcurrency))
	}
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.wg.Add(1)
	idx := len(w.Shards)
	go func() {
		defer func() { <-w.sem; w.wg.Done() }()
		out, err := w.v.S3.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: aws.String(w.v.Bucket), Key: aws.String(sh.Key),
			CopySource:        aws.String(s3x.CopySource(w.v.Bucket, src, "")),
			CopySourceIfMatch: aws.String(etag),
			MetadataDirective: types.MetadataDirectiveCopy,
		})
		w.mu.Lock()
		defer w.mu.Unlock()
		switch {
		case err != nil && w.fail == nil:
			w.fail = fmt.Errorf("adopt s3://%s/%s as shard %s: %w", w.v.Bucket, src, sh.Key, err)
		case err == nil && out.CopyObjectResult != nil:
			// The copy's own ETag (under SSE-KMS it is not the source's).
			if w.etags == nil {
				w.etags = map[int]string{}
			}
			w.etags[idx] = s3x.TrimETag(aws.ToString(out.CopyObjectResult.ETag))
		}
	}()
	w.Shards = append(w.Shards, sh)
	w.Records += int64(sh.Records)
	w.Bytes += size
	return nil
}

func (w *ShardWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fail
}

// Close flushes the buffered records and waits for the adopted shards'
// copies; Shards is complete when it returns nil.
func (w *ShardWriter) Close(ctx context.Context) error {
	err := w.Flush(ctx)
	if werr := w.Wait(); err == nil {
		err = werr
	}
	return err
}

// Wait waits for the adopted shards' copies (and flushes nothing): it
// returns the first copy's error.
func (w *ShardWriter) Wait() error {
	w.wg.Wait()
	w.mu.Lock()
	for i, etag := range w.etags {
		w.Shards[i].ETag = etag
	}
	w.mu.Unlock()
	return w.err()
}

// Snapshots lists the snapshot recovery points of bucket, oldest first.
func (v *Vault) Snapshots(ctx context.Context, bucket string) ([]SnapshotPoint, error) {
	var out []SnapshotPoint
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{
		Bucket: aws.String(v.Bucket), Prefix: aws.String(snapshotsPrefix + bucket + "/"), Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if !strings.HasSuffix(k, ".json") {
				continue
			}
			var sp SnapshotPoint
			if err := v.GetJSON(ctx, k, &sp); err != nil {
				return nil, err
			}
			if sp.Format != snapshotFormat || sp.FormatVersion != snapshotVersion {
				return nil, fmt.Errorf("snapshot record s3://%s/%s: format %q version %d is not %q version %d", v.Bucket, k, sp.Format, sp.FormatVersion, snapshotFormat, snapshotVersion)
			}
			out = append(out, sp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationDate.Before(out[j].CreationDate) })
	return out, nil
}

// SnapshotBuckets lists the buckets that have snapshot recovery points.
func (v *Vault) SnapshotBuckets(ctx context.Context) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{
		Bucket: aws.String(v.Bucket), Prefix: aws.String(snapshotsPrefix), Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list snapshot buckets: %w", err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), snapshotsPrefix), "/"))
		}
	}
	return out, nil
}

// eachBucketPoints calls f with each bucket that has snapshot recovery
// points and its points, oldest first (Snapshots).
func (v *Vault) eachBucketPoints(ctx context.Context, f func(bucket string, points []SnapshotPoint) error) error {
	buckets, err := v.SnapshotBuckets(ctx)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		points, err := v.Snapshots(ctx, b)
		if err != nil {
			return err
		}
		if err := f(b, points); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot reads one snapshot recovery point record.
func (v *Vault) Snapshot(ctx context.Context, bucket, id string) (*SnapshotPoint, error) {
	var sp SnapshotPoint
	if err := v.GetJSON(ctx, SnapshotKey(bucket, id), &sp); err != nil {
		return nil, err
	}
	if sp.Format != snapshotFormat || sp.FormatVersion != snapshotVersion {
		return nil, fmt.Errorf("snapshot %s of %s: format %q version %d is not %q version %d", id, bucket, sp.Format, sp.FormatVersion, snapshotFormat, snapshotVersion)
	}
	return &sp, nil
}

// LatestSnapshot returns the newest snapshot of bucket that is usable
// (AVAILABLE or PARTIAL) and whose scan ended at or before at (zero: any),
// or nil.
func (v *Vault) LatestSnapshot(ctx context.Context, bucket string, at time.Time) (*SnapshotPoint, error) {
	points, err := v.Snapshots(ctx, bucket)
	if err != nil {
		return nil, err
	}
	for i := len(points) - 1; i >= 0; i-- {
		sp := points[i]
		if sp.Status != PointAvailable && sp.Status != PointPartial || sp.ScanCompletionDate == nil {
			continue
		}
		if !at.IsZero() && sp.ScanCompletionDate.After(at) {
			continue
		}
		return &sp, nil
	}
	return nil, nil
}

// A snapshot's scan carries records over from one earlier point, its
// base: data of any age, which no writer may otherwise reference (see
// ReuseLimit). Its job names the base in its CREATING record before the
// scan reads it, and the scan carries from it only while it reads it
// usable; expiry marks a point EXPIRED before it lists the points that
// name it. So a scan that read the base before the mark belongs to a
// point the listing finds, and expiry keeps the base's manifest and data
// while that point is CREATING (docs/vault-format.md, "Expiry").

// usableBase says whether a scan may carry records from sp: sealed with
// records restores use (AVAILABLE or PARTIAL), and not COLD, whose data
// may be in (or on its way to) a cold storage class, where a WARM point's
// never is.
func (sp *SnapshotPoint) usableBase() bool {
	return (sp.Status == PointAvailable || sp.Status == PointPartial) && !sp.IsCold()
}

// IncrementalBase is the base of a new snapshot of a bucket whose points
// are points (oldest first): the newest usable one other than self, or
// nil (the snapshot copies every version).
func IncrementalBase(points []SnapshotPoint, self string) *SnapshotPoint {
	for i := len(points) - 1; i >= 0; i-- {
		if sp := &points[i]; sp.RecoveryPointID != self && sp.usableBase() {
			return sp
		}
	}
	return nil
}

// BaseOf is the point the scan of snapshot self may carry records from,
// among points listed after self's record was written: the base its
// record names while that is still usable; for a record that names none
// (written before bases were recorded), the newest usable point, which
// expiry keeps for it too (carriers); nil when self's record is not
// among points (nothing would keep a base for it).
func BaseOf(points []SnapshotPoint, self string) *SnapshotPoint {
	var me *SnapshotPoint
	for i := range points {
		if points[i].RecoveryPointID == self {
			me = &points[i]
		}
	}
	switch {
	case me == nil:
		return nil
	case me.BaseRecoveryPointID == nil:
		return IncrementalBase(points, self)
	}
	for i := range points {
		if sp := &points[i]; sp.RecoveryPointID == *me.BaseRecoveryPointID && sp.RecoveryPointID != self && sp.usableBase() {
			return sp
		}
	}
	return nil
}

// carriers are the running snapshot jobs of one bucket that may carry
// records from its points: each CREATING point's base.
type carriers struct {
	byBase map[string]string // base -> a CREATING point that names it
	// any is a CREATING point that names no base (written before bases
	// were recorded): its scan takes the newest usable point, whichever
	// that is when it reads them.
	any string
}

// carriersOf finds the carriers among a bucket's points.
func carriersOf(points []SnapshotPoint) carriers {
	c := carriers{byBase: map[string]string{}}
	for _, sp := range points {
		switch {
		case sp.Status != PointCreating:
		case sp.BaseRecoveryPointID == nil:
			c.any = sp.RecoveryPointID
		case *sp.BaseRecoveryPointID != "":
			c.byBase[*sp.BaseRecoveryPointID] = sp.RecoveryPointID
		}
	}
	return c
}

// of names a CREATING point whose scan may carry records from point id
// ("" when none may).
func (c carriers) of(id string) string {
	if p := c.byBase[id]; p != "" {
		return p
	}
	if c.any != id {
		return c.any
	}
	return ""
}

// OpenShards streams a snapshot's shards (disjoint, ascending key ranges)
// as one record source, checked (see survive.go), skipping those outside
// prefixes (all when empty).
func (v *Vault) OpenShards(ctx context.Context, shards []RunShard, prefixes []string) RecordSource {
	return v.OpenShardsAfter(ctx, shards, prefixes, "")
}

// OpenShardsAfter is OpenShards without the keys up to and including
// after ("": every key); shards that end at or before after are not read.
func (v *Vault) OpenShardsAfter(ctx context.Context, shards []RunShard, prefixes []string, after string) RecordSource {
	c := &chainSource{ctx: ctx, v: v, refs: refsAfter(shardRefs(kindShard, "", "", shards, prefixes), after)}
	return skipThrough([]RecordSource{c}, after)[0]
}

// OpenSegmentFile streams the records of one segment-format file (a job's
// work items or fragments), or returns an error satisfying s3x.IsNotFound.
func (v *Vault) OpenSegmentFile(ctx context.Context, key string) (RecordSource, error) {
	return v.openChecked(ctx, objectRef{kind: kindFile, ref: SegmentRef{ID: key, Key: key}})
}

// WriteRecords writes records as one segment-format file at key (a job's
// work items, fragments), replacing what is there, with the user
// metadata meta (none when nil).
func (v *Vault) WriteRecords(ctx context.Context, bucket, key string, recs []Record, meta map[string]string) error {
	body, err := EncodeSegment(bucket, key, recs, time.Now())
	if err != nil {
		return err
	}
	if meta == nil {
		return v.PutBytes(ctx, key, body, "application/zstd")
	}
	_, err = v.putObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/zstd"), Metadata: meta,
	})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
	return nil
}

// OpenSorted merges sorted segment-format files (a job's sorted runs) into
// one key-ordered stream, holding at most MaxOpenSegments open at once.
func (v *Vault) OpenSorted(ctx context.Context, keys []string) (*Merger, error) {
	refs := make([]SegmentRef, len(keys))
	for i, k := range keys {
		refs[i] = SegmentRef{ID: fmt.Sprintf("%012d", i), Key: k}
	}
	sources, err := v.openSegmentSources(ctx, "", refs, nil)
	if err != nil {
		return nil, err
	}
	return NewMerger(sources)
}

// BaseSnapshot is the snapshot a point-in-time restore of bucket as of at
// starts from (its records merged with the journal's), or nil: the newest
// usable one scanned by at, unless the journal alone holds the bucket's
// state at at (the bucket is protected continuously and its first full
// backup had finished by at: the journal knows every version since, and an
// older snapshot could only bring back what was deleted), and never one
// scanned before the journal's floor (the fold kept no record to overrule
// its records with).
func (v *Vault) BaseSnapshot(ctx context.Context, bucket string, at time.Time) (*SnapshotPoint, error) {
	pb, err := v.Protected(ctx, bucket)
	switch {
	case err == nil && pb.FirstFullBackupAt != nil && !at.Before(*pb.FirstFullBackupAt):
		return nil, nil
	case err != nil && !s3x.IsNotFound(err):
		return nil, err
	}
	sp, err := v.LatestSnapshot(ctx, bucket, at)
	if err != nil || sp == nil {
		return sp, err
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if !idx.Floor.IsZero() && sp.ScanCompletionDate.Before(idx.Floor) {
		return nil, nil
	}
	return sp, nil
}

// PointTransitionError refuses a change of a recovery point's status
// that its life does not allow (CREATING, then AVAILABLE, PARTIAL or
// STOPPED once, then EXPIRED).
type PointTransitionError struct {
	RecoveryPointID string
	From, To        string
}

func (e *PointTransitionError) Error() string {
	return fmt.Sprintf("recovery point %s is %s: it cannot become %s", e.RecoveryPointID, e.From, e.To)
}

// pointMay reports whether a recovery point may go from one status to
// another.
func pointMay(from, to string) bool {
	switch from {
	case PointCreating:
		return to == PointAvailable || to == PointPartial || to == PointStopped || to == PointExpired
	case PointAvailable, PointPartial, PointStopped:
		return to == PointExpired
	}
	return false
}

// CreatePoint writes a new recovery point record, once (If-None-Match):
// a record there already is a ConflictError.
func (v *Vault) CreatePoint(ctx context.Context, sp *SnapshotPoint) error {
	_, err := v.putJSONIf(ctx, SnapshotKey(sp.ResourceName, sp.RecoveryPointID), sp, "")
	return err
}

// SetPoint changes a recovery point's record to sp, whose status must be
// one the record's may become (pointMay), over the version it read
// (If-Match): a record changed meanwhile is a ConflictError, never
// overwritten. A record that has sp's status already is left as it is (a
// retried step: sealed records are written once).
func (v *Vault) SetPoint(ctx context.Context, sp *SnapshotPoint) error {
	key := SnapshotKey(sp.ResourceName, sp.RecoveryPointID)
	var cur SnapshotPoint
	etag, err := v.getJSONETag(ctx, key, &cur)
	if err != nil {
		return err
	}
	if cur.Status == sp.Status {
		return nil
	}
	if !pointMay(cur.Status, sp.Status) {
		return &PointTransitionError{RecoveryPointID: sp.RecoveryPointID, From: cur.Status, To: sp.Status}
	}
	_, err = v.putJSONIf(ctx, key, sp, etag)
	return err
}
