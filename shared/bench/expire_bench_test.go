// Expiry benchmarks. Method (docs/benchmarks.md has the details and the
// results):
//
//   - BenchmarkExpireCollect: objects/s of vault.Expire collecting data
//     objects nothing references, against the server's raw rate of
//     listing the same objects' versions and deleting them with
//     DeleteObjects, in the same run, mirrored (raw, expire, expire, raw).
//   - BenchmarkCollectPeakHeap: the peak Go heap of a collection (Expire,
//     dry run) of a vault whose journal references 100,000 and 1,000,000
//     distinct data keys.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	// expireObjects is how many unreferenced data objects each run
	// collects, times the scale; BUCKETVAULT_BENCH_FULL=1 makes it
	// expireObjectsFull (the target's size).
	expireObjects     = 25000
	expireObjectsFull = 100000
	expireRatioGoal   = 0.8
	// expireDeleteBatch and expireDeletesInFlight are what vault's deleter
	// does at ExpireOptions' default Concurrency (16, also the deployed
	// function's BUCKETVAULT_CONCURRENCY default): DeleteObjects calls of
	// 1,000 versions, Concurrency/4 in flight (expire.go, newDeleter).
	expireDeleteBatch     = 1000
	expireDeletesInFlight = 4
	expireBodySize        = 16 // bytes of each data object
)

// fullEnv selects the size a target is stated for where a
// benchmark's default is smaller (BenchmarkExpireCollect, whose set-up
// writes 4 x 100,000 objects at full size: about half an hour here).
// BUCKETVAULT_BENCH_SCALE still multiplies.
const fullEnv = "BUCKETVAULT_BENCH_FULL"

// fullSize returns full when $BUCKETVAULT_BENCH_FULL is 1, else def, times
// the scale.
func fullSize(tb testing.TB, def, full int) int {
	tb.Helper()
	switch v := strings.TrimSpace(os.Getenv(fullEnv)); v {
	case "", "0":
		return scaled(tb, def)
	case "1":
		return scaled(tb, full)
	default:
		tb.Fatalf("%s=%q: want 1 (the full sizes) or 0", fullEnv, v)
		return 0
	}
}

// withGCGrace sets vault.GCGrace for the benchmark and puts it back after.
func withGCGrace(b *testing.B, d time.Duration) {
	old := vault.GCGrace
	vault.GCGrace = d
	b.Cleanup(func() { vault.GCGrace = old })
}

