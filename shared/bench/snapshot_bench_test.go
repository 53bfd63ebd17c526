// Snapshot benchmarks. Method (docs/benchmarks.md has the details and the
// results): one MinIO server, one source bucket written once per benchmark
// function (not timed), every contender copying it server-side into its own
// fresh bucket or vault with 32 requests in flight; each contender runs
// twice in mirrored order and rates add up over both runs, so every ratio
// comes from one run on the same server and data.
//
//   - BenchmarkSnapshotFull: a full snapshot (snapshot.Engine.Run into a
//     fresh vault) of 20,000 small objects and 4 of 64 MiB, against the
//     limit (one CopyObject per current version, keys known from the
//     writes, no listing), `rclone copy` (server-side) and `aws s3 sync`
//     (Debian's awscli) between two buckets of the server.
//   - BenchmarkSnapshotIncremental: a full snapshot, then incremental ones
//     after 1% of the objects changed, timed in the order full,
//     incremental, incremental, full (two vaults), so drift weighs alike.
//   - BenchmarkSnapshotPeakHeap: the peak Go heap (sampled every 10 ms) of
//     a full snapshot of 20,000 and of 200,000 small objects.
//
// Every run is checked: peers' targets must hold every key with its ETag,
// and a snapshot must be COMPLETED with the expected copy counts and a
// manifest listing every key with its ETag and a data object.
package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	snapSmall       = 20000    // small objects, times the scale
	snapBig         = 4        // objects of snapBigSize (not scaled)
	snapBigSize     = 64 << 20 // bytes
	snapMinSize     = 1 << 10
	snapMaxSize     = 16 << 10
	snapChangeEvery = 100 // an incremental follows changes to 1 small object in 100

	snapLimitGoal       = 0.85 // full snapshot / limit, at least
	snapPeerGoal        = 1.3  // full snapshot / the faster peer, at least
	snapIncrementalGoal = 0.15 // incremental time / full time, at most

	snapMemSmall = 20000  // objects, times the scale
	snapMemLarge = 200000 // objects, times the scale
)

// snapSource is a source bucket of the snapshot benchmarks and what it
// holds now.
type snapSource struct {
	bucket   string
	small    []put             // the small objects, i: key snapKey(i)
	want     map[string]string // key -> ETag of every current object
	sizes    map[string]int64  // key -> size of every current object
	versions []version         // every current version, in key order
	bytes    int64
}

func snapKey(i int) string { return fmt.Sprintf("d%02d/obj-%07d", i%16, i) }

func snapSize(i, gen int) int {
	return snapMinSize + ((i*31+gen)*7919)%(snapMaxSize-snapMinSize+1)
}

