package restore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// objState is everything a restore must bring back of one key.
type objState struct {
	Sum                                       string
	Size                                      int64
	ContentType, ContentEncoding, Disposition string
	Language, CacheControl                    string
	User                                      map[string]string
	Tags                                      map[string]string
}

// capture reads the current state of every key of a bucket.
func capture(t *testing.T, ctx context.Context, c *s3.Client, bucket string) map[string]objState {
	t.Helper()
	out := map[string]objState{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
			if err != nil {
				t.Fatalf("get %s/%s: %v", bucket, k, err)
			}
			body, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatalf("read %s/%s: %v", bucket, k, err)
			}
			sum := sha256.Sum256(body)
			tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(k)})
			if err != nil {
				t.Fatalf("tags %s/%s: %v", bucket, k, err)
			}
			tags := map[string]string{}
			for _, x := range tg.TagSet {
				tags[aws.ToString(x.Key)] = aws.ToString(x.Value)
			}
			user := g.Metadata
			if len(user) == 0 {
				user = nil
			}
			out[k] = objState{
				Sum: fmt.Sprintf("%x", sum[:8]), Size: int64(len(body)), ContentType: aws.ToString(g.ContentType),
				ContentEncoding: aws.ToString(g.ContentEncoding), Disposition: aws.ToString(g.ContentDisposition),
				Language: aws.ToString(g.ContentLanguage), CacheControl: aws.ToString(g.CacheControl),
				User: user, Tags: tags,
			}
		}
	}
	return out
}

// modelKeys are the keys the workload writes: spaces, '+', '%', unicode,
// nesting, and one of 1024 bytes.
func modelKeys() []string {
	// 1024 bytes in segments of at most 255 (MinIO stores keys as paths).
	long := "long/" + strings.Repeat(strings.Repeat("k", 200)+"/", 5)
	long += strings.Repeat("z", 1024-len(long))
	return []string{
		"a.txt", "with space.txt", "plus+sign", "100%/pct%20lit", "unicode/café-日本語.bin",
		"dir/sub/deep/x.json", "dir/sub/y", "dir/z", "zero", "multi/part.bin", long,
	}
}

type workload struct {
	t      *testing.T
	ctx    context.Context
	c      *s3.Client
	bucket string
	rng    *rand.Rand
	n      int
	purged map[string]bool // keys with a version permanently deleted this phase
	events int             // events the server owes the webhook: one per successful change
}

func (w *workload) put(key string, size int, tags bool) {
	w.t.Helper()
	w.n++
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(w.rng.IntN(256))
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String([]string{"text/plain", "application/json", "image/png"}[w.rng.IntN(3)]),
		Metadata:    map[string]string{"writer": "model", "n": strconv.Itoa(w.n)},
	}
	if w.rng.IntN(3) == 0 {
		in.CacheControl = aws.String("max-age=" + strconv.Itoa(w.rng.IntN(1000)))
		in.ContentDisposition = aws.String(`attachment; filename="x.bin"`)
		in.ContentLanguage = aws.String("fr")
		in.ContentEncoding = aws.String("identity")
	}
	if tags {
		in.Tagging = aws.String("class=" + strconv.Itoa(w.rng.IntN(3)) + "&owner=model")
	}
	if _, err := w.c.PutObject(w.ctx, in); err != nil {
		w.t.Fatalf("put %q: %v", key, err)
	}
	w.events++
}