// BenchmarkExpireCollect measures how fast expiry collects data objects
// that nothing references, against the server's raw delete rate:
//
//   - raw: ListObjectVersions of data/ (pages of 1,000), each page's
//     versions sent as DeleteObjects calls of 1,000 (Key and VersionId,
//     Quiet), 4 calls in flight: the calls vault's deleter makes at
//     ExpireOptions' default Concurrency, and nothing else;
//   - expire: vault.Expire with default options (GCGrace 0 for the run):
//     it reads the vault's records (no journal, no snapshot: nothing is
//     referenced), lists every version under data/, merge-joins them with
//     the (empty) references and deletes each object's versions the same
//     way.
//
// Each run gets a fresh vault (vault.Create) holding N data objects of 16
// bytes under data/<hex> keys (vault.DataKey), one version each, written
// with raw PutObject calls, 32 in flight, not timed. Every run must leave
// no version under data/, and expiry must report N objects and N versions
// deleted. Reported: objects/s of both, ratio_expire/raw (target >= 0.8),
// the CPU-cost ratio, and expiry's S3 calls per object.
func BenchmarkExpireCollect(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	n := fullSize(b, expireObjects, expireObjectsFull)
	withGCGrace(b, 0)
	setup := client(ctx, b, srv)
	var fill []time.Duration
	// prepare makes a vault holding n unreferenced data objects (the
	// objects are written by the set-up client).
	prepare := func(c *s3.Client) (*vault.Vault, error) {
		v, err := vault.Create(ctx, c, srv.BucketName(b), vault.CreateOptions{})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := putDataObjects(ctx, setup, v.Bucket, n); err != nil {
			return nil, err
		}
		fill = append(fill, time.Since(t0))
		return v, nil
	}
	rawCalls, expCalls := newCallCounter(), newCallCounter()
	raw := &contender{name: "raw", run: func(m *meter) error {
		local := newCallCounter()
		c := client(ctx, b, srv, local.option())
		v, err := prepare(c)
		if err != nil {
			return err
		}
		local.reset()
		m.start()
		deleted, err := rawDeleteVersions(ctx, c, v.Bucket, "data/")
		m.stop()
		rawCalls.merge(local)
		if err != nil {
			return err
		}
		if deleted != n {
			return fmt.Errorf("raw: deleted %d versions, want %d", deleted, n)
		}
		return noDataLeft(ctx, setup, v.Bucket)
	}}
	exp := &contender{name: "expire", run: func(m *meter) error {
		local := newCallCounter()
		v, err := prepare(client(ctx, b, srv, local.option()))
		if err != nil {
			return err
		}
		local.reset()
		m.start()
		rep, err := v.Expire(ctx, vault.ExpireOptions{})
		m.stop()
		expCalls.merge(local)
		if err != nil {
			return err
		}
		if rep.Data.Objects != int64(n) || rep.Data.Versions != int64(n) || rep.Collected.References != 0 || rep.Collected.Live != 0 ||
			rep.Collected.Young != 0 || len(rep.Warnings) != 0 || rep.Collected.SkippedBecause != "" {
			return fmt.Errorf("expire of %d unreferenced data objects: data %+v, collection %+v, warnings %q", n, rep.Data, rep.Collected, rep.Warnings)
		}
		return noDataLeft(ctx, setup, v.Bucket)
	}}
	all := []*contender{raw, exp}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	rr, er := raw.rate(n), exp.rate(n)
	ratio := er / rr
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rr, "raw_objects/s")
	b.ReportMetric(er, "expire_objects/s")
	b.ReportMetric(ratio, "ratio_expire/raw")
	if pid != 0 {
		b.ReportMetric(cpuRatio(exp, raw, n), "cpuratio_expire/raw")
	}
	b.ReportMetric(raw.spread(), "raw_spread")
	b.ReportMetric(exp.spread(), "expire_spread")
	calls, per := perUnit(expCalls.snapshot(), len(exp.d)*n)
	b.ReportMetric(per, "expire_calls/object")
	rcalls, _ := perUnit(rawCalls.snapshot(), len(raw.d)*n)
	var fills []string
	for _, d := range fill {
		fills = append(fills, fmt.Sprintf("%.0f/s", float64(n)/d.Seconds()))
	}
	b.Logf("%d unreferenced data objects per run: raw list+DeleteObjects %.0f objects/s, expire %.0f objects/s; expire/raw %.3f (target >= %.2f: %s); CPU-cost ratio %.3f",
		n, rr, er, ratio, expireRatioGoal, verdict(ratio >= expireRatioGoal), cpuRatio(exp, raw, n))
	b.Logf("S3 calls per object (count): expire %s; raw %s", calls, rcalls)
	b.Logf("set-up (not timed): %d PutObject per run, %d in flight: %s", n, concurrency, strings.Join(fills, ", "))
	for _, c := range all {
		b.Logf("%-7s %s; times %v", c.name, c.summary(n), c.d)
	}
}

// putDataObjects writes n data objects of expireBodySize bytes under
// vault data keys of bucket vb, concurrency PutObject calls in flight.
func putDataObjects(ctx context.Context, c *s3.Client, vb string, n int) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	seq := time.Now().UnixNano()
	for range min(concurrency, n) {
		g.Go(func() error {
			body := make([]byte, expireBodySize)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				k := vault.DataKey("expire-bench", fmt.Sprintf("obj/%d/%07d", seq, i), "v1", "", time.Time{})
				copy(body, fmt.Sprintf("%016d", i))
				if _, err := c.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(vb), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
					return fmt.Errorf("put %s: %w", k, err)
				}
			}
		})
	}
	return g.Wait()
}

