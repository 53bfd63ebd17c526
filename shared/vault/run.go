package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// A run (a checkpoint of the journal) is every record of every segment of
// a bucket up to a cut, merged into sorted shards with disjoint key ranges:
//
//	runs/<bucket>/<cut>.json                   the run's manifest
//	runs/<bucket>/<cut>/<token>-<n>.jsonl.zst  its shards, in key order (token: the compaction's)
//
// A reader takes the newest run and only the segments after its cut, so a
// journal of millions of segments is read as one sorted stream plus the
// recent segments. Runs hold the full history (not a state at one time),
// so any point in the window restores from them. Compaction writes new
// objects only; the segments and older runs it covers stay until lifecycle
// expiry removes them.
type RunManifest struct {
	Format   string     `json:"format"` // "bucketvault-run"
	Version  int        `json:"version"`
	Bucket   string     `json:"bucket"`
	Cut      string     `json:"cut"` // covers every segment whose id is <= Cut
	Previous string     `json:"previous,omitempty"`
	Created  time.Time  `json:"created"`
	Records  int64      `json:"records"`
	Segments int        `json:"segments"` // segments merged into this run (beyond Previous)
	Shards   []RunShard `json:"shards"`
	// Format 2 runs (version 2): the run's id, the runs it merged, and
	// the floor it was folded at.
	ID     string    `json:"id,omitempty"`
	Merged []string  `json:"merged,omitempty"`
	Floor  time.Time `json:"floor,omitzero"`

	damage []Damage // found reading the manifests (LatestRun)
	noRun  bool     // no manifest was sound: only damage
}

// RunShard is one shard of a run.
type RunShard struct {
	Key      string `json:"key"`
	FirstKey string `json:"firstKey"`
	LastKey  string `json:"lastKey"`
	Records  int    `json:"records"`
	// ETag is the shard's ETag as written; readers read only that
	// version of it ("" in shards written before it was recorded).
	ETag string `json:"etag,omitempty"`
}

const (
	runFormat   = "bucketvault-run"
	runVersion1 = 1 // format 1's runs: runs/<bucket>/<cut>.json, one chain by Previous
	runsPfx     = "runs/"
)

// RunShardRecords bounds the records of one shard.
var RunShardRecords = 100000

// CompactionLag is how old a segment must be to go into a run: no writer
// holds a segment id that long before its upload completes (a Lambda runs
// at most 15 minutes), so no segment can appear below a cut later.
var CompactionLag = time.Hour

func runManifestKey(bucket, cut string) string { return runsPfx + bucket + "/" + cut + ".json" }

func runShardKey(bucket, cut string, n int) string { return runShardKeyIn(bucket, cut, "", n) }

// runShardKeyIn names shard n of one compaction (token) of a run: each
// compaction writes shards of its own, so a compaction of a cut whose run
// was dropped (vault repair) never meets the dropped run's shards.
func runShardKeyIn(bucket, cut, token string, n int) string {
	if token != "" {
		token += "-"
	}
	return fmt.Sprintf("%s%s/%s/%s%06d%s", runsPfx, bucket, cut, token, n, segmentSuffix)
}

// LatestRun returns the newest run of bucket whose manifest is sound, or
// nil. A damaged manifest is read from its good older version; one with
// none is passed over for the run before it (a run only speeds reads up:
// the segments it covers are still there), and the run returned says so
// (Damage).
func (v *Vault) LatestRun(ctx context.Context, bucket string) (*RunManifest, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(runsPfx + bucket + "/"), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list runs of %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); strings.HasSuffix(k, ".json") {
				keys = append(keys, k)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	var damage []Damage
	for _, key := range keys {
		m, d, err := v.readRun(ctx, bucket, key)
		if err != nil {
			return nil, err
		}
		damage = append(damage, d...)
		if m != nil {
			m.damage = damage
			return m, nil
		}
	}
	if len(damage) > 0 {
		// No run is sound: the segments are read instead.
		return &RunManifest{damage: damage, noRun: true}, nil
	}
	return nil, nil
}

// readRun reads the run manifest at key, from its newest good version; nil
// when none is.
func (v *Vault) readRun(ctx context.Context, bucket, key string) (*RunManifest, []Damage, error) {
	check := func(versionID string) (*RunManifest, error) {
		out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID)})
		if err != nil {
			if s3x.IsNotFound(err) || s3x.IsDeleteMarker(err) {
				return nil, damagef("it is missing")
			}
			return nil, fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
		}
		defer out.Body.Close()
		body, err := io.ReadAll(out.Body)
		if err != nil {
			return nil, fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
		}
		var m RunManifest
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, damagef("it does not decode: %v", err)
		}
		if m.Format != runFormat || m.Version != runVersion1 {
			return nil, fmt.Errorf("run %s has format %q version %d; a format 1 vault's runs are %q version %d", key, m.Format, m.Version, runFormat, runVersion1)
		}
		if m.Bucket != bucket || runManifestKey(bucket, m.Cut) != key {
			return nil, damagef("it names bucket %q, cut %q", m.Bucket, m.Cut)
		}
		return &m, nil
	}
	m, err := check("")
	if !isDamage(err) {
		return m, nil, err
	}
	cause := err
	vs, _, err := v.versions(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	for _, ov := range vs {
		if ov.latest {
			continue // the current version, just read
		}
		m, err := check(ov.id)
		if err == nil {
			return m, []Damage{{Object: key, Reason: cause.Error(), Version: ov.id}}, nil
		}
		if !isDamage(err) {
			return nil, nil, err
		}
	}
	return nil, []Damage{{Object: key, Reason: cause.Error() + "; no version of it is good: the run before it and the segments it covers are read instead"}}, nil
}

// encodeRunShard renders observed records (already in key order) in the
// segment format, each line keeping the segment and line it was first
// journaled at (the last resort of ordering).
func encodeRunShard(bucket, name string, recs []Observed, now time.Time) ([]byte, error) {
	var plain bytes.Buffer
	h := segmentHeader{Format: segmentFormat, Version: segmentVersion, Bucket: bucket, Segment: name, Records: len(recs),
		Written: now.UTC(), FirstKey: recs[0].Key, LastKey: recs[len(recs)-1].Key}
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return nil, err
		}
	}
	return encoder.EncodeAll(plain.Bytes(), nil), nil
}

// openSegments opens segments of bucket ("": job files) checked, keeping
// those that can hold a key with one of prefixes (and every damaged one,
// which says what it lost).
func (v *Vault) openSegments(ctx context.Context, bucket string, refs []SegmentRef, prefixes []string) ([]RecordSource, error) {
	var sources []RecordSource
	for _, ref := range refs {
		o := objectRef{kind: kindFile, ref: ref}
		if bucket != "" {
			o = objectRef{kind: kindSegment, ref: ref, bucket: bucket, name: ref.ID}
		}
		s, err := v.openChecked(ctx, o)
		if err != nil {
			closeSources(sources)
			return nil, err
		}
		if s.r != nil && len(s.damage) == 0 && !overlaps(s.r.Header.FirstKey, s.r.Header.LastKey, prefixes) {
			s.Close()
			continue
		}
		sources = append(sources, s)
	}
	return sources, nil
}