func (w *workload) multipart(key string) {
	w.t.Helper()
	up, err := w.c.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(key), ContentType: aws.String("application/octet-stream")})
	if err != nil {
		w.t.Fatalf("multipart %q: %v", key, err)
	}
	var parts []types.CompletedPart
	for i, size := range []int{5 << 20, 1 << 20} {
		body := bytes.Repeat([]byte{byte(w.rng.IntN(256))}, size)
		out, err := w.c.UploadPart(w.ctx, &s3.UploadPartInput{Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
		if err != nil {
			w.t.Fatalf("upload part: %v", err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	if _, err := w.c.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		w.t.Fatalf("complete multipart: %v", err)
	}
	w.events++
}

func (w *workload) versions(key string) []string {
	out, err := w.c.ListObjectVersions(w.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(w.bucket), Prefix: aws.String(key)})
	if err != nil {
		w.t.Fatalf("list versions: %v", err)
	}
	var ids []string
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	for _, m := range out.DeleteMarkers {
		if aws.ToString(m.Key) == key {
			ids = append(ids, aws.ToString(m.VersionId))
		}
	}
	return ids
}

// step does one random operation.
func (w *workload) step(keys []string, allowPurge bool) {
	w.t.Helper()
	key := keys[w.rng.IntN(len(keys))]
	switch op := w.rng.IntN(100); {
	case key == "zero":
		w.put(key, 0, w.rng.IntN(2) == 0)
	case key == "multi/part.bin" && op < 50:
		w.multipart(key)
	case op < 40:
		w.put(key, w.rng.IntN(2048), w.rng.IntN(2) == 0)
	case op < 50: // several overwrites of one key inside one second
		for range 2 + w.rng.IntN(3) {
			w.put(key, w.rng.IntN(512), false)
		}
	case op < 65:
		if _, err := w.c.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)}); err != nil {
			w.t.Fatalf("delete %q: %v", key, err)
		}
		w.events++
	case op < 75 && allowPurge:
		if ids := w.versions(key); len(ids) > 0 {
			id := ids[w.rng.IntN(len(ids))]
			if _, err := w.c.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key), VersionId: aws.String(id)}); err != nil {
				w.t.Fatalf("delete version %q@%s: %v", key, id, err)
			}
			w.purged[key] = true
			w.events++
		}
	case op < 88:
		_, err := w.c.PutObjectTagging(w.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(w.bucket), Key: aws.String(key), Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("retagged"), Value: aws.String(strconv.Itoa(w.rng.IntN(100)))}}}})
		if err != nil && !s3x.IsNotFound(err) && !s3x.IsDeleteMarker(err) {
			w.t.Fatalf("tag %q: %v", key, err)
		}
		if err == nil {
			w.events++
		}
	default: // a metadata change: copy in place, which makes a new version
		_, err := w.c.CopyObject(w.ctx, &s3.CopyObjectInput{
			Bucket: aws.String(w.bucket), Key: aws.String(key), CopySource: aws.String(s3x.CopySource(w.bucket, key, "")),
			MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("text/csv"),
			Metadata: map[string]string{"changed": strconv.Itoa(w.rng.IntN(100))},
		})
		if err != nil && !s3x.IsNotFound(err) && !s3x.IsDeleteMarker(err) {
			w.t.Fatalf("copy in place %q: %v", key, err)
		}
		if err == nil {
			w.events++
		}
	}
}

// waitNextSecond sleeps until just after the next second starts.
func waitNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 30*time.Millisecond).Sub(now))
}

// receive collects the changes of n events (webhook bodies; MinIO sends a
// body that decodes to no change for a delete of a missing key).
func receive(t *testing.T, ch <-chan []byte, n int) []event.Change {
	t.Helper()
	var out []event.Change
	deadline := time.After(30 * time.Second)
	for got := 0; got < n; got++ {
		select {
		case b := <-ch:
			cs, err := event.Decode(b)
			if err != nil {
				t.Fatalf("decode webhook body: %v\n%s", err, b)
			}
			out = append(out, cs...)
		case <-deadline:
			t.Fatalf("the server delivered %d of %d events in 30s", got, n)
		}
	}
	return out
}

type delivery struct {
	name      string
	twice     bool    // every event delivered twice
	shuffle   bool    // out of order
	drop      float64 // share of version events dropped
	late      bool    // some events arrive one phase late
	reconcile bool    // reconcile after every phase
}

