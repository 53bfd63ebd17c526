package snapshot_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// abandoned is a bucket with a sealed point (the base, past its DeleteAt)
// and the CREATING point of a later job that started, scanned and copied
// and then died without its seal or fail step: both in the past, so that
// the job's deadline has passed by the clock.
type abandoned struct {
	e        env
	eng      *snapshot.Engine // the abandoned job's engine, its clock at its start
	job      *snapshot.Job
	base     string
	deadline time.Time
}

func newAbandoned(t *testing.T) *abandoned {
	e := setup(t)
	// Collect unreferenced data at once (GCGrace >= ReuseLimit +
	// WriterBound, at zero), so what only the stopped job's fragments
	// and its expired base referenced is seen to go.
	grace, reuse, bound := vault.GCGrace, vault.ReuseLimit, vault.WriterBound
	vault.GCGrace, vault.ReuseLimit, vault.WriterBound = 0, 0, 0
	t.Cleanup(func() { vault.GCGrace, vault.ReuseLimit, vault.WriterBound = grace, reuse, bound })
	for i := range 5 {
		e.put(t, fmt.Sprintf("k/%d", i), fmt.Sprint("v", i))
	}
	e.put(t, "k/big", strings.Repeat("x", 300<<10))
	t0 := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Second)
	old := e.engine(e.c)
	old.Now = func() time.Time { return t0 }
	base := e.run(t, old, snapshot.Job{Lifecycle: &vault.Lifecycle{DeleteAfterDays: 2}})
	if base.State != snapshot.StateCompleted {
		t.Fatalf("the base: %+v", base)
	}
	t1 := t0.Add(24 * time.Hour)
	a := &abandoned{e: e, eng: e.engine(e.c), base: base.RecoveryPointID}
	a.eng.Now = func() time.Time { return t1 }
	j, err := a.eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket, Lifecycle: &vault.Lifecycle{DeleteAfterDays: 35}})
	if err != nil {
		t.Fatal(err)
	}
	for !j.Scan.Done {
		if j, err = a.eng.Scan(e.ctx, *j); err != nil {
			t.Fatal(err)
		}
	}
	e.copyAll(t, a.eng, j)
	a.job = j
	sp := a.point(t)
	if sp.BaseRecoveryPointID == nil || *sp.BaseRecoveryPointID != a.base || sp.JobDeadline == nil {
		t.Fatalf("the abandoned job's point: base %v, deadline %v; want base %s and a deadline", sp.BaseRecoveryPointID, sp.JobDeadline, a.base)
	}
	// The default completion window (7 days), then the grace.
	if want := t1.Add(7*24*time.Hour + vault.JobDeadlineGrace); !sp.JobDeadline.Equal(want) {
		t.Fatalf("JobDeadline %s, want %s", sp.JobDeadline, want)
	}
	a.deadline = *sp.JobDeadline
	return a
}

