package vault

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
)

// A segment is a zstd-compressed JSON-lines file: a header line, then
// records sorted by key (stable, so one key's records keep the order in
// which they were added).
type segmentHeader struct {
	Format   string    `json:"format"` // "bucketvault-segment"
	Version  int       `json:"version"`
	Bucket   string    `json:"bucket"`
	Segment  string    `json:"segment"`
	Records  int       `json:"records"`
	Written  time.Time `json:"written"`
	FirstKey string    `json:"firstKey"`
	LastKey  string    `json:"lastKey"`
}

const (
	segmentFormat = "bucketvault-segment"
	// segmentVersion is the version of the segment format (segments,
	// run and snapshot shards, job files): the same in vault formats 1
	// and 2.
	segmentVersion = 1
)

// WindowSize is the zstd window of everything the vault compresses. A
// reader holds about twice the window per open file (lowmem decoding), so
// the window, with MaxOpenSegments, is what bounds a journal read's memory:
// 16 readers of 16 KiB windows hold about 1.7 MiB, of 256 KiB windows
// (which readers also accept) 11.5 MiB. Records are sorted by key, so what
// repeats is near: on 5,000 records, 16 KiB compresses as well as 256 KiB
// (18.3% of the JSON either way; TestWindowKeepsReadersSmall).
const WindowSize = 16 << 10

// segmentLineBuffer is an open segment's line buffer; a longer line grows
// past it.
const segmentLineBuffer = 16 << 10

var encoder = NewEncoder()

// NewEncoder returns the zstd encoder of the vault's compressed files
// (EncodeAll only).
func NewEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(WindowSize),
		zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(false))
	if err != nil {
		panic(err) // the options are constant
	}
	return e
}

// EncodeSegment renders records as a segment body; it sorts them by key.
func EncodeSegment(bucket, segmentID string, recs []Record, now time.Time) ([]byte, error) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	var plain bytes.Buffer
	h := segmentHeader{Format: segmentFormat, Version: segmentVersion, Bucket: bucket, Segment: segmentID, Records: len(recs), Written: now.UTC()}
	if len(recs) > 0 {
		h.FirstKey, h.LastKey = recs[0].Key, recs[len(recs)-1].Key
	}
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return nil, fmt.Errorf("encode record of %q: %w", recs[i].Key, err)
		}
	}
	return encoder.EncodeAll(plain.Bytes(), nil), nil
}

// WriteSegment writes records as one new immutable segment of bucket and
// returns its id. An empty batch writes nothing.
func (v *Vault) WriteSegment(ctx context.Context, bucket string, recs []Record) (string, error) {
	if len(recs) == 0 {
		return "", nil
	}
	now := time.Now()
	id := NewSegmentID(now)
	body, err := EncodeSegment(bucket, id, recs, now)
	if err != nil {
		return "", err
	}
	created, err := v.putOnce(ctx, SegmentKey(bucket, id), body, "application/zstd")
	if err != nil {
		return "", fmt.Errorf("write journal segment: %w", err)
	}
	if !created {
		return "", fmt.Errorf("write journal segment %s: the id is taken", id)
	}
	return id, nil
}

// SegmentRef names one segment.
type SegmentRef struct {
	ID  string
	Key string
}

// Segments lists the segments of bucket, oldest first. It lists object
// versions, not objects: a segment behind a delete marker (deleted by
// hand: segments are never deleted but by lifecycle expiry of noncurrent
// versions) is still a segment, which the reader reads from its version.
func (v *Vault) Segments(ctx context.Context, bucket string) ([]SegmentRef, error) {
	var refs []SegmentRef
	seen := map[string]bool{}
	add := func(k string) {
		if id, ok := ParseSegmentKey(k); ok && !seen[k] {
			seen[k] = true
			refs = append(refs, SegmentRef{ID: id, Key: k})
		}
	}
	p := s3.NewListObjectVersionsPaginator(v.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(SegmentPrefix(bucket))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list journal of s3://%s in vault s3://%s: %w", bucket, v.Bucket, err)
		}
		for _, o := range page.Versions {
			add(aws.ToString(o.Key))
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].ID < refs[j].ID })
	return refs, nil
}

// SegmentReader streams the records of one segment.
type SegmentReader struct {
	Ref    SegmentRef
	Header segmentHeader
	body   io.ReadCloser
	dec    *zstd.Decoder
	lines  *bufio.Reader
	n      int
}

