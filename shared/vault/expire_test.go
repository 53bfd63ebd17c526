package vault

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// expireFixture is a vault with a folded-to-be journal, a snapshot
// recovery point past its DeleteAt, one that is not, and an orphan data
// object: what each holds is known, so what expiry must leave is too.
type expireFixture struct {
	ctx  context.Context
	v    *Vault
	t0   time.Time
	data map[string]string // name -> data key
	recs map[string]Record // name -> its version record
}

func newExpireFixture(t *testing.T) *expireFixture {
	ctx, v := compactTestVault(t)
	return buildExpireFixture(t, ctx, v)
}

// buildExpireFixture writes the fixture's buckets, journal, snapshots and
// data into v.
func buildExpireFixture(t *testing.T, ctx context.Context, v *Vault) *expireFixture {
	oldGrace := GCGrace
	GCGrace = 0
	t.Cleanup(func() { GCGrace, expireFault = oldGrace, nil })
	f := &expireFixture{ctx: ctx, v: v, t0: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), data: map[string]string{}, recs: map[string]Record{}}
	sec := func(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Second) }
	if err := v.PutJSON(ctx, BucketKey("src"), ProtectedBucket{Bucket: "src", ProtectedAt: f.t0, WindowDays: 1}); err != nil {
		t.Fatal(err)
	}
	version := func(name, key string, at int) Record {
		d := DataKey("src", key, name, "", time.Time{})
		body := "bytes of " + name
		out, err := v.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		f.data[name] = d
		f.recs[name] = Record{Op: OpVersion, Key: key, VersionID: name, Time: sec(at), Size: int64(len(body)), Data: d, DataETag: strings.Trim(aws.ToString(out.ETag), `"`)}
		return f.recs[name]
	}
	// a: v1 superseded by v2 before the floor (12); b: deleted before
	// it; c: written after it.
	segs := [][]Record{
		{version("a1", "a", 0), version("b1", "b", 0)},
		{version("a2", "a", 10), {Op: OpDeleteMarker, Key: "b", VersionID: "bm", Time: sec(5)}},
		{version("c1", "c", 20)},
	}
	for _, recs := range segs {
		if _, err := v.WriteSegment(ctx, "src", recs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if _, err := v.Compact(ctx, "src", time.Now()); err != nil {
		t.Fatal(err)
	}
	// A later segment, after the cut.
	if _, err := v.WriteSegment(ctx, "src", []Record{version("c2", "c", 30)}); err != nil {
		t.Fatal(err)
	}
	// Snapshots: "old" (a1 and d1, the only reference to d1) expires at
	// 15s; "new" (c1) in a year.
	d1 := version("d1", "d", 0)
	f.snapshot(t, "old", sec(15), []Record{f.recs["a1"], d1})
	f.snapshot(t, "new", sec(3600*24*365), []Record{f.recs["c1"]})
	// An orphan: a crash between a copy and its record.
	version("orphan", "o", 0)
	return f
}

func (f *expireFixture) snapshot(t *testing.T, id string, deleteAt time.Time, recs []Record) {
	key := SnapshotShardKey("src", id, 1, false)
	if err := f.v.WriteRecords(f.ctx, "src", key, recs, nil); err != nil {
		t.Fatal(err)
	}
	h, err := f.v.S3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	sp := f.v.NewSnapshotPoint("src", id, "job-"+id, f.t0)
	sp.Status = PointAvailable
	sp.CalculatedLifecycle = &CalculatedLifecycle{DeleteAt: &deleteAt}
	sp.Shards = []RunShard{{Key: key, FirstKey: recs[0].Key, LastKey: recs[len(recs)-1].Key, Records: len(recs), ETag: strings.Trim(aws.ToString(h.ETag), `"`)}}
	if err := f.v.PutJSON(f.ctx, SnapshotKey("src", id), sp); err != nil {
		t.Fatal(err)
	}
}

// dataLeft lists the data objects left, by fixture name.
func (f *expireFixture) dataLeft(t *testing.T) []string {
	byKey := map[string]string{}
	for n, k := range f.data {
		byKey[k] = n
	}
	out, err := f.v.S3.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(f.v.Bucket), Prefix: aws.String(dataPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range out.Versions {
		n := byKey[aws.ToString(o.Key)]
		if n == "" {
			n = aws.ToString(o.Key)
		}
		left = append(left, n)
	}
	slices.Sort(left)
	return left
}

// TestExpireFoldsExpiresAndCollects: expiry as of a day after the
// fixture's writes folds the journal at its floor, deletes the snapshot
// past DeleteAt, and deletes exactly the data nothing references any
// more (what the fold and the expired snapshot alone held, and the
// orphan), and the journal objects a sound run holds; a dry run reports
// the same and deletes nothing; restores at or after the floor read what
// they read before.
func TestExpireFoldsExpiresAndCollects(t *testing.T) {
	f := newExpireFixture(t)
	// References spill to sorted files every 2 (as every 100,000 at scale),
	// and every 3 files merge into one (as every 64).
	defer func(n, k int) { refChunk, refFanIn = n, k }(refChunk, refFanIn)
	refChunk, refFanIn = 2, 3
	now := f.t0.Add(24*time.Hour + 12*time.Second) // floor: t0+12s
	before := map[int]map[string]string{}
	for _, at := range []int{12, 15, 25, 35} {
		before[at] = statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second))
	}
	all := f.dataLeft(t)
	dry, err := f.v.Expire(f.ctx, ExpireOptions{Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.dataLeft(t); !reflect.DeepEqual(got, all) {
		t.Fatalf("a dry run deleted data: %v, had %v", got, all)
	}
	if len(dry.Folds) != 1 || len(dry.Expired) != 1 {
		t.Fatalf("dry run: %+v", dry)
	}
	rep, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a2", "c1", "c2"}; !reflect.DeepEqual(f.dataLeft(t), want) {
		t.Errorf("data left %v, want %v", f.dataLeft(t), want)
	}
	if rep.Data.Objects != 4 || dry.Data.Objects != rep.Data.Objects || dry.Data.Bytes != rep.Data.Bytes {
		t.Errorf("deleted %+v; the dry run said %+v; want 4 objects (a1 b1 d1 orphan)", rep.Data, dry.Data)
	}
	if len(rep.Folds) != 1 || !rep.Folds[0].Floor.Equal(f.t0.Add(12*time.Second)) || rep.Folds[0].Folded != 2 {
		t.Errorf("folds %+v: want one at t0+12s leaving out a1 and b1 (superseded by a2 and b's delete marker before it)", rep.Folds)
	}
	if len(rep.Expired) != 1 || rep.Expired[0].RecoveryPointID != "old" {
		t.Errorf("expired %+v, want the old snapshot", rep.Expired)
	}
	if _, err := f.v.Snapshot(f.ctx, "src", "old"); err == nil {
		t.Errorf("the expired snapshot's record is still there")
	}
	if rep.Journal.Objects == 0 {
		t.Errorf("no journal object collected: the segments the run holds and the merged runs stay")
	}
	for at, want := range before {
		if got := statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second)); !reflect.DeepEqual(got, want) {
			t.Errorf("state at t0+%ds after expiry %v, before %v", at, got, want)
		}
	}
	// Again: nothing more to do.
	again, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
	if err != nil || len(again.Folds) != 0 || len(again.Expired) != 0 || again.Data.Objects != 0 || again.Journal.Objects != 0 {
		t.Errorf("a second run: %+v %v", again, err)
	}
}

