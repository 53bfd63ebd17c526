package vault

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Readers survive damage. The journal's objects (segments, a run's
// shards, a snapshot's manifest shards) are written once and never
// changed, and the vault is versioned: whatever later happens to one of
// them (another PUT by the vault's owner, a delete marker, flipped bytes)
// its first version is still there unless it was deleted for good. A
// reader checks every object before it uses a record of it:
//
//   - the GET is conditional on the ETag a manifest recorded for it (run
//     and snapshot shards), and the object is read whole;
//   - its zstd frames are decoded once, checking their content checksums,
//     before a record is parsed;
//   - its header must be a segment header naming the object (a journal
//     segment names its bucket and id, a run shard its cut) with the
//     record count and key range its manifest gives; its records must
//     parse, come in key order inside that range, and number what the
//     header says.
//
// An object that fails is read from its older versions, newest first (a
// shard: those with the recorded ETag): the first that passes is used, and
// the reader resumes after the records it already gave. The reader says
// so (a Damage with Version set): nothing is lost, `vault repair` puts the
// good version back. When no version passes, the reader gives what it
// read, stops reading the object, and says which keys it cannot vouch for
// (a Damage with Lost set): from the last key it gave (or the object's
// first key) to the object's last key, every key when the object names no
// range that can be trusted. Every other object is read as usual, so one
// damaged object costs the keys it holds, never the whole read.

// Damage is a journal object a reader found damaged.
type Damage struct {
	// Object is the vault key of the segment or shard.
	Object string `json:"object"`
	// Reason says what was wrong with it.
	Reason string `json:"reason"`
	// Version is the older version that was read instead, when one was
	// good (nothing is lost).
	Version string `json:"version,omitempty"`
	// Lost says no version of the object was good: the records it held
	// from FirstKey to LastKey (both inclusive; "" leaves that end open,
	// both "" is every key) are unknown to the reader.
	Lost     bool   `json:"lost,omitempty"`
	FirstKey string `json:"firstKey,omitempty"`
	LastKey  string `json:"lastKey,omitempty"`
	// JournaledBy bounds the changes a lost journal object held: every
	// record in it was journaled by then (a segment's id is its write
	// time; a run holds the segments up to its cut), so it held changes
	// made by then and none later. Zero when unknown (a snapshot's shard,
	// the index).
	JournaledBy time.Time `json:"journaledBy,omitzero"`
}

// DamageClockSkew is how far S3's clock (a version's LastModified, an
// event's time) may run ahead of the clock that named a segment (a
// variable for tests only).
var DamageClockSkew = 5 * time.Minute

