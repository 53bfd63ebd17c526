package vault

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Fuzz targets for every decoder of vault objects: journal segments, run
// shards (Observed lines), records, run manifests, journal indexes, the descriptor,
// snapshot point records, and the checked reader (checkFrames, header,
// record and order checks, fallback to older versions). The readers that
// fetch from S3 are driven through memS3, an in-memory versioned bucket,
// so the real code paths run without a server.
//
// Seeds are built in code from real encodings (fuzzSeeds); the same seeds
// are kept as files under testdata/fuzz (regenerate them with
// BUCKETVAULT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds), so bytes
// written by an older encoder stay in the corpus.

// maxFuzzRecords bounds how many records a target reads from one input.
const maxFuzzRecords = 1 << 16

var fuzzTime = time.Date(2026, 11, 23, 10, 20, 30, 123456789, time.UTC)

// fuzzRecords are records of every shape a segment holds, with unicode,
// empty and escaped keys.
func fuzzRecords() []Record {
	t := fuzzTime
	return []Record{
		{Op: OpVersion, Key: "café/résumé 1.txt", VersionID: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", Time: t, Sequencer: "0055AED6DCD90281E5", Origin: OriginEvent,
			Size: 1234, ETag: "9b2cf535f27731c974343645a3985328", Checksum: &Checksum{Algorithm: "CRC32", Value: "AAAAAA==", Type: "FULL_OBJECT"},
			StorageClass: "STANDARD", Meta: &Meta{ContentType: "text/plain; charset=utf-8", User: map[string]string{"ключ": "значение"}},
			Tags: map[string]string{"team": "données"}, ACL: &ACL{Owner: "o", Grants: []Grant{{Type: "CanonicalUser", ID: "o", Permission: "FULL_CONTROL"}}},
			SSE: "aws:kms", Data: "data/ab/x", DataETag: "e"},
		{Op: OpDeleteMarker, Key: "日本語/ファイル名.png", VersionID: "v2", Time: t.Add(time.Second), Origin: OriginReconcile},
		{Op: OpTags, Key: "emoji 🎉 \"quoted\" <html> &amp;\u2028", VersionID: "null", Time: t.Add(2 * time.Second), Tags: map[string]string{"a": "b"}},
		{Op: OpOrder, Key: "k", Time: t, Order: []string{"v1", "v2"}},
		{Op: OpVersion, Key: "k", VersionID: "v3", Time: t, Data: "packs/p", Packed: true, DataOffset: 4096, MetaInData: true, Origin: OriginSnapshot},
		{Op: OpSkip, Key: "z/archived", VersionID: "v", Time: t, Reason: SkipArchived, Detail: "GLACIER"},
		{Op: OpListed, Key: "z/listed", VersionID: "null", ETag: "e", Time: t, Created: t.Add(-time.Hour)},
		{Op: OpPurge, Key: "", VersionID: "v0", Time: t},
	}
}

// observedOf numbers records as a reader of segment seg gives them.
func observedOf(seg string, recs []Record) []Observed {
	out := make([]Observed, len(recs))
	for i, r := range recs {
		out[i] = Observed{Record: r, Segment: seg, Line: i + 1}
	}
	return out
}