// TestModelPointInTime is the model-based test of invariant 1 and 2: random
// workloads on the real server, the true state of the bucket captured at
// the end of each second the workload touched, then restores as of those
// seconds compared with it key by key.
func TestModelPointInTime(t *testing.T) {
	// versitygw's events carry keys without URL encoding and no version
	// ids, and its listings date noncurrent versions inexactly: it cannot
	// be the model's ground truth.
	locals3.ForTest(t).RequireExactHistory(t)
	deliveries := []delivery{
		{name: "events-twice-shuffled", twice: true, shuffle: true},
		{name: "events-dropped-late-reconciled", shuffle: true, drop: 0.35, late: true, reconcile: true},
		{name: "reconcile-only", drop: 1, reconcile: true},
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BUCKETVAULT_MODEL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	phases := 7
	if testing.Short() {
		phases = 4
	}
	for i, d := range deliveries {
		t.Run(d.name, func(t *testing.T) {
			t.Logf("seed %d (BUCKETVAULT_MODEL_SEED reproduces)", seed+uint64(i))
			runModel(t, d, seed+uint64(i), phases)
		})
	}
}

func runModel(t *testing.T, d delivery, seed uint64, phases int) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bucket := srv.NewBucket(t, true)
	vb := srv.BucketName(t)
	v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := srv.Subscribe(bucket)
	defer cancel()
	if err := srv.EnableEvents(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: v, S3: c, Copy: s3x.CopyOptions{Threshold: 5 << 20, PartSize: 5 << 20}}
	// Protected from the start (the bucket is empty: the journal knows
	// every version from then on), with a one-day window, which expiry
	// runs a day after a phase's second fold to that second (below).
	protectedAt := time.Now().UTC()
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: protectedAt, FirstFullBackupAt: &protectedAt, WindowDays: 1}); err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, ctx: ctx, c: c, bucket: bucket, rng: rng}
	keys := modelKeys()
	truth := map[int64]map[string]objState{}
	// Keys whose permanent deletion in a phase may be known only from the
	// next reconcile (its event dropped): S3 keeps no record of when a
	// version was deleted, so the reconcile that notices dates it, and the
	// key is not comparable as of that phase's second.
	uncertain := map[int64]map[string]bool{}
	var seconds []int64
	var lateQ []event.Change
	tagChanged := map[string]bool{} // keys whose tags changed after a dropped create
	// A late event is captured after the next phase's writes. Where those
	// retagged its key, it reads tags newer than its own second's, and
	// where they deleted the version for good, it reads none; S3 keeps no
	// tag history to read the older ones from: the key's tags are not
	// comparable as of that second.
	lateAt := map[string]int64{}
	tagsUncertain := map[int64]map[string]bool{}
	var coldID string
	var coldWant map[string]objState
	var coldTagsUnknown map[string]bool
	for p := 0; p < phases; p++ {
		waitNextSecond()
		ops := 3 + rng.IntN(5)
		w.purged = map[string]bool{}
		for range ops {
			w.step(keys, true)
		}
		sec := time.Now().Unix()
		truth[sec] = capture(t, ctx, c, bucket)
		seconds = append(seconds, sec)
		if d.drop > 0 {
			uncertain[sec] = w.purged
		}

		changes := receive(t, ch, w.events)
		w.events = 0
		for _, ch := range changes {
			if at, ok := lateAt[ch.Key]; ok && (ch.Kind == event.TagsChanged || ch.Kind == event.PermanentlyDeleted) {
				if tagsUncertain[at] == nil {
					tagsUncertain[at] = map[string]bool{}
				}
				tagsUncertain[at][ch.Key] = true
			}
		}
		clear(lateAt)
		var deliver []event.Change
		deliver, lateQ = append(lateQ, deliver...), nil
		for _, ch := range changes {
			isVersion := ch.Kind != event.TagsChanged
			if isVersion && d.drop > 0 && rng.Float64() < d.drop {
				tagChanged[ch.Key] = true
				continue
			}
			if d.late && rng.IntN(5) == 0 {
				lateQ = append(lateQ, ch)
				lateAt[ch.Key] = sec
				continue
			}
			deliver = append(deliver, ch)
			if d.twice {
				deliver = append(deliver, ch)
			}
		}
		if d.shuffle {
			rng.Shuffle(len(deliver), func(a, b int) { deliver[a], deliver[b] = deliver[b], deliver[a] })
		}
		for start := 0; start < len(deliver); start += 7 {
			batch := deliver[start:min(start+7, len(deliver))]
			res, _, err := j.Ingest(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("ingest %+v: %v", r.Change, r.Err)
				}
			}
		}
		if d.reconcile {
			if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{PageSize: 7}); err != nil {
				t.Fatal(err)
			}
		}
		if p == 1 || p == phases-2 {
			// Snapshots, kept a day: expiry deletes them (below).
			e := &snapshot.Engine{S3: c}
			job, err := e.Run(ctx, snapshot.Job{Vault: vb, Bucket: bucket, Lifecycle: &vault.Lifecycle{DeleteAfterDays: 1}})
			if err != nil || job.State != snapshot.StateCompleted {
				t.Fatalf("snapshot: %+v %v", job, err)
			}
		}
		if p == phases/2-1 {
			// A snapshot that moves to the cold tier after a day and is
			// kept 91: expiry moves it and tags what only it references.
			e := &snapshot.Engine{S3: c}
			job, err := e.Run(ctx, snapshot.Job{Vault: vb, Bucket: bucket, Lifecycle: &vault.Lifecycle{MoveToColdStorageAfterDays: 1, DeleteAfterDays: 91}})
			if err != nil || job.State != snapshot.StateCompleted {
				t.Fatalf("cold snapshot: %+v %v", job, err)
			}
			coldID, coldWant = job.RecoveryPointID, capture(t, ctx, c, bucket)
			// A snapshot takes a journaled version's tags from the journal
			// (tag changes change no version): where the journal cannot know
			// them yet (a dropped or a late event), neither can it.
			coldTagsUnknown = map[string]bool{}
			if d.drop > 0 {
				maps.Copy(coldTagsUnknown, tagChanged)
			}
			for _, ch := range lateQ {
				coldTagsUnknown[ch.Key] = true
			}
		}
		if p == phases/2 {
			// Half the journal goes into a run; restores read run + segments.
			lag := vault.CompactionLag
			vault.CompactionLag = 0
			st, err := v.Compact(ctx, bucket, time.Now())
			vault.CompactionLag = lag
			if err != nil || st.Run == "" {
				t.Fatalf("compact: %+v, %v", st, err)
			}
		}
	}
	if len(lateQ) > 0 {
		if _, _, err := j.Ingest(ctx, lateQ); err != nil {
			t.Fatal(err)
		}
	}
	r := &restore.Restorer{S3: c, Copy: s3x.CopyOptions{Threshold: 5 << 20}}
	wm, err := v.CompleteThrough(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	check := func(sec int64) {
		target := srv.BucketName(t)
		// After the completeness watermark (events only, or after the
		// last reconcile) a restore must say so; the model holds it to
		// the truth all the same.
		after := wm == nil || sec > wm.Unix()
		rep, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: bucket, At: time.Unix(sec, 0), TargetBucket: target, CreateBucket: true, AllowIncomplete: after})
		if err != nil {
			t.Fatalf("restore as of %d: %v", sec, err)
		}
		// A restore names the keys whose permanent deletion it knows only
		// to lie in an interval around sec (PARTIAL); it names no key the
		// model does not excuse, and every other key is exact (below).
		// A dropped event loses the tags a version had before a later tag
		// change (S3 keeps no tag history for a reconcile to read), and so
		// does a late one overtaken by a tag change (lateAt, above): the
		// restore must name such a key where its tags differ.
		noTags := maps.Clone(tagsUncertain[sec])
		if d.drop > 0 {
			if noTags == nil {
				noTags = map[string]bool{}
			}
			maps.Copy(noTags, tagChanged)
		}
		named := map[string]bool{}
		for _, u := range rep.UncertainKeys {
			named[u.Key] = true
			if !uncertain[sec][u.Key] && !noTags[u.Key] {
				t.Errorf("restore as of %d names %s uncertain (%s); the model holds it exact", sec, u.Key, u.Uncertain)
			}
		}
		if len(named) > 0 {
			t.Logf("restore as of %d names %d keys uncertain", sec, len(named))
		}
		if want := restore.StateCompleted; len(named) > 0 {
			if rep.State != restore.StatePartial {
				t.Errorf("restore as of %d names %d uncertain keys but is %s", sec, len(named), rep.State)
			}
		} else if rep.State != want {
			t.Fatalf("restore as of %d: %s\n%s", sec, rep.State, rep.Text())
		}
		if warned := strings.Contains(strings.Join(rep.Warnings, "\n"), "reconcile --vault"); warned != after {
			t.Errorf("restore as of %d (watermark %v): warned of incompleteness %v, want %v", sec, wm, warned, after)
		}
		got := capture(t, ctx, c, target)
		want := maps.Clone(truth[sec])
		for k := range noTags {
			if g, ok := got[k]; ok {
				if w, ok := want[k]; ok {
					if !maps.Equal(g.Tags, w.Tags) && !named[k] {
						t.Errorf("restore as of %d: %s has tags %v, the bucket then %v, and is not named uncertain", sec, k, g.Tags, w.Tags)
					}
					g.Tags = w.Tags
					got[k] = g
				}
			}
		}
		for k := range uncertain[sec] {
			if !cmp.Equal(want[k], got[k]) && !named[k] {
				t.Errorf("restore as of %d: %s differs from the bucket then and is not named uncertain", sec, k)
			}
			delete(want, k)
			delete(got, k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("restore as of %s differs from the bucket then (-want +got):\n%s", time.Unix(sec, 0).UTC().Format(time.RFC3339), diff)
			all := maps.Clone(want)
			maps.Copy(all, got)
			for k := range all {
				if !cmp.Equal(want[k], got[k]) {
					t.Logf("journal of %q:", k)
					dumpKey(t, ctx, v, bucket, k)
					dumpVersions(t, ctx, c, bucket, k)
				}
			}
		}
	}
	for _, sec := range seconds {
		check(sec)
	}
	// A second restore into the same target changes nothing.
	last := seconds[len(seconds)-1]
	target := srv.BucketName(t)
	req := restore.Request{Vault: vb, Bucket: bucket, At: time.Unix(last, 0), TargetBucket: target, CreateBucket: true}
	first, err := r.Run(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	req.CreateBucket = false
	rep, err := r.Run(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restored != 0 || rep.Identical != first.Restored {
		t.Errorf("re-run restored %d, identical %d; want 0 and %d", rep.Restored, rep.Identical, first.Restored)
	}

	// Expiry a day after three phases' seconds, in turn: the journal is
	// folded at that second; every restore from it on is still exact, every
	// earlier one refused; the snapshots past their day are gone; and the
	// vault's data is exactly what the journal and the live snapshots
	// reference, measured by listing both.
	defer func(g, l, cs time.Duration, f func(int) time.Duration, least int64) {
		vault.GCGrace, vault.CompactionLag, vault.ColdSettle, vault.FoldEvery, vault.ColdMinSize = g, l, cs, f, least
	}(vault.GCGrace, vault.CompactionLag, vault.ColdSettle, vault.FoldEvery, vault.ColdMinSize)
	vault.GCGrace, vault.CompactionLag, vault.ColdSettle, vault.ColdMinSize = 0, 0, 0, 0
	vault.FoldEvery = func(int) time.Duration { return time.Second } // fold at every expiry
	for _, k := range []int{1, len(seconds) / 2, len(seconds) - 1} {
		floor := seconds[k]
		// A reconcile first, as the scheduled one runs: the journal is
		// vouched complete past the floor when the fold comes.
		if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
		if wm, err = v.CompleteThrough(ctx, bucket); err != nil {
			t.Fatal(err)
		}
		// What the window references, measured on the journal before the
		// fold: the data of every version current at some second from the
		// floor on, or created after it.
		window := windowData(t, ctx, v, bucket, floor)
		exp, err := v.Expire(ctx, vault.ExpireOptions{Now: time.Unix(floor, 0).Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(exp.Folds) != 1 || exp.Folds[0].Floor.Unix() != floor || exp.Collected.SkippedBecause != "" {
			t.Fatalf("expiry at floor %d: %+v", floor, exp)
		}
		t.Logf("expiry at floor %d: %d records folded away, %d recovery points, %d data objects (%d bytes) and %d journal objects deleted",
			floor, exp.Folds[0].Folded, len(exp.Expired), exp.Data.Objects, exp.Data.Bytes, exp.Journal.Objects)
		for _, sec := range seconds {
			if sec >= floor {
				check(sec)
				continue
			}
			_, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: bucket, At: time.Unix(sec, 0), TargetBucket: srv.BucketName(t), CreateBucket: true, AllowIncomplete: true})
			var invalid *restore.InvalidRequestError
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "folded at") {
				t.Fatalf("restore as of %d, before the floor %d: %v, want it refused", sec, floor, err)
			}
		}
		points, err := v.Snapshots(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range points {
			if !sp.CalculatedLifecycle.DeleteAt.After(exp.Now) {
				t.Errorf("snapshot %s is past its DeleteAt %s and still there", sp.RecoveryPointID, sp.CalculatedLifecycle.DeleteAt)
			}
		}
		data := dataObjects(t, ctx, c, v)
		if want := references(t, ctx, v, bucket, points); !cmp.Equal(data, want) {
			t.Errorf("after expiry at floor %d the vault's data is not what is referenced (-referenced +held):\n%s", floor, cmp.Diff(want, data))
		}
		// The same, against what the window and the live points reference
		// as measured before the fold: a fold that kept too much keeps
		// data this does not count.
		want := maps.Clone(window)
		maps.Copy(want, pointsData(t, ctx, v, bucket, points))
		if !cmp.Equal(data, want) {
			t.Errorf("after expiry at floor %d the vault holds other data than the window and the live points reference (-referenced +held):\n%s", floor, cmp.Diff(want, data))
		}
		checkColdTier(t, ctx, c, v, r, srv, bucket, coldID, coldWant, coldTagsUnknown, points, floor)
		// A reconcile journals none of what the fold left out again.
		held := dataObjects(t, ctx, c, v)
		if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
		if after := dataObjects(t, ctx, c, v); !cmp.Equal(after, held) {
			t.Errorf("a reconcile after the fold at %d stored data again (-before +after):\n%s", floor, cmp.Diff(held, after))
		}
		if wm, err = v.CompleteThrough(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
}

// checkColdTier: once the cold snapshot is COLD, the data objects tagged
// for the cold tier are exactly those only it references (never one the
// journal or a warm point references), and a restore from it gives back
// the bucket as it was (the tags of tagsUnknown's keys aside), without the
// tier tag.
func checkColdTier(t *testing.T, ctx context.Context, c *s3.Client, v *vault.Vault, r *restore.Restorer, srv *locals3.Server, bucket, coldID string,
	want map[string]objState, tagsUnknown map[string]bool, points []vault.SnapshotPoint, floor int64) {
	t.Helper()
	sp, err := v.Snapshot(ctx, bucket, coldID)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.IsCold() {
		return
	}
	var warm []vault.SnapshotPoint
	for _, p := range points {
		if p.RecoveryPointID != coldID {
			warm = append(warm, p)
		}
	}
	coldOnly := references(t, ctx, v, bucket, points)
	for k := range references(t, ctx, v, bucket, warm) {
		delete(coldOnly, k)
	}
	tagged := map[string]bool{}
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Versions {
			tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(v.Bucket), Key: o.Key, VersionId: o.VersionId})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tg.TagSet {
				if aws.ToString(x.Key) == vault.TierTag {
					tagged[aws.ToString(o.Key)] = true
				}
			}
		}
	}
	if !cmp.Equal(tagged, coldOnly) {
		t.Errorf("after expiry at floor %d the data tagged for the cold tier is not what only the COLD point references (-cold only +tagged):\n%s", floor, cmp.Diff(coldOnly, tagged))
	}
	t.Logf("cold tier at floor %d: %d data objects only the COLD point references, tagged", floor, len(tagged))
	target := srv.BucketName(t)
	rep, err := r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, RecoveryPointID: coldID, TargetBucket: target, CreateBucket: true})
	if err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("restore of the COLD point: %+v %v", rep, err)
	}
	got := capture(t, ctx, c, target)
	for k := range tagsUnknown {
		if g, ok := got[k]; ok {
			if _, tiered := g.Tags[vault.TierTag]; !tiered {
				g.Tags = want[k].Tags
				got[k] = g
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restore of the COLD point differs from the bucket at its snapshot (-want +got):\n%s", diff)
	}
}

// dataObjects lists the vault's data objects (every version), but the
// capability probe.
func dataObjects(t *testing.T, ctx context.Context, c *s3.Client, v *vault.Vault) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String("data/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Versions {
			if k := aws.ToString(o.Key); k != vault.ProbeKey(v.Bucket) {
				out[k] = true
			}
		}
	}
	return out
}

