package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// The journal index (format version 2) is the one record that says which
// runs make up a bucket's journal:
//
//	journal/<bucket>/index.json                  the index (changed with If-Match only)
//	runs/<bucket>/<run-id>.json                  a run's manifest (written once)
//	runs/<bucket>/<run-id>/<n>.jsonl.zst         its shards (written once)
//
// Runs hold disjoint ranges of segments, oldest first: run i holds every
// segment with From < id <= To, and the index's Cut is the last run's To.
// A reader reads the index (one GET), every run it lists, and the segments
// after Cut (see segmentsAfter); a compaction turns the segments after Cut
// into a new run and merges it with the newest runs while they are not
// larger than what it writes (a binary counter: a record is rewritten about
// log2(history/batch) times over its life, and a compaction's cost grows
// with what changed since the last one, not with the history). Expiry
// folds every run into one at the window's floor (see Fold).
type JournalIndex struct {
	Format  string     `json:"format"` // "bucketvault-journal-index"
	Version int        `json:"version"`
	Bucket  string     `json:"bucket"`
	Cut     string     `json:"cut,omitempty"`
	Runs    []IndexRun `json:"runs"`
	// Floor is the second the journal was folded at: no record before it
	// is kept but the state of every key at Floor; a restore as of an
	// earlier time is refused. Zero when never folded.
	Floor   time.Time `json:"floor,omitzero"`
	Updated time.Time `json:"updated"`
	// Upgraded says the first run is a format 1 run, adopted as it was by
	// `vault upgrade`.
	Upgraded bool `json:"upgraded,omitempty"`

	etag    string  // of the index as read ("" when there was none)
	damaged *Damage // read from an older version (Index)
}

// IndexRun is one run of an index.
type IndexRun struct {
	ID       string     `json:"id"`
	From     string     `json:"from,omitempty"` // exclusive; "" from the beginning
	To       string     `json:"to"`
	Records  int64      `json:"records"`
	Segments int        `json:"segments"` // segments merged into it
	Manifest string     `json:"manifest"`
	Name     string     `json:"name"` // the shards' header name ("run:<id>", "run:<cut>" for a format 1 run)
	Shards   []RunShard `json:"shards"`
	Folded   time.Time  `json:"folded,omitzero"` // the floor it was folded at
}

const (
	indexFormat = "bucketvault-journal-index"
	// runVersion2 is the version of a format 2 run manifest (its shards
	// are in the segment format, as format 1's).
	runVersion2 = 2
)

// IndexKey is the vault key of bucket's journal index.
func IndexKey(bucket string) string { return journalPrefix + bucket + "/index.json" }

func runManifestKeyV2(bucket, id string) string { return runsPfx + bucket + "/" + id + ".json" }

// ConflictError says a conditional write of a state record lost a race
// (If-Match or If-None-Match failed): someone else changed it first.
// Nothing was overwritten; the caller starts again from what is there.
type ConflictError struct{ Key string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("s3 object %s changed while it was being updated (a concurrent writer); nothing was overwritten: run it again", e.Key)
}

