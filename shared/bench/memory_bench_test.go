package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	memSmallKeys   = 10000  // times the scale
	memLargeKeys   = 100000 // times the scale
	memSegmentSize = 5000   // records per segment, as Reconcile flushes them
	memDataObjects = 64     // distinct data objects the records share
	memSampleEvery = 10 * time.Millisecond
)

// BenchmarkRestorePeakHeap measures the peak Go heap (runtime/metrics
// /memory/classes/heap/objects:bytes, sampled every 10 ms) of one restore
// of all keys of a journal of 10,000 and of 100,000 keys. The journals are
// written directly (one version record per key, in segments of 5,000
// records that each span the whole key range, as events written them) and
// their records share 64 data objects in the vault: a restore's memory
// depends on the journal and the number of keys, not on whose bytes it
// copies. Reported: peak MiB at each size, ratio_large/small of the peaks
// (flat is close to 1; proportional would be 10), the same ratio of
// the peaks above the heap before the restore, and of the peak live heaps
// (/gc/heap/live:bytes: what the restore keeps, as of each GC).
func BenchmarkRestorePeakHeap(b *testing.B) {
	peakHeapAtTwoSizes(b, "keys", "restore", []int{scaled(b, memSmallKeys), scaled(b, memLargeKeys)}, restorePeak)
}

// peakHeapAtTwoSizes runs measure (peak heap, heap before, duration,
// peak live heap) at two sizes and reports the peaks, ratio_large/small of
// the peaks (flat is close to 1), the same ratio of the peaks above the
// heap before, and the same ratio of the peak live heaps (what the job
// keeps as of each GC, without the garbage the sampled peak holds).
func peakHeapAtTwoSizes(b *testing.B, unit, job string, sizes []int,
	measure func(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64)) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	peak := make([]float64, len(sizes))
	above := make([]float64, len(sizes))
	live := make([]float64, len(sizes))
	b.ResetTimer()
	for range b.N {
		for i, n := range sizes {
			p, base, d, l := measure(ctx, b, srv, c, n)
			peak[i] += float64(p) / mib / float64(b.N)
			above[i] += float64(p-min(p, base)) / mib / float64(b.N)
			live[i] += float64(l) / mib / float64(b.N)
			b.Logf("%d %s: peak heap %.1f MiB (%.1f MiB before the %s, %.1f above; peak live heap %.1f MiB), %s took %s (%.0f objects/s)",
				n, unit, float64(p)/mib, float64(base)/mib, job, float64(p-min(p, base))/mib, float64(l)/mib, job, d.Round(time.Millisecond), float64(n)/d.Seconds())
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(peak[0], "peak_small_MiB")
	b.ReportMetric(peak[1], "peak_large_MiB")
	b.ReportMetric(peak[1]/peak[0], "ratio_large/small")
	b.ReportMetric(above[1]/above[0], "ratio_above_base_large/small")
	b.ReportMetric(live[0], "live_small_MiB")
	b.ReportMetric(live[1], "live_large_MiB")
	b.ReportMetric(live[1]/live[0], "ratio_live_large/small")
	b.Logf("%s %d -> %d (x%.0f): peak %.1f -> %.1f MiB, ratio %.2f; above the heap before the %s %.1f -> %.1f MiB, ratio %.2f; peak live heap %.1f -> %.1f MiB, ratio %.2f",
		unit, sizes[0], sizes[1], float64(sizes[1])/float64(sizes[0]), peak[0], peak[1], peak[1]/peak[0], job, above[0], above[1], above[1]/above[0],
		live[0], live[1], live[1]/live[0])
}

// restorePeak builds a journal of n keys in a fresh vault, restores all of
// them into a new bucket and returns the peak heap during the restore, the
// heap just before it, its duration and the peak live heap.
func restorePeak(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64) {
	b.Helper()
	vb := srv.BucketName(b)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	src := srv.BucketName(b) // named by the journal only: restore reads the vault
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Second)
	written := at.Add(-time.Hour)
	if err := writeSyntheticJournal(ctx, v, src, n, written); err != nil {
		b.Fatal(err)
	}
	// Diagnostic: the peak of reading the whole journal alone, no copies.
	jbase := settleHeap()
	jh := startHeapPeak(memSampleEvery)
	keys, err := readJournal(ctx, v, src)
	jpeak, _ := jh.Stop()
	if err != nil || keys != n {
		b.Fatalf("read journal: %d keys (%v), want %d", keys, err, n)
	}
	b.Logf("%d keys in %d segments: reading the journal alone peaks at %.1f MiB (%.1f MiB before)", n, (n+memSegmentSize-1)/memSegmentSize, float64(jpeak)/mib, float64(jbase)/mib)

	dst := srv.BucketName(b)
	r := &restore.Restorer{S3: c}
	base = settleHeap()
	h := startHeapPeak(memSampleEvery)
	t0 := time.Now()
	rep, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: src, At: at, TargetBucket: dst, CreateBucket: true, Concurrency: concurrency})
	d = time.Since(t0)
	peak, _ = h.Stop()
	live = h.live
	if err != nil {
		b.Fatal(err)
	}
	if rep.State != restore.StateCompleted || rep.Restored != int64(n) {
		b.Fatalf("restore of %d keys: state %s, restored %d", n, rep.State, rep.Restored)
	}
	if got, err := countKeys(ctx, c, dst, ""); err != nil || got != n {
		b.Fatalf("restore of %d keys: %d objects in %s (%v)", n, got, dst, err)
	}
	return peak, base, d, live
}