// references are the data keys the journal of bucket and the snapshots
// points reference.
func references(t *testing.T, ctx context.Context, v *vault.Vault, bucket string, points []vault.SnapshotPoint) map[string]bool {
	t.Helper()
	out := pointsData(t, ctx, v, bucket, points)
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	readData(t, m, out)
	return out
}

// readData adds the data keys of every record m reads to out.
func readData(t *testing.T, m *vault.Merger, out map[string]bool) {
	t.Helper()
	defer m.Close()
	for {
		_, recs, err := m.NextKey()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Data != "" {
				out[r.Data] = true
			}
		}
	}
}

// windowData is the data the journal of bucket needs from the second
// floor on, read from the journal as it is (before a fold at floor): the
// data of the version current at floor and at every later second a
// record changes something, and of every version created after floor.
func windowData(t *testing.T, ctx context.Context, v *vault.Vault, bucket string, floor int64) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		_, recs, err := m.NextKey()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		at := map[int64]bool{floor: true}
		for _, r := range recs {
			if sec := r.Time.Unix(); sec > floor {
				at[sec] = true
				if r.Op == vault.OpVersion && r.Data != "" {
					out[r.Data] = true
				}
			}
		}
		for sec := range at {
			if obj, ok := vault.StateAt(recs, time.Unix(sec, 0)); ok && obj.Version.Data != "" {
				out[obj.Version.Data] = true
			}
		}
	}
}

