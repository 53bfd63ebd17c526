package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	restoreTestKeys   = 20000 // times the scale
	restoreTestPasses = 3
	restoreTestGoal   = 1.3 // a restore test takes at most 1.3 times the restore alone
	// The sample a restore test reads whole by default: 0.1% corrupt
	// found with 99% confidence.
	restoreTestSample = 4603
)

// restoreTestSource is the protected bucket of BenchmarkRestoreTest: its
// objects, written once, and what each holds.
type restoreTestSource struct {
	bucket string
	want   map[string]string // key -> ETag
	tagged int               // objects with tags
	meta   int               // objects with user metadata
	took   time.Duration     // writing them
}

// buildRestoreTestSource writes n objects of 1-16 KiB under 16 prefixes
// into a new versioned bucket, one PutObject each: one in 10 with two
// tags (i%10 == 0), three in 10 with user metadata and a Cache-Control
// (i%5 == 1 or i%10 == 0: every tagged one too).
func buildRestoreTestSource(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, n int) restoreTestSource {
	b.Helper()
	src := restoreTestSource{bucket: srv.NewBucket(b, true), want: make(map[string]string, n)}
	bod := newBodies(11, 16<<10)
	type obj struct {
		key, etag string
		size      int
		tags      string
		meta      map[string]string
		cache     string
	}
	objs := make([]obj, n)
	for i := range objs {
		o := &objs[i]
		o.key = fmt.Sprintf("d%02d/obj-%07d", i%16, i)
		o.size = 1024 + (i*7919)%(15*1024+1)
		if i%10 == 0 {
			o.tags = url.Values{"team": {fmt.Sprintf("t%d", i%7)}, "class": {"bench"}}.Encode()
			src.tagged++
		}
		if i%5 == 1 || i%10 == 0 {
			o.meta = map[string]string{"origin": fmt.Sprintf("host-%d", i%13), "serial": fmt.Sprint(i)}
			o.cache = "max-age=3600"
			src.meta++
		}
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i := range objs {
		g.Go(func() error {
			o := &objs[i]
			in := &s3.PutObjectInput{
				Bucket: aws.String(src.bucket), Key: aws.String(o.key), Body: bytes.NewReader(bod.next(o.size)),
				ContentType: aws.String("application/octet-stream"), Metadata: o.meta,
			}
			if o.tags != "" {
				in.Tagging = aws.String(o.tags)
			}
			if o.cache != "" {
				in.CacheControl = aws.String(o.cache)
			}
			out, err := c.PutObject(gctx, in)
			if err != nil {
				return fmt.Errorf("put %s: %w", o.key, err)
			}
			o.etag = s3x.TrimETag(aws.ToString(out.ETag))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	for _, o := range objs {
		src.want[o.key] = o.etag
	}
	src.took = time.Since(start)
	return src
}

// BenchmarkRestoreTest measures a restore test (restoretest.Tester.Run)
// of a protected bucket of 20,000 small objects against the restore alone
// of the same recovery point (restore.Restorer.Run), the acceptance
// target of restore testing: the test takes at most 1.3 times the
// restore.
//
// Set-up, untimed: the bucket (buildRestoreTestSource), written before a
// whole second; a vault the bucket is protected in; its journal filled by
// Journal.Reconcile, which makes the continuous recovery point complete
// through the second before the reconcile started, after every write. A
// restore test's LATEST pick takes that second, so both contenders
// restore it: every object of the bucket.
//
// The contenders, each into a fresh bucket, interleaved pass by pass in
// alternating order (restore, test; test, restore; ...):
//
//   - restore: restore.Restorer.Run as of that second, with the defaults
//     a restore test's restore has (Concurrency 32, every object read back
//     after its write: --verify all), creating its target bucket;
//   - test: restoretest.Tester.Run with the default selection (LATEST of
//     snapshots and the continuous point) and the default sample (4,603
//     objects, 0.1% corrupt found with 99% confidence): the pick, the same
//     restore into a restore-test-* bucket, the validation (a listing of
//     every key merged with the vault's records, and the sample read
//     whole: bytes, metadata, tags) and the run's record in the vault.
//     Keep is an hour, so the restored bucket's deletion is outside the
//     timed part.
//
// Every restored bucket stays until all passes have run (MinIO removes a
// deleted bucket's objects in the background, which would weigh on the
// next timed run); then, untimed, Tester.Sweep deletes each test's bucket
// at the end of its window, and s3x.DeleteBucket the restores' targets.
//
// After each test, untimed for the ratio, the kept bucket is validated
// again twice by restore.Restorer.Validate: with the default sample, and
// with a sample of one object (the listing merge alone); the difference
// is what reading the sample costs. Each pass is logged.
//
// Every run is checked, or the benchmark fails: each restore COMPLETED
// with every object restored, its target holds every key with its ETag;
// each test SUCCESSFUL, CONTINUOUS at the same second, every object
// restored, validated with every key expected and listed, a sample of
// 4,603 read whole (bytes proved by digest, fields checked) and nothing
// failed, and its bucket holds every key with its ETag.
//
// Reported: ratio_test/restore (mean test time over mean restore time;
// target <= 1.3), restore_s, test_s, test_restore_s (the restore part of
// the test: the Run's RestoreSeconds), test_validate_s (the rest of the
// test: pick, validation, record), validate_s and validate_listing_s
// (the untimed validations), objects/s of each contender, the spread of
// each contender's passes, test_calls/object; each pass in the log.
func BenchmarkRestoreTest(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	n := scaled(b, restoreTestKeys)
	src := buildRestoreTestSource(ctx, b, srv, c, n)
	// Every write is in a second before the one the reconcile starts in.
	waitPastSecond()

	v, err := vault.Create(ctx, c, srv.BucketName(b), vault.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	protected := time.Now().UTC().Add(-time.Hour)
	if err := v.PutJSON(ctx, vault.BucketKey(src.bucket), vault.ProtectedBucket{Bucket: src.bucket, ProtectedAt: protected, FirstFullBackupAt: &protected, Events: "none"}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	p, err := (&journal.Journal{Vault: v, S3: c, Concurrency: concurrency}).Reconcile(ctx, src.bucket, journal.ReconcileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if p.Listed != int64(n) || p.Skipped != 0 {
		b.Fatalf("reconcile listed %d (want %d), skipped %d", p.Listed, n, p.Skipped)
	}
	wm, err := v.CompleteThrough(ctx, src.bucket)
	if err != nil || wm == nil {
		b.Fatalf("the journal's watermark after the reconcile: %v, %v", wm, err)
	}
	at := wm.Truncate(time.Second).UTC()
	b.Logf("setup: %d objects (%d with tags, %d with user metadata) written in %s, reconciled in %s; complete through %s, restored as of %s",
		n, src.tagged, src.meta, src.took.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), wm.UTC().Format(time.RFC3339Nano), at.Format(time.RFC3339))

	check := func(who, bucket string) {
		b.Helper()
		got, err := currentETags(ctx, c, bucket)
		if err != nil {
			b.Fatal(err)
		}
		if d := diffETags(src.want, got); d != "" {
			b.Fatalf("%s: s3://%s differs from s3://%s: %s", who, bucket, src.bucket, d)
		}
	}
	pid := serverPID(srv)
	// The restored buckets stay until every pass has run: MinIO removes a
	// deleted bucket's objects in the background, in bursts, for a while
	// after the calls return, which would weigh on the next timed run.
	var restored []string

	wantSample := min(restoreTestSample, n)
	testCalls, restoreCalls := newCallCounter(), newCallCounter()
	rc := client(ctx, b, srv, restoreCalls.option())
	tc := client(ctx, b, srv, testCalls.option())
	tester := &restoretest.Tester{S3: tc, Prefix: restoretest.TargetPrefix + "bench-"}
	sweeper := &restoretest.Tester{S3: c, Prefix: tester.Prefix} // its calls are not the test's
	var (
		tested                           []*restoretest.Run
		testRestore                      []time.Duration // the restore part of each test (RestoreSeconds)
		validateFull, validateList       []time.Duration // the untimed validations of each test's bucket
		sampleRead, bytesChecked, fields []int64
	)
	rs := &contender{name: "restore", run: func(m *meter) error {
		dst := srv.BucketName(b)
		r := &restore.Restorer{S3: rc}
		restoreCalls.reset()
		m.start()
		rep, err := r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: src.bucket, At: at, TargetBucket: dst, CreateBucket: true})
		m.stop()
		if err != nil {
			return err
		}
		if rep.State != restore.StateCompleted || rep.Restored != int64(n) || rep.Failed != 0 {
			return fmt.Errorf("state %s, restored %d, failed %d; want %s and %d\n%s", rep.State, rep.Restored, rep.Failed, restore.StateCompleted, n, rep.Text())
		}
		check("restore", dst)
		restored = append(restored, dst)
		return nil
	}}
	ts := &contender{name: "test", run: func(m *meter) error {
		testCalls.reset()
		m.start()
		run, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: src.bucket, Keep: time.Hour})
		m.stop()
		if err != nil {
			return err
		}
		val := run.Validation
		switch {
		case run.Status != restoretest.StatusSuccessful:
			return fmt.Errorf("run %s %s: %s, failures %v", run.ID, run.Status, run.StatusMessage, run.Failures)
		case run.Type != restoretest.Continuous || !run.At.Equal(at):
			return fmt.Errorf("run %s picked %s at %s, want %s at %s", run.ID, run.Type, run.At.Format(time.RFC3339), restoretest.Continuous, at.Format(time.RFC3339))
		case run.RestoreState != restore.StateCompleted || run.Objects != int64(n):
			return fmt.Errorf("run %s restore %s, %d objects; want %s and %d", run.ID, run.RestoreState, run.Objects, restore.StateCompleted, n)
		case val == nil || val.Verdict != restore.ValidationSuccessful || val.Expected != int64(n) || val.Listed != int64(n) || val.Failed != 0:
			return fmt.Errorf("run %s validation %+v; want SUCCESSFUL, %d expected and listed", run.ID, val, n)
		case val.Whole != (wantSample == n) || val.SampleSize != wantSample || val.BytesChecked != int64(wantSample) || val.FieldsChecked != int64(wantSample):
			return fmt.Errorf("run %s sample %d (whole %v), bytes checked %d, fields checked %d; want %d of each",
				run.ID, val.SampleSize, val.Whole, val.BytesChecked, val.FieldsChecked, wantSample)
		case run.DeletedAt != nil:
			return fmt.Errorf("run %s deleted its bucket inside the timed part", run.ID)
		}
		testRestore = append(testRestore, time.Duration(run.RestoreSeconds*float64(time.Second)))
		sampleRead = append(sampleRead, int64(val.SampleSize))
		bytesChecked = append(bytesChecked, val.BytesChecked)
		fields = append(fields, val.FieldsChecked)
		check("test", run.TargetBucket)

		// The validation again, on its own: with the default sample, and
		// with a sample of one object (the listing merge alone).
		r := &restore.Restorer{S3: c}
		rreq := restore.Request{Vault: v.Bucket, Bucket: src.bucket, At: at, TargetBucket: run.TargetBucket}
		for _, vv := range []struct {
			fraction, confidence float64
			sample               int
			d                    *[]time.Duration
		}{{0.001, 0.99, wantSample, &validateFull}, {0.5, 0.5, 1, &validateList}} {
			vm := &meter{serverPID: m.serverPID}
			vm.start()
			got, err := r.Validate(ctx, restore.ValidateRequest{Restore: rreq, Target: run.TargetBucket, Fraction: vv.fraction, Confidence: vv.confidence, Seed: run.Seed})
			vm.stop()
			if err != nil {
				return err
			}
			if got.Verdict != restore.ValidationSuccessful || got.SampleSize != vv.sample || got.Listed != int64(n) {
				return fmt.Errorf("validation of %s again (sample %d): %+v", run.TargetBucket, vv.sample, got)
			}
			*vv.d = append(*vv.d, vm.d)
		}
		tested = append(tested, run)
		return nil
	}}
	b.ResetTimer()
	for range b.N {
		for pass := range restoreTestPasses {
			order := []*contender{rs, ts}
			if pass%2 == 1 {
				order = []*contender{ts, rs}
			}
			for _, ct := range order {
				m := &meter{serverPID: pid}
				if err := ct.run(m); err != nil {
					b.Fatalf("%s: %v", ct.name, err)
				}
				if !m.stopped {
					b.Fatalf("%s: the run did not time itself", ct.name)
				}
				ct.d = append(ct.d, m.d)
				ct.server = append(ct.server, m.server)
				ct.client = append(ct.client, m.client)
				ct.quiet = append(ct.quiet, m.quiet)
			}
			i := len(ts.d) - 1
			b.Logf("pass %d: restore %.2f s; test %.2f s (its restore %.2f s, the rest %.2f s), test/restore %.3f; validation again %.2f s, listing merge alone %.2f s",
				len(rs.d), rs.d[i].Seconds(), ts.d[i].Seconds(), testRestore[i].Seconds(), (ts.d[i] - testRestore[i]).Seconds(),
				ts.d[i].Seconds()/rs.d[i].Seconds(), validateFull[i].Seconds(), validateList[i].Seconds())
		}
	}
	b.StopTimer()
	// Untimed: the sweeper deletes each test's bucket once its window has
	// ended, and nothing else; the restores' targets are deleted too.
	for _, run := range tested {
		sw, err := sweeper.Sweep(ctx, v, run.DeleteAfter)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(run.TargetBucket)}); !s3x.IsNotFound(err) {
			b.Fatalf("the sweep (deleted %v) left s3://%s: %v", sw.Deleted, run.TargetBucket, err)
		}
	}
	for _, dst := range restored {
		if _, err := s3x.DeleteBucket(ctx, c, dst); err != nil {
			b.Fatalf("delete s3://%s: %v", dst, err)
		}
	}

	mean := func(ds []time.Duration) float64 { return sum(ds).Seconds() / float64(len(ds)) }
	restoreS, testS, testRestoreS := mean(rs.d), mean(ts.d), mean(testRestore)
	ratio := testS / restoreS
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ratio, "ratio_test/restore")
	b.ReportMetric(testRestoreS/restoreS, "ratio_testrestore/restore")
	b.ReportMetric(restoreS, "restore_s")
	b.ReportMetric(testS, "test_s")
	b.ReportMetric(testRestoreS, "test_restore_s")
	b.ReportMetric(testS-testRestoreS, "test_validate_s")
	b.ReportMetric(mean(validateFull), "validate_s")
	b.ReportMetric(mean(validateList), "validate_listing_s")
	b.ReportMetric(rs.rate(n), "restore_objects/s")
	b.ReportMetric(ts.rate(n), "test_objects/s")
	b.ReportMetric(float64(n)/(mean(validateFull)), "validate_objects/s")
	b.ReportMetric(spreadAll(rs.d), "restore_spread")
	b.ReportMetric(spreadAll(ts.d), "test_spread")
	if pid != 0 {
		b.ReportMetric(cpuRatio(rs, ts, n), "cpuratio_test/restore")
	}
	calls, perObject := perUnit(testCalls.snapshot(), n)
	b.ReportMetric(perObject, "test_calls/object")
	rcalls, rPerObject := perUnit(restoreCalls.snapshot(), n)
	b.ReportMetric(rPerObject, "restore_calls/object")
	for _, ct := range []*contender{rs, ts} {
		b.Logf("%-8s %s", ct.name, ct.summary(n))
	}
	b.Logf("S3 calls per object (count), the last test: %s; the last restore: %s", calls, rcalls)
	b.Logf("samples read whole %v, bytes proved %v, fields checked %v; %d objects, %d passes: restore %.2f s, test %.2f s (its restore %.2f s, validation and the rest %.2f s; the validation alone %.2f s, of which the listing merge %.2f s); test/restore %.3f (target <= %.2f: %s)",
		sampleRead, bytesChecked, fields, n, len(rs.d), restoreS, testS, testRestoreS, testS-testRestoreS, mean(validateFull), mean(validateList), ratio, restoreTestGoal, verdict(ratio <= restoreTestGoal))
}

// spreadAll is the range of ds relative to their mean.
func spreadAll(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	return (hi - lo).Seconds() / (sum(ds).Seconds() / float64(len(ds)))
}
