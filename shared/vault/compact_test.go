package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// journalOf reads bucket's whole journal as key -> "segment:line op id".
func journalOf(t *testing.T, ctx context.Context, v *Vault, bucket string) map[string][]string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]string{}
	for {
		k, rs, err := m.NextKey()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out[k] = append(out[k], fmt.Sprintf("%s:%d %s %s", r.Segment, r.Line, r.Op, r.VersionID))
		}
	}
}

func writeSegments(t *testing.T, ctx context.Context, v *Vault, bucket string, from, to int) {
	t.Helper()
	for s := from; s < to; s++ {
		var batch []Record
		for k := range 15 {
			batch = append(batch, Record{Op: OpVersion, Key: fmt.Sprintf("k%03d", (s*11+k*7)%60), VersionID: fmt.Sprint(s, "-", k), Time: time.Unix(1700000000+int64(s), 0)})
		}
		if _, err := v.WriteSegment(ctx, bucket, batch); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // segment ids are milliseconds
}

func compactTestVault(t *testing.T) (context.Context, *Vault) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	v, err := Create(ctx, srv.Client(ctx), srv.BucketName(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldLag, oldShard := CompactionLag, RunShardRecords
	CompactionLag, RunShardRecords = 0, 20
	t.Cleanup(func() { CompactionLag, RunShardRecords, compactFault = oldLag, oldShard, nil })
	return ctx, v
}

// TestCompactionResumesAfterACrash: a compaction stopped at any step (an
// injected failure where a crash would stop it) leaves the journal as it
// was; the next one finishes the job, going on after the last shard the
// stopped one recorded, and the journal reads record for record as before.
func TestCompactionResumesAfterACrash(t *testing.T) {
	for _, c := range []struct {
		step    string
		nth     int
		resumes bool
	}{{"shard", 1, false}, {"shard", 3, true}, {"progress", 2, true}, {"manifest", 1, true}, {"index", 1, true}} {
		t.Run(fmt.Sprint(c.step, c.nth), func(t *testing.T) {
			ctx, v := compactTestVault(t)
			writeSegments(t, ctx, v, "src", 0, 8)
			before := journalOf(t, ctx, v, "src")
			n := 0
			crash := errors.New("crash")
			compactFault = func(step string) error {
				if step == c.step {
					if n++; n == c.nth {
						return crash
					}
				}
				return nil
			}
			if _, err := v.Compact(ctx, "src", time.Now()); !errors.Is(err, crash) {
				t.Fatalf("compaction with a crash at %s #%d: %v", c.step, c.nth, err)
			}
			if got := journalOf(t, ctx, v, "src"); !reflect.DeepEqual(got, before) {
				t.Fatalf("the journal changed after the crash")
			}
			compactFault = nil
			st, err := v.Compact(ctx, "src", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if st.Resumed != c.resumes || st.Segments != 8 || st.Runs != 1 {
				t.Errorf("after the crash: %+v, want resumed=%v, 8 segments in 1 run", st, c.resumes)
			}
			idx, err := v.Index(ctx, "src")
			if err != nil {
				t.Fatal(err)
			}
			if len(idx.Runs) != 1 || idx.Runs[0].Records != 8*15 {
				t.Fatalf("index after the crash: %+v", idx.Runs)
			}
			if got := journalOf(t, ctx, v, "src"); !reflect.DeepEqual(got, before) {
				t.Errorf("the journal changed by the resumed compaction")
			}
		})
	}
}

// TestRacingCompactionsNeverMix: a compaction that loses the race for the
// index (another one changed it in between) fails with a ConflictError
// and changes nothing: the index lists the winner's run only, and the
// journal reads as before.
func TestRacingCompactionsNeverMix(t *testing.T) {
	ctx, v := compactTestVault(t)
	writeSegments(t, ctx, v, "src", 0, 6)
	before := journalOf(t, ctx, v, "src")
	other, err := Open(ctx, v.S3, v.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	var winner CompactStats
	compactFault = func(step string) error {
		if step != "index" {
			return nil
		}
		compactFault = nil // the other compaction runs to its end
		winner, err = other.Compact(ctx, "src", time.Now())
		return err
	}
	_, err = v.Compact(ctx, "src", time.Now())
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("the losing compaction: %v, want a ConflictError", err)
	}
	idx, err := v.Index(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	if winner.Run == "" || len(idx.Runs) != 1 || idx.Runs[0].ID != winner.Run {
		t.Fatalf("index %+v, winner %+v", idx.Runs, winner)
	}
	if got := journalOf(t, ctx, v, "src"); !reflect.DeepEqual(got, before) {
		t.Errorf("the journal changed by the race")
	}
}

// TestFoldKeepsEveryStateFromTheFloorOn: for random histories of one key
// (versions, null versions, delete markers, purges with and without
// since, tag/ACL/storage-class changes, listings, orders, skips), the
// folded records give the same state, and the same uncertainty, as the
// whole history at the floor and every second after it (an entry
// superseded before the floor and current again after a later permanent
// deletion included).
func TestFoldKeepsEveryStateFromTheFloorOn(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	t0 := time.Unix(1_800_000_000, 0).UTC()
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	dropped := 0
	for iter := range 3000 {
		var recs []Observed
		var ids []string
		line := 0
		add := func(r Record) {
			r.Key = "k"
			line++
			recs = append(recs, Observed{Record: r, Segment: fmt.Sprintf("s%03d", rng.IntN(5)), Line: line})
		}
		for range 2 + rng.IntN(12) {
			at := sec(rng.IntN(30))
			switch p := rng.IntN(100); {
			case p < 35:
				id := fmt.Sprint("v", len(ids))
				if rng.IntN(6) == 0 {
					id = "null"
				}
				ids = append(ids, id)
				add(Record{Op: OpVersion, VersionID: id, ETag: fmt.Sprint("e", rng.IntN(3)), Time: at, Data: "d/" + id,
					Tags: map[string]string{"t": fmt.Sprint(rng.IntN(3))}, StorageClass: "STANDARD"})
			case p < 47:
				id := fmt.Sprint("m", len(ids))
				ids = append(ids, id)
				add(Record{Op: OpDeleteMarker, VersionID: id, Time: at})
			case len(ids) == 0:
			case p < 62:
				r := Record{Op: OpPurge, VersionID: ids[rng.IntN(len(ids))], Time: at, ETag: fmt.Sprint("e", rng.IntN(3))}
				if rng.IntN(3) == 0 {
					r.Since = sec(rng.IntN(30)).Add(-10 * time.Second)
				}
				add(r)
			case p < 74:
				add(Record{Op: OpTags, VersionID: ids[rng.IntN(len(ids))], Time: at, Tags: map[string]string{"t": fmt.Sprint(rng.IntN(9))}})
			case p < 80:
				add(Record{Op: OpStorageClass, VersionID: ids[rng.IntN(len(ids))], Time: at, StorageClass: "GLACIER_IR"})
			case p < 86:
				add(Record{Op: OpListed, VersionID: ids[rng.IntN(len(ids))], Time: at, ETag: fmt.Sprint("e", rng.IntN(3)), Created: sec(rng.IntN(30))})
			case p < 93 && len(ids) >= 2:
				a, b := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
				if a != b {
					add(Record{Op: OpOrder, Time: at, Order: []string{a, b}})
				}
			default:
				add(Record{Op: OpSkip, VersionID: ids[rng.IntN(len(ids))], Time: at, Reason: SkipArchived})
			}
		}
		floor := sec(rng.IntN(32))
		folded := foldKey(append([]Observed(nil), recs...), floor)
		dropped += len(recs) - len(folded)
		for at := floor; !at.After(sec(32)); at = at.Add(time.Second) {
			want, wok, _ := StateOf(recs, at)
			got, gok, _ := StateOf(folded, at)
			if wok != gok || !reflect.DeepEqual(want, got) {
				t.Fatalf("history %d, floor %s, at %s: folded state %v %+v, whole history %v %+v\nhistory: %+v\nfolded: %+v",
					iter, floor.Format(time.TimeOnly), at.Format(time.TimeOnly), gok, got, wok, want, recs, folded)
			}
			if w, g := UncertainAt(recs, at), UncertainAt(folded, at); w != g {
				t.Fatalf("history %d, floor %s, at %s: folded uncertainty %q, whole history %q", iter, floor.Format(time.TimeOnly), at.Format(time.TimeOnly), g, w)
			}
		}
	}
	if dropped == 0 {
		t.Fatal("the fold never dropped a record")
	}
}

// TestDamagedIndexIsSurvived: an index overwritten with garbage (the vault
// owner's raw PutObject) is read from its good older version, the journal
// says it cannot vouch for what newer versions named, nothing writes over
// it, verify calls it repairable, and repair makes the journal whole.
func TestDamagedIndexIsSurvived(t *testing.T) {
	ctx, v := compactTestVault(t)
	writeSegments(t, ctx, v, "src", 0, 3)
	if _, err := v.Compact(ctx, "src", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := v.PutJSON(ctx, BucketKey("src"), ProtectedBucket{Bucket: "src", ProtectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	before := journalOf(t, ctx, v, "src")
	if err := v.PutBytes(ctx, IndexKey("src"), []byte("not an index"), "application/json"); err != nil {
		t.Fatal(err)
	}
	m, err := v.OpenJournal(ctx, "src", nil)
	if err != nil {
		t.Fatalf("open a journal whose index is damaged: %v", err)
	}
	_ = readAll(m, func(string, []Observed) error { return nil })
	d := m.Damage()
	m.Close()
	if len(d) != 1 || !d[0].Lost || d[0].Object != IndexKey("src") || d[0].Version == "" {
		t.Fatalf("damage %+v, want the index read from its older version, counted lost", d)
	}
	writeSegments(t, ctx, v, "src", 3, 4)
	if _, err := v.Compact(ctx, "src", time.Now()); err == nil {
		t.Fatal("a compaction wrote over a damaged index")
	}
	rep, err := v.Verify(ctx, 4, false, nil)
	if err != nil || len(rep.Repairable) != 1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if _, err := v.Repair(ctx, rep, false); err != nil {
		t.Fatal(err)
	}
	after := journalOf(t, ctx, v, "src")
	for k, recs := range before {
		if !reflect.DeepEqual(after[k][:len(recs)], recs) {
			t.Fatalf("%s after repair: %v, before the damage %v", k, after[k], recs)
		}
	}
	if _, err := v.Compact(ctx, "src", time.Now()); err != nil {
		t.Fatalf("compaction after repair: %v", err)
	}
}
