package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestMain stops the shared local server, if a benchmark started it.
func TestMain(m *testing.M) { locals3.Main(m) }

// concurrency is the number of S3 requests in flight of every contender:
// raw copies, the journal (per Ingest call), restore and rclone's transfers.
const concurrency = 32

// scaleEnv multiplies every object count of the benchmarks.
const scaleEnv = "BUCKETVAULT_BENCH_SCALE"

// scale returns $BUCKETVAULT_BENCH_SCALE, 1 when unset.
func scale() (float64, error) {
	s := os.Getenv(scaleEnv)
	if s == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s=%q: want a positive number", scaleEnv, s)
	}
	return f, nil
}

// scaled returns n times the scale, at least 1.
func scaled(tb testing.TB, n int) int {
	tb.Helper()
	f, err := scale()
	if err != nil {
		tb.Fatal(err)
	}
	return max(1, int(math.Round(float64(n)*f)))
}

// callCounter counts S3 operations by name, once per call (retries are
// not counted again): a middleware in the SDK's initialize step.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func newCallCounter() *callCounter { return &callCounter{n: map[string]int64{}} }

// option installs the counter on a client.
func (c *callCounter) option() func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("bucketvaultBenchCount",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					c.add(awsmiddleware.GetOperationName(ctx))
					return next.HandleInitialize(ctx, in)
				}), middleware.After)
		})
	}
}

func (c *callCounter) add(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

func (c *callCounter) reset() {
	c.mu.Lock()
	clear(c.n)
	c.mu.Unlock()
}

// merge adds other's counts to c's.
func (c *callCounter) merge(other *callCounter) {
	for k, v := range other.snapshot() {
		c.mu.Lock()
		c.n[k] += v
		c.mu.Unlock()
	}
}

func (c *callCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// perUnit renders counts divided by units, "HeadObject 2.00, CopyObject
// 1.00, ...", most frequent first, and returns the total per unit.
func perUnit(counts map[string]int64, units int) (string, float64) {
	type kv struct {
		op string
		n  int64
	}
	var all []kv
	var total int64
	for k, v := range counts {
		all = append(all, kv{k, v})
		total += v
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].op < all[j].op
	})
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %.3f (%d)", e.op, float64(e.n)/float64(units), e.n))
	}
	return strings.Join(parts, ", "), float64(total) / float64(units)
}

// bodies makes object bodies of distinct content (so distinct ETags) from
// one random pool: an 8-byte serial number, then pool bytes.
type bodies struct {
	pool []byte
	seq  atomic.Uint64
}

func newBodies(seed uint64, maxSize int) *bodies {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pool := make([]byte, maxSize+4096)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	return &bodies{pool: pool}
}

// next returns a body of size bytes (size >= 8) unlike any other.
func (b *bodies) next(size int) []byte {
	n := b.seq.Add(1)
	out := make([]byte, size)
	binary.BigEndian.PutUint64(out, n)
	off := int(n*7919) % 4096
	copy(out[8:], b.pool[off:off+size-8])
	return out
}

// put is one object write: key and size in, version id and ETag out.
type put struct {
	Key       string
	Size      int
	VersionID string
	ETag      string // without quotes
	Delete    bool   // a DELETE without version id: a delete marker
}

// writeAll performs the writes in parallel (each key at most once in ops)
// and fills in version ids and ETags.
func writeAll(ctx context.Context, c *s3.Client, bucket string, ops []put, b *bodies) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i := range ops {
		g.Go(func() error {
			op := &ops[i]
			if op.Delete {
				out, err := c.DeleteObject(gctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(op.Key)})
				if err != nil {
					return fmt.Errorf("delete %s: %w", op.Key, err)
				}
				op.VersionID = aws.ToString(out.VersionId)
				return nil
			}
			out, err := c.PutObject(gctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(op.Key), Body: bytes.NewReader(b.next(op.Size)),
				ContentType: aws.String("application/octet-stream"),
			})
			if err != nil {
				return fmt.Errorf("put %s: %w", op.Key, err)
			}
			op.VersionID, op.ETag = aws.ToString(out.VersionId), s3x.TrimETag(aws.ToString(out.ETag))
			return nil
		})
	}
	return g.Wait()
}

// version names one object version.
type version struct{ Key, VersionID string }

