package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestModelWithDamageAndForgedDeletes is the model test of invariant 7:
// the random workload of TestModelPointInTime, its events
// delivered twice and shuffled and a reconcile at the end, with forged
// deletion events mixed in (naming versions the bucket still holds), then
// vault objects damaged at random: data objects overwritten (an older good
// version kept, or every older version deleted), journal segments and run
// shards truncated (likewise). Every restore is then either exact or
// PARTIAL naming exactly the keys it cannot vouch for: never a wrong
// object, never a silently missing one.
//
// A key a lost journal object may hold records of is not written (named
// uncertain, skipped; Request.IncludeUncertain would restore it as the rest
// of the vault knows it), so a wrong object is a failure even when named;
// so is a key named uncertain that the journal can vouch for (overName).
func TestModelWithDamageAndForgedDeletes(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BUCKETVAULT_MODEL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (BUCKETVAULT_MODEL_SEED reproduces)", seed)
	phases := 5
	if testing.Short() {
		phases = 3
	}
	defer func(lag time.Duration, n int) { vault.CompactionLag, vault.RunShardRecords = lag, n }(vault.CompactionLag, vault.RunShardRecords)
	// The local server and the writers share one clock: a key whose state
	// is decided by a change a second after a lost journal object was
	// written is held to the truth (vault.CoveredAt).
	defer func(s time.Duration) { vault.DamageClockSkew = s }(vault.DamageClockSkew)
	vault.DamageClockSkew = 0
	vault.RunShardRecords = 5
	runDamageModel(t, srv, seed, phases, true)
}

// forgery is one forged deletion event and what it names.
type forgery struct {
	change event.Change
	marker bool // it names a delete marker (a live one)
}

// keyEntries lists every version and delete marker of exactly one key.
func keyEntries(t *testing.T, ctx context.Context, c *s3.Client, bucket, key string) []s3x.Entry {
	t.Helper()
	var out []s3x.Entry
	for _, e := range bucketEntries(t, ctx, c, bucket, key) {
		if e.Key == key {
			out = append(out, e)
		}
	}
	return out
}

// bucketEntries lists every version and delete marker under prefix.
func bucketEntries(t *testing.T, ctx context.Context, c *s3.Client, bucket, prefix string) []s3x.Entry {
	t.Helper()
	l := s3x.NewVersionLister(c, bucket, prefix, "", "", 1000)
	var out []s3x.Entry
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			t.Fatalf("list versions of s3://%s/%s: %v", bucket, prefix, err)
		}
		out = append(out, page...)
	}
	return out
}

// forge makes up to n deletion events naming versions (and, for a
// permanent deletion, delete markers) the bucket still holds.
func forge(t *testing.T, ctx context.Context, c *s3.Client, rng *rand.Rand, bucket string, keys []string, n int, seconds []int64) []forgery {
	t.Helper()
	kinds := []struct {
		kind event.Kind
		name string
	}{
		{event.DeleteMarkerCreated, "ObjectRemoved:DeleteMarkerCreated"},
		{event.PermanentlyDeleted, "ObjectRemoved:Delete"},
		{event.PermanentlyDeleted, "LifecycleExpiration:Delete"},
	}
	var out []forgery
	for try := 0; len(out) < n && try < 4*n; try++ {
		key := keys[rng.IntN(len(keys))]
		k := kinds[rng.IntN(len(kinds))]
		var live []s3x.Entry
		for _, e := range keyEntries(t, ctx, c, bucket, key) {
			if k.kind == event.PermanentlyDeleted || !e.IsDeleteMarker {
				live = append(live, e)
			}
		}
		if len(live) == 0 {
			continue
		}
		e := live[rng.IntN(len(live))]
		// A forged event may say anything of when: now, the version's own
		// time, or an earlier second the model restores to.
		when := time.Now().UTC()
		switch rng.IntN(3) {
		case 0:
			when = e.LastModified.UTC()
		case 1:
			if len(seconds) > 0 {
				when = time.Unix(seconds[rng.IntN(len(seconds))], 0).UTC()
			}
		}
		seq := ""
		if rng.IntN(3) > 0 {
			seq = fmt.Sprintf("%016X", rng.Uint64())
		}
		source := event.SourceS3
		if rng.IntN(2) == 0 {
			source = event.SourceEventBridge
		}
		out = append(out, forgery{marker: e.IsDeleteMarker, change: event.Change{
			Kind: k.kind, Bucket: bucket, Key: key, VersionID: e.VersionID, Sequencer: seq, Time: when,
			Source: source, Name: k.name,
		}})
	}
	return out
}