// buildSnapSource writes small objects of 1-16 KiB and big ones of
// snapBigSize into a new versioned bucket, 32 PutObject calls in flight.
func buildSnapSource(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, small, big int) *snapSource {
	b.Helper()
	s := &snapSource{bucket: srv.NewBucket(b, true), want: map[string]string{}, sizes: map[string]int64{}}
	t0 := time.Now()
	s.small = make([]put, small)
	for i := range s.small {
		s.small[i] = put{Key: snapKey(i), Size: snapSize(i, 0)}
	}
	if err := writeAll(ctx, c, s.bucket, s.small, newBodies(11, snapMaxSize)); err != nil {
		b.Fatal(err)
	}
	bigs := make([]put, big)
	for i := range bigs {
		bigs[i] = put{Key: fmt.Sprintf("big/obj-%02d", i), Size: snapBigSize}
	}
	if big > 0 {
		if err := writeAll(ctx, c, s.bucket, bigs, newBodies(12, snapBigSize)); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range append(s.small[:len(s.small):len(s.small)], bigs...) {
		s.want[p.Key], s.sizes[p.Key] = p.ETag, int64(p.Size)
		s.versions = append(s.versions, version{Key: p.Key, VersionID: p.VersionID})
		s.bytes += int64(p.Size)
	}
	sortVersions(s.versions)
	b.Logf("setup: %d objects of 1-16 KiB and %d of %d MiB (%.0f MiB in all) in %s in %s",
		small, big, snapBigSize/mib, float64(s.bytes)/mib, s.bucket, time.Since(t0).Round(time.Millisecond))
	return s
}

func sortVersions(vs []version) {
	sort.Slice(vs, func(i, j int) bool { return vs[i].Key < vs[j].Key })
}

// change overwrites the small objects i with i%snapChangeEvery == offset
// (1%, spread over every work-item file) and returns how many it wrote
// and their bytes.
func (s *snapSource) change(ctx context.Context, c *s3.Client, offset, gen int) (int, int64, error) {
	var ops []put
	for i := offset; i < len(s.small); i += snapChangeEvery {
		ops = append(ops, put{Key: snapKey(i), Size: snapSize(i, gen)})
	}
	if err := writeAll(ctx, c, s.bucket, ops, newBodies(uint64(100+gen), snapMaxSize)); err != nil {
		return 0, 0, err
	}
	byKey := map[string]string{}
	var size int64
	for _, p := range ops {
		s.bytes += int64(p.Size) - s.sizes[p.Key]
		size += int64(p.Size)
		s.want[p.Key], s.sizes[p.Key] = p.ETag, int64(p.Size)
		byKey[p.Key] = p.VersionID
	}
	for i, v := range s.versions {
		if id, ok := byKey[v.Key]; ok {
			s.versions[i].VersionID = id
		}
	}
	return len(ops), size, nil
}

// copied lists the current objects of a copy of s: key -> ETag. A
// multipart ETag ("...-8": aws s3 sync copies objects above 8 MiB part by
// part, so the copy's ETag is not the source's) stands for the source's
// ETag when the size is the source's too.
func (s *snapSource) copied(ctx context.Context, c *s3.Client, bucket string) (map[string]string, error) {
	out := map[string]string{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			k, etag := aws.ToString(o.Key), s3x.TrimETag(aws.ToString(o.ETag))
			if want, ok := s.want[k]; ok && etag != want && strings.Contains(etag, "-") && !strings.Contains(want, "-") && aws.ToInt64(o.Size) == s.sizes[k] {
				etag = want
			}
			out[k] = etag
		}
	}
	return out, nil
}

// snapPhases times the parts of one snapshot run from the engine's
// Progress callbacks: the scan reports after each listing page, the copy
// step after each object it copies.
type snapPhases struct {
	mu                  sync.Mutex
	t0                  time.Time
	lastList, firstCopy time.Time
	lastCopy, end       time.Time
}

func (p *snapPhases) progress(pr snapshot.Progress) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Listed > 0 {
		p.lastList = now
		return
	}
	if p.firstCopy.IsZero() {
		p.firstCopy = now
	}
	p.lastCopy = now
}

// copying is the time from the first copy to the last, 0 without copies.
func (p *snapPhases) copying() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastCopy.Sub(p.firstCopy)
}

// String renders the phases: start to the last listing page (the scan,
// less its last work-item file), to the last copy, to the end (seal and
// notify).
func (p *snapPhases) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	if p.lastCopy.IsZero() {
		return fmt.Sprintf("scan %s, no copies, seal %s", r(p.lastList.Sub(p.t0)), r(p.end.Sub(p.lastList)))
	}
	return fmt.Sprintf("scan %s, gap to first copy %s, copies %s, seal %s",
		r(p.lastList.Sub(p.t0)), r(p.firstCopy.Sub(p.lastList)), r(p.lastCopy.Sub(p.firstCopy)), r(p.end.Sub(p.lastCopy)))
}

// snapRun is one snapshot run's engine, call counter and phases.
type snapRun struct {
	eng    *snapshot.Engine
	calls  *callCounter
	phases *snapPhases
}

func newSnapRun(ctx context.Context, b testing.TB, srv *locals3.Server) *snapRun {
	r := &snapRun{calls: newCallCounter(), phases: &snapPhases{}}
	r.eng = &snapshot.Engine{
		S3: client(ctx, b, srv, r.calls.option()), Concurrency: concurrency,
		Log: slog.New(slog.DiscardHandler), Progress: r.phases.progress,
	}
	return r
}

// run takes a snapshot of bucket into vault vb, timed by m.
func (r *snapRun) run(ctx context.Context, m *meter, vb, bucket string) (*snapshot.Job, error) {
	r.calls.reset()
	m.start()
	r.phases.t0 = time.Now()
	j, err := r.eng.Run(ctx, snapshot.Job{Vault: vb, Bucket: bucket})
	r.phases.end = time.Now()
	m.stop()
	return j, err
}