// copyVersions is the limit every contender is measured against: one
// CopyObject per version into dst under the same key, concurrency in
// flight, nothing else.
func copyVersions(ctx context.Context, c *s3.Client, src, dst string, vs []version) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, v := range vs {
		g.Go(func() error { return copyOne(gctx, c, src, dst, v) })
	}
	return g.Wait()
}

// copyOne copies version v of src into dst under the same key.
func copyOne(ctx context.Context, c *s3.Client, src, dst string, v version) error {
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(dst), Key: aws.String(v.Key), CopySource: aws.String(s3x.CopySource(src, v.Key, v.VersionID)),
	})
	if err != nil {
		return fmt.Errorf("copy %s@%s: %w", v.Key, v.VersionID, err)
	}
	return nil
}

// currentETags lists the current objects of a bucket: key -> ETag.
func currentETags(ctx context.Context, c *s3.Client, bucket string) (map[string]string, error) {
	out := map[string]string{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = s3x.TrimETag(aws.ToString(o.ETag))
		}
	}
	return out, nil
}

// countKeys counts the objects under prefix.
func countKeys(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		n += len(page.Contents)
	}
	return n, nil
}

// diffETags describes how got differs from want (at most a few keys), ""
// when equal.
func diffETags(want, got map[string]string) string {
	var lines []string
	missing, extra, wrong := 0, 0, 0
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, inW := want[k]
		g, inG := got[k]
		var line string
		switch {
		case inW && !inG:
			missing++
			line = fmt.Sprintf("  %s: missing, want etag %s", k, w)
		case !inW && inG:
			extra++
			line = fmt.Sprintf("  %s: not expected, has etag %s", k, g)
		case w != g:
			wrong++
			line = fmt.Sprintf("  %s: etag %s, want %s", k, g, w)
		default:
			continue
		}
		if len(lines) < 10 {
			lines = append(lines, line)
		}
	}
	if missing+extra+wrong == 0 {
		return ""
	}
	return fmt.Sprintf("%d keys missing, %d unexpected, %d with another ETag (of %d expected):\n%s",
		missing, extra, wrong, len(want), strings.Join(lines, "\n"))
}

// meter measures one timed section of a contender's run: its wall time,
// the CPU time the S3 server spent meanwhile, and the CPU time of the
// client side (this process, plus a child process's when the run adds
// it). The server is CPU-bound on this machine, so CPU time per object is
// the cost that other load on the machine barely changes.
type meter struct {
	serverPID int
	t0        time.Time
	s0, c0    time.Duration
	child     time.Duration // CPU time of a child process that did the work
	d         time.Duration
	server    time.Duration
	client    time.Duration
	quiet     time.Duration // waited for the server to be quiet before the start
	stopped   bool
}

func (m *meter) start() {
	runtime.GC()   // the garbage of the run before is not this run's
	syscall.Sync() // nor the kernel's writeback of what it wrote
	m.quiet = waitQuiet(m.serverPID)
	m.s0, m.c0 = procCPU(m.serverPID), selfCPU()
	m.t0 = time.Now()
}

// Quiet server: at most quietCPU of CPU in each of quietRounds windows of
// quietWindow in a row, waiting at most quietMax.
const (
	quietWindow = 200 * time.Millisecond
	quietCPU    = 10 * time.Millisecond // 5% of a core
	quietRounds = 3
	quietMax    = 20 * time.Second
)

// waitQuiet waits until the server has finished what the run before left
// it (MinIO completes deletes and metadata updates in the background), so
// a run is not billed for its predecessor's work. It returns how long it
// waited.
func waitQuiet(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	t0 := time.Now()
	for calm := 0; calm < quietRounds && time.Since(t0) < quietMax; {
		c0 := procCPU(pid)
		time.Sleep(quietWindow)
		if procCPU(pid)-c0 <= quietCPU {
			calm++
		} else {
			calm = 0
		}
	}
	return time.Since(t0)
}

func (m *meter) stop() {
	m.d = time.Since(m.t0)
	m.server = procCPU(m.serverPID) - m.s0
	m.client = selfCPU() - m.c0 + m.child
	m.stopped = true
}

