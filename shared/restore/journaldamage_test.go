package restore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// journalFixture is a protected bucket whose journal is three segments:
// a/1..a/3, then b/1..b/2, then c/1.
type journalFixture struct {
	ctx    context.Context
	srv    *locals3.Server
	c      *s3.Client
	v      *vault.Vault
	j      *journal.Journal
	bucket string
	segs   []vault.SegmentRef
	at     time.Time
}

func newJournalFixture(t *testing.T) *journalFixture {
	t.Helper()
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &journalFixture{ctx: ctx, srv: srv, c: c, v: v, j: &journal.Journal{Vault: v, S3: c}, bucket: srv.NewBucket(t, true)}
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(ctx, vault.BucketKey(f.bucket), vault.ProtectedBucket{Bucket: f.bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	for i, group := range [][]string{{"a/1", "a/2", "a/3"}, {"b/1", "b/2"}, {"c/1"}} {
		for _, k := range group {
			f.put(t, f.bucket, k, "bytes of "+k)
		}
		if i == 2 { // the last reconcile vouches for a second after every put
			time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		}
		if _, err := f.j.Reconcile(ctx, f.bucket, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if f.segs, err = v.Segments(ctx, f.bucket); err != nil || len(f.segs) != 3 {
		t.Fatalf("segments %v, %v; want 3", f.segs, err)
	}
	wm, err := v.CompleteThrough(ctx, f.bucket)
	if err != nil || wm == nil {
		t.Fatalf("completeness watermark %v, %v", wm, err)
	}
	f.at = *wm
	return f
}

func (f *journalFixture) put(t *testing.T, bucket, key, body string) {
	t.Helper()
	if _, err := f.c.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// damage overwrites a vault object with other bytes; lose also deletes
// every version it had before, so no good version is left.
func (f *journalFixture) damage(t *testing.T, key string, lose bool) {
	t.Helper()
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(f.v.Bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, f.v.Bucket, key, "not a segment")
	if !lose {
		return
	}
	for _, o := range vs.Versions {
		if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.v.Bucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *journalFixture) restore(t *testing.T, edit ...func(*restore.Request)) (*restore.Report, map[string]string) {
	t.Helper()
	target := f.srv.BucketName(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target, CreateBucket: true}
	for _, e := range edit {
		e(&req)
	}
	rep, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, req)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for k, o := range got {
		keys[k] = o.SHA256
	}
	return rep, keys
}

func uncertainKeys(rep *restore.Report) []string {
	var out []string
	for _, u := range rep.UncertainKeys {
		out = append(out, u.Key)
	}
	return out
}

// TestRestoreReadsAroundDamagedJournalObjects: one damaged journal object
// stops nothing. A segment overwritten with other bytes is read from its
// older good version (the restore is exact and says so); a segment with
// no good version left costs what it held: the restore restores every
// other key, is PARTIAL, names the keys it cannot vouch for, and a
// reconcile keeps protecting the bucket. A lost run shard costs only its
// key range.
func TestRestoreReadsAroundDamagedJournalObjects(t *testing.T) {
	t.Run("repairable segment", func(t *testing.T) {
		f := newJournalFixture(t)
		f.damage(t, f.segs[1].Key, false)
		rep, got := f.restore(t)
		if rep.State != restore.StateCompleted || rep.Restored != 6 || len(got) != 6 {
			t.Fatalf("want COMPLETED with all 6 keys:\n%s", rep.Text())
		}
		if w := strings.Join(rep.Warnings, "\n"); !strings.Contains(w, f.segs[1].Key) || !strings.Contains(w, "older version") {
			t.Errorf("warnings %q; want the damaged segment named and its older version read", w)
		}
	})
	t.Run("lost segment", func(t *testing.T) {
		f := newJournalFixture(t)
		f.damage(t, f.segs[1].Key, true)
		rep, got := f.restore(t)
		if rep.State != restore.StatePartial || len(rep.Unvouched) != 1 || rep.Unvouched[0].Object != f.segs[1].Key {
			t.Fatalf("want PARTIAL naming the lost segment:\n%s", rep.Text())
		}
		// The segment's key range is unknown (its header is gone): every
		// key is uncertain. Nothing it cannot vouch for is written...
		if rep.Restored != 0 || len(got) != 0 {
			t.Errorf("restored %d (%v); want nothing written\n%s", rep.Restored, got, rep.Text())
		}
		if u := uncertainKeys(rep); len(u) != 4 {
			t.Errorf("uncertain keys %v; want the 4 the rest of the journal knows, skipped", u)
		}
		// ...unless asked: then every key the rest of the journal knows
		// is restored, each named.
		rep, got = f.restore(t, func(r *restore.Request) { r.IncludeUncertain = true })
		if rep.State != restore.StatePartial || rep.Restored != 4 || len(got) != 4 || got["b/1"] != "" {
			t.Errorf("with include-uncertain: restored %d (%v); want a/1..a/3 and c/1\n%s", rep.Restored, got, rep.Text())
		}
		if u := uncertainKeys(rep); len(u) != 4 {
			t.Errorf("uncertain keys %v; want the 4 restored", u)
		}
		// Backups go on: a reconcile protects what the bucket holds
		// (b/1, b/2 are journaled again), and says the loss stays.
		p, err := f.j.Reconcile(f.ctx, f.bucket, journal.ReconcileOptions{})
		if err != nil {
			t.Fatalf("reconcile past a lost segment: %v", err)
		}
		if p.Added != 2 {
			t.Errorf("reconcile added %d records; want b/1 and b/2", p.Added)
		}
		if !strings.Contains(strings.Join(p.Warnings, "\n"), f.segs[1].Key) {
			t.Errorf("reconcile warnings %q; want the lost segment named", p.Warnings)
		}
		// verify reports it, and checks everything else.
		vr, err := f.v.Verify(f.ctx, 4, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if text := strings.Join(vr.Problems, "\n"); !strings.Contains(text, f.segs[1].Key) || !strings.Contains(text, "lost") || vr.Data != 6 {
			t.Errorf("verify: %d data checked, problems:\n%s\nwant the lost segment and all 6 data objects", vr.Data, text)
		}
	})
	t.Run("lost run shard", func(t *testing.T) {
		f := newJournalFixture(t)
		defer func(lag time.Duration, n int) { vault.CompactionLag, vault.RunShardRecords = lag, n }(vault.CompactionLag, vault.RunShardRecords)
		vault.CompactionLag, vault.RunShardRecords = 0, 2
		time.Sleep(5 * time.Millisecond) // the newest segment id is in the past
		st, err := f.v.Compact(f.ctx, f.bucket, time.Now())
		if err != nil || st.Shards != 3 {
			t.Fatalf("compact: %+v, %v; want 3 shards", st, err)
		}
		idx, err := f.v.Index(f.ctx, f.bucket)
		if err != nil || len(idx.Runs) != 1 {
			t.Fatalf("index: %+v, %v", idx, err)
		}
		run := idx.Runs[0]
		var shard vault.RunShard
		for _, sh := range run.Shards {
			if sh.FirstKey <= "b/1" && "b/1" <= sh.LastKey {
				shard = sh
			}
		}
		f.damage(t, shard.Key, true)
		rep, got := f.restore(t)
		if rep.State != restore.StatePartial || len(rep.Unvouched) != 1 {
			t.Fatalf("want PARTIAL naming the lost shard:\n%s", rep.Text())
		}
		d := rep.Unvouched[0]
		if d.FirstKey != shard.FirstKey || d.LastKey != shard.LastKey {
			t.Errorf("unvouched %q..%q; want the shard's range %q..%q", d.FirstKey, d.LastKey, shard.FirstKey, shard.LastKey)
		}
		want := 6 - shard.Records
		if int(rep.Restored) != want || len(got) != want {
			t.Errorf("restored %d; want the %d keys outside the shard\n%s", rep.Restored, want, rep.Text())
		}
		for k := range got {
			if d.Covers(k) {
				t.Errorf("restored %s from the lost shard's range", k)
			}
		}
		if !strings.Contains(rep.StatusMessage, fmt.Sprintf("%q", shard.FirstKey)) {
			t.Errorf("status %q; want the key range named", rep.StatusMessage)
		}
	})
}

// TestRestoreAfterTheWatermarkSaysSo: a change whose event never came is
// not in the journal. recovery-points vouches only up to the completeness
// watermark (the last finished reconcile), a restore as of a later time is
// PARTIAL and names the watermark (COMPLETED with a warning when allowed),
// and the next reconcile moves the watermark past the change.
func TestRestoreAfterTheWatermarkSaysSo(t *testing.T) {
	f := newJournalFixture(t)
	wm := f.at
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	f.put(t, f.bucket, "a/1", "changed, and its event was lost")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	now := time.Now().UTC().Truncate(time.Second)

	points, err := f.v.RecoveryPoints(f.ctx, f.bucket, now)
	if err != nil || len(points) == 0 {
		t.Fatalf("recovery points %v, %v", points, err)
	}
	if rp := points[0]; rp.LatestRestorableTime == nil || !rp.LatestRestorableTime.Equal(wm) || rp.CompleteThrough == nil {
		t.Errorf("continuous point %+v; want latest restorable time = the watermark %s", rp, wm)
	}
	for _, allow := range []bool{false, true} {
		target := f.srv.BucketName(t)
		rep, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: now, TargetBucket: target, CreateBucket: true, AllowIncomplete: allow})
		if err != nil {
			t.Fatal(err)
		}
		want := restore.StatePartial
		if allow {
			want = restore.StateCompleted
		}
		if rep.State != want || !strings.Contains(strings.Join(rep.Warnings, "\n"), wm.Format(time.RFC3339)) {
			t.Errorf("restore as of %s (allow incomplete %v): want %s and a warning naming the watermark %s:\n%s", now, allow, want, wm, rep.Text())
		}
	}
	// The reconcile finds the change and vouches for a time after it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := f.j.Reconcile(f.ctx, f.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	next, err := f.v.CompleteThrough(f.ctx, f.bucket)
	if err != nil || next == nil || next.Before(now) {
		t.Fatalf("watermark after the reconcile %v, %v; want at least %s", next, err, now)
	}
	f.at = now
	rep, got := f.restore(t)
	if rep.State != restore.StateCompleted || len(got) != 6 {
		t.Fatalf("restore as of %s after the reconcile: want COMPLETED:\n%s", now, rep.Text())
	}
}

// TestVaultRepairPutsBackGoodVersions: repair (dry first) makes the good
// older version of a damaged segment and of a damaged data object current
// again; verify is then clean, and the lost object is listed, not touched.
func TestVaultRepairPutsBackGoodVersions(t *testing.T) {
	f := newJournalFixture(t)
	data := dataKeys(t, f.ctx, f.v, f.bucket)
	f.damage(t, f.segs[0].Key, false)
	f.damage(t, data["c/1"], false)
	if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(data["a/2"])}); err != nil {
		t.Fatal(err) // a delete marker over a data object
	}
	rep, err := f.v.Verify(f.ctx, 4, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repairable) != 3 || len(rep.Lost) != 0 {
		t.Fatalf("verify: repairable %+v, lost %v; want 3 repairable\n%s", rep.Repairable, rep.Lost, strings.Join(rep.Problems, "\n"))
	}
	dry, err := f.v.Repair(f.ctx, rep, true)
	if err != nil || len(dry) != 3 {
		t.Fatalf("dry repair: %+v, %v", dry, err)
	}
	for _, r := range dry {
		if len(r.Removed) != 1 {
			t.Errorf("dry repair of %s removes %v; want the one damaging version", r.Object, r.Removed)
		}
	}
	if again, err := f.v.Verify(f.ctx, 4, true, nil); err != nil || len(again.Repairable) != 3 {
		t.Fatalf("a dry run changed the vault: %+v, %v", again, err)
	}
	if _, err := f.v.Repair(f.ctx, rep, false); err != nil {
		t.Fatal(err)
	}
	after, err := f.v.Verify(f.ctx, 4, true, nil)
	if err != nil || !after.OK() {
		t.Fatalf("verify after repair: %v\n%s", err, strings.Join(after.Problems, "\n"))
	}
	rrep, got := f.restore(t)
	if rrep.State != restore.StateCompleted || len(got) != 6 || len(rrep.Warnings) != 0 || rrep.VaultDamaged != 0 {
		t.Errorf("restore after repair: want COMPLETED, all 6 keys, no warning:\n%s", rrep.Text())
	}
}

// TestCompareSourceReportsEveryDisagreement: verify --against-source
// compares the journal's state now with the bucket's current versions
// and names every key that differs, whichever side is wrong.
func TestCompareSourceReportsEveryDisagreement(t *testing.T) {
	f := newJournalFixture(t)
	rep, err := restore.CompareSource(f.ctx, f.v, f.c, f.bucket, time.Now())
	if err != nil || len(rep.Problems) != 0 || rep.Keys != 6 {
		t.Fatalf("a journal that matches: %+v, %v; want 6 keys, no problem", rep, err)
	}
	// Changes no event told of, and a wrong purge in the journal.
	f.put(t, f.bucket, "a/1", "a new version")
	if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("c/1")}); err != nil {
		t.Fatal(err)
	}
	f.put(t, f.bucket, "d/1", "a new key")
	st, ok := restoreState(t, f, "b/1")
	if !ok {
		t.Fatal("b/1 is not in the journal")
	}
	if _, err := f.v.WriteSegment(f.ctx, f.bucket, []vault.Record{{Op: vault.OpPurge, Key: "b/1", VersionID: st.Version.VersionID, Time: time.Now().Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	rep, err = restore.CompareSource(f.ctx, f.v, f.c, f.bucket, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(rep.Problems, "\n")
	for _, key := range []string{"a/1", "b/1", "c/1", "d/1"} {
		if !strings.Contains(text, "/"+key+":") && !strings.Contains(text, "/"+key+"@") {
			t.Errorf("no problem names %s:\n%s", key, text)
		}
	}
	if len(rep.Problems) != 4 || rep.Keys != 7 {
		t.Errorf("%d keys, problems:\n%s\nwant 7 keys and 4 problems", rep.Keys, text)
	}
}

// restoreState is the journal's state of one key now.
func restoreState(t *testing.T, f *journalFixture, key string) (vault.Object, bool) {
	t.Helper()
	m, err := f.v.OpenJournal(f.ctx, f.bucket, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if err != nil {
			return vault.Object{}, false
		}
		if k == key {
			return vault.StateAt(recs, time.Now())
		}
	}
}

// ownedBy answers a HeadBucket that names an expected owner other than
// account with 403, as S3 does for a bucket of another account.
type ownedBy struct {
	s3x.Client
	account string
}

func (o *ownedBy) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	if in.ExpectedBucketOwner != nil && aws.ToString(in.ExpectedBucketOwner) != o.account {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	}
	return o.Client.HeadBucket(ctx, in, opts...)
}

// TestRestoreTargetMustBeTheAccounts: with an expected owner (the restore
// function's own account), a target bucket of another account is refused
// before anything is written.
func TestRestoreTargetMustBeTheAccounts(t *testing.T) {
	f := newJournalFixture(t)
	target := f.srv.NewBucket(t, true)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target}
	other := &restore.Restorer{S3: &ownedBy{Client: f.c, account: "111111111111"}, ExpectedOwner: "222222222222"}
	var bad *restore.InvalidRequestError
	if _, err := other.Run(f.ctx, req); !errors.As(err, &bad) || !strings.Contains(err.Error(), "222222222222") {
		t.Fatalf("restore into another account's bucket: %v; want it refused", err)
	}
	mine := &restore.Restorer{S3: &ownedBy{Client: f.c, account: "111111111111"}, ExpectedOwner: "111111111111"}
	if rep, err := mine.Run(f.ctx, req); err != nil || rep.Restored != 6 {
		t.Fatalf("restore into the account's own bucket: %v %v", rep, err)
	}
}
