package snapshot_test

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// writeInventory publishes an S3 Inventory report of the bucket the way S3
// does (manifest.json, gzipped CSV data files, URL-encoded keys, every
// version and delete marker), its rows shuffled across three files.
func (e env) writeInventory(t *testing.T, dest string) string {
	t.Helper()
	var rows [][]string
	l := s3x.NewVersionLister(e.c, e.bucket, "", "", "", 1000)
	for l.HasMorePages() {
		page, err := l.Next(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range page {
			rows = append(rows, []string{e.bucket, url.QueryEscape(en.Key), en.VersionID, fmt.Sprint(en.IsLatest), fmt.Sprint(en.IsDeleteMarker),
				fmt.Sprint(en.Size), en.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"), en.ETag, en.StorageClass})
		}
	}
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	type file struct {
		Key         string `json:"key"`
		Size        int64  `json:"size"`
		MD5checksum string `json:"MD5checksum"`
	}
	var files []file
	for f := range 3 {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		w := csv.NewWriter(gz)
		for i := f; i < len(rows); i += 3 {
			if err := w.Write(rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		gz.Close()
		key := fmt.Sprintf("inv/%s/all/data/%d.csv.gz", e.bucket, f)
		if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(dest), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes())}); err != nil {
			t.Fatal(err)
		}
		files = append(files, file{Key: key, Size: int64(buf.Len()), MD5checksum: "unchecked"})
	}
	man, _ := json.Marshal(map[string]any{
		"sourceBucket": e.bucket, "destinationBucket": "arn:aws:s3:::" + dest, "version": "2016-11-30",
		"creationTimestamp": fmt.Sprint(time.Now().UnixMilli()), "fileFormat": "CSV",
		"fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass",
		"files":      files,
	})
	key := fmt.Sprintf("inv/%s/all/%s/manifest.json", e.bucket, time.Now().UTC().Format("2006-01-02T15-04Z"))
	if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(dest), Key: aws.String(key), Body: bytes.NewReader(man)}); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestSnapshotFromInventory: a scan that reads an S3 Inventory report
// instead of listing (unsorted files, several sorted runs, merged with
// spilling) makes the same recovery point as a listing.
func TestSnapshotFromInventory(t *testing.T) {
	e := setup(t)
	e.workload(t)
	dest := e.srv.NewBucket(t, false)
	manifest := e.writeInventory(t, dest)
	defer func(rows, open int) { snapshot.InventoryRunRows, vault.MaxOpenSegments = rows, open }(snapshot.InventoryRunRows, vault.MaxOpenSegments)
	snapshot.InventoryRunRows, vault.MaxOpenSegments = 4, 3

	eng := e.engine(e.c)
	eng.ScanBudget = time.Nanosecond // one data file per round at most
	j := e.run(t, eng, snapshot.Job{Inventory: &snapshot.InventorySource{Bucket: dest, ManifestKey: manifest}})
	want := e.capture(t)
	if j.State != snapshot.StateCompleted || j.Totals.Objects != int64(len(want)) || j.Scan.Rounds < 3 || len(j.Scan.Runs) < 6 {
		t.Fatalf("job %s %+v scan %+v; want %d objects over several rounds and runs", j.State, j.Totals, j.Scan, len(want))
	}
	// The sorted runs are the job's scratch, numbered from 1.
	for i, k := range j.Scan.Runs {
		if want := vault.JobScratchKey(j.JobID, fmt.Sprintf("inventory/%06d.jsonl.zst", i+1)); k != want {
			t.Errorf("run %d: %q, want %q", i+1, k, want)
		}
	}
	got, _ := e.restoreInto(t, j.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore differs:\n%s", strings.Join(d, "\n"))
	}
	// A listing-based snapshot next finds everything in the vault.
	j2 := e.run(t, e.engine(e.c), snapshot.Job{})
	if j2.Totals.Copied != 0 || j2.Totals.Objects != int64(len(want)) {
		t.Errorf("listing after inventory: %+v; want nothing to copy", j2.Totals)
	}

	// A report of another bucket, or in another format, is refused clearly.
	for _, bad := range []snapshot.InventorySource{{Bucket: dest, ManifestKey: "inv/none/manifest.json"}} {
		_, err := e.engine(e.c).Run(e.ctx, snapshot.Job{Vault: e.v.Bucket, Bucket: e.bucket, Inventory: &bad})
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