func mustSegment(tb testing.TB, bucket, id string, recs []Record) []byte {
	tb.Helper()
	body, err := EncodeSegment(bucket, id, append([]Record(nil), recs...), fuzzTime)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func mustRunShard(tb testing.TB, bucket, cut string, recs []Observed) []byte {
	tb.Helper()
	body, err := encodeRunShard(bucket, "run:"+cut, recs, fuzzTime)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// zst compresses plain lines as the vault does.
func zst(plain string) []byte { return encoder.EncodeAll([]byte(plain), nil) }

func headerLine(h segmentHeader) string {
	b, _ := json.Marshal(h)
	return string(b) + "\n"
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i%len(c)] ^= 0x20
	return c
}

// Names of the fixed objects the checked-reader targets read.
const (
	fzBucket  = "photos"
	fzSegID   = "0001763893230123-a1b2c3d4"
	fzCut     = "0001763893230123-a1b2c3d4"
	fzVault   = "vault"
	fzSnapID  = "snap-1"
	fzJobFile = "jobs/j/mapping-00001.jsonl.zst"
)

// sortedRecords is fuzzRecords in key order, as a segment holds them.
func sortedRecords() []Record {
	recs := fuzzRecords()
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs
}

// goodObject is the good (older) version of the object of kind the
// checked-reader targets read, and the records it holds.
func goodObject(tb testing.TB, kind objectKind) ([]byte, []Observed) {
	recs := sortedRecords()
	switch kind {
	case kindRun:
		obs := observedOf("seg", recs)
		return mustRunShard(tb, fzBucket, fzCut, obs), obs
	case kindShard:
		key := SnapshotShardKey(fzBucket, fzSnapID, 1, false)
		return mustSegment(tb, fzBucket, key, recs), observedOf(key, recs)
	case kindFile:
		return mustSegment(tb, fzBucket, fzJobFile, recs), observedOf(fzJobFile, recs)
	default:
		return mustSegment(tb, fzBucket, fzSegID, recs), observedOf(fzSegID, recs)
	}
}

// fuzzSeeds are the bodies every body-taking target starts from.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	recs := fuzzRecords()
	seg := mustSegment(tb, fzBucket, fzSegID, recs)
	run, _ := goodObject(tb, kindRun)
	shard, _ := goodObject(tb, kindShard)
	file, _ := goodObject(tb, kindFile)
	sorted := sortedRecords()
	h := segmentHeader{Format: segmentFormat, Version: segmentVersion, Bucket: fzBucket, Segment: fzSegID, Records: 2,
		Written: fuzzTime, FirstKey: "a", LastKey: "b"}
	rec := func(key string) string {
		b, _ := json.Marshal(Record{Op: OpVersion, Key: key, VersionID: "v", Time: fuzzTime})
		return string(b) + "\n"
	}
	old, err := zstd.NewWriter(nil, zstd.WithWindowSize(256<<10), zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	oldBody := old.EncodeAll(mustPlain(tb, seg), nil)
	one := mustSegment(tb, fzBucket, fzSegID, recs[:1])
	return map[string][]byte{
		"segment":           seg,
		"segment-one":       one,
		"segment-empty":     mustSegment(tb, fzBucket, fzSegID, nil),
		"segment-256k":      oldBody,
		"segment-2frames":   append(zst(headerLine(h)), zst(rec("a")+rec("b"))...),
		"run-shard":         run,
		"snapshot-shard":    shard,
		"job-file":          file,
		"truncated":         seg[:len(seg)/2],
		"truncated-tail":    seg[:len(seg)-1],
		"flipped":           flipByte(seg, len(seg)/2),
		"flipped-header":    flipByte(seg, 5),
		"flipped-run":       flipByte(run, len(run)/3),
		"unsorted":          zst(headerLine(h) + rec("b") + rec("a")),
		"outside-header":    zst(headerLine(h) + rec("a") + rec("c")),
		"count-mismatch":    zst(headerLine(h) + rec("a")),
		"no-newline":        zst(strings.TrimSuffix(headerLine(h)+rec("a")+rec("b"), "\n")),
		"bad-record":        zst(headerLine(h) + rec("a") + "{\"op\":\"version\",\"key\":7}\n"),
		"future-format":     zst(strings.Replace(headerLine(h), `"version":1`, `"version":2`, 1) + rec("a") + rec("b")),
		"keys-reversed":     zst(strings.Replace(headerLine(h), `"firstKey":"a","lastKey":"b"`, `"firstKey":"b","lastKey":"a"`, 1)),
		"plain-json":        []byte(headerLine(h) + rec("a") + rec("b")),
		"empty":             {},
		"zstd-empty-frame":  zst(""),
		"long-line":         zst(headerLine(h) + rec(strings.Repeat("é", 20000)) + rec(strings.Repeat("é", 20001))),
		"records-of-sorted": mustSegment(tb, fzBucket, fzSegID, sorted),
		"tz-24": zst(headerLine(segmentHeader{Format: segmentFormat, Version: segmentVersion, Bucket: fzBucket, Segment: fzSegID, Records: 1,
			Written: fuzzTime, FirstKey: "k", LastKey: "k"}) + `{"op":"version","key":"k","versionId":"v","time":"2026-01-01T00:00:00-24:00"}` + "\n"),
	}
}

func mustPlain(tb testing.TB, body []byte) []byte {
	d, err := zstd.NewReader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	plain, err := d.DecodeAll(body, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return plain
}

// addBodies seeds f with every seed body (sorted, for a stable order).
func addBodies(f *testing.F, extra ...any) {
	seeds := fuzzSeeds(f)
	names := make([]string, 0, len(seeds))
	for n := range seeds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f.Add(append([]any{seeds[n]}, extra...)...)
	}
}

// skipKnownUnencodable skips an input that shows a known limit of
// encoding/json instead of failing on it: a time with a zone offset of 24
// hours ("2026-01-01T00:00:00-24:00") decodes (time.Time.UnmarshalJSON
// takes it) but does not encode again (MarshalJSON refuses offsets beyond
// 23 hours). Journal records are normalized to UTC as they are read
// (Record.normalize), so the readers' round trips need no skip; the JSON
// documents (run manifests, snapshot points) are never re-encoded from
// what was read, so a manifest holding such a time costs nothing.
func skipKnownUnencodable(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "timezone hour outside of range") {
		t.Skipf("known finding, not yet fixed: a decoded time does not encode again: %v", err)
	}
}

// requireMessage fails unless err says something.
func requireMessage(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.TrimSpace(err.Error()) == "" {
		t.Fatalf("%s: error %#v has no message", what, err)
	}
}

// normalize clears what the JSON encoding cannot keep: an empty map or
// slice is written as nothing (omitempty) and read back nil.
//
// Known loss, reported to the owner: Record.Tags is `json:"tags,omitempty"`
// but the journal writes an OpTags record with an empty, non-nil Tags for
// "every tag removed" (journal.go), which reads back nil, "unknown".
func normalize(r Record) Record {
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	if len(r.Order) == 0 {
		r.Order = nil
	}
	if r.Meta != nil && len(r.Meta.User) == 0 {
		m := *r.Meta
		m.User = nil
		r.Meta = &m
	}
	if r.ACL != nil && len(r.ACL.Grants) == 0 {
		a := *r.ACL
		a.Grants = nil
		r.ACL = &a
	}
	return r
}

func normalizeAll(obs []Observed) []Observed {
	out := make([]Observed, len(obs))
	for i, o := range obs {
		o.Record = normalize(o.Record)
		out[i] = o
	}
	return out
}

// decodeSegment reads a segment body with NewSegmentReader and Next, to
// its end or its first error.
func decodeSegment(t *testing.T, body []byte) (segmentHeader, []Record, error) {
	t.Helper()
	r, err := NewSegmentReader(SegmentRef{ID: fzSegID, Key: SegmentKey(fzBucket, fzSegID)}, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		requireMessage(t, "NewSegmentReader", err)
		if r != nil {
			t.Fatal("NewSegmentReader returned a reader with its error")
		}
		return segmentHeader{}, nil, err
	}
	defer r.Close()
	var recs []Record
	for len(recs) < maxFuzzRecords {
		rec, err := r.Next()
		if err == io.EOF {
			if len(recs) != r.Header.Records {
				t.Fatalf("Next gave io.EOF after %d records; the header says %d", len(recs), r.Header.Records)
			}
			return r.Header, recs, nil
		}
		if err != nil {
			requireMessage(t, "Next", err)
			return r.Header, recs, err
		}
		recs = append(recs, rec)
	}
	return r.Header, recs, errors.New("too many records")
}