// rawDeleteVersions is the raw peer of a collection: it lists every
// version and delete marker under prefix (ListObjectVersions, pages of
// 1,000) and deletes them by version id with DeleteObjects calls of 1,000
// (Quiet), expireDeletesInFlight calls in flight while the listing goes
// on. It returns the versions deleted; any per-version error fails it.
func rawDeleteVersions(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(expireDeletesInFlight) // the listing goes on in this goroutine, waiting while 4 are in flight
	var deleted atomic.Int64
	var mu sync.Mutex
	var firstErr error
	send := func(batch []types.ObjectIdentifier) {
		g.Go(func() error {
			out, err := c.DeleteObjects(gctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)}})
			if err != nil {
				return fmt.Errorf("delete %d versions: %w", len(batch), err)
			}
			if len(out.Errors) > 0 {
				e := out.Errors[0]
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("delete %s@%s: %s: %s (%d errors)", aws.ToString(e.Key), aws.ToString(e.VersionId), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors))
				}
				mu.Unlock()
			}
			deleted.Add(int64(len(batch) - len(out.Errors)))
			return nil
		})
	}
	var batch []types.ObjectIdentifier
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	var lerr error
	for p.HasMorePages() {
		page, err := p.NextPage(gctx)
		if err != nil {
			lerr = fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
			break
		}
		for _, o := range page.Versions {
			batch = append(batch, types.ObjectIdentifier{Key: o.Key, VersionId: o.VersionId})
		}
		for _, o := range page.DeleteMarkers {
			batch = append(batch, types.ObjectIdentifier{Key: o.Key, VersionId: o.VersionId})
		}
		for len(batch) >= expireDeleteBatch {
			send(batch[:expireDeleteBatch:expireDeleteBatch])
			batch = batch[expireDeleteBatch:]
		}
	}
	if lerr == nil && len(batch) > 0 {
		send(batch)
	}
	if err := g.Wait(); err != nil {
		return int(deleted.Load()), err
	}
	if lerr != nil {
		return int(deleted.Load()), lerr
	}
	return int(deleted.Load()), firstErr
}

// noDataLeft fails when any version or delete marker is left under data/
// of vault vb.
func noDataLeft(ctx context.Context, c *s3.Client, vb string) error {
	out, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vb), Prefix: aws.String("data/"), MaxKeys: aws.Int32(10)})
	if err != nil {
		return err
	}
	if n := len(out.Versions) + len(out.DeleteMarkers); n > 0 {
		return fmt.Errorf("vault %s: %d or more versions left under data/ (first %s)", vb, n, firstVersionKey(out))
	}
	return nil
}

func firstVersionKey(out *s3.ListObjectVersionsOutput) string {
	if len(out.Versions) > 0 {
		return aws.ToString(out.Versions[0].Key)
	}
	if len(out.DeleteMarkers) > 0 {
		return aws.ToString(out.DeleteMarkers[0].Key)
	}
	return ""
}

const (
	collectMemSmall = 100000  // references, times the scale
	collectMemLarge = 1000000 // references, times the scale
	collectLive     = 64      // referenced data objects that exist
	collectOrphans  = 64      // data objects nothing references
	collectMemGoal  = 1.2     // peak heap at the larger size / at the smaller, about
)

