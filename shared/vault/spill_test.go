package vault

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// sliceSource yields sorted records from memory and counts how many
// sources are being read at once (from the first Next to Close).
type sliceSource struct {
	recs    []Observed
	reading bool
	active  *int
	peak    *int
}

func (s *sliceSource) Next() (Observed, error) {
	if !s.reading {
		s.reading = true
		*s.active++
		*s.peak = max(*s.peak, *s.active)
	}
	if len(s.recs) == 0 {
		return Observed{}, io.EOF
	}
	o := s.recs[0]
	s.recs = s.recs[1:]
	return o, nil
}

func (s *sliceSource) Close() error {
	if s.reading {
		*s.active--
		s.reading = false
	}
	return nil
}

// ReadKeys reads a merger to its end and returns each key's records,
// failing t on an error or a key out of order. (Defined in a test file of
// package vault, it serves the package's external tests too.)
func ReadKeys(t *testing.T, m *Merger) map[string][]Observed {
	t.Helper()
	keys := map[string][]Observed{}
	last := ""
	for {
		k, recs, err := m.NextKey()
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		if k <= last {
			t.Fatalf("key %q after %q", k, last)
		}
		last = k
		keys[k] = recs
	}
}

// TestMergeSpilledBoundsOpenRuns merges more spilled runs than may be
// open at once, level by level: no more than MaxOpenSegments are read at
// once, at most that many remain for the final merge, every record comes
// back once in key order, and no temporary file outlives its run.
func TestMergeSpilledBoundsOpenRuns(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	defer func(n int) { MaxOpenSegments = n }(MaxOpenSegments)
	MaxOpenSegments = 3
	var active, peak int
	var runs []RecordSource
	var want []string
	for r := range 40 { // 40 -> 14 -> 5 -> 2 runs
		var recs []Observed
		for k := range 10 {
			key := fmt.Sprintf("k%04d", (r*37+k*101)%1000)
			recs = append(recs, Observed{Record: Record{Op: OpVersion, Key: key, VersionID: fmt.Sprint(r)}, Segment: fmt.Sprint(r), Line: k})
			want = append(want, key+"@"+fmt.Sprint(r))
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
		runs = append(runs, &sliceSource{recs: recs, active: &active, peak: &peak})
	}
	merged, err := mergeSpilled(runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) > MaxOpenSegments {
		t.Errorf("%d runs left for the final merge, want at most %d", len(merged), MaxOpenSegments)
	}
	if peak > MaxOpenSegments {
		t.Errorf("%d runs read at once, want at most %d", peak, MaxOpenSegments)
	}
	m, err := NewMerger(merged)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, recs := range ReadKeys(t, m) {
		for _, o := range recs {
			got = append(got, o.Key+"@"+o.VersionID)
		}
	}
	m.Close()
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("%d spill files left after the merge closed", len(left))
	}
}

// TestWindowKeepsReadersSmall checks what WindowSize buys: 16 segments of
// 5,000 records open at once hold a few MiB, not the 11.5 MiB of the
// 256 KiB window, and the segment compresses about as well as with it.
func TestWindowKeepsReadersSmall(t *testing.T) {
	w := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	recs := make([]Record, 5000)
	for i := range recs {
		recs[i] = Record{Op: OpVersion, Key: fmt.Sprintf("photos/2024/%02d/img_%07d.jpg", i%100, i*20),
			VersionID: fmt.Sprintf("%08x.Xa9Bc%012x", i*7919, i*31), Time: w.Add(time.Duration(i) * time.Millisecond), Origin: OriginEvent,
			Size: int64(1000 + i*37), ETag: fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15), StorageClass: "STANDARD",
			Meta: &Meta{ContentType: "image/jpeg"}, Data: DataKey("src", fmt.Sprint("k", i), fmt.Sprint("v", i), "", w),
			DataETag: fmt.Sprintf("%032x", uint64(i+1)*0x9e3779b97f4a7c15), Sequencer: fmt.Sprintf("%016X", i*1000)}
	}
	body, err := EncodeSegment("src", "s1", recs, w)
	if err != nil {
		t.Fatal(err)
	}
	// The same segment with the window before: decoded, encoded again.
	r, err := NewSegmentReader(SegmentRef{ID: "s1"}, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r.dec)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	wide, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(256<<10), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	before256 := len(wide.EncodeAll(plain, nil))
	t.Logf("%d records, %d bytes of JSON: %d compressed (%.1f%%), %d with a 256 KiB window (%.1f%%)",
		len(recs), len(plain), len(body), 100*float64(len(body))/float64(len(plain)), before256, 100*float64(before256)/float64(len(plain)))
	if float64(len(body)) > 1.02*float64(before256) {
		t.Errorf("segment of %d bytes, %d with a 256 KiB window: want at most 2%% more", len(body), before256)
	}
	const open = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	readers := make([]*SegmentReader, open)
	for i := range readers {
		r, err := NewSegmentReader(SegmentRef{ID: "s1"}, io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		readers[i] = r
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	t.Logf("%d open segments hold %.2f MiB", open, held/(1<<20))
	if held > 4<<20 {
		t.Errorf("%d open segments hold %.1f MiB, want under 4 MiB", open, held/(1<<20))
	}
	for _, r := range readers {
		n := 1
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != len(recs) {
			t.Errorf("read %d records, want %d", n, len(recs))
		}
		r.Close()
	}
}

// TestLongLineIsRefused: a line longer than MaxRecordLine is an error,
// not a line held in memory whole.
func TestLongLineIsRefused(t *testing.T) {
	var plain bytes.Buffer
	plain.WriteString(`{"format":"bucketvault-segment","version":1,"bucket":"b","segment":"s1","records":1,"firstKey":"k","lastKey":"k"}` + "\n")
	plain.WriteString(`{"op":"version","key":"k","detail":"`)
	plain.Write(bytes.Repeat([]byte("x"), MaxRecordLine))
	plain.WriteString("\"}\n")
	body := encoder.EncodeAll(plain.Bytes(), nil)
	r, err := NewSegmentReader(SegmentRef{ID: "s1"}, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a %d-byte line: %v; want it refused", MaxRecordLine, err)
	}
}
