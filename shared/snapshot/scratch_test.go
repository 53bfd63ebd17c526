package snapshot_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// vaultKeys lists the vault's current keys under prefix.
func (e env) vaultKeys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(e.c, &s3.ListObjectsV2Input{Bucket: aws.String(e.v.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// dropVersions deletes every version and delete marker of the vault under
// prefix, as the vault's lifecycle rule does to scratch/ in the end.
func (e env) dropVersions(t *testing.T, prefix string) int {
	t.Helper()
	var objs []types.ObjectIdentifier
	p := s3.NewListObjectVersionsPaginator(e.c, &s3.ListObjectVersionsInput{Bucket: aws.String(e.v.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			objs = append(objs, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			objs = append(objs, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
	}
	for _, o := range objs {
		if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.v.Bucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	return len(objs)
}

// TestWorkingFilesAreScratch: a snapshot job keeps every working file
// (items list, scan progress, work items, started markers, fragments)
// under vault.JobScratchPrefix, which the vault's lifecycle expires, and
// only its record under jobs/. None of them is part of the recovery
// point: with the job's scratch gone, the point restores exactly and the
// next snapshot finds everything in the vault.
func TestWorkingFilesAreScratch(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want := e.capture(t)
	j := e.run(t, e.engine(e.c), snapshot.Job{})
	if j.State != snapshot.StateCompleted || j.Scan.Files < 2 || j.Scan.ItemFiles < 2 {
		t.Fatalf("job %s %+v: want COMPLETED over several work-item files", j.State, j.Scan)
	}
	scratch := vault.JobScratchPrefix(j.JobID)
	if want := vault.JobScratchKey(j.JobID, "items.json"); j.Scan.ItemsKey != want {
		t.Errorf("items list %q, want %q", j.Scan.ItemsKey, want)
	}
	var items []snapshot.ItemRef
	if err := e.v.GetJSON(e.ctx, j.Scan.ItemsKey, &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != j.Scan.ItemFiles {
		t.Fatalf("items %+v: want %d", items, j.Scan.ItemFiles)
	}
	for _, it := range items {
		if want := vault.JobScratchKey(j.JobID, fmt.Sprintf("items/%06d.jsonl.zst", it.N)); it.Key != want {
			t.Errorf("item %d: key %q, want %q", it.N, it.Key, want)
		}
	}

	// Every key the job wrote: its record, and its scratch.
	var mine []string
	for _, k := range e.vaultKeys(t, "") {
		if strings.Contains(k, j.JobID) {
			mine = append(mine, k)
		}
	}
	wantFiles := []string{vault.JobKey(j.JobID), j.Scan.ItemsKey, vault.JobScratchKey(j.JobID, "scan.json")}
	for _, it := range items {
		wantFiles = append(wantFiles, it.Key, vault.JobScratchKey(j.JobID, fmt.Sprintf("items/%06d.started", it.N)))
	}
	for n := 1; n <= j.Scan.Files; n++ {
		wantFiles = append(wantFiles, vault.JobScratchKey(j.JobID, fmt.Sprintf("fragments/%06d.jsonl.zst", n)))
	}
	slices.Sort(wantFiles)
	slices.Sort(mine)
	if !slices.Equal(wantFiles, mine) {
		t.Errorf("the job's vault keys:\n got %q\nwant %q", mine, wantFiles)
	}

	sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range append(slices.Clone(sp.Shards), sp.FailureShards...) {
		if strings.HasPrefix(sh.Key, scratch) {
			t.Errorf("shard %s of the recovery point is scratch", sh.Key)
		}
	}
	if n := e.dropVersions(t, scratch); n < len(wantFiles)-1 {
		t.Fatalf("dropped %d scratch objects, want at least %d", n, len(wantFiles)-1)
	}
	got, rep := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore without the job's scratch (%s) differs:\n%s", rep.State, strings.Join(d, "\n"))
	}
	if j2 := e.run(t, e.engine(e.c), snapshot.Job{}); j2.State != snapshot.StateCompleted || j2.Totals.Copied != 0 || j2.Totals.Objects != int64(len(want)) {
		t.Errorf("next snapshot: %s %+v; want all %d objects found in the vault", j2.State, j2.Totals, len(want))
	}
}

// TestLostScanProgress: a job whose scan ran but whose saved progress is
// gone (expired with the rest of its scratch, or kept elsewhere by the
// functions that scanned it) cannot find its work-item files: the scan
// and the seal refuse it with InvalidJobError, the name the state
// machine catches as fatal, and the recovery point is not sealed as if
// the bucket held nothing.
func TestLostScanProgress(t *testing.T) {
	e := setup(t)
	for i := range 30 {
		e.put(t, fmt.Sprintf("k/%02d", i), fmt.Sprint("v", i))
	}
	eng := e.engine(e.c)
	eng.ScanPages = 1
	refused := func(what string, err error, j snapshot.Job) {
		t.Helper()
		inv, ok := err.(*snapshot.InvalidJobError) // unwrapped: Lambda reports this type's name
		if !ok {
			t.Fatalf("%s: error %v (%T); want *snapshot.InvalidJobError", what, err, err)
		}
		if !strings.Contains(inv.Reason, vault.JobScratchKey(j.JobID, "scan.json")) {
			t.Errorf("%s: %q does not name the missing progress", what, inv.Reason)
		}
		sp, err := e.v.Snapshot(e.ctx, e.bucket, j.RecoveryPointID)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Status != vault.PointCreating || sp.ObjectCount != 0 {
			t.Errorf("%s: recovery point %s with %d objects; want it left CREATING", what, sp.Status, sp.ObjectCount)
		}
	}
	lose := func(j *snapshot.Job) {
		t.Helper()
		if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(vault.JobScratchKey(j.JobID, "scan.json"))}); err != nil {
			t.Fatal(err)
		}
	}

	// Mid-scan.
	j, err := eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || j.Scan.Done || j.Scan.ItemFiles == 0 {
		t.Fatalf("first round: %+v %v; want work-item files and more to list", j.Scan, err)
	}
	lose(j)
	_, err = eng.Scan(e.ctx, *j)
	refused("scan", err, *j)
	_, err = eng.Seal(e.ctx, *j)
	refused("seal of the unfinished scan", err, *j)

	// Scanned, copied, then sealed.
	eng.ScanPages = 0
	if j, err = eng.Start(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket}); err != nil {
		t.Fatal(err)
	}
	if j, err = eng.Scan(e.ctx, *j); err != nil || !j.Scan.Done || j.Scan.Files == 0 {
		t.Fatalf("scan: %+v %v", j.Scan, err)
	}
	e.copyAll(t, eng, j)
	lose(j)
	_, err = eng.Seal(e.ctx, *j)
	refused("seal", err, *j)
}