// newVault creates an empty vault (not timed: the limit's target bucket
// is not timed either).
func newVault(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client) (string, error) {
	vb := srv.BucketName(b)
	_, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	return vb, err
}

// checkSnapshot checks a finished snapshot job of s: COMPLETED, every
// current object in it and copied stored, and a manifest that lists every
// key of want with its ETag and a data object; the vault's data objects
// (packs and single copies) must hold data bytes in all: every version's
// bytes stored once.
func checkSnapshot(ctx context.Context, c *s3.Client, vb string, j *snapshot.Job, want map[string]string, copied int, data int64) error {
	if j.State != snapshot.StateCompleted || j.Totals == nil {
		return fmt.Errorf("snapshot: state %s (%s), want %s", j.State, j.StatusMessage, snapshot.StateCompleted)
	}
	if t := j.Totals; t.Objects != int64(len(want)) || t.Copied != int64(copied) || t.Failed != 0 {
		return fmt.Errorf("snapshot: %d objects, %d copied, %d failed; want %d, %d, 0", t.Objects, t.Copied, t.Failed, len(want), copied)
	}
	got, err := manifestETags(ctx, c, vb, j)
	if err != nil {
		return err
	}
	if d := diffETags(want, got); d != "" {
		return fmt.Errorf("snapshot manifest: %s", d)
	}
	if d, err := vaultData(ctx, c, vb); err != nil || d.bytes != data {
		return fmt.Errorf("snapshot: %d bytes of data in vault %s (%v), want %d", d.bytes, vb, err, data)
	}
	return nil
}

// dataStats counts a vault's data objects.
type dataStats struct {
	objects, packs int
	bytes          int64
}

func vaultData(ctx context.Context, c *s3.Client, vb string) (dataStats, error) {
	var d dataStats
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(vb), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return d, fmt.Errorf("list %s: %w", vb, err)
		}
		for _, o := range page.Contents {
			if aws.ToString(o.Key) == journal.ProbeKey(vb) {
				continue
			}
			d.objects++
			d.bytes += aws.ToInt64(o.Size)
			if strings.HasSuffix(aws.ToString(o.Key), ".pack") {
				d.packs++
			}
		}
	}
	return d, nil
}

// manifestETags reads a snapshot's manifest: key -> ETag. A record
// without a data object is an error.
func manifestETags(ctx context.Context, c *s3.Client, vb string, j *snapshot.Job) (map[string]string, error) {
	out := map[string]string{}
	err := eachManifestRecord(ctx, c, vb, j, func(r vault.Record) error {
		if r.Data == "" {
			return fmt.Errorf("manifest record of %s has no data object", r.Key)
		}
		out[r.Key] = r.ETag
		return nil
	})
	return out, err
}

func eachManifestRecord(ctx context.Context, c *s3.Client, vb string, j *snapshot.Job, f func(vault.Record) error) error {
	v, err := vault.Open(ctx, c, vb)
	if err != nil {
		return err
	}
	sp, err := v.Snapshot(ctx, j.Bucket, j.RecoveryPointID)
	if err != nil {
		return err
	}
	src := v.OpenShards(ctx, sp.Shards, nil)
	defer src.Close()
	for {
		o, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(o.Record); err != nil {
			return err
		}
	}
}

// peerTools finds rclone and the aws CLI, preferring Debian's at
// /usr/bin/aws to another one on PATH (a pip install), and returns the aws
// tools' version lines.
func peerTools(b *testing.B) (rclone, awsCLI, versions string) {
	b.Helper()
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		b.Skip("rclone is not on PATH: install it with `apt-get install -y rclone` (make bench does)")
	}
	awsCLI = "/usr/bin/aws"
	if _, err := os.Stat(awsCLI); err != nil {
		if awsCLI, err = exec.LookPath("aws"); err != nil {
			b.Skip("the aws CLI is not installed: install it with `apt-get install -y awscli` (make bench does)")
		}
	}
	out, err := exec.Command(awsCLI, "--version").CombinedOutput()
	if err != nil {
		b.Skipf("%s --version: %v\n%s", awsCLI, err, out)
	}
	rv, err := exec.Command(rclone, "version").CombinedOutput()
	if err != nil {
		b.Skipf("%s version: %v\n%s", rclone, err, rv)
	}
	first, _, _ := strings.Cut(string(rv), "\n")
	return rclone, awsCLI, fmt.Sprintf("%s: %s; %s: %s", awsCLI, strings.TrimSpace(string(out)), rclone, strings.TrimSpace(first))
}