// journaledBy is the time the segment or run whose records carry the
// segment name id was written by: a segment id, "run:<run id>" (a run id
// begins with its cut's segment id), or zero.
func journaledBy(id string) time.Time {
	id = strings.TrimPrefix(id, "run:")
	ms, _, ok := strings.Cut(id, "-")
	if !ok || len(ms) != segmentIDWidth {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Covers reports whether key lies in the range of a lost object.
func (d Damage) Covers(key string) bool {
	return d.Lost && (d.FirstKey == "" || key >= d.FirstKey) && (d.LastKey == "" || key <= d.LastKey)
}

// Keys describes the key range of a lost object.
func (d Damage) Keys() string {
	switch {
	case d.FirstKey == "" && d.LastKey == "":
		return "every key"
	case d.FirstKey == "":
		return fmt.Sprintf("keys up to %q", d.LastKey)
	case d.LastKey == "":
		return fmt.Sprintf("keys from %q on", d.FirstKey)
	default:
		return fmt.Sprintf("keys %q to %q", d.FirstKey, d.LastKey)
	}
}

// InSnapshot reports whether the object is a snapshot's manifest shard
// (else it is the journal's: a segment, a run's shard, the index).
func (d Damage) InSnapshot() bool { return strings.HasPrefix(d.Object, snapshotsPrefix) }

// Bucket is the protected bucket whose records the object holds.
func (d Damage) Bucket() string {
	_, rest, _ := strings.Cut(d.Object, "/")
	b, _, _ := strings.Cut(rest, "/")
	return b
}

func (d Damage) String() string {
	if d.Lost {
		holder := "the journal"
		if d.InSnapshot() {
			holder = "the snapshot"
		}
		when := ""
		if !d.JournaledBy.IsZero() {
			when = fmt.Sprintf(" as to changes made by %s (it was written then; a key whose state is decided by a later change is vouched for)", d.JournaledBy.Format(time.RFC3339))
		}
		return fmt.Sprintf("s3 object %s is damaged and no version of it is good (%s): %s cannot vouch for %s%s", d.Object, d.Reason, holder, d.Keys(), when)
	}
	return fmt.Sprintf("s3 object %s is damaged (%s): read its good older version %s", d.Object, d.Reason, d.Version)
}

// Covered returns the lost damage among ds that covers key.
func Covered(ds []Damage, key string) (Damage, bool) {
	return CoveredAt(ds, key, Record{})
}

// CoveredAt returns the lost damage among ds that may change the state
// of key whose current entry (version or delete marker; zero for none)
// the rest of the vault gives as cur. A lost journal object held changes
// made by its JournaledBy only, so an entry made after that (with
// DamageClockSkew to spare) decides the key's state whatever it held: no
// older version or marker outranks it, and its own purge, order, listing
// or tag records were journaled after it was made.
func CoveredAt(ds []Damage, key string, cur Record) (Damage, bool) {
	for _, d := range ds {
		if !d.Covers(key) {
			continue
		}
		if cur.Op != "" && !d.JournaledBy.IsZero() && cur.Time.Unix() > d.JournaledBy.Add(DamageClockSkew).Unix() {
			continue
		}
		return d, true
	}
	return Damage{}, false
}

// damaged is a record source that reports the damage it found.
type damaged interface{ Damage() []Damage }

// damageOf gathers the damage sources found.
func damageOf(sources []RecordSource) []Damage {
	var out []Damage
	for _, s := range sources {
		if d, ok := s.(damaged); ok {
			out = append(out, d.Damage()...)
		}
	}
	return out
}

// damageError marks a check that an object failed (as opposed to a read
// that failed, which a retry may cure).
type damageError struct{ err error }

func (e *damageError) Error() string { return e.err.Error() }
func (e *damageError) Unwrap() error { return e.err }

func isDamage(err error) bool { return errors.As(err, new(*damageError)) }

func damagef(format string, a ...any) error { return &damageError{fmt.Errorf(format, a...)} }

// objectKind says what an object of records holds.
type objectKind int

const (
	kindSegment objectKind = iota // a journal segment: Record lines, named by its id
	kindRun                       // a run's shard: Observed lines
	kindShard                     // a snapshot's manifest shard: Record lines, named by its key
	kindFile                      // a job's working file: read as it is, never from an older version
)

// objectRef names one object of records and what it must hold.
type objectRef struct {
	kind   objectKind
	ref    SegmentRef // Key, and ID: the Observed.Segment of its records (segments, shards)
	bucket string     // the header's bucket ("" unchecked)
	name   string     // the header's segment name ("" unchecked)
	etag   string     // the recorded ETag ("" unknown)
	// From a manifest: the key range and record count (0: unknown).
	firstKey, lastKey string
	records           int
}

var checkDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
	if err != nil {
		panic(err) // the options are constant
	}
	return d
}}

// checkFrames decodes body once, checking its zstd frames and their
// content checksums, and discards what it decodes.
func checkFrames(body []byte) error { return checkFramesOf(bytes.NewReader(body)) }

func checkFramesOf(r io.Reader) error {
	d := checkDecoders.Get().(*zstd.Decoder)
	defer checkDecoders.Put(d)
	if err := d.Reset(r); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, d)
	return err
}

// BodyInMemory bounds the objects of records a reader holds in memory
// while it reads them (segments are smaller). A larger one (a run's or a
// snapshot's shard: up to 100,000 records, 9-30 MB) is held in a
// temporary file, so what a reader holds does not grow with its shards
// (a chain of shards holds two at a time: the one it reads and the next).
var BodyInMemory int64 = 1 << 20

