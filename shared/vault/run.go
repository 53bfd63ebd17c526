package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A run (a checkpoint of the journal) is every record of every segment of
// a bucket up to a cut, merged into sorted shards with disjoint key ranges:
//
//	runs/<bucket>/<cut>.json                   the run's manifest
//	runs/<bucket>/<cut>/<n>.jsonl.zst          its shards, in key order
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
}

// RunShard is one shard of a run.
type RunShard struct {
	Key      string `json:"key"`
	FirstKey string `json:"firstKey"`
	LastKey  string `json:"lastKey"`
	Records  int    `json:"records"`
}

const (
	runFormat = "bucketvault-run"
	runsPfx   = "runs/"
)

// RunShardRecords bounds the records of one shard.
var RunShardRecords = 100000

// CompactionLag is how old a segment must be to go into a run: no writer
// holds a segment id that long before its upload completes (a Lambda runs
// at most 15 minutes), so no segment can appear below a cut later.
var CompactionLag = time.Hour

func runManifestKey(bucket, cut string) string { return runsPfx + bucket + "/" + cut + ".json" }

func runShardKey(bucket, cut string, n int) string {
	return fmt.Sprintf("%s%s/%s/%06d%s", runsPfx, bucket, cut, n, segmentSuffix)
}

// LatestRun returns the newest run of bucket, or nil.
func (v *Vault) LatestRun(ctx context.Context, bucket string) (*RunManifest, error) {
	var newest string
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(runsPfx + bucket + "/"), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list runs of %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); strings.HasSuffix(k, ".json") && k > newest {
				newest = k
			}
		}
	}
	if newest == "" {
		return nil, nil
	}
	var m RunManifest
	if err := v.GetJSON(ctx, newest, &m); err != nil {
		return nil, err
	}
	if m.Format != runFormat || m.Version != FormatVersion {
		return nil, fmt.Errorf("run %s has format %q version %d; this bucketvault reads %q version %d", newest, m.Format, m.Version, runFormat, FormatVersion)
	}
	return &m, nil
}

// CompactStats says what a compaction did.
type CompactStats struct {
	Run      string `json:"run,omitempty"` // the new run's cut; "" when there was nothing to compact
	Segments int    `json:"segments"`
	Records  int64  `json:"records"`
	Shards   int    `json:"shards"`
}

// Compact merges the latest run and every segment older than
// CompactionLag into a new run. It is safe to run concurrently with
// writers and with itself (a run's manifest is written once).
func (v *Vault) Compact(ctx context.Context, bucket string, now time.Time) (CompactStats, error) {
	prev, err := v.LatestRun(ctx, bucket)
	if err != nil {
		return CompactStats{}, err
	}
	refs, err := v.Segments(ctx, bucket)
	if err != nil {
		return CompactStats{}, err
	}
	limit := fmt.Sprintf("%0*d", segmentIDWidth, now.Add(-CompactionLag).UnixMilli())
	var take []SegmentRef
	for _, r := range refs {
		if (prev == nil || r.ID > prev.Cut) && r.ID < limit {
			take = append(take, r)
		}
	}
	if len(take) == 0 {
		return CompactStats{}, nil
	}
	cut := take[len(take)-1].ID
	m, err := v.openSources(ctx, bucket, prev, take, nil)
	if err != nil {
		return CompactStats{}, err
	}
	defer m.Close()
	man := RunManifest{Format: runFormat, Version: FormatVersion, Bucket: bucket, Cut: cut, Created: now.UTC(), Segments: len(take)}
	if prev != nil {
		man.Previous = prev.Cut
	}
	var shard []Observed
	flush := func() error {
		if len(shard) == 0 {
			return nil
		}
		n := len(man.Shards) + 1
		key := runShardKey(bucket, cut, n)
		body, err := encodeRunShard(bucket, cut, shard, now)
		if err != nil {
			return err
		}
		if _, err := v.putOnce(ctx, key, body, "application/zstd"); err != nil {
			return err
		}
		man.Shards = append(man.Shards, RunShard{Key: key, FirstKey: shard[0].Key, LastKey: shard[len(shard)-1].Key, Records: len(shard)})
		man.Records += int64(len(shard))
		shard = shard[:0]
		return nil
	}
	for {
		_, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return CompactStats{}, err
		}
		if len(shard) >= RunShardRecords { // a key never spans shards
			if err := flush(); err != nil {
				return CompactStats{}, err
			}
		}
		shard = append(shard, recs...)
	}
	if err := flush(); err != nil {
		return CompactStats{}, err
	}
	if _, err := v.PutJSONOnce(ctx, runManifestKey(bucket, cut), man); err != nil {
		return CompactStats{}, err
	}
	return CompactStats{Run: cut, Segments: len(take), Records: man.Records, Shards: len(man.Shards)}, nil
}

