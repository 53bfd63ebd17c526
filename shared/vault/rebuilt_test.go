package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// vouchFor writes a repair record that vouches for the current version
// of data key d as the bytes of rec (its source version), and returns its
// key.
func vouchFor(t *testing.T, ctx context.Context, v *Vault, d string, rec Record) string {
	t.Helper()
	h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d)})
	if err != nil {
		t.Fatal(err)
	}
	key, err := v.putRepairRecord(ctx, &RepairRecord{Data: d, DataETag: rec.DataETag, Version: aws.ToString(h.VersionId),
		ETag: s3x.TrimETag(aws.ToString(h.ETag)), Size: aws.ToInt64(h.ContentLength), Sources: []RepairSource{repairSource("src", rec)},
		Checked: []string{"a test's"}, RebuiltAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// repairRecordsLeft lists the repair records left (every version).
func repairRecordsLeft(t *testing.T, ctx context.Context, v *Vault) []string {
	t.Helper()
	out, err := v.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(repairsPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range out.Versions {
		left = append(left, aws.ToString(o.Key))
	}
	slices.Sort(left)
	return left
}

// TestExpireCollectsRepairRecordsWithTheirData: a repair record goes
// with the data object it vouches for. Expiry keeps the record of data
// a live recovery point references, deletes the record of data nothing
// references any more together with that data, and deletes a record
// whose data object is gone altogether; a dry run counts the same and
// deletes nothing.
func TestExpireCollectsRepairRecordsWithTheirData(t *testing.T) {
	f := newExpireFixture(t)
	now := f.t0.Add(24*time.Hour + 12*time.Second)
	// a1 is collected (the fold and the expired snapshot held it), c1
	// stays (the live snapshot references it).
	a1 := vouchFor(t, f.ctx, f.v, f.data["a1"], Record{Key: "a", VersionID: "a1", ETag: "e-a1", Size: int64(len("bytes of a1")), DataETag: "recorded-a1"})
	c1 := vouchFor(t, f.ctx, f.v, f.data["c1"], Record{Key: "c", VersionID: "c1", ETag: "e-c1", Size: int64(len("bytes of c1")), DataETag: "recorded-c1"})
	orphan, err := f.v.putRepairRecord(f.ctx, &RepairRecord{Data: DataKey("src", "gone", "g1", "", time.Time{}), DataETag: "recorded-g1", Version: "g1", ETag: "e", Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	all := repairRecordsLeft(t, f.ctx, f.v)
	if want := []string{a1, c1, orphan}; !sameStrings(all, want) {
		t.Fatalf("repair records %v, want %v", all, want)
	}
	dry, err := f.v.Expire(f.ctx, ExpireOptions{Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := repairRecordsLeft(t, f.ctx, f.v); !slices.Equal(got, all) || dry.RepairRecords.Objects != 2 {
		t.Fatalf("a dry run: %+v, records left %v; want 2 counted and none deleted", dry.RepairRecords, got)
	}
	rep, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if got := repairRecordsLeft(t, f.ctx, f.v); !slices.Equal(got, []string{c1}) || rep.RepairRecords.Objects != 2 {
		t.Errorf("expiry deleted %+v, left %v; want the records of a1 and of the gone data deleted, c1's kept", rep.RepairRecords, got)
	}
	if left := f.dataLeft(t); slices.Contains(left, "a1") || !slices.Contains(left, "c1") {
		t.Errorf("data left %v: want a1 collected with its record, c1 kept with its", left)
	}
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestRetainPointLocksARebuiltVersionAndItsRepairRecord: a point whose
// data object was lost and written again by repair (a version with an
// ETag of its own, under a current version of other bytes) extends the
// retention of the rebuilt version and of the repair record that vouches
// for it past its DeleteAt, not of the current version.
func TestRetainPointLocksARebuiltVersionAndItsRepairRecord(t *testing.T) {
	ctx, c, v, now := lockedVault(t)
	d := DataKey("src", "k", "v1", "", time.Time{})
	body := "the rebuilt bytes"
	rebuilt, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Op: OpVersion, Key: "k", VersionID: "v1", Time: now, ETag: "source-etag", Size: int64(len(body)), Data: d,
		DataETag: "0123456789abcdef0123456789abcdef"} // the ETag of a version lost for good
	record := vouchFor(t, ctx, v, d, rec)
	bad, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader("other bytes")})
	if err != nil {
		t.Fatal(err)
	}
	f := &expireFixture{ctx: ctx, v: v, t0: now}
	deleteAt := now.Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	f.snapshot(t, "p", deleteAt, []Record{rec})
	sp, err := v.Snapshot(ctx, "src", "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RetainPoint(ctx, sp, now, 4); err != nil {
		t.Fatal(err)
	}
	until := func(key string, version *string) time.Time {
		r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: version})
		if err != nil || r.Retention == nil || r.Retention.RetainUntilDate == nil {
			t.Fatalf("retention of %s@%s: %+v %v", key, aws.ToString(version), r, err)
		}
		return *r.Retention.RetainUntilDate
	}
	if got := until(d, rebuilt.VersionId); got.Before(deleteAt) {
		t.Errorf("the rebuilt version's retention is %s; want it past the point's DeleteAt %s", got, deleteAt)
	}
	if got := until(record, nil); got.Before(deleteAt) {
		t.Errorf("the repair record's retention is %s; want it past the point's DeleteAt %s", got, deleteAt)
	}
	if got := until(d, bad.VersionId); !got.Before(deleteAt) {
		t.Errorf("the current version's retention was extended to %s: the lock moved off the rebuilt bytes", got)
	}
}

// FuzzRepairRecord: the decoder of repair records takes any bytes
// without panicking; it takes only a sealed record that names the data
// key and version its key names, which encodes and decodes back the same;
// a record it takes vouches only for a record it names among its
// sources, inside its size, and (for a whole version with a full-object
// checksum) with that checksum.
func FuzzRepairRecord(f *testing.F) {
	data := DataKey(fzBucket, "k", "v1", "", time.Time{})
	good := RepairRecord{Data: data, DataETag: "recorded", Version: "r1", ETag: "rebuilt", Size: 5,
		Checksum: &Checksum{Algorithm: "CRC32", Value: "NhCmhg==", Type: "FULL_OBJECT"},
		Sources:  []RepairSource{{Bucket: fzBucket, Key: "k", VersionID: "v1", ETag: "e", Size: 5, Checksum: &Checksum{Algorithm: "CRC32", Value: "NhCmhg==", Type: "FULL_OBJECT"}}},
		Checked:  []string{"a fuzz seed's"}, RebuiltAt: fuzzTime}
	body, _ := json.Marshal(good)
	f.Add(body, true)
	f.Add(body, false)
	f.Add(body[:len(body)/2], true)
	pack := good
	pack.Data, pack.Size, pack.Checksum = data+packSuffix, 12, nil
	pack.Sources = []RepairSource{{Key: "a", VersionID: "1", ETag: "ea", Size: 5}, {Key: "b", VersionID: "2", ETag: "eb", Size: 7, Offset: 5}}
	pb, _ := json.Marshal(pack)
	f.Add(pb, true)
	f.Add([]byte(`{"data":"`+data+`","version":"r1"}`), true)
	f.Add([]byte(`{"data":"data/other","version":"r1"}`), true)
	f.Add([]byte(`{"data":"`+data+`","version":"r1","size":-1,"sources":[{"key":"k","versionId":"v1","size":-1}]}`), true)
	f.Add([]byte(`[]`), true)
	f.Add([]byte{}, false)
	recs := []Record{
		{Key: "k", VersionID: "v1", ETag: "e", Size: 5, Data: data, DataETag: "recorded", Checksum: good.Checksum},
		{Key: "k", VersionID: "v1", ETag: "e", Size: 5, Data: data, DataETag: "recorded"},
		{Key: "a", VersionID: "1", ETag: "ea", Size: 5, Data: data + packSuffix, DataETag: "recorded", Packed: true},
		{Key: "b", VersionID: "2", ETag: "eb", Size: 7, Data: data + packSuffix, DataETag: "recorded", Packed: true, DataOffset: 5},
	}
	f.Fuzz(func(t *testing.T, body []byte, sealed bool) {
		seal := "not a seal"
		if sealed {
			sum := sha256.Sum256(body)
			seal = hex.EncodeToString(sum[:])
		}
		for _, d := range []string{data, data + packSuffix} {
			key := RepairRecordKey(d, "r1")
			rr, why := decodeRepairRecord(key, body, seal)
			if (rr == nil) == (why == "") {
				t.Fatalf("decode: %+v with why %q", rr, why)
			}
			if rr == nil {
				continue
			}
			if !sealed || rr.Data != d || rr.Version != "r1" {
				t.Fatalf("took %+v (sealed %v) at %s", rr, sealed, key)
			}
			again, err := json.Marshal(rr)
			if err != nil {
				t.Fatalf("a record taken does not encode: %v", err)
			}
			sum := sha256.Sum256(again)
			back, why := decodeRepairRecord(key, again, hex.EncodeToString(sum[:]))
			if why != "" {
				t.Fatalf("re-encoded record: %s", why)
			}
			if diff := cmp.Diff(rr, back); diff != "" {
				t.Fatalf("record changed through JSON (-first +again):\n%s", diff)
			}
			for _, rec := range recs {
				if rr.vouches(rec) != "" {
					continue
				}
				named := slices.ContainsFunc(rr.Sources, func(s RepairSource) bool {
					return s.Key == rec.Key && s.VersionID == rec.VersionID && s.ETag == rec.ETag && s.Size == rec.Size && (!rec.Packed || s.Offset == rec.DataOffset)
				})
				inside := rec.Packed && rec.DataOffset+rec.Size <= rr.Size || !rec.Packed && rec.Size == rr.Size
				summed := rec.Packed || rec.Checksum == nil || rr.Checksum != nil && *rr.Checksum == Checksum{Algorithm: rec.Checksum.Algorithm, Value: rec.Checksum.Value, Type: rr.Checksum.Type}
				if rr.Data != rec.Data || rr.DataETag != rec.DataETag || rr.Version == "" || rr.ETag == "" || !named || !inside || !summed {
					t.Fatalf("%+v vouches for %+v", rr, rec)
				}
			}
		}
	})
}
