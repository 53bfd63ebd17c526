package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	restoreKeys       = 10000 // times the scale
	restoreLimitGoal  = 0.85
	restoreRcloneGoal = 1.3
)

// restoreHistory is the source bucket of the restore benchmarks: its keys
// and writes, the second T between the history before and after, and what
// the bucket held at the end of T.
type restoreHistory struct {
	bucket   string
	at       time.Time         // T, a whole second
	want     map[string]string // key -> ETag current at T
	current  []version         // the versions current at T, in the order written
	byKey    []version         // the same in key order
	versions int               // versions and delete markers written
}

// buildHistory writes n keys with history around a second T:
//
//   - before T, every key gets two versions (1-16 KiB), and one key in 20
//     (i%20 == 19) a delete marker too: absent at T;
//   - after T, keys with i%10 in {0,1,2} get a third version, keys with
//     i%10 in {3,4} a delete marker, and n/20 new keys appear.
//
// So each key has 2-3 versions, and at T about 95% of the keys are
// current, at their second version.
func buildHistory(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) restoreHistory {
	b.Helper()
	h := restoreHistory{bucket: srv.NewBucket(b, true), want: map[string]string{}}
	bod := newBodies(7, 16<<10)
	key := func(i int) string { return fmt.Sprintf("d%02d/obj-%07d", i%16, i) }
	size := func(i, gen int) int { return 1024 + ((i*31+gen)*7919)%(15*1024+1) }
	write := func(ops []put) {
		b.Helper()
		if err := writeAll(ctx, c, h.bucket, ops, bod); err != nil {
			b.Fatal(err)
		}
		h.versions += len(ops)
	}
	start := time.Now()
	gens := make([][]put, 2)
	for g := range gens {
		gens[g] = make([]put, n)
		for i := range n {
			gens[g][i] = put{Key: key(i), Size: size(i, g)}
		}
		write(gens[g])
	}
	var gone []put
	for i := 19; i < n; i += 20 {
		gone = append(gone, put{Key: key(i), Delete: true})
	}
	write(gone)
	h.at = waitPastSecond()
	var after []put
	for i := range n {
		switch i % 10 {
		case 0, 1, 2:
			after = append(after, put{Key: key(i), Size: size(i, 2)})
		case 3, 4:
			after = append(after, put{Key: key(i), Delete: true})
		}
	}
	for i := range n / 20 {
		after = append(after, put{Key: fmt.Sprintf("new/obj-%07d", i), Size: size(i, 3)})
	}
	write(after)
	for i, v := range gens[1] {
		if i%20 == 19 {
			continue
		}
		h.want[v.Key] = v.ETag
		h.current = append(h.current, version{Key: v.Key, VersionID: v.VersionID})
	}
	h.byKey = slices.SortedFunc(slices.Values(h.current), func(a, b version) int { return strings.Compare(a.Key, b.Key) })
	b.Logf("setup: %d keys, %d versions and delete markers in %s in %s; T = %s, %d objects current at T",
		n+n/20, h.versions, h.bucket, time.Since(start).Round(time.Millisecond), h.at.UTC().Format(time.RFC3339), len(h.current))
	return h
}