// FuzzSegmentReader: NewSegmentReader and Next never panic on any body,
// fail with a message, and what they read in full survives EncodeSegment
// (as compaction rewrites it) unchanged.
func FuzzSegmentReader(f *testing.F) {
	addBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		h, recs, err := decodeSegment(t, body)
		if err != nil {
			return
		}
		var want []Record
		for _, r := range recs {
			want = append(want, normalize(r))
		}
		sort.SliceStable(want, func(i, j int) bool { return want[i].Key < want[j].Key })
		again, err := EncodeSegment(h.Bucket, h.Segment, recs, fuzzTime)
		if err != nil {
			t.Fatalf("records read from a segment do not encode again: %v", err)
		}
		h2, got, err := decodeSegment(t, again)
		if err != nil {
			t.Fatalf("re-encoded segment does not read: %v", err)
		}
		if h2.Bucket != h.Bucket || h2.Segment != h.Segment || h2.Records != len(want) {
			t.Fatalf("re-encoded header %+v, from %+v", h2, h)
		}
		for i := range got {
			got[i] = normalize(got[i])
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("records changed through EncodeSegment (-read +read again):\n%s", diff)
		}
	})
}

// FuzzSegmentRoundTrip: records built from any strings and numbers encode
// (or fail with a message) and read back the same, through the plain
// reader and the checked one, as a segment and as a run shard.
func FuzzSegmentRoundTrip(f *testing.F) {
	f.Add("photos", fzSegID, "café/résumé.txt", "日本語/ファイル", "emoji 🎉", int64(1763893230123), int64(42), "team", "données", uint8(0))
	f.Add("b", "0", "", "", "", int64(0), int64(0), "", "", uint8(255))
	f.Add("b", "id", "a\u2028<b>&", "a", "a\x00\t\"\\", int64(-62135596800000), int64(-1), "k", "", uint8(7))
	f.Add("b", "id", strings.Repeat("k/", 3000), "z", "y", int64(253402300799999), int64(1<<62), "", "v", uint8(3))
	f.Fuzz(func(t *testing.T, bucket, id, k1, k2, k3 string, ms, size int64, tagK, tagV string, ops uint8) {
		for _, s := range []string{bucket, id, k1, k2, k3, tagK, tagV} {
			if !utf8.ValidString(s) {
				return // S3 names and tags are UTF-8; JSON replaces invalid bytes
			}
		}
		at := time.UnixMilli(ms).UTC()
		allOps := []Op{OpVersion, OpDeleteMarker, OpPurge, OpTags, OpACL, OpStorageClass, OpOrder, OpSkip, OpListed}
		var recs []Record
		for i, k := range []string{k1, k2, k3, k1} {
			r := Record{Op: allOps[(int(ops)+i)%len(allOps)], Key: k, VersionID: fmt.Sprint("v", i), Time: at.Add(time.Duration(i) * time.Millisecond), Size: size}
			switch r.Op {
			case OpVersion:
				r.Meta = &Meta{ContentType: tagV, User: map[string]string{tagK: tagV}}
				r.Checksum = &Checksum{Algorithm: "SHA256", Value: tagV}
			case OpTags:
				r.Tags = map[string]string{tagK: tagV}
			case OpACL:
				r.ACL = &ACL{Owner: tagK, Grants: []Grant{{Type: "Group", URI: tagV, Permission: "READ"}}}
			case OpOrder:
				r.Order = []string{tagK, tagV}
			case OpListed:
				r.Created = at.Add(-time.Second)
			}
			recs = append(recs, r)
		}
		body, err := EncodeSegment(bucket, id, append([]Record(nil), recs...), at)
		if err != nil {
			requireMessage(t, "EncodeSegment", err)
			return // a time outside years 0 to 9999
		}
		if err := checkFrames(body); err != nil {
			t.Fatalf("checkFrames of a new segment: %v", err)
		}
		want := append([]Record(nil), recs...)
		sort.SliceStable(want, func(i, j int) bool { return want[i].Key < want[j].Key })
		for i := range want {
			want[i] = normalize(want[i])
		}
		h, got, err := decodeSegment(t, body)
		if err != nil {
			t.Fatalf("a new segment does not read: %v", err)
		}
		if h.Bucket != bucket || h.Segment != id || h.FirstKey != want[0].Key || h.LastKey != want[len(want)-1].Key {
			t.Fatalf("header %+v", h)
		}
		for i := range got {
			got[i] = normalize(got[i])
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("EncodeSegment round trip (-want +got):\n%s", diff)
		}

		// The checked reader takes it whole, as a journal segment...
		key := SegmentKey(bucket, id)
		obs, damage, err := readChecked(t, objectRef{kind: kindSegment, ref: SegmentRef{ID: id, Key: key}, bucket: bucket, name: id}, body)
		if err != nil || len(damage) > 0 {
			t.Fatalf("checked read of a new segment: %v, damage %v", err, damage)
		}
		if diff := cmp.Diff(observedOf(id, want), normalizeAll(obs)); diff != "" {
			t.Fatalf("checked segment read (-want +got):\n%s", diff)
		}

		// ... and as a run shard, with the manifest's range and ETag.
		shard := observedOf("seg", want)
		for i := range shard {
			shard[i].Segment = fmt.Sprint(id, i%2) // a run keeps where each record was first read
		}
		rb, err := encodeRunShard(bucket, "run:"+id, shard, at)
		if err != nil {
			t.Fatalf("encodeRunShard: %v", err)
		}
		rkey := runShardKey(bucket, id, 1)
		obs, damage, err = readChecked(t, objectRef{kind: kindRun, ref: SegmentRef{ID: rkey, Key: rkey}, bucket: bucket, name: "run:" + id,
			etag: etagOf(rb), firstKey: want[0].Key, lastKey: want[len(want)-1].Key, records: len(want)}, rb)
		if err != nil || len(damage) > 0 {
			t.Fatalf("checked read of a new run shard: %v, damage %v", err, damage)
		}
		if diff := cmp.Diff(shard, normalizeAll(obs)); diff != "" {
			t.Fatalf("encodeRunShard round trip (-want +got):\n%s", diff)
		}
	})
}