// Index reads bucket's journal index; an empty one (never written) when
// the vault holds none. An index that is damaged (it does not decode, or
// names another bucket) or gone (behind a delete marker) while versions
// of it exist is read from its newest good version, and says so (Damage):
// the runs a newer version named, and the segments they held that expiry
// has collected since, are unknown, so the damage counts as lost (every
// key), and nothing writes over such an index (putIndex refuses) until
// `vault repair` makes the good version current again.
func (v *Vault) Index(ctx context.Context, bucket string) (*JournalIndex, error) {
	key := IndexKey(bucket)
	idx, etag, err := v.readIndex(ctx, bucket, "")
	switch {
	case err == nil:
		idx.etag = etag
		return idx, nil
	case !isDamage(err) && !s3x.IsNotFound(err):
		return nil, err
	}
	cause := err
	vs, markers, err := v.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 && len(markers) == 0 {
		return &JournalIndex{Format: indexFormat, Version: FormatVersion, Bucket: bucket}, nil // never written
	}
	reason := "it is gone (behind a delete marker)"
	if isDamage(cause) {
		reason = cause.Error()
	}
	for _, ov := range vs {
		if ov.latest && isDamage(cause) {
			continue // the current version, just read
		}
		old, _, err := v.readIndex(ctx, bucket, ov.id)
		if isDamage(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		old.damaged = &Damage{Object: key, Reason: reason + "; read from its version " + ov.id + ": what newer versions named is unknown", Version: ov.id, Lost: true}
		return old, nil
	}
	return nil, fmt.Errorf("journal index s3://%s/%s: %s, and no version of it is good: the journal of %s cannot be read; run `bucketvault vault repair`",
		v.Bucket, key, reason, bucket)
}

// readIndex reads one version ("" the current) of bucket's index.
func (v *Vault) readIndex(ctx context.Context, bucket, versionID string) (*JournalIndex, string, error) {
	key := IndexKey(bucket)
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID)})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.IsDeleteMarker(err) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	idx := &JournalIndex{}
	if err := json.Unmarshal(body, idx); err != nil {
		return nil, "", damagef("it does not decode: %v", err)
	}
	if idx.Format != indexFormat {
		return nil, "", damagef("its format is %q", idx.Format)
	}
	if idx.Version > FormatVersion {
		return nil, "", fmt.Errorf("journal index of %s has version %d; this bucketvault reads %q up to version %d: upgrade bucketvault",
			bucket, idx.Version, indexFormat, FormatVersion)
	}
	if idx.Bucket != bucket {
		return nil, "", damagef("it names bucket %q", idx.Bucket)
	}
	if err := idx.check(); err != nil {
		return nil, "", err
	}
	return idx, aws.ToString(out.ETag), nil
}

// check says (a damage error) what in a decoded index no writer writes:
// a version before 2 (the index came with format 2), a run without an
// end, runs out of order, a shard that is not one of the bucket's run
// shards or whose key range or count cannot be, and a cut other than the
// last run's end (segments up to the cut are read from the runs only, so
// a cut past it would hide segments).
func (idx *JournalIndex) check() error {
	if idx.Version < 2 {
		return damagef("its version is %d", idx.Version)
	}
	shardPrefix := runsPfx + idx.Bucket + "/"
	for i, r := range idx.Runs {
		switch {
		case r.To == "":
			return damagef("run %d names no end", i+1)
		case r.From != "" && r.From >= r.To:
			return damagef("run %d holds segments after %q up to %q", i+1, r.From, r.To)
		case i > 0 && r.To <= idx.Runs[i-1].To:
			return damagef("run %d ends at %q, not after run %d's %q", i+1, r.To, i, idx.Runs[i-1].To)
		}
		for _, sh := range r.Shards {
			switch {
			case !strings.HasPrefix(sh.Key, shardPrefix):
				return damagef("run %d names shard %q, not one of %s", i+1, sh.Key, shardPrefix)
			case sh.Records < 0 || sh.FirstKey > sh.LastKey:
				return damagef("run %d names shard %s with %d records, keys %q to %q", i+1, sh.Key, sh.Records, sh.FirstKey, sh.LastKey)
			}
		}
	}
	if n := len(idx.Runs); n > 0 && idx.Cut != idx.Runs[n-1].To {
		return damagef("its cut %q is not its last run's end %q", idx.Cut, idx.Runs[n-1].To)
	}
	return nil
}

// putIndex writes idx over the version it was read from (If-Match), or
// creates it (If-None-Match) when there was none: a lost race is a
// ConflictError, never an overwrite.
func (v *Vault) putIndex(ctx context.Context, idx *JournalIndex) error {
	if idx.damaged != nil {
		return fmt.Errorf("journal index of %s: %s; nothing is written over it: run `bucketvault vault repair`", idx.Bucket, idx.damaged)
	}
	idx.Updated = time.Now().UTC()
	etag, err := v.putJSONIf(ctx, IndexKey(idx.Bucket), idx, idx.etag)
	if err != nil {
		return err
	}
	idx.etag = etag
	return nil
}

