package bench

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	journalObjects   = 10000 // times the scale
	journalBatch     = 500   // changes per Ingest call: one Lambda invocation's batch, as deployed (infra.DefaultJournalBatchSize)
	journalInvokes   = 4     // Ingest calls at once, as concurrent Lambda invocations
	journalMinSize   = 1 << 10
	journalMaxSize   = 16 << 10
	journalRatioGoal = 0.8
)

// BenchmarkJournalThroughput measures how fast the journal backs up new
// versions against the limit of the same server: N small objects (1-16
// KiB) in a versioned bucket, then
//
//   - raw: one CopyObject per version into a fresh bucket, 32 in flight;
//   - journal: journal.Ingest of Created changes (as S3 events decode, with
//     their size) in batches of 500, 4 batches at once, Concurrency 8
//     each (32 requests in flight in all, as raw: the same concurrency),
//     into a fresh vault, as the journal runs on this server: every
//     version is relayed (GetObject of the version, PutObject with
//     If-None-Match: * of its data key, 2 calls; see journal/relay.go);
//   - rawrelay (diagnostic): the relay's S3 calls per version and nothing
//     else (GetObject of the version, its body read, and a create-only
//     PutObject with Content-MD5 into a fresh bucket), 32 in flight;
//   - rawpool (diagnostic): raw's copies made by 32 workers, each copying
//     one version after another, instead of a goroutine per copy (the
//     journal captures with workers since 24c11c5; a new goroutine grows
//     its stack in the SDK each time);
//   - journalcopy (diagnostic): the journal with the relay turned off
//     (RelayMax < 0), the copy path it took before on this server: 3
//     calls per version, HeadObject of the version, HeadObject of the
//     vault data key, CopyObject;
//   - journalcc (diagnostic): journalcopy as on a server that honours a
//     create-only copy (If-None-Match: * on CopyObject, as Amazon S3
//     does; MinIO ignores it): 2 calls per version, HeadObject of the
//     version and the conditional CopyObject, the path of versions above
//     RelayMax on Amazon S3. MinIO's answer to the condition is emulated
//     without any call (see createOnlyMemo).
//
// They run in mirrored order (raw, journal, rawrelay, rawpool,
// journalcopy, journalcc, then the reverse) and each one's two times add up,
// so that other load on the machine weighs on all alike. Reported:
// versions/s of each, ratio_journal/raw (target >= 0.8), the S3 calls per
// version of the journals, and cpuratio_*/raw: the same ratios estimated
// from the CPU time the server and the client spent per version (see
// cpuRatio), which other load on the machine disturbs much less than wall
// time.
func BenchmarkJournalThroughput(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	n := scaled(b, journalObjects)
	setup := client(ctx, b, srv)

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
	setupTime := time.Since(start)
	changes, versions, err := createdChanges(ctx, setup, src)
	if err != nil {
		b.Fatal(err)
	}
	if len(changes) != n {
		b.Fatalf("listed %d versions, wrote %d", len(changes), n)
	}

	c := client(ctx, b, srv, newCallCounter().option())
	jCalls, copyCalls, ccCalls := newCallCounter(), newCallCounter(), newCallCounter()
	raw := &contender{name: "raw", run: func(m *meter) error { return runRaw(ctx, b, srv, c, src, versions, m, copyVersions) }}
	jr := &contender{name: "journal", run: func(m *meter) error {
		return runJournalOn(ctx, b, srv, src, changes, journalInvokes, 0, jCalls, m, nil)
	}}
	rawRelay := &contender{name: "rawrelay", run: func(m *meter) error {
		dst := srv.NewBucket(b, true)
		m.start()
		err := relayCalls(ctx, c, src, dst, versions)
		m.stop()
		return err
	}}
	jcopy := &contender{name: "journalcopy", run: func(m *meter) error {
		return runJournalOn(ctx, b, srv, src, changes, journalInvokes, -1, copyCalls, m, nil)
	}}
	rawPool := &contender{name: "rawpool", run: func(m *meter) error {
		return runRaw(ctx, b, srv, c, src, versions, m, copyByWorkers)
	}}
	jcc := &contender{name: "journalcc", run: func(m *meter) error {
		return runJournalOn(ctx, b, srv, src, changes, journalInvokes, -1, ccCalls, m, func(c s3x.Client) s3x.Client { return &createOnlyMemo{Client: c} })
	}}
	all := []*contender{raw, jr, rawRelay, rawPool, jcopy, jcc}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		runMirrored(b, pid, all)
	}
	b.StopTimer()

	rawRate, jRate := raw.rate(n), jr.rate(n)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rawRate, "raw_versions/s")
	for _, c := range all[1:] {
		b.ReportMetric(c.rate(n), c.name+"_versions/s")
	}
	for _, c := range all[1:] {
		b.ReportMetric(c.rate(n)/rawRate, "ratio_"+c.name+"/raw")
		if pid != 0 {
			b.ReportMetric(cpuRatio(c, raw, n), "cpuratio_"+c.name+"/raw")
		}
	}
	b.ReportMetric(raw.spread(), "raw_spread")
	b.ReportMetric(jr.spread(), "journal_spread")
	// Go keeps 10 lines of a benchmark's log: the verdict first.
	b.Logf("%d versions (written in %s): raw %.0f/s, journal %.0f/s (%d batches of %d, %d at once), ratio %.3f (target >= %.2f: %s); CPU-cost ratio journal/raw %.3f",
		n, setupTime.Round(time.Millisecond), rawRate, jRate, (n+journalBatch-1)/journalBatch, journalBatch, journalInvokes, jRate/rawRate, journalRatioGoal, verdict(jRate/rawRate >= journalRatioGoal),
		cpuRatio(jr, raw, n))
	b.Logf("diagnostics, ratio to raw (CPU-cost ratio): rawrelay %.3f (%.3f), rawpool %.3f (%.3f), journalcopy %.3f (%.3f), journalcc %.3f (%.3f); journal/rawpool %.3f (%.3f)",
		rawRelay.rate(n)/rawRate, cpuRatio(rawRelay, raw, n), rawPool.rate(n)/rawRate, cpuRatio(rawPool, raw, n), jcopy.rate(n)/rawRate, cpuRatio(jcopy, raw, n),
		jcc.rate(n)/rawRate, cpuRatio(jcc, raw, n), jRate/rawPool.rate(n), cpuRatio(jr, rawPool, n))
	b.ReportMetric(jRate/rawPool.rate(n), "ratio_journal/rawpool")
	var perVersion []string
	for _, x := range []struct {
		c     *contender
		calls *callCounter
	}{{jr, jCalls}, {jcopy, copyCalls}, {jcc, ccCalls}} {
		calls, per := perUnit(x.calls.snapshot(), len(x.c.d)*n)
		b.ReportMetric(per, x.c.name+"_calls/version")
		perVersion = append(perVersion, x.c.name+": "+calls)
	}
	b.Logf("S3 calls per version (count): %s", strings.Join(perVersion, "; "))
	for _, c := range all {
		b.Logf("%-11s %s", c.name, c.summary(n))
	}
}