// ingestChecked journals changes in batches of 7; a forged change must be
// journaled (not failed, not refused) with no deletion of what it names.
func ingestChecked(t *testing.T, ctx context.Context, j *journal.Journal, changes []event.Change, forged map[event.Change]forgery) {
	t.Helper()
	for start := 0; start < len(changes); start += 7 {
		batch := changes[start:min(start+7, len(changes))]
		res, _, err := j.Ingest(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("ingest %+v: %v", r.Change, r.Err)
			}
			f, ok := forged[r.Change]
			if !ok {
				continue
			}
			if r.Refused != "" {
				t.Errorf("forged %s of %q@%s refused: %s", r.Change.Name, r.Change.Key, r.Change.VersionID, r.Refused)
			}
			for _, rec := range r.Records {
				if rec.VersionID != r.Change.VersionID {
					continue
				}
				if rec.Op == vault.OpPurge || rec.Op == vault.OpDeleteMarker && !f.marker {
					t.Errorf("forged %s of live %q@%s journaled %s %+v", r.Change.Name, r.Change.Key, r.Change.VersionID, rec.Op, rec)
				}
			}
		}
	}
}

// heads gives the current object version of each key (none when the key
// is absent or behind a delete marker).
func heads(entries []s3x.Entry) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		if e.IsLatest && !e.IsDeleteMarker {
			out[e.Key] = e.VersionID
		}
	}
	return out
}

// getBytes reads the current version of a vault object.
func getBytes(t *testing.T, ctx context.Context, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer g.Body.Close()
	b, err := io.ReadAll(g.Body)
	if err != nil {
		t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	return b
}

// overwrite puts body over a vault object as its owner would; lose also
// deletes every version it had before, so no good version is left.
func overwrite(t *testing.T, ctx context.Context, c *s3.Client, bucket, key string, body []byte, lose bool) {
	t.Helper()
	before := keyEntries(t, ctx, c, bucket, key)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("damage s3://%s/%s: %v", bucket, key, err)
	}
	if !lose {
		return
	}
	for _, e := range before {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(e.VersionID)}); err != nil {
			t.Fatalf("delete s3://%s/%s@%s: %v", bucket, key, e.VersionID, err)
		}
	}
}