// getJSONETag reads a JSON record and returns its ETag.
func (v *Vault) getJSONETag(ctx context.Context, key string, dst any) (string, error) {
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.IsDeleteMarker(err) {
			return "", err
		}
		return "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return "", fmt.Errorf("decode s3://%s/%s: %w", v.Bucket, key, err)
	}
	return aws.ToString(out.ETag), nil
}

// putJSONIf writes a state record conditionally: over the version whose
// ETag is etag (If-Match), or, with etag "", only where there is none
// (If-None-Match: *). It returns the new ETag; a failed condition is a
// ConflictError.
func (v *Vault) putJSONIf(ctx context.Context, key string, src any, etag string) (string, error) {
	body, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", key, err)
	}
	in := &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: strings.NewReader(string(body)), ContentType: aws.String("application/json")}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := v.putObject(ctx, in)
	switch {
	case err == nil:
		return aws.ToString(out.ETag), nil
	case s3x.IsPreconditionFailed(err) || s3x.IsConflict(err) || etag != "" && s3x.IsNotFound(err):
		return "", &ConflictError{Key: key}
	default:
		return "", fmt.Errorf("write s3://%s/%s: %w", v.Bucket, key, err)
	}
}

// journalView is what a reader of one bucket's journal reads: runs, then
// the segments after the last run's cut.
type journalView struct {
	index  *JournalIndex
	runs   []IndexRun
	damage []Damage // found reading a format 1 run's manifest
	segs   []SegmentRef
}

// view finds what makes up bucket's journal now: the index's runs (or, in
// a vault whose bucket has no index, format 1's newest run) and the
// segments after them.
func (v *Vault) view(ctx context.Context, bucket string) (*journalView, error) {
	idx, err := v.Index(ctx, bucket)
	if err != nil {
		return nil, err
	}
	jv := &journalView{index: idx, runs: idx.Runs}
	if idx.damaged != nil {
		jv.damage = append(jv.damage, *idx.damaged)
	}
	cut := idx.Cut
	if idx.etag == "" && idx.damaged == nil && v.Descriptor.FormatVersion < 2 {
		// A format 1 vault: its newest run, as format 1 reads it.
		run, err := v.LatestRun(ctx, bucket)
		if err != nil {
			return nil, err
		}
		if run != nil {
			jv.damage = run.damage
			if !run.noRun {
				jv.runs = []IndexRun{adoptRun(run)}
				cut = run.Cut
			}
		}
	}
	if jv.segs, err = v.segmentsAfter(ctx, bucket, cut); err != nil {
		return nil, err
	}
	return jv, nil
}

// adoptRun is a format 1 run as a run of an index.
func adoptRun(run *RunManifest) IndexRun {
	return IndexRun{ID: run.Cut, From: "", To: run.Cut, Records: run.Records, Segments: run.Segments, Manifest: runManifestKey(run.Bucket, run.Cut),
		Name: "run:" + run.Cut, Shards: run.Shards}
}

// segmentListConcurrency bounds the parallel listings of segmentsAfter.
const segmentListConcurrency = 32

// segmentsAfter lists the segments of bucket whose id is after cut ("":
// all), oldest first. A journal small enough for one listing page costs
// one request; a larger one lists each of the 256 segment prefixes from
// the cut on (ids sort by time inside a prefix), so what it costs grows
// with the segments after the cut, not with every segment ever written.
// It lists object versions, as Segments does.
func (v *Vault) segmentsAfter(ctx context.Context, bucket, cut string) ([]SegmentRef, error) {
	prefix := SegmentPrefix(bucket)
	var mu sync.Mutex
	seen := map[string]bool{}
	var refs []SegmentRef
	add := func(page *s3.ListObjectVersionsOutput) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range page.Versions {
			k := aws.ToString(o.Key)
			if id, ok := ParseSegmentKey(k); ok && id > cut && !seen[k] {
				seen[k] = true
				refs = append(refs, SegmentRef{ID: id, Key: k})
			}
		}
	}
	first, err := v.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		return nil, fmt.Errorf("list journal of s3://%s in vault s3://%s: %w", bucket, v.Bucket, err)
	}
	add(first)
	if aws.ToBool(first.IsTruncated) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(segmentListConcurrency)
		for b := range 256 {
			sub := fmt.Sprintf("%s%02x/", prefix, b)
			in := &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(sub)}
			if cut != "" {
				in.KeyMarker = aws.String(sub + cut + segmentSuffix)
			}
			g.Go(func() error {
				p := s3.NewListObjectVersionsPaginator(v.S3, in)
				for p.HasMorePages() {
					page, err := p.NextPage(gctx)
					if err != nil {
						return fmt.Errorf("list journal of s3://%s in vault s3://%s: %w", bucket, v.Bucket, err)
					}
					add(page)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].ID < refs[j].ID })
	return refs, nil
}

