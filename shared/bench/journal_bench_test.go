package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	journalObjects   = 5000 // times the scale
	journalBatch     = 100  // changes per Ingest call, one Lambda invocation's batch
	journalInvokes   = 4    // Ingest calls at once, as concurrent Lambda invocations
	journalMinSize   = 1 << 10
	journalMaxSize   = 16 << 10
	journalRatioGoal = 0.8
)

// BenchmarkJournalThroughput measures how fast the journal backs up new
// versions against the limit of the same server: N small objects (1-16
// KiB) in a versioned bucket, then
//
//   - raw: one CopyObject per version into a fresh bucket, 32 in flight;
//   - journal: journal.Ingest of Created changes (as S3 events decode) in
//     batches of 100, 4 batches at once, Concurrency 32 each, into a fresh
//     vault;
//   - raw3 (diagnostic): the journal's S3 calls per version and nothing
//     else (HeadObject of the version, HeadObject of the vault data key,
//     CopyObject), 32 in flight;
//   - journal1 (diagnostic): the journal with one batch at a time, so at
//     most 32 requests in flight as for raw.
//
// Reported: versions/s of each, ratio_journal/raw (target >= 0.8), and the
// journal's S3 calls per version.
func BenchmarkJournalThroughput(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	n := scaled(b, journalObjects)
	setup := srv.Client(ctx)

	// The source: n objects of one version each.
	src := srv.NewBucket(b, true)
	ops := make([]put, n)
	sizes := newBodies(42, journalMaxSize)
	for i := range ops {
		ops[i] = put{Key: fmt.Sprintf("obj/%02d/%07d", i%100, i), Size: journalMinSize + (i*7919)%(journalMaxSize-journalMinSize+1)}
	}
	start := time.Now()
	if err := writeAll(ctx, setup, src, ops, sizes); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: wrote %d objects (1-16 KiB) to %s in %s", n, src, time.Since(start).Round(time.Millisecond))
	changes, versions, err := createdChanges(ctx, setup, src)
	if err != nil {
		b.Fatal(err)
	}
	if len(changes) != n {
		b.Fatalf("listed %d versions, wrote %d", len(changes), n)
	}

	var rawFirst, rawLast, jDur, raw3Dur, j1Dur time.Duration
	jCalls := newCallCounter()
	b.ResetTimer()
	for range b.N {
		// raw: the limit, measured first and again last; its mean is
		// the reference and the two runs' spread shows the noise.
		c := srv.Client(ctx, newCallCounter().option())
		d, err := runRaw(ctx, b, srv, c, src, versions)
		if err != nil {
			b.Fatal(err)
		}
		rawFirst += d

		// journal: Lambda-like batches, several at once.
		d, err = runJournal(ctx, b, srv, src, changes, journalInvokes, jCalls)
		if err != nil {
			b.Fatal(err)
		}
		jDur += d

		// raw3: the journal's calls, no engine.
		dst3 := srv.NewBucket(b, true)
		t0 := time.Now()
		if err := threeCalls(ctx, c, src, dst3, versions); err != nil {
			b.Fatal(err)
		}
		raw3Dur += time.Since(t0)

		// journal1: one batch at a time.
		d, err = runJournal(ctx, b, srv, src, changes, 1, newCallCounter())
		if err != nil {
			b.Fatal(err)
		}
		j1Dur += d

		d, err = runRaw(ctx, b, srv, c, src, versions)
		if err != nil {
			b.Fatal(err)
		}
		rawLast += d
	}
	b.StopTimer()

	total := float64(n * b.N)
	raw := 2 * total / (rawFirst + rawLast).Seconds()
	jr := total / jDur.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(raw, "raw_versions/s")
	b.ReportMetric(jr, "journal_versions/s")
	b.ReportMetric(total/raw3Dur.Seconds(), "raw3_versions/s")
	b.ReportMetric(total/j1Dur.Seconds(), "journal1_versions/s")
	b.ReportMetric(jr/raw, "ratio_journal/raw")
	spread := (rawFirst - rawLast).Abs().Seconds() / ((rawFirst + rawLast).Seconds() / 2)
	b.ReportMetric(spread, "raw_spread")
	calls, perVersion := perUnit(jCalls.snapshot(), n*b.N)
	b.ReportMetric(perVersion, "journal_calls/version")
	b.Logf("journal S3 calls per version (count): %s", calls)
	b.Logf("raw first %.0f/s, last %.0f/s (spread %.1f%%)", total/rawFirst.Seconds(), total/rawLast.Seconds(), 100*spread)
	b.Logf("%d versions: raw %.0f/s, journal %.0f/s (%d batches of %d, %d at once), ratio %.3f (target >= %.2f: %s); raw3 %.0f/s, journal1 %.0f/s",
		n, raw, jr, (n+journalBatch-1)/journalBatch, journalBatch, journalInvokes, jr/raw, journalRatioGoal, verdict(jr/raw >= journalRatioGoal),
		total/raw3Dur.Seconds(), total/j1Dur.Seconds())
}

