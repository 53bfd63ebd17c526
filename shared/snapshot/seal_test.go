package snapshot_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// checkShards checks a point's shards: disjoint and ascending, their
// records the manifest's (keys in order), counts and bytes the totals'.
func (e env) checkShards(t *testing.T, sp *vault.SnapshotPoint, tot *snapshot.Totals) []vault.Record {
	t.Helper()
	n := 0
	for i, sh := range sp.Shards {
		if sh.FirstKey > sh.LastKey || sh.Records <= 0 || (i > 0 && sh.FirstKey <= sp.Shards[i-1].LastKey) {
			t.Fatalf("shard %d %+v after %+v: want disjoint ascending shards", i, sh, sp.Shards[max(i-1, 0)])
		}
		n += sh.Records
	}
	recs := e.manifest(t, sp.RecoveryPointID)
	var size int64
	for i, r := range recs {
		if i > 0 && r.Key <= recs[i-1].Key {
			t.Fatalf("manifest: %q after %q", r.Key, recs[i-1].Key)
		}
		size += r.Size
	}
	if len(recs) != n || int64(n) != tot.Objects || sp.ObjectCount != tot.Objects || size != tot.Bytes || sp.BackupSizeInBytes != size {
		t.Fatalf("manifest of %d records (%d bytes), shards say %d; totals %+v, point %d objects %d bytes",
			len(recs), size, n, tot, sp.ObjectCount, sp.BackupSizeInBytes)
	}
	return recs
}

// shardKinds counts a point's shards adopted from fragments (a copy: it
// carries the fragment's summary in its metadata) and encoded by the seal.
func (e env) shardKinds(t *testing.T, sp *vault.SnapshotPoint) (adopted, encoded int) {
	t.Helper()
	for _, sh := range sp.Shards {
		h, err := e.c.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(sh.Key)})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h.Metadata["bv-records"]; ok {
			adopted++
		} else {
			encoded++
		}
	}
	return adopted, encoded
}