// encodeRunShard renders observed records (already in key order) in the
// segment format, each line keeping the segment and line it was first
// journaled at (the last resort of ordering).
func encodeRunShard(bucket, cut string, recs []Observed, now time.Time) ([]byte, error) {
	var plain bytes.Buffer
	h := segmentHeader{Format: segmentFormat, Version: FormatVersion, Bucket: bucket, Segment: "run:" + cut, Records: len(recs),
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

// runSource reads a run's shards one after another (their key ranges are
// disjoint and ascending), skipping shards outside the prefixes.
type runSource struct {
	ctx    context.Context
	v      *Vault
	shards []RunShard
	cur    *SegmentReader
}

func (s *runSource) Next() (Observed, error) {
	for {
		if s.cur == nil {
			if len(s.shards) == 0 {
				return Observed{}, io.EOF
			}
			sh := s.shards[0]
			s.shards = s.shards[1:]
			r, err := s.v.OpenSegment(s.ctx, SegmentRef{ID: "run", Key: sh.Key})
			if err != nil {
				return Observed{}, err
			}
			s.cur = r
		}
		line, err := s.cur.line()
		if err == io.EOF {
			s.cur.Close()
			s.cur = nil
			continue
		}
		if err != nil {
			return Observed{}, err
		}
		var o Observed
		if err := json.Unmarshal(line, &o); err != nil {
			return Observed{}, fmt.Errorf("run shard %s: %w", s.cur.Ref.Key, err)
		}
		return o, nil
	}
}

func (s *runSource) Close() error {
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}

// openSources merges a run (may be nil) and segments.
func (v *Vault) openSources(ctx context.Context, bucket string, run *RunManifest, refs []SegmentRef, prefixes []string) (*Merger, error) {
	var sources []RecordSource
	if run != nil {
		var shards []RunShard
		for _, sh := range run.Shards {
			if overlaps(sh.FirstKey, sh.LastKey, prefixes) {
				shards = append(shards, sh)
			}
		}
		sort.Slice(shards, func(i, j int) bool { return shards[i].FirstKey < shards[j].FirstKey })
		sources = append(sources, &runSource{ctx: ctx, v: v, shards: shards})
	}
	if len(refs) <= MaxOpenSegments {
		for _, ref := range refs {
			r, err := v.OpenSegment(ctx, ref)
			if err != nil {
				closeSources(sources)
				return nil, err
			}
			if !overlaps(r.Header.FirstKey, r.Header.LastKey, prefixes) {
				r.Close()
				continue
			}
			sources = append(sources, &segSource{r: r})
		}
		return NewMerger(sources)
	}
	var spilled []RecordSource
	for start := 0; start < len(refs); start += MaxOpenSegments {
		end := min(start+MaxOpenSegments, len(refs))
		run, err := v.spillRun(ctx, refs[start:end], prefixes)
		if err != nil {
			closeSources(spilled)
			closeSources(sources)
			return nil, err
		}
		spilled = append(spilled, run)
	}
	spilled, err := mergeSpilled(spilled)
	if err != nil {
		closeSources(sources)
		return nil, err
	}
	return NewMerger(append(sources, spilled...))
}
