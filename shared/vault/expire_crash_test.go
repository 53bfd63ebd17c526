package vault

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// deletedVersions counts the versions DeleteObjects calls did delete (the
// vault's own account, to check an expiry's report against).
type deletedVersions struct {
	s3x.Client
	mu   sync.Mutex
	n    int64
	keys map[string]bool // every key a version of which was deleted
}

func (d *deletedVersions) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	out, err := d.Client.DeleteObjects(ctx, in, optFns...)
	if err == nil {
		d.mu.Lock()
		d.n += int64(len(in.Delete.Objects) - len(out.Errors))
		failed := map[string]bool{}
		for _, e := range out.Errors {
			failed[aws.ToString(e.Key)+"@"+aws.ToString(e.VersionId)] = true
		}
		for _, o := range in.Delete.Objects {
			if !failed[aws.ToString(o.Key)+"@"+aws.ToString(o.VersionId)] {
				d.keys[aws.ToString(o.Key)] = true
			}
		}
		d.mu.Unlock()
	}
	return out, err
}

func (d *deletedVersions) take() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.n
	d.n = 0
	return n
}

// crashAt makes the nth call of an expiry step fail, as a crash there
// would stop the run; it returns the count of calls and the error.
func crashAt(t *testing.T, step string, nth int) (*int, error) {
	crash := errors.New("crash at " + step)
	calls := new(int)
	expireFault = func(s string) error {
		if s != step {
			return nil
		}
		*calls++
		if *calls == nth {
			return crash
		}
		return nil
	}
	t.Cleanup(func() { expireFault = nil })
	return calls, crash
}

// reported is every object and version a report says its run deleted.
func reported(r *ExpireReport) DeleteCount {
	var c DeleteCount
	for _, d := range []DeleteCount{r.Journal, r.Data, r.Scratch, r.RepairRecords} {
		c.add(d)
	}
	return c
}

// TestExpireResumesAfterACrashWhileDeleting: expiry stopped at the first
// or a later DeleteObjects call of the collection's journal or data
// deletes leaves a vault that reads exactly as it did (the journal's
// states, every live recovery point, every referenced data object
// verified), and the next run finishes the work: every unreferenced
// object is gone (a third run finds nothing), nothing referenced is, and
// the two runs' reports together count each deleted version once, as
// many as S3 deleted.
func TestExpireResumesAfterACrashWhileDeleting(t *testing.T) {
	defer func(n int) { deleteBatch = n }(deleteBatch)
	deleteBatch = 1 // a DeleteObjects call per version: a crash can come between any two
	for _, c := range []struct {
		step string
		nth  int
	}{{"journal-delete", 1}, {"journal-delete", 3}, {"data-delete", 1}, {"data-delete", 3}} {
		t.Run(c.step+"-"+string(rune('0'+c.nth)), func(t *testing.T) {
			f := newExpireFixture(t)
			counter := &deletedVersions{Client: f.v.S3, keys: map[string]bool{}}
			f.v.S3 = counter
			now := f.t0.Add(24*time.Hour + 12*time.Second)
			before := map[int]map[string]string{}
			for _, at := range []int{12, 15, 25, 35} {
				before[at] = statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second))
			}
			readsAsBefore := func(when string) {
				t.Helper()
				for at, want := range before {
					if got := statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second)); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: state at t0+%ds %v, before %v", when, at, got, want)
					}
				}
				left := f.dataLeft(t)
				for _, n := range []string{"a2", "c1", "c2"} {
					if !slices.Contains(left, n) {
						t.Errorf("%s: referenced data %s was deleted (left %v)", when, n, left)
					}
				}
				if _, err := f.v.Snapshot(f.ctx, "src", "new"); err != nil {
					t.Errorf("%s: the live recovery point: %v", when, err)
				}
				vr, err := f.v.Verify(f.ctx, 4, true, nil)
				if err != nil || !vr.OK() || vr.Snapshots != 1 {
					t.Errorf("%s: verify %+v %v; want OK, with the one live recovery point", when, vr, err)
				}
			}

			calls, crash := crashAt(t, c.step, c.nth)
			first, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if !errors.Is(err, crash) || *calls != c.nth {
				t.Fatalf("expiry with a crash at call %d of %s: %v (%d calls)", c.nth, c.step, err, *calls)
			}
			if got := counter.take(); reported(first).Versions != got {
				t.Errorf("the stopped run reports %d versions deleted (journal %+v, data %+v); S3 deleted %d", reported(first).Versions, first.Journal, first.Data, got)
			}
			readsAsBefore("after the crash")
			expireFault = nil

			second, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if got := counter.take(); reported(second).Versions != got {
				t.Errorf("the resumed run reports %d versions deleted (journal %+v, data %+v); S3 deleted %d", reported(second).Versions, second.Journal, second.Data, got)
			}
			readsAsBefore("after the resumed run")
			if got, want := f.dataLeft(t), []string{"a2", "c1", "c2"}; !reflect.DeepEqual(got, want) {
				t.Errorf("data left %v, want %v", got, want)
			}
			// The fixture's unreferenced data: a1, b1, d1 and the orphan,
			// one version each, counted once over the two runs.
			var data DeleteCount
			data.add(first.Data)
			data.add(second.Data)
			if data.Objects != 4 || data.Versions != 4 {
				t.Errorf("data deleted over the two runs: %+v then %+v; want 4 objects, 4 versions", first.Data, second.Data)
			}
			// Each object deleted is counted once, by the run that deleted
			// its last version.
			if n := reported(first).Objects + reported(second).Objects; second.Journal.Objects+first.Journal.Objects == 0 || n != int64(len(counter.keys)) {
				t.Errorf("the two runs report %d objects deleted (journal %+v then %+v); S3 deleted versions of %d", n, first.Journal, second.Journal, len(counter.keys))
			}
			third, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if err != nil || third.Data.Objects != 0 || third.Journal.Objects != 0 || counter.take() != 0 {
				t.Errorf("a third run: data %+v, journal %+v, %v; want nothing left to delete", third.Data, third.Journal, err)
			}
		})
	}
}