// runRaw copies versions into a fresh bucket with copyFn, timed by m, and
// checks the count.
func runRaw(ctx context.Context, b *testing.B, srv *locals3.Server, c *s3.Client, src string, versions []version, m *meter,
	copyFn func(context.Context, *s3.Client, string, string, []version) error) error {
	dst := srv.NewBucket(b, true)
	m.start()
	if err := copyFn(ctx, c, src, dst, versions); err != nil {
		return err
	}
	m.stop()
	if got, err := countKeys(ctx, c, dst, ""); err != nil || got != len(versions) {
		return fmt.Errorf("raw copy: %d objects in %s (%v), want %d", got, dst, err, len(versions))
	}
	return nil
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

// runJournalOn journals changes into a fresh vault in batches of
// journalBatch, invokes batches at once, timed by m (vault creation
// excluded), adding its S3 calls to calls. The journal's RelayMax is
// relayMax, and its client (vault and source) is wrapped by wrap, when not
// nil. It checks that every change was journaled and its data stored.
func runJournalOn(ctx context.Context, b *testing.B, srv *locals3.Server, src string, changes []event.Change, invokes int, relayMax int64, calls *callCounter, m *meter, wrap func(s3x.Client) s3x.Client) error {
	local := newCallCounter()
	c := client(ctx, b, srv, local.option())
	vb := srv.BucketName(b)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		return err
	}
	var jc s3x.Client = c
	if wrap != nil {
		jc = wrap(c)
		v.S3 = jc
	}
	if err := v.PutJSON(ctx, vault.BucketKey(src), vault.ProtectedBucket{Bucket: src, ProtectedAt: time.Now().UTC(), Events: "webhook:" + srv.WebhookARN}); err != nil {
		return err
	}
	// The same concurrency as raw: 32 requests in flight in all, shared
	// by the invocations running at once (4 x 8, or 1 x 32).
	j := &journal.Journal{Vault: v, S3: jc, Concurrency: max(1, concurrency/invokes), RelayMax: relayMax}
	local.reset() // count the journal's calls, not the set-up's
	var records, bad atomic.Int64
	var firstErr atomic.Value
	m.start()
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
		return err
	}
	m.stop()
	calls.merge(local)
	if bad.Load() > 0 || records.Load() != int64(len(changes)) {
		return fmt.Errorf("journal: %d of %d changes not journaled as one version record (%d records); first: %v", bad.Load(), len(changes), records.Load(), firstErr.Load())
	}
	if got, err := countData(ctx, c, vb); err != nil || got != len(changes) {
		return fmt.Errorf("journal: %d data objects in vault %s (%v), want %d", got, vb, err, len(changes))
	}
	return nil
}