// FuzzRunShard: a run shard (Observed lines) read by the checked reader
// never panics, never gives a record out of order or outside its header,
// reports damage with a reason, and what it reads whole survives
// encodeRunShard unchanged.
func FuzzRunShard(f *testing.F) {
	addBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		key := runShardKey(fzBucket, fzCut, 1)
		o := objectRef{kind: kindRun, ref: SegmentRef{ID: key, Key: key}, bucket: fzBucket, name: "run:" + fzCut, etag: etagOf(body)}
		obs, damage, err := readChecked(t, o, body)
		if err != nil {
			t.Fatalf("a shard's damage is not an error (it is read around): %v", err)
		}
		if len(damage) > 0 || len(obs) == 0 {
			return
		}
		again, err := encodeRunShard(fzBucket, "run:"+fzCut, obs, fuzzTime)
		if err != nil {
			t.Fatalf("records read from a run shard do not encode again: %v", err)
		}
		o.etag = etagOf(again)
		o.firstKey, o.lastKey, o.records = obs[0].Key, obs[len(obs)-1].Key, len(obs)
		got, damage, err := readChecked(t, o, again)
		if err != nil || len(damage) > 0 {
			t.Fatalf("re-encoded shard: %v, damage %v", err, damage)
		}
		if diff := cmp.Diff(normalizeAll(obs), normalizeAll(got)); diff != "" {
			t.Fatalf("records changed through encodeRunShard (-read +read again):\n%s", diff)
		}
	})
}

// FuzzCheckedSource: the checked reader (survive.go) on any current
// version of a segment, run shard, snapshot shard or job file, with or
// without a good older version and a manifest. It never panics or loops;
// a damaged journal object is never an error (it is read around and
// reported); records come in key order inside the manifest's range; and
// where the manifest recorded an ETag and the good version exists,
// nothing is lost whatever the current version holds.
//
// mode: bits 0-1 the kind; bit 2 a good older version exists; bit 3 the
// manifest's range and count are known; bit 4 the current version is
// deleted (a delete marker hides the older ones); bit 5 every version
// read is held in a temporary file, not in memory (BodyInMemory).
func FuzzCheckedSource(f *testing.F) {
	for _, mode := range []uint8{0, 1, 2, 3, 4 | 1, 4 | 8 | 1, 4 | 8 | 2, 4, 4 | 16, 8 | 16 | 1, 32 | 1, 32 | 4 | 8 | 1, 32 | 4 | 2, 32 | 3} {
		addBodies(f, mode)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		if mode&32 != 0 {
			defer func(n int64) { BodyInMemory = n }(BodyInMemory)
			BodyInMemory = -1
		}
		kind := objectKind(mode & 3)
		good, goodObs := goodObject(t, kind)
		withGood, withManifest, deleted := mode&4 != 0, mode&8 != 0, mode&16 != 0
		var o objectRef
		switch kind {
		case kindSegment:
			key := SegmentKey(fzBucket, fzSegID)
			o = objectRef{kind: kind, ref: SegmentRef{ID: fzSegID, Key: key}, bucket: fzBucket, name: fzSegID}
		case kindRun:
			key := runShardKey(fzBucket, fzCut, 1)
			o = objectRef{kind: kind, ref: SegmentRef{ID: key, Key: key}, bucket: fzBucket, name: "run:" + fzCut}
		case kindShard:
			key := SnapshotShardKey(fzBucket, fzSnapID, 1, false)
			o = objectRef{kind: kind, ref: SegmentRef{ID: key, Key: key}}
		case kindFile:
			o = objectRef{kind: kind, ref: SegmentRef{ID: fzJobFile, Key: fzJobFile}}
		}
		if withManifest && kind != kindSegment && kind != kindFile {
			o.firstKey, o.lastKey, o.records = goodObs[0].Key, goodObs[len(goodObs)-1].Key, len(goodObs)
			o.etag = etagOf(good)
		}
		c := newMemS3()
		if withGood {
			c.put(o.ref.Key, good)
		}
		c.put(o.ref.Key, body)
		if deleted {
			c.deleteCurrent(o.ref.Key)
		}
		v := &Vault{S3: c, Bucket: fzVault}
		obs, damage, err := readCheckedFrom(t, v, o)
		if kind == kindFile {
			if err != nil && len(damage) > 0 {
				t.Fatalf("a job file failed (%v) and reported damage %v", err, damage)
			}
			if err != nil && deleted && !s3x.IsNotFound(err) {
				t.Fatalf("a deleted job file: %v, want a not-found error", err)
			}
			return // a job file's failure is an error; it has no older version to read
		}
		if err != nil {
			t.Fatalf("a damaged journal object is read around, not an error: %v", err)
		}
		for i, ob := range obs {
			if o.firstKey != "" && (ob.Key < o.firstKey || ob.Key > o.lastKey) {
				t.Fatalf("record %d's key %q is outside the manifest's %q to %q", i+1, ob.Key, o.firstKey, o.lastKey)
			}
		}
		lost := false
		for _, d := range damage {
			if d.Object != o.ref.Key || d.Reason == "" || d.String() == "" || d.Lost == (d.Version != "") {
				t.Fatalf("damage %+v", d)
			}
			if d.Lost {
				lost = true
				if len(obs) > 0 && !d.Covers(obs[len(obs)-1].Key) && d.LastKey != "" && obs[len(obs)-1].Key <= d.LastKey {
					t.Fatalf("lost damage %+v does not cover from the last key given %q", d, obs[len(obs)-1].Key)
				}
			}
		}
		if !withGood && !deleted && bytes.Equal(body, good) && len(damage) > 0 {
			t.Fatalf("a good object reported damage %v", damage)
		}
		if withGood && o.etag != "" {
			// Only the recorded version is ever read: nothing is lost.
			if lost {
				t.Fatalf("lost records though the recorded version is there: %v", damage)
			}
			if diff := cmp.Diff(normalizeAll(goodObs), normalizeAll(obs)); diff != "" {
				t.Fatalf("records of a shard with a good recorded version (-want +got):\n%s", diff)
			}
			if !deleted && !bytes.Equal(body, good) && (len(damage) != 1 || damage[0].Version != "v1") {
				t.Fatalf("a damaged current version read from v1 should say so once: %v", damage)
			}
		}
	})
}