// runRcloneCopy copies every current object of src into the existing
// bucket dst with rclone copy, server-side (see runRclone; no version_at
// here), and returns rclone's output and CPU time.
func runRcloneCopy(ctx context.Context, rclone string, srv *locals3.Server, src, dst string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, rclone, "copy", "src:"+src, "dst:"+dst,
		"--transfers", strconv.Itoa(concurrency), "--checkers", strconv.Itoa(concurrency),
		"--server-side-across-configs", "--retries", "1", "--stats", "0", "--log-level", "ERROR")
	for _, kv := range rcloneEnv(srv, time.Time{}) {
		if !strings.HasPrefix(kv, "RCLONE_CONFIG_SRC_VERSION_AT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return runChild(cmd)
}

// awsConfig writes the aws CLI's config file: 32 requests in flight
// (max_concurrent_requests, 10 by default), path-style addressing.
func awsConfig(dir string, srv *locals3.Server) (string, error) {
	path := filepath.Join(dir, "aws-config")
	cfg := fmt.Sprintf("[default]\nregion = %s\ns3 =\n  max_concurrent_requests = %d\n  addressing_style = path\n", srv.Region, concurrency)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// runAWSSync runs `aws s3 sync s3://src s3://dst` against the server and
// returns the CLI's output and CPU time. Its environment is ours without
// AWS_* (AWS_CA_BUNDLE among them) plus the server's credentials and the
// config file.
func runAWSSync(ctx context.Context, awsCLI, config string, srv *locals3.Server, src, dst string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, awsCLI, "s3", "sync", "s3://"+src, "s3://"+dst,
		"--endpoint-url", srv.Endpoint, "--only-show-errors", "--no-progress")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, srv.Env()...)
	cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE="+config, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_PAGER=")
	return runChild(cmd)
}

func runChild(cmd *exec.Cmd) (string, time.Duration, error) {
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	return string(out), cpu, err
}