// runRaw copies versions into a fresh bucket, checks the count and
// returns the time the copies took.
func runRaw(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, src string, versions []version) (time.Duration, error) {
	dst := srv.NewBucket(b, true)
	t0 := time.Now()
	if err := copyVersions(ctx, c, src, dst, versions); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if got, err := countKeys(ctx, c, dst, ""); err != nil || got != len(versions) {
		return 0, fmt.Errorf("raw copy: %d objects in %s (%v), want %d", got, dst, err, len(versions))
	}
	return d, nil
}

// createdChanges lists a bucket's versions as the Created changes its S3
// events would decode to, and as versions to copy.
func createdChanges(ctx context.Context, c *s3.Client, bucket string) ([]event.Change, []version, error) {
	var changes []event.Change
	var vs []version
	l := s3x.NewVersionLister(c, bucket, "", "", "", 1000)
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range page {
			if e.IsDeleteMarker {
				continue
			}
			changes = append(changes, event.Change{
				Kind: event.Created, Bucket: bucket, Key: e.Key, VersionID: e.VersionID, Time: e.LastModified.UTC(),
				Size: e.Size, ETag: e.ETag, Source: event.SourceS3, Name: "ObjectCreated:Put",
			})
			vs = append(vs, version{Key: e.Key, VersionID: e.VersionID})
		}
	}
	return changes, vs, nil
}

// runJournal journals changes into a fresh vault in batches of
// journalBatch, invokes batches at once, and returns the time it took
// (vault creation excluded). It checks every change was journaled and its
// data copied.
func runJournal(ctx context.Context, b *testing.B, srv *locals3.Server, src string, changes []event.Change, invokes int, calls *callCounter) (time.Duration, error) {
	c := srv.Client(ctx, calls.option())
	vb := srv.BucketName(b)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if err := v.PutJSON(ctx, vault.BucketKey(src), vault.ProtectedBucket{Bucket: src, ProtectedAt: time.Now().UTC(), Events: "webhook:" + srv.WebhookARN}); err != nil {
		return 0, err
	}
	j := &journal.Journal{Vault: v, S3: c, Concurrency: concurrency}
	calls.reset()
	var records, bad atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(invokes)
	for lo := 0; lo < len(changes); lo += journalBatch {
		batch := changes[lo:min(lo+journalBatch, len(changes))]
		g.Go(func() error {
			res, st, err := j.Ingest(gctx, batch)
			if err != nil {
				return err
			}
			records.Add(int64(st.Records))
			for _, r := range res {
				ok := r.Err == nil && len(r.Records) == 1 && r.Records[0].Op == vault.OpVersion && r.Records[0].DataETag != ""
				if !ok {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s@%s: err %v, records %+v", r.Change.Key, r.Change.VersionID, r.Err, r.Records))
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if bad.Load() > 0 || records.Load() != int64(len(changes)) {
		return 0, fmt.Errorf("journal: %d of %d changes not journaled as one version record (%d records); first: %v", bad.Load(), len(changes), records.Load(), firstErr.Load())
	}
	if got, err := countKeys(ctx, c, vb, "data/"); err != nil || got != len(changes) {
		return 0, fmt.Errorf("journal: %d data objects in vault %s (%v), want %d", got, vb, err, len(changes))
	}
	return d, nil
}

// threeCalls makes, per version, the S3 calls the journal makes for it:
// HeadObject of the version, HeadObject of a missing key of dst, and
// CopyObject of the version into dst.
func threeCalls(ctx context.Context, c *s3.Client, src, dst string, vs []version) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, v := range vs {
		g.Go(func() error {
			if _, err := c.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(src), Key: aws.String(v.Key), VersionId: aws.String(v.VersionID)}); err != nil {
				return err
			}
			if _, err := c.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(dst), Key: aws.String(v.Key)}); err == nil || !s3x.IsNotFound(err) {
				return fmt.Errorf("head %s/%s: want not found, got %v", dst, v.Key, err)
			}
			_, err := c.CopyObject(gctx, &s3.CopyObjectInput{
				Bucket: aws.String(dst), Key: aws.String(v.Key), CopySource: aws.String(s3x.CopySource(src, v.Key, v.VersionID)),
			})
			return err
		})
	}
	return g.Wait()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}