// readChecked reads body as the only version of the object o names.
func readChecked(t *testing.T, o objectRef, body []byte) ([]Observed, []Damage, error) {
	t.Helper()
	c := newMemS3()
	c.put(o.ref.Key, body)
	return readCheckedFrom(t, &Vault{S3: c, Bucket: fzVault}, o)
}

// readCheckedFrom opens o checked and reads it to its end, checking what
// every checked reader promises: records in key order, errors with a
// message, io.EOF for good once given.
func readCheckedFrom(t *testing.T, v *Vault, o objectRef) ([]Observed, []Damage, error) {
	t.Helper()
	s, err := v.openChecked(context.Background(), o)
	if err != nil {
		requireMessage(t, "openChecked", err)
		if s != nil {
			t.Fatal("openChecked returned a source with its error")
		}
		return nil, nil, err
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var out []Observed
	for {
		if len(out) > maxFuzzRecords {
			t.Fatalf("more than %d records", maxFuzzRecords)
		}
		ob, err := s.Next()
		if err == io.EOF {
			if _, err := s.Next(); err != io.EOF {
				t.Fatalf("Next after io.EOF = %v, want io.EOF", err)
			}
			return out, s.Damage(), nil
		}
		if err != nil {
			requireMessage(t, "Next", err)
			return out, s.Damage(), err
		}
		if n := len(out); n > 0 && ob.Key < out[n-1].Key {
			t.Fatalf("record %d's key %q comes after %q", n+1, ob.Key, out[n-1].Key)
		}
		out = append(out, ob)
	}
}

// FuzzCheckFrames: checkFrames (with its pooled decoders) agrees with a
// fresh decoder on every body, and says why it refuses one.
func FuzzCheckFrames(f *testing.F) {
	addBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkFrames(body)
		requireMessage(t, "checkFrames", err)
		d, derr := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
		if derr != nil {
			t.Fatal(derr)
		}
		_, ferr := io.Copy(io.Discard, d)
		d.Close()
		if (err == nil) != (ferr == nil) {
			t.Fatalf("checkFrames = %v, a fresh decoder %v", err, ferr)
		}
		if err2 := checkFrames(body); (err2 == nil) != (err == nil) {
			t.Fatalf("checkFrames twice: %v, then %v", err, err2)
		}
	})
}

// FuzzRecordJSON: any JSON line decodes into a Record or fails with a
// message, and a decoded record encodes as a segment line and decodes back
// the same.
func FuzzRecordJSON(f *testing.F) {
	for _, r := range fuzzRecords() {
		b, _ := json.Marshal(r)
		f.Add(b)
		ob, _ := json.Marshal(Observed{Record: r, Segment: fzSegID, Line: 3})
		f.Add(ob)
	}
	f.Add([]byte(`{"op":"tags","key":"k","versionId":"v","time":"2026-01-02T03:04:05.999999999+14:00","tags":{}}`))
	f.Add([]byte(`{"op":"version","key":"k","time":"0000-01-01T00:00:00-23:59","created":"9999-12-31T23:59:59Z","size":-1}`))
	f.Add([]byte(`{"OP":"x","Key":"\ud800","TAGS":{"a":"b","a":"c"},"order":null,"checksum":null}`))
	f.Add([]byte(`{"key":"k","time":"2026-01-02T03:04:05Z","dataOffset":1e3}`))
	f.Add([]byte(`{"key":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			requireMessage(t, "Unmarshal", err)
			return
		}
		// What every reader does after decoding a record.
		if err := r.normalize(); err != nil {
			requireMessage(t, "normalize", err)
			return
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Fatalf("a decoded record does not encode again: %v", err)
		}
		var back Record
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatalf("an encoded record does not decode: %v\n%s", err, b.Bytes())
		}
		if diff := cmp.Diff(normalize(r), normalize(back)); diff != "" {
			t.Fatalf("record changed through JSON (-decoded +again):\n%s", diff)
		}
	})
}

// FuzzDescriptor: Open reads any bucketvault.json without panicking; it
// opens only a descriptor of this format and version, refuses others with
// UnknownFormatError, and fails to decode with a message naming the key.
func FuzzDescriptor(f *testing.F) {
	good, _ := json.MarshalIndent(Descriptor{Format: FormatName, FormatVersion: FormatVersion, Name: fzVault, CreatedAt: fuzzTime, RetentionDays: 7}, "", "  ")
	f.Add(good)
	f.Add([]byte(`{"format":"bucketvault","formatVersion":1,"name":"v","createdAt":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":"bucketvault","formatVersion":2}`))
	f.Add([]byte(`{"format":"bucketvault","formatVersion":1,"retentionDays":-3}`))
	f.Add([]byte(`{"format":"bucketvault","formatVersion":"1"}`))
	f.Add([]byte(`{"format":"bucketvault","formatVersion":1.0}`))
	f.Add([]byte(`{"Format":"BUCKETVAULT","FORMATVERSION":1}`))
	f.Add(good[:len(good)/2])
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newMemS3()
		c.put(DescriptorKey, body)
		v, err := Open(context.Background(), c, fzVault)
		if err != nil {
			requireMessage(t, "Open", err)
			var unknown *UnknownFormatError
			if !errors.As(err, &unknown) && !strings.Contains(err.Error(), DescriptorKey) {
				t.Fatalf("Open error does not name the descriptor: %v", err)
			}
			return
		}
		d := v.Descriptor
		if d.Format != FormatName || (d.FormatVersion < MinFormatVersion || d.FormatVersion > FormatVersion) || d.RetentionDays == 0 || v.Bucket != fzVault {
			t.Fatalf("Open took descriptor %+v", d)
		}
		// What Create writes of it opens the same.
		again, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			t.Fatalf("an opened descriptor does not encode: %v", err)
		}
		c.put(DescriptorKey, again)
		v2, err := Open(context.Background(), c, fzVault)
		if err != nil {
			t.Fatalf("re-encoded descriptor: %v", err)
		}
		if diff := cmp.Diff(d, v2.Descriptor); diff != "" {
			t.Fatalf("descriptor changed through JSON (-first +again):\n%s", diff)
		}
	})
}

