package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	restoreSnapKeys    = 20000 // objects, times the scale (the target's size)
	restoreSnapMinSize = 1 << 10
	restoreSnapMaxSize = 9 << 10
)

// snapPointSource is the source of BenchmarkRestoreSnapshot: a bucket, a
// vault holding one snapshot of it, and what the snapshot holds.
type snapPointSource struct {
	bucket, vault string
	job           *snapshot.Job
	at            time.Time         // the second the snapshot's listing ended in
	want          map[string]string // key -> ETag
	current       []version         // every version, in the order written
	packs         int               // the vault's packs
}

// buildSnapPoint writes n objects of 1-9 KiB (keys snapKey: 16 prefixes
// in turn) into a new versioned bucket, 32 PutObject calls in flight,
// then takes a snapshot of it into a new vault, and checks that the
// recovery point holds every object with its ETag, each stored once, and
// every record packed.
func buildSnapPoint(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) *snapPointSource {
	b.Helper()
	s := &snapPointSource{bucket: srv.NewBucket(b, true), want: map[string]string{}}
	t0 := time.Now()
	objs := make([]put, n)
	for i := range objs {
		objs[i] = put{Key: snapKey(i), Size: restoreSnapMinSize + (i*31*7919)%(restoreSnapMaxSize-restoreSnapMinSize+1)}
	}
	if err := writeAll(ctx, c, s.bucket, objs, newBodies(13, restoreSnapMaxSize)); err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, p := range objs {
		s.want[p.Key] = p.ETag
		s.current = append(s.current, version{Key: p.Key, VersionID: p.VersionID})
		size += int64(p.Size)
	}
	wrote := time.Since(t0)

	t1 := time.Now()
	vb, err := newVault(ctx, b, srv, c)
	if err != nil {
		b.Fatal(err)
	}
	eng := &snapshot.Engine{S3: c, Concurrency: concurrency, Log: slog.New(slog.DiscardHandler)}
	if s.job, err = eng.Run(ctx, snapshot.Job{Vault: vb, Bucket: s.bucket}); err != nil {
		b.Fatal(err)
	}
	if err := checkSnapshot(ctx, c, vb, s.job, s.want, n, size); err != nil {
		b.Fatal(err)
	}
	s.vault = vb
	packed := 0
	if err := eachManifestRecord(ctx, c, vb, s.job, func(r vault.Record) error {
		if r.Packed {
			packed++
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if packed != n {
		b.Fatalf("snapshot %s: %d of %d records packed, want all (objects of at most %d KiB, packs take up to %d KiB)",
			s.job.RecoveryPointID, packed, n, restoreSnapMaxSize>>10, snapshot.DefaultPackMax>>10)
	}
	v, err := vault.Open(ctx, c, vb)
	if err != nil {
		b.Fatal(err)
	}
	sp, err := v.Snapshot(ctx, s.bucket, s.job.RecoveryPointID)
	if err != nil || sp.ScanCompletionDate == nil {
		b.Fatalf("recovery point %s: %+v, %v", s.job.RecoveryPointID, sp, err)
	}
	s.at = sp.ScanCompletionDate.Truncate(time.Second)
	d, err := vaultData(ctx, c, vb)
	if err != nil {
		b.Fatal(err)
	}
	s.packs = d.packs
	b.Logf("setup: %d objects of 1-9 KiB (%.1f MiB) in %s in %s; snapshot %s in %s: %d records, all packed, in %d packs (%d data objects), scan ended %s",
		n, float64(size)/mib, s.bucket, wrote.Round(time.Millisecond), s.job.RecoveryPointID, time.Since(t1).Round(time.Millisecond),
		packed, d.packs, d.objects, sp.ScanCompletionDate.UTC().Format(time.RFC3339Nano))
	return s
}

// BenchmarkRestoreSnapshot is the restore from packs: a SNAPSHOT
// recovery point of 20,000 objects of 1-9 KiB (buildSnapPoint; every
// record packed), restored by four contenders that restoreRace makes
// and checks, in mirrored order, each into a fresh bucket. The limit
// copies every version the point holds (CopyObject, 32 in flight, keys
// from the writes); rclone copies the source as of the end of the second
// the snapshot's listing ended in, server-side; bucketvault restores the
// point (Restorer.Run with RecoveryPointID), reading each MiB of a pack
// with one ranged GET that its 32 workers share (vault.PackReader) and
// writing every member with a PutObject, then reading it back (--verify
// all, the default: one HEAD); bv-verify-bytes restores the same with
// --verify bytes (the write's ETag proves the bytes: no HEAD). The
// snapshot is taken once and the source does not change after it, so
// all four give back the same state. Besides restoreRace.report's
// metrics: bv_gets/object, well below 1 when packs are read a window at
// a time, and bvbytes_objects/s with its ratios to the limit and rclone.
func BenchmarkRestoreSnapshot(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		b.Skip("rclone is not on PATH: install it with `apt-get install -y rclone` (make bench does)")
	}
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	s := buildSnapPoint(ctx, b, srv, c, scaled(b, restoreSnapKeys))
	r := &restoreRace{ctx: ctx, b: b, srv: srv, c: c, src: s.bucket, want: s.want, calls: newCallCounter(),
		what: "recovery point " + s.job.RecoveryPointID}
	limit := r.limit("limit", s.current)
	rc := r.rclone(rclone, s.at)
	bv := r.bucketvault(restore.Request{Vault: s.vault, Bucket: s.bucket, RecoveryPointID: s.job.RecoveryPointID})
	bvBytes := r.bucketvaultAs("bv-verify-bytes", restore.Request{Vault: s.vault, Bucket: s.bucket, RecoveryPointID: s.job.RecoveryPointID, Verify: restore.VerifyBytes}, newCallCounter())
	all := []*contender{limit, rc, bv, bvBytes}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	n := len(s.current)
	gets := float64(r.calls.snapshot()["GetObject"]) / float64(len(bv.d)*n)
	b.ReportMetric(gets, "bv_gets/object")
	b.Logf("bucketvault reads %.4f GETs per object from %d packs", gets, s.packs)
	r.report(pid, limit, rc, bv, all, n, fmt.Sprintf("%d packed objects of %s", n, r.what))
	bbr := bvBytes.rate(n)
	b.ReportMetric(bbr, "bvbytes_objects/s")
	b.ReportMetric(bbr/limit.rate(n), "ratio_bvbytes/limit")
	b.ReportMetric(bbr/rc.rate(n), "ratio_bvbytes/rclone")
}

// restoreRace is what the restore benchmarks share: a source bucket, the
// state a restore must give back (key -> ETag), and the contenders that
// restore it, each into a fresh bucket of srv and each checked: a target
// that differs fails the benchmark.
type restoreRace struct {
	ctx   context.Context
	b     *testing.B
	srv   *locals3.Server
	c     *s3.Client
	src   string
	what  string // the state restored, for messages: "as of T", "recovery point X"
	want  map[string]string
	calls *callCounter // bucketvault's S3 calls
}

// check fails the benchmark unless bucket holds exactly r.want.
func (r *restoreRace) check(who, bucket string) {
	r.b.Helper()
	got, err := currentETags(r.ctx, r.c, bucket)
	if err != nil {
		r.b.Fatal(err)
	}
	if d := diffETags(r.want, got); d != "" {
		r.b.Fatalf("%s: s3://%s differs from s3://%s, %s: %s", who, bucket, r.src, r.what, d)
	}
}

// limit is one CopyObject per version of vs, 32 in flight, in that
// order, into a new versioned bucket (not timed).
func (r *restoreRace) limit(name string, vs []version) *contender {
	return &contender{name: name, run: func(m *meter) error {
		dst := r.srv.NewBucket(r.b, true)
		m.start()
		if err := copyVersions(r.ctx, r.c, r.src, dst, vs); err != nil {
			return err
		}
		m.stop()
		r.check(name, dst)
		return nil
	}}
}

// rclone is runRclone of the source as of the end of second at into a
// bucket rclone creates.
func (r *restoreRace) rclone(bin string, at time.Time) *contender {
	return &contender{name: "rclone", run: func(m *meter) error {
		dst := r.srv.BucketName(r.b)
		m.start()
		out, cpu, err := runRclone(r.ctx, bin, r.srv, r.src, dst, at)
		m.child = cpu
		m.stop()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		r.check("rclone", dst)
		return nil
	}}
}

// bucketvault is restore.Restorer.Run of req into a bucket it creates,
// Concurrency 32, its calls counted in r.calls; it must complete and
// restore every key of r.want.
func (r *restoreRace) bucketvault(req restore.Request) *contender {
	return r.bucketvaultAs("bucketvault", req, r.calls)
}

// bucketvaultAs is bucketvault under another name, counting its S3 calls
// in calls (a variant: --verify bytes).
func (r *restoreRace) bucketvaultAs(name string, req restore.Request, calls *callCounter) *contender {
	return &contender{name: name, run: func(m *meter) error {
		req := req
		req.TargetBucket, req.CreateBucket, req.Concurrency = r.srv.BucketName(r.b), true, concurrency
		rs := &restore.Restorer{S3: client(r.ctx, r.b, r.srv, calls.option())}
		m.start()
		rep, err := rs.Run(r.ctx, req)
		m.stop()
		if err != nil {
			return err
		}
		if rep.State != restore.StateCompleted || rep.Restored != int64(len(r.want)) {
			return fmt.Errorf("state %s, restored %d, want %s and %d\n%s", rep.State, rep.Restored, restore.StateCompleted, len(r.want), rep.Text())
		}
		r.check(name, req.TargetBucket)
		return nil
	}}
}

// report reports what every restore benchmark does, n objects a run:
// objects/s of limit, rclone and bucketvault, ratio_bv/limit (target >=
// 0.85) and ratio_bv/rclone (target >= 1.3) with their CPU-cost
// estimates (cpuratio_*, see cpuRatio; pid 0: no server CPU, none), the
// spreads, bucketvault's S3 calls per object; it logs every contender of
// all with its CPU per object run by run, and a verdict line that begins
// with what.
func (r *restoreRace) report(pid int, limit, rc, bv *contender, all []*contender, n int, what string) {
	b := r.b
	b.Helper()
	lr, rr, br := limit.rate(n), rc.rate(n), bv.rate(n)
	calls, perObject := perUnit(r.calls.snapshot(), len(bv.d)*n)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(lr, "limit_objects/s")
	b.ReportMetric(rr, "rclone_objects/s")
	b.ReportMetric(br, "bv_objects/s")
	b.ReportMetric(br/lr, "ratio_bv/limit")
	b.ReportMetric(br/rr, "ratio_bv/rclone")
	b.ReportMetric(limit.spread(), "limit_spread")
	b.ReportMetric(rc.spread(), "rclone_spread")
	b.ReportMetric(bv.spread(), "bv_spread")
	b.ReportMetric(perObject, "bv_calls/object")
	if pid != 0 {
		b.ReportMetric(cpuRatio(bv, limit, n), "cpuratio_bv/limit")
		b.ReportMetric(cpuRatio(bv, rc, n), "cpuratio_bv/rclone")
	}
	b.Logf("bucketvault restore S3 calls per object (count): %s", calls)
	for _, c := range all {
		b.Logf("%-14s %s", c.name, c.summary(n))
		runs := make([]string, len(c.d))
		for i := range c.d {
			runs[i] = fmt.Sprintf("%.2f + %.2f", float64(c.server[i].Microseconds())/1000/float64(n), float64(c.client[i].Microseconds())/1000/float64(n))
		}
		b.Logf("%-14s server + client CPU per object, run by run: %s ms", "", strings.Join(runs, ", "))
	}
	b.Logf("%s: limit %.0f/s, rclone %.0f/s, bucketvault %.0f/s; bucketvault/limit %.3f (target >= %.2f: %s; CPU-cost %.3f), bucketvault/rclone %.3f (target >= %.2f: %s; CPU-cost %.3f); %.3f S3 calls per object",
		what, lr, rr, br, br/lr, restoreLimitGoal, verdict(br/lr >= restoreLimitGoal), cpuRatio(bv, limit, n),
		br/rr, restoreRcloneGoal, verdict(br/rr >= restoreRcloneGoal), cpuRatio(bv, rc, n), perObject)
}