// fetch reads one version ("" the current one) of the object whole and
// checks its frames; it returns the body to read (a temporary file where
// the object is larger than BodyInMemory) and the version read.
func (v *Vault) fetch(ctx context.Context, o objectRef, versionID string) (io.ReadCloser, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(o.ref.Key), VersionId: nonEmpty(versionID)}
	if o.etag != "" {
		in.IfMatch = aws.String(`"` + o.etag + `"`)
	}
	out, err := v.S3.GetObject(ctx, in)
	switch {
	case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
		if o.kind == kindFile {
			return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, o.ref.Key, err)
		}
		return nil, "", &damageError{fmt.Errorf("it is missing: %w", err)}
	case err != nil && s3x.IsPreconditionFailed(err):
		return nil, "", damagef("its ETag is not the recorded %s", o.etag)
	case err != nil:
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, o.ref.Key, err)
	}
	defer out.Body.Close()
	vid := aws.ToString(out.VersionId)
	readErr := func(err error) error { return fmt.Errorf("read s3://%s/%s: %w", v.Bucket, o.ref.Key, err) }
	if size := aws.ToInt64(out.ContentLength); out.ContentLength != nil && size >= 0 && size <= BodyInMemory {
		body := make([]byte, size)
		if _, err := io.ReadFull(out.Body, body); err != nil {
			return nil, "", readErr(err)
		}
		if err := checkFrames(body); err != nil {
			return nil, "", damagef("its compressed bytes do not decode: %v", err)
		}
		return io.NopCloser(bytes.NewReader(body)), vid, nil
	}
	f, err := os.CreateTemp("", "bucketvault-object-*")
	if err != nil {
		return nil, "", readErr(err)
	}
	_ = os.Remove(f.Name()) // gone when closed
	if _, err := io.Copy(f, out.Body); err != nil {
		f.Close()
		return nil, "", readErr(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, "", readErr(err)
	}
	if err := checkFramesOf(bufio.NewReaderSize(f, 64<<10)); err != nil {
		f.Close()
		return nil, "", damagef("its compressed bytes do not decode: %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, "", readErr(err)
	}
	return bufferedFile{bufio.NewReaderSize(f, 64<<10), f}, vid, nil
}

// bufferedFile reads a file through a buffer and closes the file.
type bufferedFile struct {
	*bufio.Reader
	f *os.File
}

func (b bufferedFile) Close() error { return b.f.Close() }

// checkedSource reads one object of records, checked, from an older
// version where the current one fails (see above).
type checkedSource struct {
	ctx  context.Context
	v    *Vault
	o    objectRef
	r    *SegmentReader
	n    int    // records given
	last string // the last key given
	// Versions: tried, and still to try (listed on the first failure).
	tried      map[string]bool
	candidates []string
	listed     bool
	done       bool
	damage     []Damage
}

// openChecked opens an object of records, from an older version where
// the current one fails its checks; an object with no good version is
// read as empty and says so (Damage). The error is one a retry may cure
// (or any failure of a job's working file).
func (v *Vault) openChecked(ctx context.Context, o objectRef) (*checkedSource, error) {
	s := &checkedSource{ctx: ctx, v: v, o: o, tried: map[string]bool{}}
	err := s.open("")
	if isDamage(err) {
		err = s.fallback(err)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// open reads version versionID ("" the current one), checks it, and skips
// the records already given.
func (s *checkedSource) open(versionID string) error {
	body, vid, err := s.v.fetch(s.ctx, s.o, versionID)
	if vid != "" {
		s.tried[vid] = true
	}
	if err != nil {
		return err
	}
	r, err := NewSegmentReader(s.o.ref, body)
	if err != nil {
		body.Close()
		return &damageError{err}
	}
	h := r.Header
	switch {
	case s.o.bucket != "" && h.Bucket != s.o.bucket:
		err = damagef("its header names bucket %q", h.Bucket)
	case s.o.name != "" && h.Segment != s.o.name:
		err = damagef("its header names %q, not %q", h.Segment, s.o.name)
	case s.o.records > 0 && h.Records != s.o.records:
		err = damagef("its header says %d records, its manifest %d", h.Records, s.o.records)
	case s.o.firstKey != "" && (h.FirstKey < s.o.firstKey || h.LastKey > s.o.lastKey):
		err = damagef("its header's keys %q to %q are outside its manifest's %q to %q", h.FirstKey, h.LastKey, s.o.firstKey, s.o.lastKey)
	case h.Records > 0 && h.FirstKey > h.LastKey:
		err = damagef("its header's keys %q to %q are out of order", h.FirstKey, h.LastKey)
	}
	if err != nil {
		r.Close()
		return err
	}
	if s.r != nil {
		s.r.Close()
	}
	s.r = r
	for i := 0; i < s.n; i++ {
		if _, err := s.read(); err != nil {
			return err
		}
	}
	return nil
}

// read reads the next record of the open version, checked; io.EOF after
// the last.
func (s *checkedSource) read() (Observed, error) {
	var o Observed
	if s.o.kind == kindRun {
		line, err := s.r.line()
		if err == io.EOF {
			if s.r.n != s.r.Header.Records {
				return o, damagef("%d records, its header says %d", s.r.n, s.r.Header.Records)
			}
			return o, io.EOF
		}
		if err != nil {
			return o, &damageError{err}
		}
		if err := json.Unmarshal(line, &o); err != nil {
			return o, damagef("record %d: %v", s.r.n+1, err)
		}
		if err := o.normalize(); err != nil {
			return o, damagef("record %d: %v", s.r.n+1, err)
		}
		s.r.n++
	} else {
		rec, err := s.r.Next()
		if err == io.EOF {
			return o, io.EOF
		}
		if err != nil {
			return o, &damageError{err}
		}
		o = Observed{Record: rec, Segment: s.o.ref.ID, Line: s.r.n}
	}
	h := s.r.Header
	if o.Key < h.FirstKey || o.Key > h.LastKey {
		return o, damagef("record %d's key %q is outside its header's %q to %q", s.r.n, o.Key, h.FirstKey, h.LastKey)
	}
	return o, nil
}

// Next returns the next record, from an older version after the current
// one fails; io.EOF after the last (or once no version is good).
func (s *checkedSource) Next() (Observed, error) {
	for !s.done {
		o, err := s.read()
		if err == nil && o.Key < s.last {
			err = damagef("record %d's key %q comes after %q: not sorted", s.n+1, o.Key, s.last)
		}
		switch {
		case err == nil:
			s.n++
			s.last = o.Key
			return o, nil
		case err == io.EOF:
			return o, io.EOF
		case !isDamage(err):
			return o, err
		}
		if err := s.fallback(err); err != nil {
			return Observed{}, err
		}
	}
	return Observed{}, io.EOF
}

// fallback reads the newest older version that passes the checks, after
// cause; with none left it stops the object and says what is lost.
func (s *checkedSource) fallback(cause error) error {
	if s.o.kind == kindFile {
		return fmt.Errorf("s3://%s/%s: %w", s.v.Bucket, s.o.ref.Key, cause)
	}
	if !s.listed {
		s.listed = true
		vs, _, err := s.v.versions(s.ctx, s.o.ref.Key)
		if err != nil {
			return err
		}
		for _, ov := range vs {
			if s.o.etag == "" || s.o.etag == ov.etag {
				s.candidates = append(s.candidates, ov.id)
			}
		}
	}
	reason := cause.Error()
	for len(s.candidates) > 0 {
		vid := s.candidates[0]
		s.candidates = s.candidates[1:]
		if s.tried[vid] {
			continue
		}
		err := s.open(vid)
		if err == nil {
			s.damage = append(s.damage, Damage{Object: s.o.ref.Key, Reason: reason, Version: vid})
			return nil
		}
		if !isDamage(err) {
			return err
		}
	}
	// No version is good: what this object held past the last key given
	// is unknown, up to the last key its manifest gives (a segment has
	// none: a damaged header is no range to trust).
	first, last := s.o.firstKey, s.o.lastKey
	if s.n > 0 {
		first = s.last
	}
	d := Damage{Object: s.o.ref.Key, Reason: reason, Lost: true, FirstKey: first, LastKey: last}
	if !d.InSnapshot() {
		// The name the object's reader was given (a segment's id from its
		// key, a shard's run from the index), not its damaged header.
		d.JournaledBy = journaledBy(cmp.Or(s.o.name, s.o.ref.ID))
	}
	s.damage = append(s.damage, d)
	s.done = true
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	return nil
}

func (s *checkedSource) Damage() []Damage { return s.damage }

func (s *checkedSource) Close() error {
	if s.r != nil {
		err := s.r.Close()
		s.r = nil
		return err
	}
	return nil
}

// objectVersion is one version or delete marker of a vault object.
type objectVersion struct {
	id, etag string
	latest   bool
	modified time.Time
}

// versions lists the versions of one vault key, newest first (as S3 lists
// them), and its delete markers.
func (v *Vault) versions(ctx context.Context, key string) (versions, markers []objectVersion, err error) {
	p := s3.NewListObjectVersionsPaginator(v.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(key)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("versions of s3://%s/%s: %w", v.Bucket, key, err)
		}
		for _, o := range page.Versions {
			if aws.ToString(o.Key) == key {
				versions = append(versions, objectVersion{id: aws.ToString(o.VersionId), etag: s3x.TrimETag(aws.ToString(o.ETag)),
					latest: aws.ToBool(o.IsLatest), modified: aws.ToTime(o.LastModified)})
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				markers = append(markers, objectVersion{id: aws.ToString(m.VersionId), latest: aws.ToBool(m.IsLatest), modified: aws.ToTime(m.LastModified)})
			}
		}
	}
	return versions, markers, nil
}

// chainSource reads objects of records with disjoint, ascending key ranges
// one after another (a run's or a snapshot's shards), checked, opening the
// next while it reads the current one.
type chainSource struct {
	ctx    context.Context
	v      *Vault
	refs   []objectRef
	cur    *checkedSource
	ahead  chan openedShard
	damage []Damage
}

type openedShard struct {
	s   *checkedSource
	err error
}

func (c *chainSource) openNext() {
	if len(c.refs) == 0 {
		return
	}
	o := c.refs[0]
	c.refs = c.refs[1:]
	ch := make(chan openedShard, 1)
	go func() {
		s, err := c.v.openChecked(c.ctx, o)
		ch <- openedShard{s, err}
	}()
	c.ahead = ch
}

func (c *chainSource) Next() (Observed, error) {
	for {
		if c.cur == nil {
			if c.ahead == nil {
				c.openNext()
			}
			if c.ahead == nil {
				return Observed{}, io.EOF
			}
			o := <-c.ahead
			c.ahead = nil
			if o.err != nil {
				return Observed{}, o.err
			}
			c.cur = o.s
			c.openNext()
		}
		rec, err := c.cur.Next()
		if err == io.EOF {
			c.damage = append(c.damage, c.cur.Damage()...)
			c.cur.Close()
			c.cur = nil
			continue
		}
		return rec, err
	}
}

func (c *chainSource) Damage() []Damage {
	out := append([]Damage(nil), c.damage...)
	if c.cur != nil {
		out = append(out, c.cur.Damage()...)
	}
	return out
}

func (c *chainSource) Close() error {
	var err error
	if c.ahead != nil {
		if o := <-c.ahead; o.s != nil {
			o.s.Close()
		}
		c.ahead = nil
	}
	if c.cur != nil {
		err = c.cur.Close()
		c.cur = nil
	}
	return err
}

// refsAfter drops the shards (in key order) whose last key is at or
// before after: none of their keys is read ("": drops none).
func refsAfter(refs []objectRef, after string) []objectRef {
	if after == "" {
		return refs
	}
	out := refs[:0:0]
	for _, r := range refs {
		if r.lastKey != "" && r.lastKey <= after {
			continue
		}
		out = append(out, r)
	}
	return out
}

// shardRefs are the objects of shards in key order, restricted to those
// that can hold a key with one of prefixes.
func shardRefs(kind objectKind, bucket, name string, shards []RunShard, prefixes []string) []objectRef {
	var refs []objectRef
	for _, sh := range shards {
		if overlaps(sh.FirstKey, sh.LastKey, prefixes) {
			refs = append(refs, objectRef{kind: kind, ref: SegmentRef{ID: sh.Key, Key: sh.Key}, bucket: bucket, name: name,
				etag: sh.ETag, firstKey: sh.FirstKey, lastKey: sh.LastKey, records: sh.Records})
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].firstKey < refs[j].firstKey })
	return refs
}