// TestSealAdoptsFragments: fragments without skip records become manifest
// shards by one server-side copy each; fragments with skips, a fragment
// whose keys are too long for its metadata and the work-item file of a
// failed batch are read and re-encoded between them. Shards stay disjoint
// and ascending, the totals match the records, a re-run seal gives the
// same point, and each point restores the bucket exactly.
func TestSealAdoptsFragments(t *testing.T) {
	e := setup(t)
	long := "long/" + strings.Repeat(strings.Repeat("é", 100)+"/", 5) + "x" // 1,011 bytes, ~3,000 escaped: no room in metadata
	keys := []string{"a/ünïcödé+%20.txt", long}
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("k/%03d", i))
	}
	for _, k := range keys {
		e.put(t, k, "v1 "+k)
	}
	f := &faulty{Client: e.c}
	eng := e.engine(f)

	// A full snapshot: every fragment is the copy step's; all but the long
	// key's are adopted.
	want1 := e.capture(t)
	j1 := e.run(t, eng, snapshot.Job{})
	sp1, err := e.v.Snapshot(e.ctx, e.bucket, j1.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if j1.State != snapshot.StateCompleted || j1.Totals.Objects != int64(len(keys)) || j1.Totals.Copied != int64(len(keys)) {
		t.Fatalf("full snapshot: %s %+v", j1.State, j1.Totals)
	}
	e.checkShards(t, sp1, j1.Totals)
	if a, enc := e.shardKinds(t, sp1); a != j1.Scan.Files-1 || enc != 1 {
		t.Errorf("full snapshot of %d chunks: %d shards adopted, %d encoded; want all but the long key's adopted", j1.Scan.Files, a, enc)
	}
	got, _ := e.restoreInto(t, j1.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want1, got); len(d) > 0 {
		t.Errorf("restore of the full snapshot differs:\n%s", strings.Join(d, "\n"))
	}

	// An incremental: k/005 and k/030 copied, k/031 denied (a skip in its
	// fragment), k/050 in a file whose copy batch fails (no fragment), the
	// other chunks carried by the scan (its fragments, adopted).
	for _, k := range []string{"k/005", "k/030", "k/031", "k/050"} {
		e.put(t, k, "v2 "+k)
	}
	want := e.capture(t)
	delete(want, "k/031")
	delete(want, "k/050")
	f.denied = func(src string) bool { return strings.Contains(src, "k/031") }
	j, err := eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || !j.Scan.Done {
		t.Fatalf("scan: %+v %v", j, err)
	}
	var items, run []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if !slices.Contains(e.fileKeys(t, it.Key), "k/050") {
			run = append(run, it)
		}
	}
	if len(run) != len(items)-1 || j.Scan.Files <= len(items) {
		t.Fatalf("%d chunks, %d item files, %d without k/050: want some chunks carried and one item file left out", j.Scan.Files, len(items), len(run))
	}
	sealed := e.copyThenSeal(t, eng, *j, run)
	if sealed.State != snapshot.StatePartial || sealed.Totals.Failed != 2 || sealed.Totals.Copied != 2 || sealed.Totals.Objects != int64(len(keys)-2) {
		t.Fatalf("sealed %s %+v; want PARTIAL, 2 copied, 2 failed, %d objects", sealed.State, sealed.Totals, len(keys)-2)
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.checkShards(t, sp, sealed.Totals)
	var gotKeys, wantKeys []string
	for _, r := range recs {
		gotKeys = append(gotKeys, r.Key)
	}
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if d := cmp.Diff(wantKeys, gotKeys); d != "" {
		t.Errorf("manifest keys (-want +got):\n%s", d)
	}
	var failed []string
	for _, r := range sp.Failures {
		failed = append(failed, r.Key+":"+r.Reason)
	}
	if d := cmp.Diff([]string{"k/031:" + vault.SkipAccessDenied, "k/050:" + vault.SkipBatchFailed}, failed); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
	// Which chunks share a shard depends on the server's page boundaries;
	// the shards holding k/031, k/050 and the long key are encoded.
	adopted := 0
	for _, sh := range sp.Shards {
		h, err := e.c.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(sh.Key)})
		if err != nil {
			t.Fatal(err)
		}
		_, isAdopted := h.Metadata["bv-records"]
		if isAdopted {
			adopted++
		}
		for _, k := range []string{"k/031", "k/050", long} {
			if isAdopted && sh.FirstKey <= k && k <= sh.LastKey {
				t.Errorf("shard %s (%q..%q) was adopted: want the chunk of %.20q encoded", sh.Key, sh.FirstKey, sh.LastKey, k)
			}
		}
	}
	if adopted == 0 {
		t.Errorf("no shard adopted: want the carried chunks' fragments adopted")
	}

	// A re-run seal gives the same job and leaves the sealed point as it
	// is: its record, and every shard the one version the record names.
	again, err := eng.Seal(e.ctx, *j)
	if err != nil {
		t.Fatal(err)
	}
	sp2, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sealed, again); d != "" {
		t.Errorf("re-run seal's job (-first +again):\n%s", d)
	}
	if d := cmp.Diff(sp, sp2); d != "" {
		t.Errorf("re-run seal's point (-first +again):\n%s", d)
	}
	e.checkShardsWrittenOnce(t, sp2)
	e.checkShards(t, sp2, again.Totals)

	got, rep := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore of the incremental differs:\n%s", strings.Join(d, "\n"))
	}
	if rep.Restored != int64(len(want)) {
		t.Errorf("restored %d, want %d", rep.Restored, len(want))
	}
}