// TestExpireFoldsAnUncompactedJournal: a journal never compacted (fewer
// segments than a reconcile compacts at) is folded all the same, and
// what it no longer references is collected.
func TestExpireFoldsAnUncompactedJournal(t *testing.T) {
	ctx, v := compactTestVault(t)
	defer func(g time.Duration) { GCGrace = g }(GCGrace)
	GCGrace = 0
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := v.PutJSON(ctx, BucketKey("src"), ProtectedBucket{Bucket: "src", ProtectedAt: t0, WindowDays: 1}); err != nil {
		t.Fatal(err)
	}
	var data []string
	for i, at := range []int{0, 10} {
		d := DataKey("src", "k", fmt.Sprint("v", i), "", time.Time{})
		if _, err := v.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
		if _, err := v.WriteSegment(ctx, "src", []Record{{Op: OpVersion, Key: "k", VersionID: fmt.Sprint("v", i), Time: t0.Add(time.Duration(at) * time.Second), Size: 1, Data: d}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	rep, err := v.Expire(ctx, ExpireOptions{Now: t0.Add(24*time.Hour + 12*time.Second)})
	if err != nil || len(rep.Folds) != 1 || rep.Data.Objects != 1 {
		t.Fatalf("expiry of an uncompacted journal: %+v %v", rep, err)
	}
	if _, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(data[0])}); err == nil {
		t.Errorf("the superseded version's data is still there")
	}
	if got := statesAt(t, ctx, v, "src", t0.Add(20*time.Second)); got["k"] != "v1" {
		t.Errorf("state after the fold: %v", got)
	}
}

// TestExpireResumesAfterACrash: expiry stopped at any step (an injected
// failure where a crash would stop it) leaves a vault the next run
// finishes into exactly what an uninterrupted run leaves.
func TestExpireResumesAfterACrash(t *testing.T) {
	for _, step := range []string{"fold", "point-expired", "point-manifest", "references", "shard", "index"} {
		t.Run(step, func(t *testing.T) {
			f := newExpireFixture(t)
			now := f.t0.Add(24*time.Hour + 12*time.Second)
			crash := errors.New("crash")
			hook := func(s string) error {
				if s == step {
					return crash
				}
				return nil
			}
			if step == "shard" || step == "index" {
				compactFault = hook
			} else {
				expireFault = hook
			}
			if _, err := f.v.Expire(f.ctx, ExpireOptions{Now: now}); !errors.Is(err, crash) {
				t.Fatalf("expiry with a crash at %s: %v", step, err)
			}
			compactFault, expireFault = nil, nil
			if _, err := f.v.Expire(f.ctx, ExpireOptions{Now: now}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"a2", "c1", "c2"}; !reflect.DeepEqual(f.dataLeft(t), want) {
				t.Errorf("data left %v, want %v", f.dataLeft(t), want)
			}
			if got := statesAt(t, f.ctx, f.v, "src", f.t0.Add(25*time.Second)); got["a"] != "a2" || got["b"] != "" || got["c"] != "c1" {
				t.Errorf("state at t0+25s after the resumed expiry: %v", got)
			}
		})
	}
}

// statesAt is every key's current version id at at ("" absent).
func statesAt(t *testing.T, ctx context.Context, v *Vault, bucket string, at time.Time) map[string]string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]string{}
	err = readAll(m, func(key string, recs []Observed) error {
		if obj, ok := StateAt(recs, at); ok {
			out[key] = obj.Version.VersionID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Damage(); len(d) > 0 {
		t.Fatalf("journal damage: %v", d)
	}
	return out
}

// TestCollectionRacingWriters: a capture that stores a version while a
// collection runs (between the collection's reading of references and
// its deletes: the worst moment) loses nothing. A data object written
// within ReuseLimit is referenced as it is, and young objects are kept;
// one written before it is not referenced again (the version goes under
// the key of the day), so the collection may delete it. The control
// shows the rule is what saves the capture: with writers reusing objects
// as old as the collection deletes, the capture's data is deleted.
func TestCollectionRacingWriters(t *testing.T) {
	for _, c := range []struct {
		name  string
		reuse time.Duration // ReuseLimit
		age   time.Duration // how old the version's data object is when the capture stores it
		lost  bool
	}{
		{"old object, stored again under the key of the day", time.Second, 2500 * time.Millisecond, false},
		{"young object, reused and kept", 10 * time.Second, 0, false},
		{"control: reusing an object as old as the collection deletes", time.Hour, 2500 * time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := locals3.ForTest(t)
			ctx := context.Background()
			cl := srv.Client(ctx)
			v, err := Create(ctx, cl, srv.BucketName(t), CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer func(r, w, g time.Duration) { ReuseLimit, WriterBound, GCGrace, expireFault = r, w, g, nil }(ReuseLimit, WriterBound, GCGrace)
			ReuseLimit, WriterBound, GCGrace = c.reuse, time.Second, 2*time.Second
			src := srv.NewBucket(t, true)
			put, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String("x"), Body: strings.NewReader("the bytes of x")})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.PutJSON(ctx, BucketKey(src), ProtectedBucket{Bucket: src, ProtectedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			req := StoreRequest{Bucket: src, Key: "x", VersionID: aws.ToString(put.VersionId), ETag: strings.Trim(aws.ToString(put.ETag), `"`), Size: 14, LastModified: time.Now()}
			// The version's data object, stored before and referenced by
			// nothing any more (its records were folded away).
			if _, err := v.StoreData(ctx, req); err != nil {
				t.Fatal(err)
			}
			time.Sleep(c.age)
			var stored Stored
			expireFault = func(step string) error {
				if step != "references" {
					return nil
				}
				// The capture, between the collection's references and its
				// deletes.
				if stored, err = v.StoreData(ctx, req); err != nil {
					return err
				}
				_, err := v.WriteSegment(ctx, src, []Record{{Op: OpVersion, Key: "x", VersionID: req.VersionID, ETag: req.ETag, Size: 14, Time: time.Now().UTC(), Data: stored.Key, DataETag: stored.ETag}})
				return err
			}
			if _, err := v.Expire(ctx, ExpireOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(stored.Key)})
			if lost := err != nil; lost != c.lost {
				t.Fatalf("the captured version's data %s (reused %v): lost %v (%v), want lost %v", stored.Key, stored.Reused, lost, err, c.lost)
			}
			if !c.lost {
				rep, err := v.Verify(ctx, 4, true, nil)
				if err != nil || !rep.OK() || rep.Data != 1 {
					t.Fatalf("verify after the race: %+v %v", rep, err)
				}
			}
		})
	}
}

// TestExpiryKeepsTheBaseOfARunningSnapshot: a recovery point past its
// DeleteAt that a CREATING point's scan may carry records from (the base
// it names, or any point for a record that names none) becomes EXPIRED
// but keeps its manifest and record, and its data stays referenced (a
// dry run says the same), until that point is sealed; the next expiry
// then deletes it and what only it referenced. A CREATING point that
// names another base, or none, holds nothing.
func TestExpiryKeepsTheBaseOfARunningSnapshot(t *testing.T) {
	name := func(s string) *string { return &s }
	for _, c := range []struct {
		name string
		base *string
		held bool
	}{
		{"the base it names", name("old"), true},
		{"a record that names no base", nil, true},
		{"another base", name("new"), false},
		{"no base", name(""), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newExpireFixture(t)
			now := f.t0.Add(24*time.Hour + 12*time.Second)
			running := f.v.NewSnapshotPoint("src", "running", "job-running", now)
			running.BaseRecoveryPointID = c.base
			if err := f.v.CreatePoint(f.ctx, running); err != nil {
				t.Fatal(err)
			}
			kept := []string{"a2", "c1", "c2"}
			if c.held {
				kept = []string{"a1", "a2", "c1", "c2", "d1"} // what "old" references stays
			}
			dry, err := f.v.Expire(f.ctx, ExpireOptions{Now: now, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			// The fixture's 7 data objects, less those kept.
			if want := 7 - len(kept); dry.Data.Objects != int64(want) || (len(dry.Expired) == 0) != c.held {
				t.Errorf("dry run: would expire %+v and delete %d data objects, want %d (held %v)", dry.Expired, dry.Data.Objects, want, c.held)
			}
			rep, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.dataLeft(t); !reflect.DeepEqual(got, kept) {
				t.Errorf("data left %v, want %v", got, kept)
			}
			old, err := f.v.Snapshot(f.ctx, "src", "old")
			switch {
			case c.held && (err != nil || old.Status != PointExpired || len(rep.Expired) != 0 || !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "running") })):
				t.Fatalf("held: old %+v %v, expired %+v, warnings %v; want it EXPIRED and kept, said so", old, err, rep.Expired, rep.Warnings)
			case !c.held && (err == nil || len(rep.Expired) != 1):
				t.Fatalf("not held: old %+v %v, expired %+v; want it deleted", old, err, rep.Expired)
			}
			if !c.held {
				return
			}
			if _, err := f.v.S3.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(old.Shards[0].Key)}); err != nil {
				t.Fatalf("the held point's manifest: %v", err)
			}
			// Sealed: nothing holds "old" any more.
			running.Status = PointAvailable
			if err := f.v.SetPoint(f.ctx, running); err != nil {
				t.Fatal(err)
			}
			rep, err = f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if err != nil || len(rep.Expired) != 1 || rep.Expired[0].RecoveryPointID != "old" {
				t.Fatalf("after the seal: expired %+v %v, want the old snapshot", rep.Expired, err)
			}
			if got, want := f.dataLeft(t), []string{"a2", "c1", "c2"}; !reflect.DeepEqual(got, want) {
				t.Errorf("after the seal: data left %v, want %v", got, want)
			}
		})
	}
}
