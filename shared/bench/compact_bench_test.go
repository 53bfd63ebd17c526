package bench

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const (
	// compactRecords is the history of BenchmarkCompactAfterChurn, times
	// the scale: the target's size, which takes about 2 minutes here.
	compactRecords    = 1000000
	compactChurnEvery = 100  // a churn writes a new version of 1 key in 100
	compactSegment    = 5000 // records per segment, as reconcile flushes them
	compactWriters    = 4    // segments written at once (set-up)
	compactGoal       = 0.10 // incremental compaction time / full rewrite time, at most
)

// BenchmarkCompactAfterChurn measures an incremental compaction after 1%
// of a journal's keys changed against a full rewrite of the same history.
// A vault holds two journals of N records (one version record per key,
// written with vault.WriteSegment in segments of 5,000 records that each
// span the key range, as event batches do; not timed), and
// vault.CompactionLag is 0. Timed, in this order:
//
//  1. full: the first Compact of journal A, which rewrites all N records
//     into one run (the peer);
//  2. 1% churn (N/100 new versions of keys spread over the range, in
//     segments of 5,000; not timed), then Compact of A;
//  3. another 1% churn, then Compact of A again (the index's binary
//     counter merges the two runs of churn into one here);
//  4. full: the first Compact of journal B.
//
// Full, incremental, incremental, full: a steady drift of the machine's
// speed weighs on both kinds alike. Each compaction's stats are checked
// (records, segments, runs) and the journal's status afterwards (every
// record in runs, nothing pending). Reported: the full and incremental
// times, ratio_incr/full of the summed times (target <= 0.10),
// ratio_first_incr/full (the compaction right after the full one), the
// CPU-cost ratio, and the compressed bytes per record of segments and
// runs.
func BenchmarkCompactAfterChurn(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	n := scaled(b, compactRecords)
	n = max(compactChurnEvery, n-n%compactChurnEvery)
	churn := n / compactChurnEvery
	oldLag := vault.CompactionLag
	vault.CompactionLag = 0
	b.Cleanup(func() { vault.CompactionLag = oldLag })
	c := client(ctx, b, srv)
	full := &contender{name: "full"}
	incr := &contender{name: "incremental"}
	var first []time.Duration // the first incremental of each pass
	var steps []string
	var size journalSize
	record := func(c *contender, m *meter) {
		c.d = append(c.d, m.d)
		c.server = append(c.server, m.server)
		c.client = append(c.client, m.client)
		c.quiet = append(c.quiet, m.quiet)
	}
	pid := serverPID(srv)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		v, err := vault.Create(ctx, c, srv.BucketName(b), vault.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		written := t0.Add(-24 * time.Hour).UTC().Truncate(time.Second)
		for _, bucket := range []string{"churn-a", "churn-b"} {
			if _, err := writeHistory(ctx, v, bucket, n, func(j int) int { return j }, 0, written); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("set-up: two journals of %d records in %d segments each, written in %s", n, n/compactSegment, time.Since(t0).Round(time.Millisecond))
		b.StartTimer()
		total := map[string]int64{"churn-a": int64(n), "churn-b": int64(n)}
		for step := range 4 {
			bucket := "churn-a"
			if step == 3 {
				bucket = "churn-b"
			}
			segs, added := 0, n
			if step == 1 || step == 2 {
				off := (17 + 37*step) % compactChurnEvery
				segs, err = writeHistory(ctx, v, bucket, churn, func(j int) int { return j*compactChurnEvery + off }, step, written.Add(time.Duration(step)*time.Hour))
				if err != nil {
					b.Fatal(err)
				}
				total[bucket] += int64(churn)
				added = churn
			} else {
				segs = n / compactSegment
			}
			time.Sleep(5 * time.Millisecond) // segment ids are milliseconds: every one before the compaction's now
			m := &meter{serverPID: pid}
			m.start()
			st, err := v.Compact(ctx, bucket, time.Now())
			m.stop()
			if err != nil {
				b.Fatalf("compact %s (step %d): %v", bucket, step+1, err)
			}
			js, err := v.Journal(ctx, bucket)
			if err != nil {
				b.Fatal(err)
			}
			if st.Segments != segs || js.Records != total[bucket] || js.Pending != 0 || st.Records < int64(added) {
				b.Fatalf("compact %s (step %d): stats %+v, journal %+v; want %d segments compacted and %d records in runs, none pending",
					bucket, step+1, st, js, segs, total[bucket])
			}
			kind := "incremental"
			if step == 0 || step == 3 {
				kind = "full"
				if st.Records != int64(n) || st.Runs != 1 {
					b.Fatalf("full compaction of %s: stats %+v, want %d records in 1 run", bucket, st, n)
				}
				record(full, m)
				if step == 0 {
					if size, err = measureJournal(ctx, c, v, bucket); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				record(incr, m)
				if step == 1 {
					first = append(first, m.d)
				}
			}
			steps = append(steps, fmt.Sprintf("%s %s: %s, %d segments, %d records written in %d shards, %d runs merged, %d runs after",
				kind, bucket, m.d.Round(time.Millisecond), st.Segments, st.Records, st.Shards, st.Merged, st.Runs))
		}
	}
	b.StopTimer()

	ratio := sum(incr.d).Seconds() / sum(full.d).Seconds()
	meanFull := sum(full.d) / time.Duration(len(full.d))
	meanIncr := sum(incr.d) / time.Duration(len(incr.d))
	firstRatio := (sum(first) / time.Duration(len(first))).Seconds() / meanFull.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(meanFull.Seconds(), "full_s")
	b.ReportMetric(meanIncr.Seconds(), "incr_s")
	b.ReportMetric(ratio, "ratio_incr/full")
	b.ReportMetric(firstRatio, "ratio_first_incr/full")
	b.ReportMetric(float64(n)/meanFull.Seconds(), "full_records/s")
	if pid != 0 {
		b.ReportMetric(1/cpuRatio(incr, full, 1), "cpuratio_incr/full")
	}
	b.ReportMetric(size.segmentBytes, "segment_bytes/record")
	b.ReportMetric(size.runBytes, "run_bytes/record")
	b.Logf("history of %d records, %d (%d%%) more before each incremental: full %s, incremental %s on average (the first after a full %s); incremental/full %.3f (target <= %.2f: %s), first incremental/full %.3f; CPU-cost %.3f",
		n, churn, 100/compactChurnEvery, meanFull.Round(time.Millisecond), meanIncr.Round(time.Millisecond), (sum(first) / time.Duration(len(first))).Round(time.Millisecond),
		ratio, compactGoal, verdict(ratio <= compactGoal), firstRatio, 1/cpuRatio(incr, full, 1))
	b.Logf("compactions, in order: %s", strings.Join(steps, "; "))
	b.Logf("journal size: %s", size)
	for _, c := range []*contender{full, incr} {
		sv, cl := c.cpuPer(1)
		b.Logf("%-11s times %v; CPU per compaction: server %.0f ms, client %.0f ms", c.name, c.d, sv, cl)
	}
}

// writeHistory writes count version records into bucket's journal in
// vault v, one for key keyAt(j) for each j < count (generation gen: its
// own version ids and data keys), in segments of compactSegment records
// that each span the range, compactWriters at once. It returns how many
// segments it wrote.
func writeHistory(ctx context.Context, v *vault.Vault, bucket string, count int, keyAt func(int) int, gen int, written time.Time) (int, error) {
	segs := (count + compactSegment - 1) / compactSegment
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(compactWriters)
	for s := range segs {
		g.Go(func() error {
			recs := make([]vault.Record, 0, count/segs+1)
			for j := s; j < count; j += segs {
				recs = append(recs, historyRecord(bucket, keyAt(j), gen, written))
			}
			_, err := v.WriteSegment(gctx, bucket, recs)
			return err
		})
	}
	return segs, g.Wait()
}

// historyRecord is the version record of generation gen of key i of a
// synthetic bucket: what an Object Created event of a 1-16 KiB object
// journals (a sequencer, S3-like version id and ETag, Content-Type, the
// data key of its bytes).
func historyRecord(bucket string, i, gen int, written time.Time) vault.Record {
	key := fmt.Sprintf("photos/%02d/%03d/img-%08d.jpg", i%100, (i/100)%1000, i)
	sum := md5.Sum([]byte(fmt.Sprint(bucket, "\x00", i, "\x00", gen)))
	vid := hex.EncodeToString(sum[:])[:32]
	etag := hex.EncodeToString(sum[8:]) + hex.EncodeToString(sum[:8])
	t := written.Add(time.Duration(i%86400) * time.Second)
	return vault.Record{
		Op: vault.OpVersion, Key: key, VersionID: vid, Time: t, Origin: vault.OriginEvent,
		Sequencer: fmt.Sprintf("00%016X", t.UnixNano()+int64(i)), Size: int64(1024 + (i*7919)%(15<<10)), ETag: etag, StorageClass: "STANDARD",
		Meta: &vault.Meta{ContentType: "image/jpeg"}, Data: vault.DataKey(bucket, key, vid, "", time.Time{}), DataETag: etag,
	}
}

// journalSize is the compressed bytes per record of a journal's segments
// and of its runs' shards, and the plain JSON bytes of a record.
type journalSize struct {
	segmentBytes, runBytes, jsonBytes float64
	segments, shards                  int
	index                             int64 // bytes of the journal's index
}

func (s journalSize) String() string {
	return fmt.Sprintf("segments %.1f bytes/record compressed (%d objects), runs %.1f bytes/record (%d shards); a record is %.0f bytes of JSON, so segments are %.0f%% of it; the index is %d bytes (%.0f a shard)",
		s.segmentBytes, s.segments, s.runBytes, s.shards, s.jsonBytes, 100*s.segmentBytes/s.jsonBytes, s.index, float64(s.index)/float64(max(1, s.shards)))
}

// measureJournal sums the sizes of bucket's segments and run shards in
// vault vb, per record of its index's runs.
func measureJournal(ctx context.Context, c *s3.Client, v *vault.Vault, bucket string) (journalSize, error) {
	var s journalSize
	var segBytes, runBytes int64
	for _, pfx := range []string{vault.SegmentPrefix(bucket), "runs/" + bucket + "/"} {
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(pfx)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return s, err
			}
			for _, o := range page.Contents {
				k := aws.ToString(o.Key)
				switch {
				case strings.HasSuffix(k, ".json"):
				case strings.HasPrefix(pfx, "runs/"):
					runBytes += aws.ToInt64(o.Size)
					s.shards++
				default:
					segBytes += aws.ToInt64(o.Size)
					s.segments++
				}
			}
		}
	}
	js, err := v.Journal(ctx, bucket)
	if err != nil {
		return s, err
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(vault.IndexKey(bucket))})
	if err != nil {
		return s, err
	}
	s.index = aws.ToInt64(head.ContentLength)
	if js.Records == 0 {
		return s, fmt.Errorf("journal of %s: no records in runs", bucket)
	}
	s.segmentBytes = float64(segBytes) / float64(js.Records)
	s.runBytes = float64(runBytes) / float64(js.Records)
	var plain int
	const sample = 1000
	for i := range sample {
		line, err := json.Marshal(historyRecord(bucket, i*997, 0, time.Now()))
		if err != nil {
			return s, err
		}
		plain += len(line) + 1
	}
	s.jsonBytes = float64(plain) / sample
	return s, nil
}