func (a *abandoned) point(t *testing.T) *vault.SnapshotPoint {
	t.Helper()
	sp, err := a.e.v.Snapshot(a.e.ctx, a.e.bucket, a.job.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func (a *abandoned) record(t *testing.T) snapshot.Job {
	t.Helper()
	var j snapshot.Job
	if err := a.e.v.GetJSON(a.e.ctx, vault.JobKey(a.job.JobID), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func (a *abandoned) expire(t *testing.T, o vault.ExpireOptions) *vault.ExpireReport {
	t.Helper()
	rep, err := a.e.v.Expire(a.e.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// etags are the ETags of the job's two records and the keys under its
// point's prefix (what a seal would write).
func (a *abandoned) etags(t *testing.T) string {
	t.Helper()
	var out []string
	for _, k := range []string{vault.SnapshotKey(a.e.bucket, a.job.RecoveryPointID), vault.JobKey(a.job.JobID)} {
		h, err := a.e.c.HeadObject(a.e.ctx, &s3.HeadObjectInput{Bucket: aws.String(a.e.v.Bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k+"="+aws.ToString(h.ETag))
	}
	return strings.Join(append(out, a.under(t, strings.TrimSuffix(vault.SnapshotKey(a.e.bucket, a.job.RecoveryPointID), ".json")+"/")...), " ")
}

func (a *abandoned) under(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := a.e.c.ListObjectsV2(a.e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(a.e.v.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// TestExpiryStopsAnAbandonedJob: a snapshot job that died without its
// fail step leaves its point CREATING, holding its base. Expiry before
// the job's deadline leaves it (and keeps the base, EXPIRED); a dry run
// after it says it would stop it and changes nothing; expiry after it
// makes the job FAILED and the point STOPPED, saying why, and in the same
// run deletes the base (past its DeleteAt) and the data only the two
// referenced. A seal or fail step of the job afterwards changes nothing.
func TestExpiryStopsAnAbandonedJob(t *testing.T) {
	a := newAbandoned(t)
	e := a.e

	// Before the deadline: nothing stops, the base is held.
	rep := a.expire(t, vault.ExpireOptions{Now: a.deadline.Add(-time.Minute)})
	if len(rep.Stopped) != 0 || len(rep.Expired) != 0 {
		t.Fatalf("expiry before the deadline stopped %+v and expired %+v", rep.Stopped, rep.Expired)
	}
	if sp := a.point(t); sp.Status != vault.PointCreating {
		t.Fatalf("the job's point before its deadline: %s", sp.Status)
	}
	if j := a.record(t); j.State != snapshot.StateRunning {
		t.Fatalf("the job before its deadline: %s", j.State)
	}
	if sp, err := e.v.Snapshot(e.ctx, e.bucket, a.base); err != nil || sp.Status != vault.PointExpired {
		t.Fatalf("the base before the job's deadline: %v %v, want EXPIRED and held", sp, err)
	}
	dataBefore, _, _ := e.dataObjects(t)
	if dataBefore == 0 {
		t.Fatal("no data objects")
	}

	// A dry run after the deadline says what it would stop; writes nothing.
	before := a.etags(t)
	rep = a.expire(t, vault.ExpireOptions{DryRun: true})
	if len(rep.Stopped) != 1 || rep.Stopped[0].RecoveryPointID != a.job.RecoveryPointID || rep.Stopped[0].BackupJobID != a.job.JobID ||
		!rep.Stopped[0].Deadline.Equal(a.deadline) || !strings.Contains(rep.Stopped[0].Message, "deadline") {
		t.Fatalf("dry run: stopped %+v, want the abandoned point", rep.Stopped)
	}
	if after := a.etags(t); after != before {
		t.Fatalf("a dry run changed the job's records:\n%s\n%s", before, after)
	}
	if sp := a.point(t); sp.Status != vault.PointCreating {
		t.Fatalf("the point after a dry run: %s", sp.Status)
	}
	if _, err := e.v.Snapshot(e.ctx, e.bucket, a.base); err != nil {
		t.Fatalf("the base after a dry run: %v", err)
	}
	if n, _, _ := e.dataObjects(t); n != dataBefore {
		t.Fatalf("a dry run deleted data: %d of %d left", n, dataBefore)
	}

	// After the deadline: stopped, the job FAILED, the base expired at
	// its DeleteAt, and the data nothing references any more collected.
	rep = a.expire(t, vault.ExpireOptions{})
	if len(rep.Stopped) != 1 || rep.Stopped[0].RecoveryPointID != a.job.RecoveryPointID || rep.Stopped[0].JobState != snapshot.StateFailed {
		t.Fatalf("stopped %+v, want the abandoned point, its job FAILED", rep.Stopped)
	}
	sp := a.point(t)
	if sp.Status != vault.PointStopped || !strings.Contains(sp.StatusMessage, "deadline") || sp.CompletionDate == nil {
		t.Fatalf("the point: %s %q", sp.Status, sp.StatusMessage)
	}
	j := a.record(t)
	if j.State != snapshot.StateFailed || j.StatusMessage != sp.StatusMessage || j.Lifecycle == nil || j.RecoveryPointID != a.job.RecoveryPointID || j.CompleteBy.IsZero() {
		t.Fatalf("the job record: %s %q (the rest kept: lifecycle %v, point %s, completeBy %s)", j.State, j.StatusMessage, j.Lifecycle, j.RecoveryPointID, j.CompleteBy)
	}
	expired := false
	for _, p := range rep.Expired {
		expired = expired || p.RecoveryPointID == a.base
	}
	if _, err := e.v.Snapshot(e.ctx, e.bucket, a.base); !expired || !s3x.IsNotFound(err) {
		t.Fatalf("the base after the stop: %v (reported expired: %v), want deleted", err, expired)
	}
	if keys := a.under(t, strings.TrimSuffix(vault.SnapshotKey(e.bucket, a.base), ".json")+"/"); len(keys) != 0 {
		t.Fatalf("the base's manifest is left: %v", keys)
	}
	if n, _, _ := e.dataObjects(t); n != 0 || rep.Data.Objects != dataBefore {
		t.Fatalf("data left %d, collected %d of %d: want all collected (only the base and the stopped job referenced it)", n, rep.Data.Objects, dataBefore)
	}

	// The job, alive after all: its seal is refused and changes nothing;
	// its fail step leaves both records as they are.
	before = a.etags(t)
	_, err := a.eng.Seal(e.ctx, *a.job)
	var inv *snapshot.InvalidJobError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "STOPPED") {
		t.Fatalf("a seal after the stop: %v, want it refused", err)
	}
	req := snapshot.FailRequest{Job: *a.job}
	req.Error.Error = "States.Timeout"
	if _, err := a.eng.Fail(e.ctx, req); err != nil {
		t.Fatalf("a fail step after the stop: %v", err)
	}
	if after := a.etags(t); after != before {
		t.Fatalf("a seal or fail step after the stop changed the records:\n%s\n%s", before, after)
	}

	// Stopped once: a later expiry finds nothing to stop.
	if rep = a.expire(t, vault.ExpireOptions{}); len(rep.Stopped) != 0 {
		t.Fatalf("a second expiry stopped %+v", rep.Stopped)
	}
}

// TestExpiryStopsOnlyByTheClock: a what-if expiry with a --now past a
// running job's deadline does not stop it (the clock says it may be
// running) and says so.
func TestExpiryStopsOnlyByTheClock(t *testing.T) {
	e := setup(t)
	e.put(t, "k", "v")
	j, err := e.engine(e.c).Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.v.Expire(e.ctx, vault.ExpireOptions{Now: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Stopped) != 0 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "may still be running") {
		t.Fatalf("stopped %+v, warnings %q", rep.Stopped, rep.Warnings)
	}
	if sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID); err != nil || sp.Status != vault.PointCreating {
		t.Fatalf("the running job's point: %v %v", sp, err)
	}
}

// TestSealPastItsDeadline: a seal run once its job's deadline has passed
// (a local run resumed late) refuses and writes nothing; one that read
// its point CREATING and loses the point to expiry's stop before its
// write is refused (its write conditional on the version it read), and
// run again it is refused as a seal of a STOPPED point.
func TestSealPastItsDeadline(t *testing.T) {
	t.Run("seal started past the deadline", func(t *testing.T) {
		a := newAbandoned(t)
		before := a.etags(t)
		_, err := a.e.engine(a.e.c).Seal(a.e.ctx, *a.job) // the clock: past the deadline
		var inv *snapshot.InvalidJobError
		if !errors.As(err, &inv) || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("seal: %v, want refused past its deadline", err)
		}
		if after := a.etags(t); after != before {
			t.Fatalf("the refused seal wrote:\n%s\n%s", before, after)
		}
	})
	t.Run("expiry stops the point while the seal runs", func(t *testing.T) {
		a := newAbandoned(t)
		key := vault.SnapshotKey(a.e.bucket, a.job.RecoveryPointID)
		f := &faulty{Client: a.e.c}
		stopped := false
		f.failPut = func(k string) error {
			if k == key && !stopped {
				stopped = true
				if rep, err := a.e.v.Expire(a.e.ctx, vault.ExpireOptions{}); err != nil || len(rep.Stopped) != 1 {
					t.Errorf("expiry during the seal: %v, stopped %+v", err, rep)
				}
			}
			return nil
		}
		eng := a.e.engine(f)
		eng.Now = a.eng.Now // before the deadline, as the seal began
		if _, err := eng.Seal(a.e.ctx, *a.job); err == nil {
			t.Fatal("a seal that lost its point to the stop succeeded")
		}
		if !stopped {
			t.Fatal("the seal never wrote its point")
		}
		sp := a.point(t)
		if sp.Status != vault.PointStopped || len(sp.Shards) != 0 || !strings.Contains(sp.StatusMessage, "deadline") {
			t.Fatalf("the point: %s %q, %d shards: want expiry's STOPPED record", sp.Status, sp.StatusMessage, len(sp.Shards))
		}
		if j := a.record(t); j.State != snapshot.StateFailed {
			t.Fatalf("the job: %s", j.State)
		}
		_, err := eng.Seal(a.e.ctx, *a.job)
		var inv *snapshot.InvalidJobError
		if !errors.As(err, &inv) {
			t.Fatalf("the seal retried: %v, want refused", err)
		}
	})
}