// BenchmarkRestoreAsOf measures a restore of a bucket with history as of
// a second T (see buildHistory), each into a fresh bucket:
//
//   - limit: one CopyObject per version current at T (known from the
//     writes, so no listing), 32 in flight, in the order the keys were
//     written, which takes the 16 prefixes in turn;
//   - limit-keyorder, a diagnostic: the same copies in key order, the
//     order the restore writes in (the journal is sorted by key), and
//     rclone too (a listing is). On the local server, 32 writes at once
//     under one prefix can cost more than under 16: MinIO makes a
//     directory per object in its prefix's directory, and ext4 allocates
//     its inode near the parent's, skipping recently deleted inodes on a
//     file system without a journal (docs/benchmarks.md, Restore);
//   - rclone: rclone copy of the source as of T (the s3 backend's
//     version_at option on the source remote) to a second remote on the
//     same server, --transfers 32 --checkers 32, server-side copies;
//   - bucketvault: restore.Restorer.Run at T, Concurrency 32, from a vault
//     the bucket was journaled into by Reconcile beforehand (not timed),
//     every object read back after the write (--verify all, the default);
//   - bv-verify-bytes: the same with --verify bytes (no read-back where
//     the write's ETag proves the bytes).
//
// The four run in mirrored order (limit, limit-keyorder, rclone,
// bucketvault, then the reverse) and their times add up, so that other load on
// the machine weighs on all alike. Every target must hold exactly the keys
// current at T with their ETags, or the benchmark fails. Reported:
// objects/s of each, ratio_bv/limit (target >= 0.85), ratio_bv/rclone
// (target >= 1.3), bucketvault's S3 calls per object, the two ratios
// estimated from CPU time per object (cpuratio_*, see cpuRatio), and
// ratio_bv/keyorder (bucketvault against limit-keyorder). Each
// contender's server and client CPU per object is logged run by run: one
// run's cost can stray from the other's by 30% on this machine.
func BenchmarkRestoreAsOf(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		b.Skip("rclone is not on PATH: install it with `apt-get install -y rclone` (make bench does)")
	}
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	h := buildHistory(ctx, b, srv, c, scaled(b, restoreKeys))
	check := func(who, bucket string) {
		b.Helper()
		got, err := currentETags(ctx, c, bucket)
		if err != nil {
			b.Fatal(err)
		}
		if d := diffETags(h.want, got); d != "" {
			b.Fatalf("%s: s3://%s differs from s3://%s as of %s: %s", who, bucket, h.bucket, h.at.UTC().Format(time.RFC3339), d)
		}
	}

	bvCalls := newCallCounter()
	limit := &contender{name: "limit", run: func(m *meter) error {
		dst := srv.NewBucket(b, true)
		m.start()
		if err := copyVersions(ctx, c, h.bucket, dst, h.current); err != nil {
			return err
		}
		m.stop()
		check("limit", dst)
		return nil
	}}
	keyOrder := &contender{name: "limit-keyorder", run: func(m *meter) error {
		dst := srv.NewBucket(b, true)
		m.start()
		if err := copyVersions(ctx, c, h.bucket, dst, h.byKey); err != nil {
			return err
		}
		m.stop()
		check("limit-keyorder", dst)
		return nil
	}}
	rc := &contender{name: "rclone", run: func(m *meter) error {
		dst := srv.BucketName(b)
		m.start()
		out, cpu, err := runRclone(ctx, rclone, srv, h.bucket, dst, h.at)
		m.child = cpu
		m.stop()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		check("rclone", dst)
		return nil
	}}
	var vb string
	bvContender := func(name, verify string, calls *callCounter) *contender {
		return &contender{name: name, run: func(m *meter) error {
			dst := srv.BucketName(b)
			r := &restore.Restorer{S3: client(ctx, b, srv, calls.option())}
			m.start()
			rep, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: h.bucket, At: h.at, TargetBucket: dst, CreateBucket: true, Concurrency: concurrency, Verify: verify})
			m.stop()
			if err != nil {
				return err
			}
			if rep.State != restore.StateCompleted || rep.Restored != int64(len(h.current)) {
				return fmt.Errorf("state %s, restored %d, want %s and %d\n%s", rep.State, rep.Restored, restore.StateCompleted, len(h.current), rep.Text())
			}
			check(name, dst)
			return nil
		}}
	}
	bv := bvContender("bucketvault", restore.VerifyAll, bvCalls)
	bvBytes := bvContender("bv-verify-bytes", restore.VerifyBytes, newCallCounter())
	all := []*contender{limit, keyOrder, rc, bv, bvBytes}
	pid := serverPID(srv)
	var reconcileDur time.Duration
	b.ResetTimer()
	for range b.N {
		// The journal, once per iteration and untimed: the first full
		// backup of the bucket into a fresh vault.
		vb = srv.BucketName(b)
		v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := v.PutJSON(ctx, vault.BucketKey(h.bucket), vault.ProtectedBucket{Bucket: h.bucket, ProtectedAt: time.Now().UTC(), Events: "none"}); err != nil {
			b.Fatal(err)
		}
		j := &journal.Journal{Vault: v, S3: c, Concurrency: concurrency}
		t0 := time.Now()
		p, err := j.Reconcile(ctx, h.bucket, journal.ReconcileOptions{})
		if err != nil {
			b.Fatal(err)
		}
		reconcileDur += time.Since(t0)
		if p.Listed != int64(h.versions) || p.Skipped != 0 {
			b.Fatalf("reconcile listed %d (want %d), skipped %d", p.Listed, h.versions, p.Skipped)
		}
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	n := len(h.current)
	lr, kr, rr, br := limit.rate(n), keyOrder.rate(n), rc.rate(n), bv.rate(n)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(lr, "limit_objects/s")
	b.ReportMetric(kr, "keyorder_objects/s")
	b.ReportMetric(rr, "rclone_objects/s")
	b.ReportMetric(br, "bv_objects/s")
	b.ReportMetric(br/lr, "ratio_bv/limit")
	b.ReportMetric(br/rr, "ratio_bv/rclone")
	b.ReportMetric(br/kr, "ratio_bv/keyorder")
	bbr := bvBytes.rate(n)
	b.ReportMetric(bbr, "bvbytes_objects/s")
	b.ReportMetric(bbr/lr, "ratio_bvbytes/limit")
	b.ReportMetric(bbr/rr, "ratio_bvbytes/rclone")
	b.ReportMetric(limit.spread(), "limit_spread")
	calls, perObject := perUnit(bvCalls.snapshot(), len(bv.d)*n)
	b.ReportMetric(perObject, "bv_calls/object")
	b.ReportMetric(float64(h.versions*b.N)/reconcileDur.Seconds(), "reconcile_versions/s")
	if pid != 0 {
		b.ReportMetric(cpuRatio(bv, limit, n), "cpuratio_bv/limit")
		b.ReportMetric(cpuRatio(bv, rc, n), "cpuratio_bv/rclone")
	}
	b.Logf("bucketvault restore S3 calls per object (count): %s", calls)
	for _, c := range all {
		b.Logf("%-14s %s", c.name, c.summary(n))
		var runs []string
		for i := range c.d {
			runs = append(runs, fmt.Sprintf("%.2f + %.2f", float64(c.server[i].Microseconds())/1000/float64(n), float64(c.client[i].Microseconds())/1000/float64(n)))
		}
		b.Logf("%-14s server + client CPU per object, run by run: %s ms", "", strings.Join(runs, ", "))
	}
	b.Logf("CPU-cost ratios (server + client CPU per object): bucketvault/limit %.3f, bucketvault/rclone %.3f, bucketvault/limit-keyorder %.3f, limit-keyorder/limit %.3f",
		cpuRatio(bv, limit, n), cpuRatio(bv, rc, n), cpuRatio(bv, keyOrder, n), cpuRatio(keyOrder, limit, n))
	b.Logf("%d objects as of T: limit %.0f/s (in key order %.0f/s), rclone %.0f/s, bucketvault %.0f/s; bucketvault/limit %.3f (target >= %.2f: %s; against limit-keyorder %.3f), bucketvault/rclone %.3f (target >= %.2f: %s); reconcile beforehand %s (%.0f versions/s)",
		n, lr, kr, rr, br, br/lr, restoreLimitGoal, verdict(br/lr >= restoreLimitGoal), br/kr,
		br/rr, restoreRcloneGoal, verdict(br/rr >= restoreRcloneGoal), (reconcileDur / time.Duration(b.N)).Round(time.Millisecond),
		float64(h.versions*b.N)/reconcileDur.Seconds())
}