// NewSegmentReader reads a segment body.
func NewSegmentReader(ref SegmentRef, body io.ReadCloser) (*SegmentReader, error) {
	dec, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	r := &SegmentReader{Ref: ref, body: body, dec: dec, lines: bufio.NewReaderSize(dec, segmentLineBuffer)}
	line, err := r.line()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("read header: %w", err)
	}
	if err := json.Unmarshal(line, &r.Header); err != nil {
		r.Close()
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if r.Header.Format != segmentFormat || r.Header.Version != segmentVersion {
		r.Close()
		return nil, fmt.Errorf("segment format %q version %d is not %q version %d", r.Header.Format, r.Header.Version, segmentFormat, segmentVersion)
	}
	return r, nil
}

// MaxRecordLine bounds one line of a segment-format object. A record is a
// few KiB at most (a 1,024-byte key, 2 KiB of user metadata, 10 tags, an
// ACL); a longer line is damage (a crafted object that decompresses into
// one huge line would otherwise be held in memory whole).
const MaxRecordLine = 16 << 20

func (r *SegmentReader) line() ([]byte, error) {
	var line []byte
	for {
		part, err := r.lines.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > MaxRecordLine {
			return nil, fmt.Errorf("a line longer than %d bytes", MaxRecordLine)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		}
		return line, err
	}
}

// Next returns the next record, or io.EOF after the last.
func (r *SegmentReader) Next() (Record, error) {
	line, err := r.line()
	if err == io.EOF {
		if r.n != r.Header.Records {
			return Record{}, fmt.Errorf("segment %s: %d records, header says %d", r.Ref.ID, r.n, r.Header.Records)
		}
		return Record{}, io.EOF
	}
	if err != nil {
		return Record{}, fmt.Errorf("segment %s: %w", r.Ref.ID, err)
	}
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return Record{}, fmt.Errorf("segment %s record %d: %w", r.Ref.ID, r.n+1, err)
	}
	if err := rec.normalize(); err != nil {
		return Record{}, fmt.Errorf("segment %s record %d: %w", r.Ref.ID, r.n+1, err)
	}
	r.n++
	return rec, nil
}

// Close releases the segment.
func (r *SegmentReader) Close() error {
	r.dec.Close()
	return r.body.Close()
}

// Observed is a record with where it was read, which orders records that
// nothing else orders (the later segment, then the later line, is newer).
type Observed struct {
	Record
	Segment string
	Line    int
}

// RecordSource yields records in key order (ties in any order).
type RecordSource interface {
	Next() (Observed, error) // io.EOF after the last
	Close() error
}

// Merger merges sources into one stream grouped by key, in key order, with
// memory bounded by the number of sources and the history of one key.
type Merger struct {
	h       mergeHeap
	sources []RecordSource
	all     []RecordSource // sources, kept after Close for Damage
	err     error
}

// Damage returns the damaged objects the merge's readers found so far
// (see survive.go): a reader that finds one reads around it.
func (m *Merger) Damage() []Damage { return damageOf(m.all) }

type mergeItem struct {
	rec Observed
	src RecordSource
}
type mergeHeap []mergeItem

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rec.Key != h[j].rec.Key {
		return h[i].rec.Key < h[j].rec.Key
	}
	if h[i].rec.Segment != h[j].rec.Segment {
		return h[i].rec.Segment < h[j].rec.Segment
	}
	return h[i].rec.Line < h[j].rec.Line
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// NewMerger merges sources; it owns and closes them.
func NewMerger(sources []RecordSource) (*Merger, error) {
	m := &Merger{sources: sources, all: sources}
	for _, s := range sources {
		rec, err := s.Next()
		if err == io.EOF {
			continue
		}
		if err != nil {
			m.Close()
			return nil, err
		}
		m.h = append(m.h, mergeItem{rec: rec, src: s})
	}
	heap.Init(&m.h)
	return m, nil
}

// NextKey returns every record of the next key, in (segment, line) order,
// or io.EOF after the last key.
func (m *Merger) NextKey() (string, []Observed, error) {
	if m.err != nil {
		return "", nil, m.err
	}
	if len(m.h) == 0 {
		return "", nil, io.EOF
	}
	key := m.h[0].rec.Key
	var recs []Observed
	for len(m.h) > 0 && m.h[0].rec.Key == key {
		it := m.h[0]
		recs = append(recs, it.rec)
		rec, err := it.src.Next()
		switch {
		case err == io.EOF:
			heap.Pop(&m.h)
		case err != nil:
			m.err = err
			return "", nil, err
		default:
			if rec.Key < key {
				m.err = fmt.Errorf("segment %s is not sorted: %q after %q", rec.Segment, rec.Key, key)
				return "", nil, m.err
			}
			m.h[0].rec = rec
			heap.Fix(&m.h, 0)
		}
	}
	return key, recs, nil
}