// BenchmarkSnapshotFull measures a full snapshot of 20,000 objects of
// 1-16 KiB and 4 of 64 MiB against the limit and two peer tools, each
// copying the bucket server-side into its own new bucket:
//
//   - limit: one CopyObject per current version (the keys and version ids
//     known from the writes, so no listing), 32 in flight, into a
//     versioned bucket made beforehand;
//   - rclone: rclone copy src:B dst:T --transfers 32 --checkers 32
//     --server-side-across-configs, into a versioned bucket made
//     beforehand;
//   - aws: aws s3 sync s3://B s3://T with max_concurrent_requests 32
//     (multipart copies of 8 MiB parts above 8 MiB, its defaults), into a
//     versioned bucket made beforehand;
//   - bucketvault: snapshot.Engine{Concurrency: 32}.Run into a vault made
//     beforehand: start, scan (listing, work-item files), copy, seal
//     (manifest, recovery point), notify.
//
// They run in mirrored order (limit, rclone, aws, bucketvault, then the
// reverse). Reported: objects/s of each, ratio_bv/limit (target >= 0.85),
// ratio_bv/peer against the faster of rclone and aws (target >= 1.3),
// bucketvault's S3 calls per object, and the CPU-cost ratios (cpuRatio).
func BenchmarkSnapshotFull(b *testing.B) {
	rclone, awsCLI, versions := peerTools(b)
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	src := buildSnapSource(ctx, b, srv, c, scaled(b, snapSmall), snapBig)
	n := len(src.versions)
	config, err := awsConfig(b.TempDir(), srv)
	if err != nil {
		b.Fatal(err)
	}
	check := func(who, bucket string) error {
		got, err := src.copied(ctx, c, bucket)
		if err != nil {
			return err
		}
		if d := diffETags(src.want, got); d != "" {
			return fmt.Errorf("%s: s3://%s differs from s3://%s: %s", who, bucket, src.bucket, d)
		}
		return nil
	}
	peer := func(name string, run func(dst string) (string, time.Duration, error)) *contender {
		return &contender{name: name, run: func(m *meter) error {
			dst := srv.NewBucket(b, true)
			m.start()
			out, cpu, err := run(dst)
			m.child = cpu
			m.stop()
			if err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return check(name, dst)
		}}
	}
	limit := &contender{name: "limit", run: func(m *meter) error {
		dst := srv.NewBucket(b, true)
		m.start()
		if err := copyVersions(ctx, c, src.bucket, dst, src.versions); err != nil {
			return err
		}
		m.stop()
		return check("limit", dst)
	}}
	rc := peer("rclone", func(dst string) (string, time.Duration, error) {
		return runRcloneCopy(ctx, rclone, srv, src.bucket, dst)
	})
	aw := peer("aws", func(dst string) (string, time.Duration, error) {
		return runAWSSync(ctx, awsCLI, config, srv, src.bucket, dst)
	})
	bvCalls := newCallCounter()
	var phases []string
	var copying time.Duration // bucketvault's copy phases, summed
	var stored dataStats      // bucketvault's data objects, last run
	bv := &contender{name: "bucketvault", run: func(m *meter) error {
		vb, err := newVault(ctx, b, srv, c)
		if err != nil {
			return err
		}
		r := newSnapRun(ctx, b, srv)
		j, err := r.run(ctx, m, vb, src.bucket)
		if err != nil {
			return err
		}
		bvCalls.merge(r.calls)
		phases = append(phases, r.phases.String())
		copying += r.phases.copying()
		if stored, err = vaultData(ctx, c, vb); err != nil {
			return err
		}
		return checkSnapshot(ctx, c, vb, j, src.want, n, src.bytes)
	}}
	// Diagnostic: the snapshot without packs, one server-side copy per
	// object (the engine before packs).
	bvCopy := &contender{name: "bvcopy", run: func(m *meter) error {
		vb, err := newVault(ctx, b, srv, c)
		if err != nil {
			return err
		}
		r := newSnapRun(ctx, b, srv)
		r.eng.PackMax = -1
		j, err := r.run(ctx, m, vb, src.bucket)
		if err != nil {
			return err
		}
		return checkSnapshot(ctx, c, vb, j, src.want, n, src.bytes)
	}}
	all := []*contender{limit, rc, aw, bv, bvCopy}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	lr, rr, ar, br := limit.rate(n), rc.rate(n), aw.rate(n), bv.rate(n)
	best, bestRate := rc, rr
	if ar > rr {
		best, bestRate = aw, ar
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(lr, "limit_objects/s")
	b.ReportMetric(rr, "rclone_objects/s")
	b.ReportMetric(ar, "aws_objects/s")
	b.ReportMetric(br, "bv_objects/s")
	b.ReportMetric(br/lr, "ratio_bv/limit")
	b.ReportMetric(br/bestRate, "ratio_bv/peer")
	b.ReportMetric(br/rr, "ratio_bv/rclone")
	b.ReportMetric(br/ar, "ratio_bv/aws")
	calls, perObject := perUnit(bvCalls.snapshot(), len(bv.d)*n)
	b.ReportMetric(perObject, "bv_calls/object")
	b.ReportMetric(bvCopy.rate(n)/lr, "ratio_bvcopy/limit")
	b.ReportMetric(float64(stored.objects)/float64(n), "bv_dataobjects/object")
	// Diagnostics: the copy phase alone against the limit, and the
	// seconds of each snapshot outside it (scan before, seal after).
	copyRate := float64(n*len(bv.d)) / copying.Seconds()
	outside := (sum(bv.d) - copying).Seconds() / float64(len(bv.d))
	b.ReportMetric(copyRate/lr, "ratio_bvcopyphase/limit")
	b.ReportMetric(outside, "bv_outside_copy_s")
	if pid != 0 {
		b.ReportMetric(cpuRatio(bv, limit, n), "cpuratio_bv/limit")
		b.ReportMetric(cpuRatio(bv, best, n), "cpuratio_bv/peer")
	}
	b.Logf("peers: %s", versions)
	b.Logf("bucketvault snapshot S3 calls per object (count): %s", calls)
	b.Logf("bucketvault vault data: %d objects for %d versions (%d packs), %d bytes; without packs (bvcopy) %.0f objects/s, %.3f of the limit",
		stored.objects, n, stored.packs, stored.bytes, bvCopy.rate(n), bvCopy.rate(n)/lr)
	b.Logf("bucketvault snapshot phases, run by run: %s; the copy phase alone runs at %.0f objects/s (%.3f of the limit), %.2f s per snapshot go to the rest",
		strings.Join(phases, "; "), copyRate, copyRate/lr, outside)
	for _, c := range all {
		b.Logf("%-11s %s", c.name, c.summary(n))
	}
	b.Logf("CPU-cost ratios (server + client CPU per object): bucketvault/limit %.3f, bucketvault/rclone %.3f, bucketvault/aws %.3f",
		cpuRatio(bv, limit, n), cpuRatio(bv, rc, n), cpuRatio(bv, aw, n))
	b.Logf("full snapshot of %d objects: limit %.0f/s, rclone %.0f/s, aws s3 sync %.0f/s, bucketvault %.0f/s; bucketvault/limit %.3f (target >= %.2f: %s), bucketvault/%s %.3f (target >= %.2f: %s)",
		n, lr, rr, ar, br, br/lr, snapLimitGoal, verdict(br/lr >= snapLimitGoal),
		best.name, br/bestRate, snapPeerGoal, verdict(br/bestRate >= snapPeerGoal))
}

// BenchmarkSnapshotIncremental measures an incremental snapshot after 1%
// of the objects changed against a full snapshot of the same bucket (the
// data of BenchmarkSnapshotFull). Timed, in this order:
//
//  1. a full snapshot into vault A;
//  2. 1 small object in 100 overwritten (not timed), then an incremental
//     snapshot into vault A;
//  3. another 1 in 100 overwritten (not timed), then an incremental
//     snapshot into vault A again;
//  4. a full snapshot of the bucket as it is now into vault B.
//
// Full, incremental, incremental, full: a steady drift of the machine's
// speed weighs on both kinds alike. Each incremental must copy exactly the
// changed objects. Reported: ratio_incr/full of the summed times (target
// <= 0.15), the CPU-cost ratio, and the incremental's S3 calls.
func BenchmarkSnapshotIncremental(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	src := buildSnapSource(ctx, b, srv, c, scaled(b, snapSmall), snapBig)
	n := len(src.versions)
	full := &contender{name: "full"}
	incr := &contender{name: "incremental"}
	incrCalls := newCallCounter()
	var phases []string
	changed := 0
	record := func(c *contender, m *meter) {
		c.d = append(c.d, m.d)
		c.server = append(c.server, m.server)
		c.client = append(c.client, m.client)
	}
	pid := serverPID(srv)
	b.ResetTimer()
	for it := range b.N {
		var vaultA string
		var data int64 // data bytes in vault A
		for step := range 4 {
			r := newSnapRun(ctx, b, srv)
			m := &meter{serverPID: pid}
			switch step {
			case 0, 3:
				vb, err := newVault(ctx, b, srv, c)
				if err != nil {
					b.Fatal(err)
				}
				if step == 0 {
					vaultA = vb
				}
				j, err := r.run(ctx, m, vb, src.bucket)
				if err != nil {
					b.Fatal(err)
				}
				if err := checkSnapshot(ctx, c, vb, j, src.want, n, src.bytes); err != nil {
					b.Fatalf("full snapshot %d: %v", step, err)
				}
				if step == 0 {
					data = src.bytes
				}
				record(full, m)
				phases = append(phases, "full: "+r.phases.String())
			default:
				k, kb, err := src.change(ctx, c, (17+37*(2*it+step))%snapChangeEvery, 2*it+step)
				if err != nil {
					b.Fatal(err)
				}
				changed = k
				j, err := r.run(ctx, m, vaultA, src.bucket)
				if err != nil {
					b.Fatal(err)
				}
				data += kb
				if err := checkSnapshot(ctx, c, vaultA, j, src.want, k, data); err != nil {
					b.Fatalf("incremental snapshot: %v", err)
				}
				record(incr, m)
				incrCalls.merge(r.calls)
				phases = append(phases, "incremental: "+r.phases.String())
			}
		}
	}
	b.StopTimer()

	ratio := sum(incr.d).Seconds() / sum(full.d).Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(full.rate(n), "full_objects/s")
	b.ReportMetric(incr.rate(n), "incr_objects/s")
	b.ReportMetric(ratio, "ratio_incr/full")
	b.ReportMetric(1/cpuRatio(incr, full, n), "cpuratio_incr/full")
	calls, perObject := perUnit(incrCalls.snapshot(), len(incr.d)*n)
	b.ReportMetric(perObject, "incr_calls/object")
	b.Logf("incremental S3 calls per object (count): %s", calls)
	b.Logf("phases, run by run: %s", strings.Join(phases, "; "))
	for _, c := range []*contender{full, incr} {
		b.Logf("%-11s %s; times %v", c.name, c.summary(n), c.d)
	}
	b.Logf("%d objects, %d changed (%.1f%%) before each incremental: full %s, incremental %s on average; incremental/full %.3f (target <= %.2f: %s); by CPU cost %.3f",
		n, changed, 100*float64(changed)/float64(n), (sum(full.d) / time.Duration(len(full.d))).Round(time.Millisecond),
		(sum(incr.d) / time.Duration(len(incr.d))).Round(time.Millisecond), ratio, snapIncrementalGoal, verdict(ratio <= snapIncrementalGoal), 1/cpuRatio(incr, full, n))
}

// BenchmarkSnapshotPeakHeap measures the peak Go heap
// (/memory/classes/heap/objects:bytes, sampled every 10 ms) of a full
// snapshot of 20,000 and of 200,000 objects of 100-1,000 bytes, each
// bucket written beforehand with 32 PutObject calls in flight (the larger
// takes minutes) into a fresh vault. What the check needs afterwards is
// kept as one digest, so the benchmark holds nothing per object during
// the snapshot. Reported: the peaks, ratio_large/small (flat is close to
// 1; proportional would be 10), and the same ratio of the peaks above the
// heap before the snapshot.
func BenchmarkSnapshotPeakHeap(b *testing.B) {
	peakHeapAtTwoSizes(b, "objects", "snapshot", []int{scaled(b, snapMemSmall), scaled(b, snapMemLarge)}, snapshotPeak)
}

// snapshotPeak writes n small objects into a new bucket, snapshots it into
// a new vault and returns the peak heap during the snapshot, the heap just
// before it, its duration and the peak live heap.
func snapshotPeak(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64) {
	b.Helper()
	bucket := srv.NewBucket(b, true)
	ops := make([]put, n)
	for i := range ops {
		ops[i] = put{Key: snapKey(i), Size: 100 + (i*7919)%901}
	}
	t0 := time.Now()
	if err := writeAll(ctx, c, bucket, ops, newBodies(13, 1024)); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d objects of 100-1,000 bytes in %s in %s", n, bucket, time.Since(t0).Round(time.Millisecond))
	sort.Slice(ops, func(i, j int) bool { return ops[i].Key < ops[j].Key })
	h := sha256.New()
	for _, p := range ops {
		fmt.Fprintf(h, "%s\x00%s\n", p.Key, p.ETag)
	}
	want := h.Sum(nil)
	ops = nil
	vb, err := newVault(ctx, b, srv, c)
	if err != nil {
		b.Fatal(err)
	}
	eng := &snapshot.Engine{S3: c, Concurrency: concurrency, Log: slog.New(slog.DiscardHandler)}
	base = settleHeap()
	hp := startHeapPeak(memSampleEvery)
	t1 := time.Now()
	j, err := eng.Run(ctx, snapshot.Job{Vault: vb, Bucket: bucket})
	d = time.Since(t1)
	peak, _ = hp.Stop()
	live = hp.live
	if err != nil {
		b.Fatal(err)
	}
	if j.State != snapshot.StateCompleted || j.Totals == nil || j.Totals.Objects != int64(n) || j.Totals.Copied != int64(n) {
		b.Fatalf("snapshot of %d objects: state %s, totals %+v", n, j.State, j.Totals)
	}
	h.Reset()
	last := ""
	if err := eachManifestRecord(ctx, c, vb, j, func(r vault.Record) error {
		if r.Key <= last || r.Data == "" {
			return fmt.Errorf("manifest record of %s: out of order after %s, or without data object", r.Key, last)
		}
		last = r.Key
		fmt.Fprintf(h, "%s\x00%s\n", r.Key, r.ETag)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if got := h.Sum(nil); string(got) != string(want) {
		b.Fatalf("snapshot of %d objects: the manifest's keys and ETags differ from the writes'", n)
	}
	return peak, base, d, live
}
