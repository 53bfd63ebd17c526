package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	reconcileKeys      = 4000 // times the scale
	reconcileRatioGoal = 0.8  // the journal's: reconcile is the journal's first full backup
)

// BenchmarkReconcileInitialBackup measures the initial full backup of a
// bucket (journal.Reconcile into an empty vault) against the limit of the
// same server: N keys of 1-16 KiB, one in four with a second version and
// one in twenty behind a delete marker, then
//
//   - raw: one CopyObject per version (not the delete markers) into a
//     fresh versioned bucket under the same key, 32 in flight, from a
//     version list made beforehand;
//   - reconcile: Journal{Concurrency: 32}.Reconcile of the bucket into a
//     fresh vault, listing included, as it runs on this server: every
//     version relayed (GetObject, create-only PutObject; see
//     journal/relay.go);
//   - reconcilecopy (diagnostic): the same with the relay turned off
//     (RelayMax < 0), the copy path it took before on this server
//     (HeadObject of the version, HeadObject of the data key, CopyObject).
//
// They run in mirrored order (raw, reconcile, reconcilecopy, then the
// reverse). Reported: versions/s of each, ratio_reconcile/raw, the S3
// calls per version and the CPU-cost ratios (see cpuRatio).
func BenchmarkReconcileInitialBackup(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	n := scaled(b, reconcileKeys)
	setup := client(ctx, b, srv)

	src := srv.NewBucket(b, true)
	var ops []put
	for i := range n {
		ops = append(ops, put{Key: fmt.Sprintf("obj/%02d/%07d", i%100, i), Size: journalMinSize + (i*7919)%(journalMaxSize-journalMinSize+1)})
	}
	var second []put
	markers := 0
	for i := 0; i < n; i += 4 {
		second = append(second, put{Key: ops[i].Key, Size: ops[i].Size})
	}
	for i := 2; i < n; i += 20 {
		second = append(second, put{Key: ops[i].Key, Delete: true})
		markers++
	}
	start := time.Now()
	sizes := newBodies(7, journalMaxSize)
	if err := writeAll(ctx, setup, src, ops, sizes); err != nil {
		b.Fatal(err)
	}
	if err := writeAll(ctx, setup, src, second, sizes); err != nil {
		b.Fatal(err)
	}
	_, versions, err := createdChanges(ctx, setup, src)
	if err != nil {
		b.Fatal(err)
	}
	nv := len(versions)
	if nv != len(ops)+len(second)-markers {
		b.Fatalf("listed %d versions, wrote %d", nv, len(ops)+len(second)-markers)
	}
	b.Logf("setup: %d keys, %d versions and %d delete markers in %s, written in %s", n, nv, markers, src, time.Since(start).Round(time.Millisecond))

	c := client(ctx, b, srv)
	rCalls, copyCalls := newCallCounter(), newCallCounter()
	raw := &contender{name: "raw", run: func(m *meter) error {
		dst := srv.NewBucket(b, true)
		m.start()
		if err := copyVersions(ctx, c, src, dst, versions); err != nil {
			return err
		}
		m.stop()
		if got, err := countVersions(ctx, c, dst); err != nil || got != nv {
			return fmt.Errorf("raw copy: %d versions in %s (%v), want %d", got, dst, err, nv)
		}
		return nil
	}}
	rec := &contender{name: "reconcile", run: func(m *meter) error {
		return runReconcile(ctx, b, srv, src, nv, nv+markers, 0, rCalls, m)
	}}
	recCopy := &contender{name: "reconcilecopy", run: func(m *meter) error {
		return runReconcile(ctx, b, srv, src, nv, nv+markers, -1, copyCalls, m)
	}}
	all := []*contender{raw, rec, recCopy}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	rawRate, rRate := raw.rate(nv), rec.rate(nv)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rawRate, "raw_versions/s")
	b.ReportMetric(rRate, "reconcile_versions/s")
	b.ReportMetric(recCopy.rate(nv), "reconcilecopy_versions/s")
	b.ReportMetric(rRate/rawRate, "ratio_reconcile/raw")
	b.ReportMetric(recCopy.rate(nv)/rawRate, "ratio_reconcilecopy/raw")
	b.ReportMetric(raw.spread(), "raw_spread")
	calls, perVersion := perUnit(rCalls.snapshot(), len(rec.d)*nv)
	b.ReportMetric(perVersion, "reconcile_calls/version")
	copyC, copyPer := perUnit(copyCalls.snapshot(), len(recCopy.d)*nv)
	b.ReportMetric(copyPer, "reconcilecopy_calls/version")
	if pid != 0 {
		b.ReportMetric(cpuRatio(rec, raw, nv), "cpuratio_reconcile/raw")
		b.ReportMetric(cpuRatio(recCopy, raw, nv), "cpuratio_reconcilecopy/raw")
	}
	b.Logf("reconcile S3 calls per version (count): %s", calls)
	b.Logf("reconcilecopy S3 calls per version (count): %s", copyC)
	for _, c := range all {
		b.Logf("%-13s %s", c.name, c.summary(nv))
	}
	b.Logf("%d versions (+%d delete markers): raw %.0f/s, reconcile %.0f/s (Concurrency %d), ratio %.3f (the journal's target >= %.2f: %s); CPU-cost ratio %.3f",
		nv, markers, rawRate, rRate, concurrency, rRate/rawRate, reconcileRatioGoal, verdict(rRate/rawRate >= reconcileRatioGoal), cpuRatio(rec, raw, nv))
	b.Logf("reconcilecopy (relay off): %.0f/s, ratio %.3f, CPU-cost ratio %.3f", recCopy.rate(nv), recCopy.rate(nv)/rawRate, cpuRatio(recCopy, raw, nv))
}

// runReconcile reconciles src into a fresh vault with a journal of the
// given RelayMax, timed by m (vault creation excluded), adding its S3 calls
// to calls, and checks that it journaled every version and marker and
// stored every version's data.
func runReconcile(ctx context.Context, b *testing.B, srv *locals3.Server, src string, versions, entries int, relayMax int64, calls *callCounter, m *meter) error {
	local := newCallCounter()
	c := client(ctx, b, srv, local.option())
	vb := srv.BucketName(b)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		return err
	}
	if err := v.PutJSON(ctx, vault.BucketKey(src), vault.ProtectedBucket{Bucket: src, ProtectedAt: time.Now().UTC()}); err != nil {
		return err
	}
	j := &journal.Journal{Vault: v, S3: c, Concurrency: concurrency, RelayMax: relayMax}
	local.reset()
	m.start()
	p, err := j.Reconcile(ctx, src, journal.ReconcileOptions{})
	if err != nil {
		return err
	}
	m.stop()
	calls.merge(local)
	if p.CompletedAt == nil || p.Listed != int64(entries) || p.Added != int64(entries) || p.Skipped != 0 {
		return fmt.Errorf("reconcile: %+v, want %d listed and added, none skipped", p, entries)
	}
	if got, err := countData(ctx, c, vb); err != nil || got != versions {
		return fmt.Errorf("reconcile: %d data objects in vault %s (%v), want %d", got, vb, err, versions)
	}
	return nil
}

// countVersions counts the object versions (not delete markers) of a
// bucket.
func countVersions(ctx context.Context, c *s3.Client, bucket string) (int, error) {
	n := 0
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list versions of %s: %w", bucket, err)
		}
		n += len(page.Versions)
	}
	return n, nil
}