// fileKeys reads the keys of a segment-format file of the vault.
func (e env) fileKeys(t *testing.T, key string) []string {
	t.Helper()
	src, err := e.v.OpenSegmentFile(e.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range drain(t, src) {
		out = append(out, r.Key)
	}
	return out
}

// checkShardsWrittenOnce wants every object under a sealed point's
// manifest prefix to have one version, the one its record names.
func (e env) checkShardsWrittenOnce(t *testing.T, sp *vault.SnapshotPoint) {
	t.Helper()
	named := map[string]string{}
	for _, sh := range append(slices.Clone(sp.Shards), sp.FailureShards...) {
		named[sh.Key] = sh.ETag
	}
	out, err := e.c.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket),
		Prefix: aws.String(strings.TrimSuffix(vault.SnapshotKey(e.bucket, sp.RecoveryPointID), ".json") + "/")})
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]int{}
	for _, o := range out.Versions {
		k := aws.ToString(o.Key)
		versions[k]++
		if etag, ok := named[k]; !ok || strings.Trim(aws.ToString(o.ETag), `"`) != etag {
			t.Errorf("manifest object %s version %s (ETag %s): the point names %q", k, aws.ToString(o.VersionId), aws.ToString(o.ETag), etag)
		}
	}
	for k := range named {
		if versions[k] != 1 {
			t.Errorf("shard %s has %d versions, want the one the seal wrote", k, versions[k])
		}
	}
	if len(out.DeleteMarkers) > 0 {
		t.Errorf("%d delete markers under the manifest", len(out.DeleteMarkers))
	}
}

// TestSealRetriedAfterItsJobRecordFailed: a seal whose last write (the
// job's record) fails after the point is sealed is retried, as the state
// machine does: the retry finishes the job from the sealed point, writes
// no manifest (every shard keeps the one version the point names, so
// verify finds the point sound) and the job is what the first seal made
// it.
func TestSealRetriedAfterItsJobRecordFailed(t *testing.T) {
	e := setup(t)
	long := "long/" + strings.Repeat(strings.Repeat("é", 100)+"/", 5) + "x" // an encoded shard, besides the adopted ones
	keys := []string{long}
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("k/%03d", i))
	}
	for _, k := range keys {
		e.put(t, k, "v1 "+k)
	}
	f := &faulty{Client: e.c}
	eng := e.engine(f)
	j := e.startScanCopy(t, eng)
	f.failPut = func(key string) error {
		if key == vault.JobKey(j.JobID) {
			return &smithy.GenericAPIError{Code: "InternalError", Message: "injected: the job record's write fails"}
		}
		return nil
	}
	if _, err := eng.Seal(e.ctx, *j); err == nil {
		t.Fatal("the seal succeeded with its job record's write failing")
	}
	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil || sp.Status != vault.PointAvailable {
		t.Fatalf("after the failed seal: point %+v %v, want AVAILABLE (sealed before the job record)", sp, err)
	}
	f.failPut = nil
	sealed, err := eng.Seal(e.ctx, *j)
	if err != nil {
		t.Fatalf("retried seal: %v", err)
	}
	want := snapshot.Totals{Objects: int64(len(keys)), Bytes: sp.BackupSizeInBytes, Copied: int64(len(keys)), CopiedBytes: sp.CopiedBytes}
	if sealed.State != snapshot.StateCompleted || sealed.Totals == nil || *sealed.Totals != want {
		t.Fatalf("retried seal: %s %+v, want COMPLETED %+v", sealed.State, sealed.Totals, want)
	}
	var rec snapshot.Job
	if err := e.v.GetJSON(e.ctx, vault.JobKey(j.JobID), &rec); err != nil || rec.State != snapshot.StateCompleted {
		t.Fatalf("job record %s %v, want COMPLETED", rec.State, err)
	}
	after, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sp, after); d != "" {
		t.Errorf("the retried seal changed the sealed point (-sealed +after):\n%s", d)
	}
	e.checkShardsWrittenOnce(t, after)
	if r, err := e.v.Verify(e.ctx, 4, true, nil); err != nil || !r.OK() {
		t.Fatalf("verify after the retried seal: %v %v", r.Problems, err)
	}
}
