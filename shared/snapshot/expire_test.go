package snapshot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// hooked is the real server's client with a hook before some calls:
// the moments an interleaving test runs another actor's steps at.
type hooked struct {
	s3x.Client
	beforePut    func(key string)
	beforeDelete func(keys []string)
}

func (h *hooked) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if h.beforePut != nil {
		h.beforePut(aws.ToString(in.Key))
	}
	return h.Client.PutObject(ctx, in, o...)
}

func (h *hooked) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, o ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	if h.beforeDelete != nil && in.Delete != nil {
		var keys []string
		for _, id := range in.Delete.Objects {
			keys = append(keys, aws.ToString(id.Key))
		}
		h.beforeDelete(keys)
	}
	return h.Client.DeleteObjects(ctx, in, o...)
}

// TestExpiryRacingASnapshotLosesNothing: an incremental snapshot carries
// records over from its base, the bucket's previous point, whose data is
// older than any writer may otherwise reference. Expiry deletes that
// point (past its DeleteAt) and what only it referenced, racing the
// snapshot at each moment that matters; whatever the order, the new
// point ends COMPLETED, verify finds all its data, and it restores the
// bucket exactly. Where the scan read the base before expiry marked it
// EXPIRED, expiry keeps the base until the new point is sealed (the
// snapshot copies nothing); where it read it after, the snapshot copies
// every version again. A job whose record names no base (started by an
// earlier version) holds every point of its bucket.
func TestExpiryRacingASnapshotLosesNothing(t *testing.T) {
	for _, c := range []struct {
		name    string
		carries bool // the scan reads the base before expiry marks it
		race    func(t *testing.T, r *race) *snapshot.Job
	}{
		{"expiry runs whole between the scan's read of its base and its first fragment", true, func(t *testing.T, r *race) *snapshot.Job {
			r.duringScan(func() { r.expire(t, r.e.v) })
			return r.e.run(t, r.eng, r.job)
		}},
		{"the job starts and scans its base while expiry marks the base", true, func(t *testing.T, r *race) *snapshot.Job {
			var done *snapshot.Job
			var wg sync.WaitGroup
			scanned, expired := make(chan struct{}), make(chan struct{})
			r.duringScan(func() {
				close(scanned)
				<-expired
			})
			var once sync.Once
			h := &hooked{Client: r.e.c, beforePut: func(key string) {
				if key != vault.SnapshotKey(r.e.bucket, r.base) {
					return
				}
				once.Do(func() {
					// The mark's write waits for a job that started and
					// read its base before it.
					j, err := r.eng.Start(r.e.ctx, snapshot.Job{Vault: r.e.v.Bucket, Bucket: r.e.bucket, Lifecycle: r.job.Lifecycle})
					if err != nil {
						t.Error(err)
						close(scanned)
						return
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						var err error
						if done, err = r.eng.Run(r.e.ctx, *j); err != nil {
							t.Error(err)
						}
					}()
					select {
					case <-scanned:
					case <-time.After(time.Minute):
						t.Error("the job's scan never wrote its fragment")
					}
				})
			}}
			r.expire(t, r.vaultWith(t, h))
			close(expired)
			wg.Wait()
			if done == nil {
				t.FailNow()
			}
			return done
		}},
		{"the job starts after expiry marked its base, while expiry deletes the base's manifest", false, func(t *testing.T, r *race) *snapshot.Job {
			var done *snapshot.Job
			var once sync.Once
			manifest := strings.TrimSuffix(vault.SnapshotKey(r.e.bucket, r.base), ".json") + "/"
			h := &hooked{Client: r.e.c, beforeDelete: func(keys []string) {
				if strings.HasPrefix(keys[0], manifest) {
					once.Do(func() { done = r.e.run(t, r.eng, r.job) })
				}
			}}
			r.expire(t, r.vaultWith(t, h))
			if done == nil {
				t.Fatal("expiry deleted no manifest of the base")
			}
			return done
		}},
		{"expiry marks the base EXPIRED between the job's start and its scan", false, func(t *testing.T, r *race) *snapshot.Job {
			j, err := r.eng.Start(r.e.ctx, r.started())
			if err != nil {
				t.Fatal(err)
			}
			r.expire(t, r.e.v)
			return r.e.run(t, r.eng, *j)
		}},
		{"a job whose record names no base: expiry runs between its scan's read and its first fragment", true, func(t *testing.T, r *race) *snapshot.Job {
			j, err := r.eng.Start(r.e.ctx, r.started())
			if err != nil {
				t.Fatal(err)
			}
			sp, err := r.e.v.Snapshot(r.e.ctx, r.e.bucket, j.RecoveryPointID)
			if err != nil {
				t.Fatal(err)
			}
			sp.BaseRecoveryPointID = nil
			if err := r.e.v.PutJSON(r.e.ctx, vault.SnapshotKey(r.e.bucket, j.RecoveryPointID), sp); err != nil {
				t.Fatal(err)
			}
			r.duringScan(func() { r.expire(t, r.e.v) })
			return r.e.run(t, r.eng, *j)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRace(t)
			j := c.race(t, r)
			if !r.expired {
				t.Fatal("expiry never ran")
			}
			if j.State != snapshot.StateCompleted {
				t.Fatalf("the racing snapshot: %s %s", j.State, j.StatusMessage)
			}
			if want := int64(r.n); (c.carries && j.Totals.Copied != 0) || (!c.carries && j.Totals.Copied != want) {
				t.Errorf("the racing snapshot copied %d of %d objects (carried from its base: %v)", j.Totals.Copied, want, c.carries)
			}
			r.sound(t, j.RecoveryPointID)
			// Once the new point is sealed nothing holds the base: the
			// next expiry deletes it, and the new point stays whole.
			if _, err := r.e.v.Expire(r.e.ctx, vault.ExpireOptions{Now: r.at}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.e.v.Snapshot(r.e.ctx, r.e.bucket, r.base); !s3x.IsNotFound(err) {
				t.Fatalf("the base after the next expiry: %v, want it deleted", err)
			}
			r.sound(t, j.RecoveryPointID)
		})
	}
}

// race is a bucket with one snapshot (the base) past its DeleteAt at
// at, and the job of the next snapshot, ready to run.
type race struct {
	e       env
	f       *faulty // the job's client
	eng     *snapshot.Engine
	job     snapshot.Job
	base    string
	at      time.Time
	n       int
	want    map[string]inspect.Object
	expired bool
}

func newRace(t *testing.T) *race {
	e := setup(t)
	// Expiry collects anything unreferenced at once; writers reuse no
	// data object they did not write this instant (the rule GCGrace >=
	// ReuseLimit + WriterBound, at zero).
	grace, reuse, bound := vault.GCGrace, vault.ReuseLimit, vault.WriterBound
	vault.GCGrace, vault.ReuseLimit, vault.WriterBound = 0, 0, 0
	t.Cleanup(func() { vault.GCGrace, vault.ReuseLimit, vault.WriterBound = grace, reuse, bound })
	r := &race{e: e}
	for i := range 5 {
		e.put(t, fmt.Sprintf("k/%d", i), fmt.Sprint("v", i)) // packed
	}
	e.put(t, "k/big", strings.Repeat("x", 300<<10)) // a data object of its own
	r.n = 6
	r.want = e.capture(t)
	base := e.run(t, e.engine(e.c), snapshot.Job{Lifecycle: &vault.Lifecycle{DeleteAfterDays: 1}})
	sp, err := e.v.Snapshot(e.ctx, e.bucket, base.RecoveryPointID)
	if err != nil || base.State != snapshot.StateCompleted {
		t.Fatalf("the base: %+v %v", base, err)
	}
	r.base, r.at = base.RecoveryPointID, sp.CreationDate.Add(48*time.Hour)
	r.f = &faulty{Client: e.c}
	r.eng = e.engine(r.f)
	r.job = snapshot.Job{Lifecycle: &vault.Lifecycle{DeleteAfterDays: 35}}
	return r
}

// started is the job as Start takes it.
func (r *race) started() snapshot.Job {
	j := r.job
	j.Vault, j.Bucket = r.e.v.Bucket, r.e.bucket
	return j
}

// expire runs expiry at r.at through v.
func (r *race) expire(t *testing.T, v *vault.Vault) {
	t.Helper()
	if _, err := v.Expire(r.e.ctx, vault.ExpireOptions{Now: r.at}); err != nil {
		t.Error(err)
	}
	r.expired = true
}

// duringScan calls fn once, when the job's scan writes its first
// fragment: after it read the records it carries.
func (r *race) duringScan(fn func()) {
	var once sync.Once
	r.f.failPut = func(key string) error {
		if strings.Contains(key, "/fragments/") {
			once.Do(fn)
		}
		return nil
	}
}

// vaultWith opens the vault through c.
func (r *race) vaultWith(t *testing.T, c s3x.Client) *vault.Vault {
	t.Helper()
	v, err := vault.Open(r.e.ctx, c, r.e.v.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sound wants verify to find every point's data, and point rp to
// restore the bucket exactly.
func (r *race) sound(t *testing.T, rp string) {
	t.Helper()
	if rep, err := r.e.v.Verify(r.e.ctx, 4, true, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
	got, _ := r.e.restoreInto(t, rp, time.Time{})
	if d := inspect.Diff(r.want, got); len(d) > 0 {
		t.Fatalf("restore of %s differs:\n%s", rp, strings.Join(d, "\n"))
	}
}