// otherBytes returns bytes unlike old: the same length or another one.
func otherBytes(rng *rand.Rand, old []byte) []byte {
	n := len(old)
	if n == 0 || rng.IntN(2) == 0 {
		for n == len(old) {
			n = rng.IntN(2 * (len(old) + 16))
		}
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	if bytes.Equal(b, old) {
		b[0] ^= 0xff
	}
	return b
}

func runDamageModel(t *testing.T, srv *locals3.Server, seed uint64, phases int, strict bool) {
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
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, ctx: ctx, c: c, bucket: bucket, rng: rng}
	keys := modelKeys()
	truth := map[int64]map[string]objState{}
	head := map[int64]map[string]string{} // second -> key -> current version
	var seconds []int64
	forged := map[event.Change]forgery{}
	forgedNames := map[string]int{}
	addForged := func(fs []forgery) []event.Change {
		var out []event.Change
		for _, f := range fs {
			forged[f.change] = f
			out = append(out, f.change)
			forgedNames[f.change.Name]++
		}
		return out
	}
	for p := 0; p < phases; p++ {
		waitNextSecond()
		ops := 3 + rng.IntN(5)
		w.purged = map[string]bool{}
		for range ops {
			w.step(keys, true)
		}
		sec := time.Now().Unix()
		truth[sec] = capture(t, ctx, c, bucket)
		head[sec] = heads(bucketEntries(t, ctx, c, bucket, ""))
		seconds = append(seconds, sec)

		changes := receive(t, ch, w.events)
		w.events = 0
		var deliver []event.Change
		for _, ch := range changes {
			deliver = append(deliver, ch, ch)
		}
		// Forged deletions, named now (every one still live when it is
		// ingested: the workload is done for this phase), mixed in.
		deliver = append(deliver, addForged(forge(t, ctx, c, rng, bucket, keys, rng.IntN(4), seconds))...)
		rng.Shuffle(len(deliver), func(a, b int) { deliver[a], deliver[b] = deliver[b], deliver[a] })
		ingestChecked(t, ctx, j, deliver, forged)
		if p == phases/2 {
			// Half the journal goes into a run of several shards.
			lag := vault.CompactionLag
			vault.CompactionLag = 0
			st, err := v.Compact(ctx, bucket, time.Now())
			vault.CompactionLag = lag
			if err != nil || st.Run == "" {
				t.Fatalf("compact: %+v, %v", st, err)
			}
			t.Logf("compacted %d segments into a run of %d shards", st.Segments, st.Shards)
		}
	}
	if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{PageSize: 7}); err != nil {
		t.Fatal(err)
	}
	// Forged deletions after the reconcile too.
	ingestChecked(t, ctx, j, addForged(forge(t, ctx, c, rng, bucket, keys, 1+rng.IntN(3), seconds)), forged)
	t.Logf("forged deletion events ingested: %v", forgedNames)

	r := &restore.Restorer{S3: c, Copy: s3x.CopyOptions{Threshold: 5 << 20}}
	wm, err := v.CompleteThrough(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	restoreAt := func(sec int64) (*restore.Report, map[string]objState) {
		t.Helper()
		target := srv.BucketName(t)
		after := wm == nil || sec > wm.Unix()
		rep, err := r.Run(ctx, restore.Request{Vault: vb, Bucket: bucket, At: time.Unix(sec, 0), TargetBucket: target, CreateBucket: true, AllowIncomplete: after})
		if err != nil {
			t.Fatalf("restore as of %d: %v", sec, err)
		}
		return rep, capture(t, ctx, c, target)
	}

	// A key named uncertain that the journal could vouch for: no event
	// is dropped here, so the only uncertainty is a lost journal object's.
	// The restore names more when a purge a listing learnt (an interval,
	// Record.Since) sits beside the same version's purge an event dated
	// exactly (a forged event's resolveKey in the batch of the real
	// deletion's event): uncertainFor ignores the event's purge. The key
	// is restored exactly all the same; BUCKETVAULT_MODEL_STRICT=1 fails
	// the restore's PARTIAL for it.
	overNamed := 0
	overName := func(at string, u restore.Mapping) {
		t.Helper()
		overNamed++
		if strict {
			t.Errorf("as of %s: %s named uncertain (%s) though no lost journal object covers it and the journal dates its deletion exactly", at, u.Key, u.Uncertain)
			dumpKey(t, ctx, v, bucket, u.Key)
			dumpVersions(t, ctx, c, bucket, u.Key)
		} else {
			t.Logf("as of %s: %s named uncertain though the journal can vouch for it (BUCKETVAULT_MODEL_STRICT=1 fails it): %s", at, u.Key, u.Uncertain)
		}
	}

	// Before any damage: the forged deletions changed nothing.
	for _, sec := range seconds {
		at := time.Unix(sec, 0).UTC().Format(time.RFC3339)
		rep, got := restoreAt(sec)
		named := len(rep.Failures)+len(rep.Unvouched)+len(rep.UncertainKeys) > 0
		if want := map[bool]string{true: restore.StatePartial, false: restore.StateCompleted}[named]; rep.State != want || len(rep.Failures)+len(rep.Unvouched) > 0 {
			t.Errorf("undamaged restore as of %s: %s, want %s naming no failure or lost object\n%s", at, rep.State, want, rep.Text())
		}
		for _, u := range rep.UncertainKeys {
			overName(at, u)
		}
		if diff := cmp.Diff(truth[sec], got); diff != "" {
			t.Errorf("undamaged restore as of %s (forged deletions ingested) differs from the bucket then (-want +got):\n%s", at, diff)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What the journal knows of each version's data, read before damage.
	type dataRef struct{ data, etag string }
	dataOf := map[string]map[string]dataRef{} // key -> version -> data
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range recs {
			if o.Op == vault.OpVersion && o.Data != "" {
				if dataOf[key] == nil {
					dataOf[key] = map[string]dataRef{}
				}
				dataOf[key][o.VersionID] = dataRef{o.Data, o.DataETag}
			}
		}
	}
	m.Close()

	// Damage to data: objects some restore reads (a version current at a
	// second restored), in a seeded order.
	// Listed in the workload's order (data keys and version ids are
	// random), so a seed picks the same versions again.
	usedSet := map[string]bool{}
	var used []string
	for _, sec := range seconds {
		for _, k := range keys {
			if d, ok := dataOf[k][head[sec][k]]; ok && !usedSet[d.data] {
				usedSet[d.data] = true
				used = append(used, d.data)
			}
		}
	}
	rng.Shuffle(len(used), func(a, b int) { used[a], used[b] = used[b], used[a] })
	nRepairable := min(len(used), 1+rng.IntN(3))
	nLost := min(len(used)-nRepairable, 1+rng.IntN(2))
	repairableData, lostData := map[string]bool{}, map[string]bool{}
	for i, d := range used[:nRepairable+nLost] {
		lose := i >= nRepairable
		overwrite(t, ctx, c, vb, d, otherBytes(rng, getBytes(t, ctx, c, vb, d)), lose)
		if lose {
			lostData[d] = true
		} else {
			repairableData[d] = true
		}
	}

	// Damage to the journal: segments and run shards truncated, their
	// good version kept or deleted.
	idx, err := v.Index(ctx, bucket)
	if err != nil || len(idx.Runs) != 1 {
		t.Fatalf("index: %+v, %v", idx, err)
	}
	run := idx.Runs[0]
	segs, err := v.Segments(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	var readSegs, unreadSegs []string // segments after the run's cut are read
	for _, s := range segs {
		if s.ID > run.To {
			readSegs = append(readSegs, s.Key)
		} else {
			unreadSegs = append(unreadSegs, s.Key)
		}
	}
	shardRange := map[string][2]string{}
	var shards []string
	for _, sh := range run.Shards {
		shards = append(shards, sh.Key)
		shardRange[sh.Key] = [2]string{sh.FirstKey, sh.LastKey}
	}
	rng.Shuffle(len(readSegs), func(a, b int) { readSegs[a], readSegs[b] = readSegs[b], readSegs[a] })
	rng.Shuffle(len(unreadSegs), func(a, b int) { unreadSegs[a], unreadSegs[b] = unreadSegs[b], unreadSegs[a] })
	rng.Shuffle(len(shards), func(a, b int) { shards[a], shards[b] = shards[b], shards[a] })
	lostRead := map[string]bool{}     // lost journal objects every restore reads
	repairedRead := map[string]bool{} // damaged ones read from an older version
	truncate := func(key string, lose bool) {
		body := getBytes(t, ctx, c, vb, key)
		overwrite(t, ctx, c, vb, key, body[:rng.IntN(len(body))], lose)
	}
	var plan []string
	damage := func(what string, list *[]string, lose, read bool) {
		if len(*list) == 0 {
			return
		}
		key := (*list)[0]
		*list = (*list)[1:]
		truncate(key, lose)
		switch {
		case read && lose:
			lostRead[key] = true
		case read:
			repairedRead[key] = true
		}
		plan = append(plan, fmt.Sprintf("%s %s (lost %v)", what, key, lose))
	}
	damage("shard", &shards, false, true)
	if rng.IntN(4) > 0 {
		damage("shard", &shards, true, true)
	}
	damage("segment", &readSegs, false, true)
	if rng.IntN(3) == 0 { // every key becomes uncertain: not every seed
		damage("segment", &readSegs, true, true)
	}
	damage("compacted segment", &unreadSegs, rng.IntN(2) == 0, false)
	t.Logf("damaged %d data objects (%d lost); journal: %s", nRepairable+nLost, nLost, strings.Join(plan, "; "))

	// After the damage: every restore exact or PARTIAL naming exactly what
	// it cannot vouch for.
	var exercised struct{ repaired, failed, uncertain, wrongNamed int }
	for _, sec := range seconds {
		at := time.Unix(sec, 0).UTC().Format(time.RFC3339)
		rep, got := restoreAt(sec)
		want := truth[sec]
		failed := map[string]restore.Mapping{}
		for _, f := range rep.Failures {
			failed[f.Key] = f
			d := dataOf[f.Key][f.SourceVersionID]
			if !lostData[d.data] {
				t.Errorf("as of %s: %s@%s FAILED (%s); its data %s is not lost", at, f.Key, f.SourceVersionID, f.Error, d.data)
			}
		}
		uncertain := map[string]restore.Mapping{}
		for _, u := range rep.UncertainKeys {
			uncertain[u.Key] = u
			if _, ok := vault.Covered(rep.Unvouched, u.Key); !ok {
				overName(at, u) // exact all the same: checked below
			}
		}
		covered := func(k string) bool { _, ok := vault.Covered(rep.Unvouched, k); return ok }
		unvouched := map[string]bool{}
		for _, d := range rep.Unvouched {
			unvouched[d.Object] = true
			switch {
			case !lostRead[d.Object]:
				t.Errorf("as of %s: unvouched %s, which is not lost", at, d)
			case shardRange[d.Object] != [2]string{} && (d.FirstKey != shardRange[d.Object][0] || d.LastKey != shardRange[d.Object][1]):
				t.Errorf("as of %s: lost shard %s unvouched for %s, want its range %q..%q", at, d.Object, d.Keys(), shardRange[d.Object][0], shardRange[d.Object][1])
			}
		}
		for o := range lostRead {
			if !unvouched[o] {
				t.Errorf("as of %s: lost journal object %s not in unvouched\n%s", at, o, rep.Text())
			}
		}
		warnings := strings.Join(rep.Warnings, "\n")
		for o := range repairedRead {
			if !strings.Contains(warnings, o) {
				t.Errorf("as of %s: damaged journal object %s (its older version good) not named in the warnings\n%s", at, o, warnings)
			}
		}
		mapping := map[string]restore.Mapping{}
		for _, mp := range rep.Mapping {
			mapping[mp.Key] = mp
		}
		named := len(rep.Failures)+len(rep.Unvouched)+len(rep.UncertainKeys) > 0
		if wantState := map[bool]string{true: restore.StatePartial, false: restore.StateCompleted}[named]; rep.State != wantState {
			t.Errorf("as of %s: %s, want %s (failures %d, unvouched %d, uncertain %d)\n%s", at, rep.State, wantState, len(rep.Failures), len(rep.Unvouched), len(rep.UncertainKeys), rep.Text())
		}
		all := map[string]bool{}
		for k := range want {
			all[k] = true
		}
		for k := range got {
			all[k] = true
			if u, ok := uncertain[k]; ok && u.Action != restore.ActionRestored {
				t.Errorf("as of %s: restored %s, named uncertain as %s, not restored", at, k, u.Action)
			}
		}
		keysOf := make([]string, 0, len(all))
		for k := range all {
			keysOf = append(keysOf, k)
		}
		sort.Strings(keysOf)
		for _, k := range keysOf {
			w, inTruth := want[k]
			g, inGot := got[k]
			_, isFailed := failed[k]
			_, isUncertain := uncertain[k]
			// Only a lost journal object the restore names the key for
			// (or lost data) excuses a state other than the truth's: a key
			// in a lost object's range restored without being named is one
			// the restore vouches for (a later change decides it), held to
			// the truth. A key missing from the target is excused by the
			// lost range alone (the rest of the vault may not know it).
			isNamed := isFailed || covered(k) && isUncertain
			vid := head[sec][k]
			d := dataOf[k][vid]
			switch {
			case inGot && isFailed:
				t.Errorf("as of %s: %s FAILED, yet the target holds an object for it: %+v", at, k, g)
			case inGot && (!inTruth || !cmp.Equal(w, g)):
				if !isNamed || strict {
					t.Errorf("as of %s: WRONG OBJECT %s (named %v): %s", at, k, isNamed, cmp.Diff(w, g))
					if !isNamed {
						dumpKey(t, ctx, v, bucket, k)
						dumpVersions(t, ctx, c, bucket, k)
					}
				} else {
					exercised.wrongNamed++
					t.Logf("as of %s: %s named uncertain (%s) and restored to another state than the truth's (allowed: BUCKETVAULT_MODEL_STRICT=1 fails it): %s", at, k, uncertain[k].Uncertain, cmp.Diff(w, g))
				}
			case inTruth && !inGot && !isNamed && !isUncertain && !covered(k):
				t.Errorf("as of %s: %s SILENTLY MISSING (truth %+v; mapping %+v)", at, k, w, mapping[k])
				dumpKey(t, ctx, v, bucket, k)
			case inTruth && !isUncertain && !covered(k) && lostData[d.data] && !isFailed:
				t.Errorf("as of %s: %s@%s has lost data %s but is not FAILED (mapping %+v)", at, k, vid, d.data, mapping[k])
			case inTruth && inGot && !isNamed && repairableData[d.data]:
				if mp, ok := mapping[k]; !ok || mp.VaultDamage == "" || rep.VaultDamaged == 0 {
					t.Errorf("as of %s: %s restored from damaged data %s without saying so (mapping %+v, vault damaged %d)", at, k, d.data, mp, rep.VaultDamaged)
				}
				exercised.repaired++
			}
		}
		exercised.failed += len(rep.Failures)
		exercised.uncertain += len(rep.UncertainKeys)
	}
	t.Logf("restored %d seconds twice: %d keys from older data versions, %d FAILED (lost data), %d uncertain, %d of them restored to another state than the truth's (a lost journal object), %d named though the journal vouches for them",
		len(seconds), exercised.repaired, exercised.failed, exercised.uncertain, exercised.wrongNamed, overNamed)
}