// writeSyntheticJournal puts memDataObjects data objects in the vault and
// a journal of n keys of one version each whose records point at them.
func writeSyntheticJournal(ctx context.Context, v *vault.Vault, src string, n int, written time.Time) error {
	type data struct {
		key, etag string
		size      int64
	}
	objs := make([]data, memDataObjects)
	bod := newBodies(99, 16<<10)
	for i := range objs {
		size := 1024 + i*97
		k := vault.DataKey(src, fmt.Sprintf("shared/%02d", i), "bench", "", written)
		out, err := v.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(k), Body: bytes.NewReader(bod.next(size))})
		if err != nil {
			return err
		}
		objs[i] = data{key: k, etag: s3x.TrimETag(aws.ToString(out.ETag)), size: int64(size)}
	}
	segs := (n + memSegmentSize - 1) / memSegmentSize
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for s := range segs {
		g.Go(func() error {
			recs := make([]vault.Record, 0, n/segs+1)
			for i := s; i < n; i += segs { // every segment spans the key range
				o := objs[i%len(objs)]
				recs = append(recs, vault.Record{
					Op: vault.OpVersion, Key: fmt.Sprintf("k/%02d/%07d", i%100, i),
					VersionID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), Time: written, Origin: vault.OriginReconcile,
					Size: o.size, ETag: o.etag, StorageClass: "STANDARD",
					Meta: &vault.Meta{ContentType: "application/octet-stream"}, Tags: map[string]string{},
					Data: o.key, DataETag: o.etag,
				})
			}
			_, err := v.WriteSegment(gctx, src, recs)
			return err
		})
	}
	return g.Wait()
}

// readJournal reads every key of a bucket's journal and counts them.
func readJournal(ctx context.Context, v *vault.Vault, bucket string) (int, error) {
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	for n := 0; ; n++ {
		if _, _, err := m.NextKey(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
}

const memPlanLargeKeys = 1000000 // times the scale

// BenchmarkRestorePlanPeakHeap measures the peak Go heap of the restore's
// plan and report path, without its copies, from 10,000 to 1,000,000
// keys: a dry run (restore.Request.DryRun) of the whole synthetic journal
// (writeSyntheticJournal) into a bucket it would create, which streams
// the plan through the restore's workers (every key "would-restore"),
// the report and its inline mapping, and writes nothing. Copies cost the
// same per object at any size (32 in flight); BenchmarkRestorePeakHeap
// measures whole restores of 10,000 and 100,000 keys. Reported as
// BenchmarkRestorePeakHeap's metrics.
func BenchmarkRestorePlanPeakHeap(b *testing.B) {
	peakHeapAtTwoSizes(b, "keys", "dry run", []int{scaled(b, memSmallKeys), scaled(b, memPlanLargeKeys)}, dryRunPeak)
}

func dryRunPeak(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) (peak, base uint64, d time.Duration, live uint64) {
	b.Helper()
	vb := srv.BucketName(b)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	src := srv.BucketName(b)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Second)
	if err := writeSyntheticJournal(ctx, v, src, n, at.Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	r := &restore.Restorer{S3: c}
	base = settleHeap()
	h := startHeapPeak(memSampleEvery)
	t0 := time.Now()
	rep, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: src, At: at, TargetBucket: srv.BucketName(b), CreateBucket: true, DryRun: true, AllowIncomplete: true, Concurrency: concurrency})
	d = time.Since(t0)
	peak, _ = h.Stop()
	live = h.live
	if err != nil {
		b.Fatal(err)
	}
	if rep.Restored != int64(n) {
		b.Fatalf("dry run of %d keys: state %s, would restore %d", n, rep.State, rep.Restored)
	}
	return peak, base, d, live
}