// pointsData is the data the snapshot points reference.
func pointsData(t *testing.T, ctx context.Context, v *vault.Vault, bucket string, points []vault.SnapshotPoint) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, sp := range points {
		m, err := vault.NewMerger([]vault.RecordSource{v.OpenShards(ctx, sp.Shards, nil)})
		if err != nil {
			t.Fatal(err)
		}
		readData(t, m, out)
	}
	return out
}

// dumpKey logs the journal's records of one key, to explain a mismatch.
func dumpKey(t *testing.T, ctx context.Context, v *vault.Vault, bucket, key string) {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, []string{key})
	if err != nil {
		t.Logf("open journal: %v", err)
		return
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if err != nil {
			return
		}
		if k != key {
			continue
		}
		for _, r := range recs {
			t.Logf("  %s %s %s %s seq=%s origin=%s etag=%s tags=%v meta=%v order=%v seg=%s:%d", r.Op, r.VersionID, r.Time.Format(time.RFC3339Nano), r.Reason, r.Sequencer, r.Origin, r.ETag, r.Tags, r.Meta, r.Order, r.Segment, r.Line)
		}
	}
}

func dumpVersions(t *testing.T, ctx context.Context, c *s3.Client, bucket, key string) {
	t.Helper()
	l := s3x.NewVersionLister(c, bucket, key, "", "", 1000)
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			t.Logf("list: %v", err)
			return
		}
		for _, e := range page {
			if e.Key == key {
				t.Logf("  listed %s marker=%v latest=%v %s", e.VersionID, e.IsDeleteMarker, e.IsLatest, e.LastModified.Format(time.RFC3339Nano))
			}
		}
	}
}