// openView merges the runs and segments of a view, checked (see
// survive.go), restricted to what can hold a key with one of prefixes,
// and skipping every key up to after ("": none).
func (v *Vault) openView(ctx context.Context, bucket string, jv *journalView, prefixes []string, after ...string) (*Merger, error) {
	from := ""
	if len(after) > 0 {
		from = after[0]
	}
	var sources []RecordSource
	if len(jv.damage) > 0 {
		sources = append(sources, &chainSource{damage: jv.damage})
	}
	for _, r := range jv.runs {
		sources = append(sources, &chainSource{ctx: ctx, v: v, refs: refsAfter(shardRefs(kindRun, bucket, r.Name, r.Shards, prefixes), from)})
	}
	segs, err := v.openSegmentSources(ctx, bucket, jv.segs, prefixes)
	if err != nil {
		closeSources(sources)
		return nil, err
	}
	return NewMerger(skipThrough(append(sources, segs...), from))
}

// openSegmentSources opens segments as at most MaxOpenSegments sources,
// spilling groups of them through sorted temporary files.
func (v *Vault) openSegmentSources(ctx context.Context, bucket string, refs []SegmentRef, prefixes []string) ([]RecordSource, error) {
	if len(refs) <= MaxOpenSegments {
		return v.openSegments(ctx, bucket, refs, prefixes)
	}
	var spilled []RecordSource
	for start := 0; start < len(refs); start += MaxOpenSegments {
		end := min(start+MaxOpenSegments, len(refs))
		run, err := v.spillRun(ctx, bucket, refs[start:end], prefixes)
		if err != nil {
			closeSources(spilled)
			return nil, err
		}
		spilled = append(spilled, run)
	}
	return mergeSpilled(spilled)
}

// JournalStatus sums up a bucket's journal.
type JournalStatus struct {
	Runs    int   `json:"runs"`
	Records int64 `json:"records"` // in runs
	// Compacted is how many segments the runs hold, Pending how many
	// segments are after the cut (read one by one until a compaction).
	Compacted int    `json:"compacted"`
	Pending   int    `json:"pending"`
	Cut       string `json:"cut,omitempty"`
	// Last is the id of the newest segment ("" when there is none).
	Last  string    `json:"last,omitempty"`
	Floor time.Time `json:"floor,omitzero"`
}

// JournaledThrough is the second of the newest segment (when it was
// written); nil when there is none.
func (s JournalStatus) JournaledThrough() *time.Time {
	if t, ok := segmentTime(s.Last); ok {
		return &t
	}
	return nil
}

// Journal sums up bucket's journal, at the cost of opening it (the index
// and the listing of the segments after its cut).
func (v *Vault) Journal(ctx context.Context, bucket string) (JournalStatus, error) {
	jv, err := v.view(ctx, bucket)
	if err != nil {
		return JournalStatus{}, err
	}
	st := JournalStatus{Runs: len(jv.runs), Pending: len(jv.segs), Cut: jv.index.Cut, Floor: jv.index.Floor}
	for _, r := range jv.runs {
		st.Records += r.Records
		st.Compacted += r.Segments
		st.Cut = max(st.Cut, r.To)
	}
	st.Last = st.Cut
	if n := len(jv.segs); n > 0 {
		st.Last = jv.segs[n-1].ID
	}
	return st, nil
}