// newLockedExpireFixture is the expire fixture in a vault with S3 Object
// Lock, under a governance lock of a day: every object is retained a day
// from its write, so nothing the fixture wrote can be deleted yet, and
// expiry extends the retention of what is referenced.
func newLockedExpireFixture(t *testing.T) *expireFixture {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	v, err := Create(ctx, srv.Client(ctx), srv.NewObjectLockBucket(t), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetLock(ctx, LockOptions{Mode: "governance", MinRetentionDays: 1, MaxRetentionDays: 3650}, time.Now()); err != nil {
		t.Fatal(err)
	}
	oldLag, oldShard := CompactionLag, RunShardRecords
	CompactionLag, RunShardRecords = 0, 20
	t.Cleanup(func() { CompactionLag, RunShardRecords, compactFault = oldLag, oldShard, nil })
	return buildExpireFixture(t, ctx, v)
}

// retainedUntil is when the retention of key's current version ends.
func (f *expireFixture) retainedUntil(t *testing.T, key string) time.Time {
	t.Helper()
	r, err := f.v.S3.GetObjectRetention(f.ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(key)})
	if err != nil || r.Retention == nil || r.Retention.RetainUntilDate == nil {
		t.Fatalf("retention of %s: %+v %v", key, r, err)
	}
	return *r.Retention.RetainUntilDate
}

// referencedJournal is the journal objects bucket's index names (itself,
// its runs' manifests and shards) and the segments after its cut.
func (f *expireFixture) referencedJournal(t *testing.T, bucket string) []string {
	t.Helper()
	jv, err := f.v.view(f.ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{IndexKey(bucket)}
	for _, r := range jv.index.Runs {
		keys = append(keys, r.Manifest)
		for _, sh := range r.Shards {
			keys = append(keys, sh.Key)
		}
	}
	for _, s := range jv.segs {
		keys = append(keys, s.Key)
	}
	return keys
}

// TestExpireResumesAfterACrashWhileRetaining: in a locked vault, expiry
// stopped at the first or a later retention extension of the journal's
// or the data's referenced objects deletes nothing S3 still retains and
// leaves the vault reading as it did; the next run finishes: every
// referenced data and journal object is retained past RetainMargin from
// now, and no unreferenced data object is.
func TestExpireResumesAfterACrashWhileRetaining(t *testing.T) {
	defer func(n int) { retainBatch = n }(retainBatch)
	retainBatch = 1 // a Retain call per object
	for _, c := range []struct {
		step string
		nth  int
	}{{"journal-retain", 1}, {"journal-retain", 3}, {"data-retain", 1}, {"data-retain", 2}} {
		t.Run(c.step+"-"+string(rune('0'+c.nth)), func(t *testing.T) {
			f := newLockedExpireFixture(t)
			now := f.t0.Add(24*time.Hour + 12*time.Second)
			before := map[int]map[string]string{}
			for _, at := range []int{12, 15, 25, 35} {
				before[at] = statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second))
			}
			all := f.dataLeft(t)
			readsAsBefore := func(when string) {
				t.Helper()
				for at, want := range before {
					if got := statesAt(t, f.ctx, f.v, "src", f.t0.Add(time.Duration(at)*time.Second)); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: state at t0+%ds %v, before %v", when, at, got, want)
					}
				}
				// Every object is retained a day from its write: nothing goes.
				if got := f.dataLeft(t); !reflect.DeepEqual(got, all) {
					t.Errorf("%s: data left %v, had %v (all retained)", when, got, all)
				}
				vr, err := f.v.Verify(f.ctx, 4, true, nil)
				if err != nil || !vr.OK() || vr.Snapshots != 1 {
					t.Errorf("%s: verify %+v %v; want OK, with the one live recovery point", when, vr, err)
				}
			}

			calls, crash := crashAt(t, c.step, c.nth)
			first, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if !errors.Is(err, crash) || *calls != c.nth {
				t.Fatalf("expiry with a crash at call %d of %s: %v (%d calls)", c.nth, c.step, err, *calls)
			}
			if first.Data.Versions != 0 {
				t.Errorf("the stopped run deleted data under retention: %+v", first.Data)
			}
			readsAsBefore("after the crash")
			expireFault = nil

			second, err := f.v.Expire(f.ctx, ExpireOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			readsAsBefore("after the resumed run")
			if second.Data.Versions != 0 || second.Data.Retained != 4 {
				t.Errorf("the resumed run's data: %+v; want a1, b1, d1 and the orphan retained, nothing deleted", second.Data)
			}
			floor := time.Now().Add(RetainMargin)
			referenced := append(f.referencedJournal(t, "src"), f.data["a2"], f.data["c1"], f.data["c2"])
			if second.Extended < int64(len(referenced)) {
				t.Errorf("the resumed run looked at the retention of %d objects; %d are referenced", second.Extended, len(referenced))
			}
			for _, k := range referenced {
				if until := f.retainedUntil(t, k); until.Before(floor) {
					t.Errorf("referenced %s is retained until %s only: want past now + RetainMargin (%s)", k, until, floor)
				}
			}
			for _, n := range []string{"a1", "b1", "d1", "orphan"} {
				if until := f.retainedUntil(t, f.data[n]); !until.Before(floor) {
					t.Errorf("unreferenced %s's retention was extended to %s", n, until)
				}
			}
		})
	}
}