// Close closes every source.
func (m *Merger) Close() error {
	var first error
	for _, s := range m.sources {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.sources = nil
	return first
}

// MaxOpenSegments bounds how many segments a journal read holds open at
// once; more are merged in groups through temporary sorted files on local
// disk (see spillRun). Compaction (Compact) keeps the count small.
var MaxOpenSegments = 16

// OpenJournal merges bucket's journal (the runs of its index and every
// segment after them), restricted to what can hold a key starting with one
// of prefixes (all when prefixes is empty), and any extra sources (a
// snapshot's manifest). The merger owns the extra sources.
func (v *Vault) OpenJournal(ctx context.Context, bucket string, prefixes []string, extra ...RecordSource) (*Merger, error) {
	return v.OpenJournalAfter(ctx, bucket, prefixes, "", extra...)
}

// OpenJournalAfter is OpenJournal without the keys up to and including
// after ("": every key): a read that resumes where an earlier one
// stopped (a restore's plan, in rounds). The runs' shards that end at or
// before after are not read at all; the extra sources are skipped
// through after too.
func (v *Vault) OpenJournalAfter(ctx context.Context, bucket string, prefixes []string, after string, extra ...RecordSource) (*Merger, error) {
	jv, err := v.view(ctx, bucket)
	if err != nil {
		closeSources(extra)
		return nil, err
	}
	m, err := v.openView(ctx, bucket, jv, prefixes, after)
	if err != nil {
		closeSources(extra)
		return nil, err
	}
	if len(extra) == 0 {
		return m, nil
	}
	return NewMerger(append([]RecordSource{m.asSource()}, skipThrough(extra, after)...))
}

// skipThrough wraps sources so they yield no key up to and including
// after ("": no wrapping).
func skipThrough(sources []RecordSource, after string) []RecordSource {
	if after == "" {
		return sources
	}
	out := make([]RecordSource, len(sources))
	for i, s := range sources {
		out[i] = &afterSource{RecordSource: s, after: after}
	}
	return out
}

// afterSource skips the records of keys up to and including after.
type afterSource struct {
	RecordSource
	after string
}

func (s *afterSource) Next() (Observed, error) {
	for {
		o, err := s.RecordSource.Next()
		if err != nil || o.Key > s.after {
			return o, err
		}
	}
}

func (s *afterSource) Damage() []Damage { return damageOf([]RecordSource{s.RecordSource}) }

func overlaps(first, last string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		// Some key k with prefix p lies in [first, last] iff p <= last
		// (or last has prefix p) and first <= the greatest key with prefix p.
		if (p <= last || strings.HasPrefix(last, p)) && (first <= p || strings.HasPrefix(first, p)) {
			return true
		}
	}
	return false
}

// asSource reads a merger as a record source (its keys' records in turn),
// so it can be merged with more sources.
func (m *Merger) asSource() RecordSource { return &mergerSource{m: m} }

type mergerSource struct {
	m   *Merger
	buf []Observed
}

func (s *mergerSource) Next() (Observed, error) {
	for len(s.buf) == 0 {
		_, recs, err := s.m.NextKey()
		if err != nil {
			return Observed{}, err
		}
		s.buf = recs
	}
	o := s.buf[0]
	s.buf = s.buf[1:]
	return o, nil
}

func (s *mergerSource) Close() error     { return s.m.Close() }
func (s *mergerSource) Damage() []Damage { return s.m.Damage() }

// HasJournal reports whether the vault holds any journal of bucket: a
// segment or a run.
func (v *Vault) HasJournal(ctx context.Context, bucket string) (bool, error) {
	for _, prefix := range []string{SegmentPrefix(bucket), runsPfx + bucket + "/"} {
		out, err := v.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1)})
		if err != nil {
			return false, fmt.Errorf("list s3://%s/%s: %w", v.Bucket, prefix, err)
		}
		if len(out.Contents) > 0 {
			return true, nil
		}
	}
	return false, nil
}