// selfCPU is the user and system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user and system CPU time of process pid so far, 0 when
// it cannot be read (not Linux, pid 0).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15, in clock ticks (USER_HZ, 100 on Linux).
	rest := string(b)
	if k := strings.LastIndexByte(rest, ')'); k >= 0 {
		rest = rest[k+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// serverPID finds the process of the local server: the one whose command
// line names its data directory. 0 when none is found.
func serverPID(srv *locals3.Server) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(srv.DataDir)) || !bytes.Contains(cmd, []byte(srv.Binary)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			return pid
		}
	}
	return 0
}

// contender is one way of doing a benchmark's work: run does it once,
// calling m.start and m.stop around the part it times (set-up and checks
// stay outside).
type contender struct {
	name   string
	run    func(m *meter) error
	d      []time.Duration // wall time, one per run
	server []time.Duration // server CPU time, one per run
	client []time.Duration // client CPU time, one per run
	quiet  []time.Duration // wait for a quiet server before each run
}

// runMirrored runs every contender once in order, then once in reverse
// order (A B C, C B A), so that a drift of the machine's speed during the
// benchmark (other load on it) weighs on all of them alike.
func runMirrored(b *testing.B, pid int, cs []*contender) {
	b.Helper()
	for pass := range 2 {
		for i := range cs {
			c := cs[i]
			if pass == 1 {
				c = cs[len(cs)-1-i]
			}
			m := &meter{serverPID: pid}
			if err := c.run(m); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			if !m.stopped {
				b.Fatalf("%s: the run did not time itself", c.name)
			}
			c.d = append(c.d, m.d)
			c.server = append(c.server, m.server)
			c.client = append(c.client, m.client)
			c.quiet = append(c.quiet, m.quiet)
		}
	}
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// rate is units per second over every run of c (units per run).
func (c *contender) rate(units int) float64 {
	return float64(units*len(c.d)) / sum(c.d).Seconds()
}

// cpuPer is the server's and the client's CPU milliseconds per unit.
func (c *contender) cpuPer(units int) (server, client float64) {
	n := float64(units * len(c.d))
	return float64(sum(c.server).Microseconds()) / 1000 / n, float64(sum(c.client).Microseconds()) / 1000 / n
}

// cpuRatio estimates the throughput ratio of a to b from their CPU costs:
// b's CPU time (server and client) per unit over a's. On an otherwise idle
// machine whose cores the server and the client share, throughput is about
// cores / CPU time per unit, so this is a's throughput over b's without the
// noise of other load on the machine.
func cpuRatio(a, b *contender, units int) float64 {
	as, ac := a.cpuPer(units)
	bs, bc := b.cpuPer(units)
	if as+ac == 0 {
		return 0
	}
	return (bs + bc) / (as + ac)
}

// spread is the largest difference between two runs of c in one
// runMirrored, relative to their mean: the benchmark's noise.
func (c *contender) spread() float64 {
	worst := 0.0
	for i := 0; i+1 < len(c.d); i += 2 {
		a, b := c.d[i].Seconds(), c.d[i+1].Seconds()
		worst = max(worst, math.Abs(a-b)/((a+b)/2))
	}
	return worst
}

// summary renders each run's rate and the CPU cost per unit.
func (c *contender) summary(units int) string {
	var parts []string
	for _, d := range c.d {
		parts = append(parts, fmt.Sprintf("%.0f/s", float64(units)/d.Seconds()))
	}
	var quiet []string
	for _, q := range c.quiet {
		quiet = append(quiet, q.Round(100*time.Millisecond).String())
	}
	sv, cl := c.cpuPer(units)
	return fmt.Sprintf("runs %s (spread %.1f%%); CPU per unit: server %.2f ms, client %.2f ms; waited for a quiet server %s",
		strings.Join(parts, ", "), 100*c.spread(), sv, cl, strings.Join(quiet, ", "))
}

// waitPastSecond sleeps until 50 ms into the second after the current one
// and returns the second it left: every write finished before the call has
// a LastModified within or before that second, every write started after
// it one in a later second.
func waitPastSecond() time.Time {
	now := time.Now()
	left := now.Truncate(time.Second)
	time.Sleep(left.Add(time.Second + 50*time.Millisecond).Sub(now))
	return left
}

// heapObjectsMetric is the runtime/metrics name of the bytes of heap
// objects, live or not yet swept.
const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

// heapPeak samples the Go heap every interval until Stop.
type heapPeak struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
	live uint64 // the largest live heap a GC left while sampling
	n    int
}