// countData counts the data objects of vault vb, but for the journal's
// probe object (journal.ProbeKey).
func countData(ctx context.Context, c *s3.Client, vb string) (int, error) {
	n, err := countKeys(ctx, c, vb, "data/")
	if err != nil {
		return 0, err
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vb), Key: aws.String(journal.ProbeKey(vb))}); err == nil {
		n--
	} else if !s3x.IsNotFound(err) {
		return 0, err
	}
	return n, nil
}

// copyByWorkers copies versions into dst as copyVersions does, 32 in
// flight, but by 32 goroutines that each copy one version after another.
func copyByWorkers(ctx context.Context, c *s3.Client, src, dst string, vs []version) error {
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(concurrency, len(vs)) {
		g.Go(func() error {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(vs) {
					return nil
				}
				if err := copyOne(gctx, c, src, dst, vs[k]); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// relayCalls makes, per version, the S3 calls the journal's relay makes
// for it: GetObject of the version (its body read whole), then PutObject
// of the bytes into dst with If-None-Match: * and Content-MD5.
func relayCalls(ctx context.Context, c *s3.Client, src, dst string, vs []version) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, v := range vs {
		g.Go(func() error {
			out, err := c.GetObject(gctx, &s3.GetObjectInput{Bucket: aws.String(src), Key: aws.String(v.Key), VersionId: aws.String(v.VersionID),
				ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				return err
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return err
			}
			sum := md5.Sum(body)
			_, err = c.PutObject(gctx, &s3.PutObjectInput{
				Bucket: aws.String(dst), Key: aws.String(v.Key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
				ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])), IfNoneMatch: aws.String("*"),
				ContentType: aws.String("application/octet-stream"),
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

// createOnlyMemo makes a client behave, for CopyObject with If-None-Match:
// *, as a server that honours the condition (Amazon S3): a key copied to
// before through it answers 412, a key being copied to at the same time
// 409. It knows no other writes, so it is exact only for a bucket that
// nothing else writes to (a fresh vault) and costs no call: the journal's
// conditional path measured on a server that ignores the condition.
type createOnlyMemo struct {
	s3x.Client
	mu      sync.Mutex
	written map[string]bool // bucket/key -> copy finished (false: running)
}

func (c *createOnlyMemo) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if aws.ToString(in.IfNoneMatch) != "*" {
		return c.Client.CopyObject(ctx, in, o...)
	}
	k := aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key)
	c.mu.Lock()
	if c.written == nil {
		c.written = map[string]bool{}
	}
	done, seen := c.written[k]
	if !seen {
		c.written[k] = false
	}
	c.mu.Unlock()
	switch {
	case seen && done:
		return nil, condError(http.StatusPreconditionFailed, "PreconditionFailed")
	case seen:
		return nil, condError(http.StatusConflict, "ConditionalRequestConflict")
	}
	out, err := c.Client.CopyObject(ctx, in, o...)
	c.mu.Lock()
	if err != nil {
		delete(c.written, k)
	} else {
		c.written[k] = true
	}
	c.mu.Unlock()
	return out, err
}

// condError is the error the SDK returns for a refused conditional write.
func condError(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "CopyObject", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
		Err:      &smithy.GenericAPIError{Code: code, Message: code},
	}}
}
