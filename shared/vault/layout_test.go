package vault

import (
	"strings"
	"testing"
	"time"
)

func TestDataKeyIdentity(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	a := DataKey("b", "k", "v1", "e", t0)
	if a != DataKey("b", "k", "v1", "other", t0.Add(time.Hour)) {
		t.Error("a versioned key depends on etag or time")
	}
	if a == DataKey("b", "k", "v2", "e", t0) || a == DataKey("c", "k", "v1", "e", t0) || a == DataKey("b", "k2", "v1", "e", t0) {
		t.Error("different versions share a data key")
	}
	if DataKey("b", "k", "null", "e1", t0) == DataKey("b", "k", "null", "e2", t0) {
		t.Error("two null versions with different etags share a data key")
	}
}

// FuzzLayout: data keys are well formed and spread by hash whatever the
// input; segment keys parse back to their id.
func FuzzLayout(f *testing.F) {
	f.Add("photos", "café résumé+1%2F2.jpg", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "9b2cf535f27731c974343645a3985328", int64(1700000000123))
	f.Add("b", "", "null", "", int64(0))
	f.Add("b", strings.Repeat("k/", 512), "v", "e-2", int64(-5))
	f.Fuzz(func(t *testing.T, bucket, key, version, etag string, ms int64) {
		d := DataKey(bucket, key, version, etag, time.UnixMilli(ms))
		if !strings.HasPrefix(d, "data/") || len(d) != len("data/")+64 || strings.Trim(d[5:], "0123456789abcdef") != "" {
			t.Fatalf("malformed data key %q", d)
		}
		id := NewSegmentID(time.UnixMilli(ms & (1<<42 - 1)))
		got, ok := ParseSegmentKey(SegmentKey(bucket, id))
		if !ok || got != id {
			t.Fatalf("ParseSegmentKey(SegmentKey(%q, %q)) = %q, %v", bucket, id, got, ok)
		}
	})
}