// heapLiveMetric is the live heap as of the last GC: what the job keeps,
// without the garbage that the sampled heap also holds until a GC runs
// (which grows with the allocation rate, not with what is kept).
const heapLiveMetric = "/gc/heap/live:bytes"

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: heapObjectsMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapPeak(interval time.Duration) *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	h.peak = heapObjects()
	go func() {
		defer close(h.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		s := []metrics.Sample{{Name: heapObjectsMetric}, {Name: heapLiveMetric}}
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			metrics.Read(s)
			h.n++
			if v := s[0].Value.Uint64(); v > h.peak {
				h.peak = v
			}
			if v := s[1].Value.Uint64(); v > h.live {
				h.live = v
			}
		}
	}()
	return h
}

// Stop ends the sampling and returns the peak in bytes and the number of
// samples taken.
func (h *heapPeak) Stop() (uint64, int) {
	close(h.stop)
	<-h.done
	if v := heapObjects(); v > h.peak {
		h.peak = v
	}
	return h.peak, h.n
}

// client returns the S3 client bucketvault builds for the server: the
// one the CLI and the functions build for an endpoint URL (s3x.NewClient:
// path style, checksums only where an operation requires one), with
// optFns. Set-up and every contender use it, so that a ratio compares
// calls, not client settings: the SDK's default (locals3.Server.Client)
// adds a CRC32 to every request that can carry one, which costs MinIO
// about 0.3 ms of CPU per PutObject here and bucketvault does not send.
func client(ctx context.Context, b testing.TB, srv *locals3.Server, optFns ...func(*s3.Options)) *s3.Client {
	b.Helper()
	c, err := s3x.NewClient(srv.Config(ctx), srv.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	return s3.New(c.Options(), optFns...)
}

// settleHeap collects garbage so a measurement starts from the live heap.
func settleHeap() uint64 {
	runtime.GC()
	runtime.GC()
	return heapObjects()
}

const mib = 1 << 20

// The helpers above run without a server: these tests are all that go
// test runs in this package without -bench.

func TestScale(t *testing.T) {
	for _, c := range []struct {
		env  string
		want float64
		bad  bool
	}{{"", 1, false}, {"10", 10, false}, {"0.5", 0.5, false}, {"0", 0, true}, {"x", 0, true}, {"-2", 0, true}} {
		t.Setenv(scaleEnv, c.env)
		got, err := scale()
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("%s=%q: got %v, %v; want %v (error: %v)", scaleEnv, c.env, got, err, c.want, c.bad)
		}
	}
}

func TestHeapPeak(t *testing.T) {
	base := settleHeap()
	h := startHeapPeak(time.Millisecond)
	buf := make([]byte, 64*mib)
	for i := range buf {
		buf[i] = byte(i)
	}
	time.Sleep(20 * time.Millisecond)
	runtime.KeepAlive(buf)
	peak, n := h.Stop()
	if n == 0 || peak < base+60*mib {
		t.Errorf("peak %d MiB over %d samples from %d MiB, want at least 64 MiB more", peak/mib, n, base/mib)
	}
}

func TestBodiesDistinct(t *testing.T) {
	b := newBodies(1, 16<<10)
	seen := map[string]bool{}
	for i := range 1000 {
		body := b.next(8 + i%(16<<10-8))
		if seen[string(body)] {
			t.Fatalf("body %d repeats an earlier one", i)
		}
		seen[string(body)] = true
	}
}

func TestDiffETags(t *testing.T) {
	if d := diffETags(map[string]string{"a": "1"}, map[string]string{"a": "1"}); d != "" {
		t.Errorf("equal maps: %s", d)
	}
	d := diffETags(map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "9", "c": "3"})
	for _, want := range []string{"1 keys missing", "1 unexpected", "1 with another ETag"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff %q lacks %q", d, want)
		}
	}
}

func TestProcCPU(t *testing.T) {
	start := procCPU(os.Getpid())
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	if d := procCPU(os.Getpid()) - start; d <= 0 && runtime.GOOS == "linux" {
		t.Errorf("procCPU of this process grew by %s over 50 ms of busy loop", d)
	}
	if selfCPU() <= 0 {
		t.Errorf("selfCPU %s", selfCPU())
	}
}