// runRclone copies s3://src as of the end of second at into a new bucket
// dst, server-side, and returns rclone's output and CPU time.
//
// rclone's --s3-version-at flag would set version_at on every s3 remote,
// the destination too, and a remote with version_at is read-only ("can't
// modify or delete files in --s3-version-at mode"); so the option is set
// on the source remote alone (RCLONE_CONFIG_SRC_VERSION_AT, the same
// option), and --server-side-across-configs lets rclone copy server-side
// between the two remotes of the same server.
func runRclone(ctx context.Context, rclone string, srv *locals3.Server, src, dst string, at time.Time) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, rclone, "copy", "src:"+src, "dst:"+dst,
		"--transfers", strconv.Itoa(concurrency), "--checkers", strconv.Itoa(concurrency),
		"--server-side-across-configs", "--retries", "1", "--stats", "0", "--log-level", "ERROR")
	cmd.Env = rcloneEnv(srv, at)
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	return string(out), cpu, err
}

// rcloneEnv is the environment of rclone: ours without AWS_* (rclone fails
// with AWS_CA_BUNDLE set: "unable to load custom CA bundle, HTTPClient's
// transport unsupported type") and RCLONE_*, plus remotes src (as of at)
// and dst on the server.
func rcloneEnv(srv *locals3.Server, at time.Time) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "RCLONE_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "RCLONE_CONFIG="+os.DevNull)
	for _, r := range []string{"SRC", "DST"} {
		p := "RCLONE_CONFIG_" + r + "_"
		env = append(env, p+"TYPE=s3", p+"PROVIDER=Minio", p+"ENDPOINT="+srv.Endpoint,
			p+"ACCESS_KEY_ID="+srv.AccessKey, p+"SECRET_ACCESS_KEY="+srv.SecretKey, p+"REGION="+srv.Region)
	}
	// The last instant of second at: restore resolves to the end of it.
	env = append(env, "RCLONE_CONFIG_SRC_VERSION_AT="+at.Add(time.Second-time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z"))
	return env
}
