package vault

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkCheckFrames measures the cost of checking a journal object's
// zstd frames before its records are parsed (docs/design.md, "What the
// checks cost"), against parsing its records, on a run-shard-like object
// of 20,000 records.
func BenchmarkCheckFrames(b *testing.B) {
	recs := make([]Record, 20000)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i] = Record{Op: OpVersion, Key: fmt.Sprintf("photos/2026/%06d.jpg", i), VersionID: fmt.Sprintf("v%032d", i), Time: t0.Add(time.Duration(i) * time.Second),
			Size: int64(1000 + i), ETag: fmt.Sprintf("%032x", i), StorageClass: "STANDARD", Data: fmt.Sprintf("data/%064x", i), DataETag: fmt.Sprintf("%032x", i),
			Meta: &Meta{ContentType: "image/jpeg"}, Tags: map[string]string{"project": "demo"}}
	}
	body, err := EncodeSegment("b", "s1", recs, t0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("checkFrames", func(b *testing.B) {
		for b.Loop() {
			if err := checkFrames(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			r, err := NewSegmentReader(SegmentRef{ID: "s1"}, io.NopCloser(bytes.NewReader(body)))
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			r.Close()
		}
	})
}