// BenchmarkCollectPeakHeap measures the peak Go heap
// (/memory/classes/heap/objects:bytes, sampled every 10 ms) of a
// collection of a vault whose journal references 100,000 and 1,000,000
// distinct data keys: vault.Expire with DryRun, which reads every
// reference, sorts them (through temporary files past 100,000), lists
// data/ and merge-joins the two, deleting nothing. Each size gets a fresh
// vault with one journal of N version records, each naming its own data
// key, written in segments of 5,000 and compacted into runs (the state a
// deployed journal is in; not timed). Only 64 of the referenced data
// objects exist, and 64 objects nothing references: the collection must
// count N references, 64 live, N-64 missing and 64 to delete. Reported as
// BenchmarkRestorePeakHeap: the peaks, ratio_large/small (target: within
// about 1.2; proportional would be 10), above the heap before, and the
// live-heap ratio.
func BenchmarkCollectPeakHeap(b *testing.B) {
	withGCGrace(b, 0)
	oldLag := vault.CompactionLag
	vault.CompactionLag = 0
	b.Cleanup(func() { vault.CompactionLag = oldLag })
	sizes := []int{scaled(b, collectMemSmall), scaled(b, collectMemLarge)}
	peaks := map[int][]float64{} // size -> peak, live (MiB), one pair per pass
	peakHeapAtTwoSizes(b, "references", "collection", sizes,
		func(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64) {
			peak, base, d, live = collectPeak(ctx, b, srv, c, n)
			peaks[n] = append(peaks[n], float64(peak)/mib, float64(live)/mib)
			return peak, base, d, live
		})
	mean := func(n, k int) float64 {
		var s float64
		for i := k; i < len(peaks[n]); i += 2 {
			s += peaks[n][i]
		}
		return s / float64(len(peaks[n])/2)
	}
	ratio, liveRatio := mean(sizes[1], 0)/mean(sizes[0], 0), mean(sizes[1], 1)/mean(sizes[0], 1)
	b.Logf("collection of %d -> %d references: peak heap x%.2f, peak live heap x%.2f (target: within about x%.1f: %s)",
		sizes[0], sizes[1], ratio, liveRatio, collectMemGoal, verdict(ratio <= collectMemGoal))
}

// collectPeak builds a vault whose journal references n data keys, runs a
// dry collection and returns its peak heap, the heap before it, its
// duration and the peak live heap. A collection that miscounts is an
// error of the benchmark (b.Errorf, after the figures are logged).
func collectPeak(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64) {
	b.Helper()
	v, err := vault.Create(ctx, c, srv.BucketName(b), vault.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const bucket = "refs"
	written := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	t0 := time.Now()
	if _, err := writeHistory(ctx, v, bucket, n, func(j int) int { return j }, 0, written); err != nil {
		b.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // segment ids are milliseconds
	st, err := v.Compact(ctx, bucket, time.Now())
	if err != nil || st.Records != int64(n) {
		b.Fatalf("compact the journal of %d references: %+v, %v", n, st, err)
	}
	body := bytes.NewReader(make([]byte, expireBodySize))
	put := func(k string) {
		body.Reset(make([]byte, expireBodySize))
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(k), Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	for k := range collectLive {
		put(historyRecord(bucket, k*(n/collectLive), 0, written).Data)
	}
	for k := range collectOrphans {
		put(vault.DataKey("orphans", fmt.Sprint(k), "v1", "", time.Time{}))
	}
	b.Logf("set-up: %d references in %d segments, compacted into %d run shards, %d live and %d unreferenced data objects, in %s",
		n, n/compactSegment, st.Shards, collectLive, collectOrphans, time.Since(t0).Round(time.Millisecond))
	base = settleHeap()
	hp := startHeapPeak(memSampleEvery)
	t1 := time.Now()
	rep, err := v.Expire(ctx, vault.ExpireOptions{DryRun: true})
	d = time.Since(t1)
	peak, _ = hp.Stop()
	live = hp.live
	if err != nil {
		b.Fatal(err)
	}
	cs := rep.Collected
	if cs.References != int64(n) || cs.Live != collectLive || cs.Missing != int64(n-collectLive) || rep.Data.Objects != collectOrphans ||
		cs.SkippedBecause != "" || len(rep.Warnings) != 0 {
		b.Errorf("collection of %d references (peak heap %.1f MiB): %d references, %d live (want %d), %d missing (want %d), would delete %d data objects (want the %d unreferenced)%s; skipped %q, warnings %q",
			n, float64(peak)/mib, cs.References, cs.Live, collectLive, cs.Missing, n-collectLive, rep.Data.Objects, collectOrphans,
			liveLost(cs.Live, rep.Data.Objects), cs.SkippedBecause, rep.Warnings)
	}
	return peak, base, d, live
}

// liveLost names what a collection that counts too few live objects would
// do to them.
func liveLost(live, deletes int64) string {
	if live >= collectLive || deletes <= collectOrphans {
		return ""
	}
	return fmt.Sprintf(": a collection would DELETE %d referenced data objects", min(collectLive-live, deletes-collectOrphans))
}