// FuzzSnapshotPoint: Snapshot reads any recovery point record without
// panicking, takes only this format, and what it takes encodes and reads
// back the same.
func FuzzSnapshotPoint(f *testing.F) {
	v := &Vault{Bucket: fzVault}
	sp := v.NewSnapshotPoint(fzBucket, fzSnapID, "job-1", fuzzTime)
	done := fuzzTime.Add(time.Hour)
	sp.Status, sp.ScanCompletionDate, sp.CompletionDate = PointPartial, &done, &done
	sp.ObjectCount, sp.FailedObjects = 3, 1
	sp.Failures = []Record{{Op: OpSkip, Key: "ключ", VersionID: "v", Time: fuzzTime, Reason: SkipSSEC}}
	sp.Lifecycle = &Lifecycle{DeleteAfterDays: 30}
	sp.CalculatedLifecycle = sp.Lifecycle.Calculate(fuzzTime)
	sp.CreatedBy = &CreatedBy{BackupPlanID: "p", BackupRuleCron: "cron(0 5 * * ? *)"}
	sp.RecoveryPointTags = map[string]string{"env": "prod"}
	sp.Shards = []RunShard{{Key: SnapshotShardKey(fzBucket, fzSnapID, 1, false), FirstKey: "a", LastKey: "z", Records: 3, ETag: "e"}}
	sp.FailureShards = []RunShard{{Key: SnapshotShardKey(fzBucket, fzSnapID, 1, true), FirstKey: "ключ", LastKey: "ключ", Records: 1}}
	good, _ := json.MarshalIndent(sp, "", "  ")
	creating, _ := json.MarshalIndent(v.NewSnapshotPoint(fzBucket, fzSnapID, "job-2", fuzzTime), "", "  ")
	f.Add(good)
	f.Add(creating)
	f.Add(good[:len(good)-3])
	f.Add(flipByte(good, 20))
	f.Add([]byte(`{"Format":"bucketvault-snapshot","FormatVersion":2}`))
	f.Add([]byte(`{"Format":"bucketvault-snapshot","FormatVersion":1,"Shards":[{"key":"k","records":-1}],"Failures":[{"time":"x"}]}`))
	f.Add([]byte(`{"Format":"bucketvault-snapshot","FormatVersion":1,"ScanCompletionDate":null,"Lifecycle":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newMemS3()
		key := SnapshotKey(fzBucket, fzSnapID)
		c.put(key, body)
		v := &Vault{S3: c, Bucket: fzVault}
		sp, err := v.Snapshot(context.Background(), fzBucket, fzSnapID)
		if err != nil {
			requireMessage(t, "Snapshot", err)
			if sp != nil {
				t.Fatal("Snapshot returned a point with its error")
			}
			return
		}
		if sp.Format != snapshotFormat || sp.FormatVersion != snapshotVersion {
			t.Fatalf("Snapshot took format %q version %d", sp.Format, sp.FormatVersion)
		}
		checkJSONStable(t, sp, func(b []byte) (any, error) {
			c.put(key, b)
			return v.Snapshot(context.Background(), fzBucket, fzSnapID)
		})
	})
}

// checkJSONStable: what was decoded encodes, and decodes (through read)
// to what encodes the same.
func checkJSONStable(t *testing.T, decoded any, read func([]byte) (any, error)) {
	t.Helper()
	b, err := json.MarshalIndent(decoded, "", "  ")
	if err != nil {
		skipKnownUnencodable(t, err)
		t.Fatalf("a decoded %T does not encode again: %v", decoded, err)
	}
	again, err := read(b)
	if err != nil {
		t.Fatalf("a re-encoded %T does not read: %v\n%s", decoded, err, b)
	}
	b2, err := json.MarshalIndent(again, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("%T changed through JSON:\n%s\nthen\n%s", decoded, b, b2)
	}
}

// FuzzRunManifest: LatestRun (and readRun) on any current version of a
// run manifest, with or without a good older version of it and an older
// run. It never panics; it takes only a manifest of this format naming its
// bucket and cut; a damaged one is read from its good version or passed
// over, and said so; a newer format is an error with a message.
//
// mode: bit 0 a good older version of the manifest exists; bit 1 a good
// older run exists.
func FuzzRunManifest(f *testing.F) {
	goodMan := func(cut string) []byte {
		b, _ := json.MarshalIndent(RunManifest{Format: runFormat, Version: runVersion1, Bucket: fzBucket, Cut: cut, Created: fuzzTime, Records: 3, Segments: 2,
			Shards: []RunShard{{Key: runShardKey(fzBucket, cut, 1), FirstKey: "a", LastKey: "é", Records: 3, ETag: "e"}}}, "", "  ")
		return b
	}
	const oldCut = "0001763893000000-00000000"
	good := goodMan(fzCut)
	for _, mode := range []uint8{0, 1, 2, 3} {
		f.Add(good, mode)
		f.Add(good[:len(good)/2], mode)
		f.Add(flipByte(good, 40), mode)
		f.Add(goodMan(oldCut), mode) // names another cut
		f.Add([]byte(strings.Replace(string(good), `"version": 1`, `"version": 2`, 1)), mode)
		f.Add([]byte(strings.Replace(string(good), fzBucket, "other", 1)), mode)
		f.Add([]byte(`{"format":"bucketvault-run","version":1,"bucket":"photos","cut":"`+fzCut+`","shards":null}`), mode)
		f.Add([]byte{}, mode)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		mode &= 3
		c := newMemS3()
		key := runManifestKey(fzBucket, fzCut)
		if mode&1 != 0 {
			c.put(key, good)
		}
		c.put(key, body)
		if mode&2 != 0 {
			c.put(runManifestKey(fzBucket, oldCut), goodMan(oldCut))
		}
		v := &Vault{S3: c, Bucket: fzVault}
		m, err := v.LatestRun(context.Background(), fzBucket)
		if err != nil {
			requireMessage(t, "LatestRun", err)
			if isDamage(err) {
				t.Fatalf("LatestRun passed damage on as an error: %v", err)
			}
			if !strings.Contains(err.Error(), "format") {
				t.Fatalf("LatestRun failed for something but a newer format: %v", err)
			}
			return
		}
		if m == nil {
			t.Fatal("LatestRun found no run though a manifest is there")
		}
		for _, d := range m.damage {
			if d.Reason == "" || d.Object != key || d.Lost {
				t.Fatalf("run damage %+v", d)
			}
		}
		if m.noRun {
			if mode != 0 || len(m.damage) != 1 {
				t.Fatalf("no run was sound, mode %d, damage %v", mode, m.damage)
			}
			return
		}
		if m.Format != runFormat || m.Version != runVersion1 || m.Bucket != fzBucket || (m.Cut != fzCut && m.Cut != oldCut) {
			t.Fatalf("LatestRun took %+v", m)
		}
		switch {
		case len(m.damage) == 0:
			if m.Cut != fzCut {
				t.Fatalf("the older run was read though the newer one is sound")
			}
		case m.Cut == fzCut:
			if mode&1 == 0 || m.damage[0].Version != "v1" {
				t.Fatalf("a damaged manifest read from %q in mode %d", m.damage[0].Version, mode)
			}
		case mode&1 != 0:
			t.Fatalf("the good version of the newer manifest was passed over: %v", m.damage)
		}
		checkJSONStable(t, m, func(b []byte) (any, error) {
			c.put(runManifestKey(fzBucket, m.Cut), b)
			m2, d, err := v.readRun(context.Background(), fzBucket, runManifestKey(fzBucket, m.Cut))
			if err == nil && (m2 == nil || len(d) > 0) {
				err = fmt.Errorf("damage %v", d)
			}
			return m2, err
		})
	})
}

// FuzzJournalIndex: Index reads any current version of a bucket's
// journal index (format 2), with or without a good older version of it,
// without panicking: it takes only an index of this format naming its
// bucket, reads a damaged one from its good version and says so (lost
// for every key), fails with a message when no version is good or the
// version is newer than this code reads; and a journal read through what
// it took gives its keys in order, or fails with a message, whatever runs
// and shards the index names.
//
// mode: bit 0 a good older version of the index exists.
func FuzzJournalIndex(f *testing.F) {
	recs := sortedRecords()
	shardKey := runShardKey(fzBucket, fzCut, 1)
	shard := mustRunShard(f, fzBucket, fzCut, observedOf("seg", recs))
	goodIndex := func(runs []IndexRun, cut string) []byte {
		b, _ := json.MarshalIndent(JournalIndex{Format: indexFormat, Version: FormatVersion, Bucket: fzBucket, Cut: cut, Runs: runs, Updated: fuzzTime}, "", "  ")
		return b
	}
	run := IndexRun{ID: fzCut, To: fzCut, Records: int64(len(recs)), Segments: 1, Manifest: runManifestKeyV2(fzBucket, fzCut), Name: "run:" + fzCut,
		Shards: []RunShard{{Key: shardKey, FirstKey: recs[0].Key, LastKey: recs[len(recs)-1].Key, Records: len(recs), ETag: etagOf(shard)}}}
	good := goodIndex([]IndexRun{run}, fzCut)
	for _, mode := range []uint8{0, 1} {
		f.Add(good, mode)
		f.Add(goodIndex(nil, ""), mode)
		f.Add(good[:len(good)/2], mode)
		f.Add(flipByte(good, 30), mode)
		f.Add([]byte(strings.Replace(string(good), `"version": 2`, `"version": 3`, 1)), mode)
		f.Add([]byte(strings.Replace(string(good), `"bucket": "`+fzBucket, `"bucket": "other`, 1)), mode)
		f.Add([]byte(strings.Replace(string(good), indexFormat, "bucketvault-run", 1)), mode)
		f.Add([]byte(strings.Replace(string(good), shardKey, DescriptorKey, 1)), mode) // a shard that is no shard
		f.Add([]byte(strings.Replace(string(good), `"records": `+fmt.Sprint(len(recs)), `"records": -1`, 1)), mode)
		f.Add([]byte(`{"format":"bucketvault-journal-index","version":2,"bucket":"photos","cut":"~","runs":[{"shards":[{"key":"","firstKey":"z","lastKey":"a"}]}],"floor":"0001-01-01T00:00:00Z"}`), mode)
		f.Add([]byte(`{"format":"bucketvault-journal-index","version":-1,"bucket":"photos","runs":null,"floor":"9999-12-31T23:59:59Z"}`), mode)
		f.Add([]byte(`null`), mode)
		f.Add([]byte{}, mode)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		mode &= 1
		ctx := context.Background()
		c := newMemS3()
		key := IndexKey(fzBucket)
		if mode&1 != 0 {
			c.put(key, good)
		}
		c.put(key, body)
		c.put(shardKey, shard)
		after := "0001763893230999-00000000" // a segment after the good index's cut
		c.put(SegmentKey(fzBucket, after), mustSegment(t, fzBucket, after, recs[:1]))
		v := &Vault{S3: c, Bucket: fzVault, Descriptor: Descriptor{Format: FormatName, FormatVersion: FormatVersion}}
		idx, err := v.Index(ctx, fzBucket)
		if err != nil {
			requireMessage(t, "Index", err)
			if isDamage(err) {
				t.Fatalf("Index passed damage on as an error: %v", err)
			}
			if !strings.Contains(err.Error(), "upgrade bucketvault") && (mode&1 != 0 || !strings.Contains(err.Error(), "no version of it is good")) {
				t.Fatalf("Index failed for something but a newer version or no good version (mode %d): %v", mode, err)
			}
			return
		}
		if idx.Format != indexFormat || idx.Bucket != fzBucket || idx.Version > FormatVersion {
			t.Fatalf("Index took %+v", idx)
		}
		if d := idx.damaged; d != nil && (mode&1 == 0 || d.Version != "v1" || !d.Lost || d.Object != key || d.Reason == "") {
			t.Fatalf("index damage %+v in mode %d", *d, mode)
		}
		m, err := v.OpenJournal(ctx, fzBucket, nil)
		if err != nil {
			requireMessage(t, "OpenJournal", err)
			return
		}
		prev, n := "", 0
		for ; n <= maxFuzzRecords; n++ {
			k, _, err := m.NextKey()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				requireMessage(t, "NextKey", err)
				break
			}
			if n > 0 && k <= prev {
				t.Fatalf("key %q after %q", k, prev)
			}
			prev = k
		}
		if n > maxFuzzRecords {
			t.Fatalf("more than %d keys", maxFuzzRecords)
		}
		for _, d := range m.Damage() {
			if d.Object == "" || d.Reason == "" || d.String() == "" {
				t.Fatalf("journal damage without a name or a reason: %+v", d)
			}
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if idx.damaged != nil {
			return // what is stable is the good version's JSON, checked with mode 0
		}
		checkJSONStable(t, idx, func(b []byte) (any, error) {
			c.put(key, b)
			idx2, _, err := v.readIndex(ctx, fzBucket, "")
			return idx2, err
		})
	})
}

// TestWriteFuzzSeeds writes the seed bodies as corpus files under
// testdata/fuzz, when BUCKETVAULT_WRITE_FUZZ_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("BUCKETVAULT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set BUCKETVAULT_WRITE_FUZZ_SEEDS=1 to write testdata/fuzz")
	}
	for name, body := range fuzzSeeds(t) {
		for target, extra := range map[string]string{
			"FuzzSegmentReader": "", "FuzzRunShard": "", "FuzzCheckFrames": "",
			"FuzzCheckedSource": "byte('\\x05')\n",
		} {
			dir := filepath.Join("testdata", "fuzz", target)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n%s", body, extra)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// memS3 is an in-memory versioned bucket: just what the vault's readers
// call (GetObject, ListObjectVersions, ListObjectsV2). Any other call
// panics on the nil Client.
type memS3 struct {
	s3x.Client
	objs map[string][]memVersion // newest first
	n    int
}

type memVersion struct {
	id, etag string
	body     []byte
	marker   bool
}

func newMemS3() *memS3 { return &memS3{objs: map[string][]memVersion{}} }

func etagOf(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}

func (m *memS3) put(key string, body []byte) {
	m.n++
	v := memVersion{id: fmt.Sprint("v", m.n), etag: etagOf(body), body: append([]byte(nil), body...)}
	m.objs[key] = append([]memVersion{v}, m.objs[key]...)
}

func (m *memS3) deleteCurrent(key string) {
	m.n++
	m.objs[key] = append([]memVersion{{id: fmt.Sprint("v", m.n), marker: true}}, m.objs[key]...)
}

func memErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "memS3: " + code} }

func (m *memS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	vs := m.objs[aws.ToString(in.Key)]
	if len(vs) == 0 {
		return nil, memErr("NoSuchKey")
	}
	v := vs[0]
	if in.VersionId != nil {
		found := false
		for _, x := range vs {
			if x.id == *in.VersionId {
				v, found = x, true
			}
		}
		if !found {
			return nil, memErr("NoSuchVersion")
		}
	}
	if v.marker {
		return nil, memErr("NoSuchKey")
	}
	if in.IfMatch != nil && *in.IfMatch != `"`+v.etag+`"` {
		return nil, memErr("PreconditionFailed")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(v.body)), VersionId: aws.String(v.id), ETag: aws.String(`"` + v.etag + `"`),
		ContentLength: aws.Int64(int64(len(v.body)))}, nil
}

func (m *memS3) keys(prefix string) []string {
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (m *memS3) ListObjectVersions(_ context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	out := &s3.ListObjectVersionsOutput{IsTruncated: aws.Bool(false)}
	for _, k := range m.keys(aws.ToString(in.Prefix)) {
		for i, v := range m.objs[k] {
			if v.marker {
				out.DeleteMarkers = append(out.DeleteMarkers, types.DeleteMarkerEntry{Key: aws.String(k), VersionId: aws.String(v.id), IsLatest: aws.Bool(i == 0)})
				continue
			}
			out.Versions = append(out.Versions, types.ObjectVersion{Key: aws.String(k), VersionId: aws.String(v.id), ETag: aws.String(`"` + v.etag + `"`),
				IsLatest: aws.Bool(i == 0), Size: aws.Int64(int64(len(v.body)))})
		}
	}
	return out, nil
}

func (m *memS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	seen := map[string]bool{}
	for _, k := range m.keys(prefix) {
		if m.objs[k][0].marker {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				if cp := k[:len(prefix)+i+len(delim)]; !seen[cp] {
					seen[cp] = true
					out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(cp)})
				}
				continue
			}
		}
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), ETag: aws.String(`"` + m.objs[k][0].etag + `"`)})
	}
	return out, nil
}
