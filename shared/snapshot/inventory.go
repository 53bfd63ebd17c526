package snapshot

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// InventorySource names an S3 Inventory report: the manifest.json of one
// delivery (CSV format, all object versions, with the VersionId, IsLatest,
// IsDeleteMarker, Size, LastModifiedDate and ETag fields).
type InventorySource struct {
	Bucket      string `json:"bucket"`
	ManifestKey string `json:"manifestKey"`
}

// inventoryManifest is S3 Inventory's manifest.json.
type inventoryManifest struct {
	SourceBucket      string `json:"sourceBucket"`
	DestinationBucket string `json:"destinationBucket"`
	Version           string `json:"version"`
	CreationTimestamp string `json:"creationTimestamp"`
	FileFormat        string `json:"fileFormat"`
	FileSchema        string `json:"fileSchema"`
	Files             []struct {
		Key         string `json:"key"`
		Size        int64  `json:"size"`
		MD5Checksum string `json:"MD5checksum"`
	} `json:"files"`
}

// InventoryRunRows bounds the rows sorted in memory at once: each run of
// this many rows is written to the vault sorted, and the runs are merged.
var InventoryRunRows = 100000

// inventoryColumns are the fields the scan needs.
var inventoryColumns = []string{"Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag"}

func (e *Engine) readManifest(ctx context.Context, src *InventorySource, bucket string) (*inventoryManifest, map[string]int, error) {
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.ManifestKey)})
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, nil, invalid("inventory manifest s3://%s/%s does not exist", src.Bucket, src.ManifestKey)
		}
		return nil, nil, fmt.Errorf("read inventory manifest: %w", err)
	}
	defer out.Body.Close()
	var m inventoryManifest
	if err := json.NewDecoder(out.Body).Decode(&m); err != nil {
		return nil, nil, invalid("inventory manifest s3://%s/%s: %v", src.Bucket, src.ManifestKey, err)
	}
	if m.SourceBucket != bucket {
		return nil, nil, invalid("inventory manifest s3://%s/%s is of bucket %q, not %q", src.Bucket, src.ManifestKey, m.SourceBucket, bucket)
	}
	if m.FileFormat != "CSV" {
		return nil, nil, invalid("inventory format %s: bucketvault reads CSV inventories (set the inventory's format to CSV)", m.FileFormat)
	}
	cols := map[string]int{}
	for i, f := range strings.Split(m.FileSchema, ",") {
		cols[strings.TrimSpace(f)] = i
	}
	for _, c := range inventoryColumns {
		if _, ok := cols[c]; !ok {
			return nil, nil, invalid("inventory schema %q lacks %s: include all object versions and the Size, LastModifiedDate and ETag fields", m.FileSchema, c)
		}
	}
	return &m, cols, nil
}

// sortInventory reads the inventory's data files, from where earlier
// rounds stopped, into sorted runs of current objects; it reports whether
// every file is done.
func (e *Engine) sortInventory(ctx context.Context, v *vault.Vault, job Job, st *ScanState, deadline time.Time) (bool, error) {
	m, cols, err := e.readManifest(ctx, job.Inventory, job.Bucket)
	if err != nil {
		return false, err
	}
	for n := 0; st.InventoryFiles < len(m.Files); n++ {
		if n > 0 && e.now().After(deadline) {
			return false, nil // at least one file per call, so rounds progress
		}
		f := m.Files[st.InventoryFiles]
		runs, err := e.sortInventoryFile(ctx, v, job, f.Key, cols, len(st.Runs))
		if err != nil {
			return false, err
		}
		st.Runs = append(st.Runs, runs...)
		st.InventoryFiles++
		if e.Progress != nil {
			e.Progress(Progress{Listed: int64(st.InventoryFiles)})
		}
	}
	return true, nil
}

// sortInventoryFile turns one CSV data file into sorted runs, numbered
// from first.
func (e *Engine) sortInventoryFile(ctx context.Context, v *vault.Vault, job Job, key string, cols map[string]int, first int) ([]string, error) {
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(job.Inventory.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("read inventory file s3://%s/%s: %w", job.Inventory.Bucket, key, err)
	}
	defer out.Body.Close()
	var body io.Reader = out.Body
	if strings.HasSuffix(key, ".gz") {
		gz, err := gzip.NewReader(out.Body)
		if err != nil {
			return nil, invalid("inventory file %s: %v", key, err)
		}
		defer gz.Close()
		body = gz
	}
	r := csv.NewReader(body)
	r.FieldsPerRecord = -1
	var runs []string
	var recs []vault.Record
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
		k := vault.SnapshotInventoryRunKey(job.JobID, first+len(runs)+1)
		if err := v.WriteRecords(ctx, job.Bucket, k, recs, nil); err != nil {
			return err
		}
		runs = append(runs, k)
		recs = recs[:0]
		return nil
	}
	for line := 1; ; line++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid("inventory file %s line %d: %v", key, line, err)
		}
		rec, current, err := inventoryRow(row, cols)
		if err != nil {
			return nil, invalid("inventory file %s line %d: %v", key, line, err)
		}
		if !current {
			continue
		}
		recs = append(recs, rec)
		if len(recs) >= InventoryRunRows {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return runs, flush()
}

// inventoryRow decodes one row; current says it is a current object (the
// latest version, not a delete marker).
func inventoryRow(row []string, cols map[string]int) (vault.Record, bool, error) {
	field := func(name string) (string, error) {
		i := cols[name]
		if i >= len(row) {
			return "", fmt.Errorf("%d fields, no %s", len(row), name)
		}
		return row[i], nil
	}
	vals := map[string]string{}
	for _, c := range append(inventoryColumns, "StorageClass") {
		if _, ok := cols[c]; !ok {
			continue
		}
		s, err := field(c)
		if err != nil {
			return vault.Record{}, false, err
		}
		vals[c] = s
	}
	if vals["IsLatest"] != "true" || vals["IsDeleteMarker"] == "true" {
		return vault.Record{}, false, nil
	}
	key, err := url.QueryUnescape(vals["Key"]) // inventory keys are URL-encoded
	if err != nil {
		return vault.Record{}, false, fmt.Errorf("key %q: %v", vals["Key"], err)
	}
	size, err := strconv.ParseInt(vals["Size"], 10, 64)
	if err != nil {
		return vault.Record{}, false, fmt.Errorf("size %q: %v", vals["Size"], err)
	}
	t, err := time.Parse(time.RFC3339Nano, vals["LastModifiedDate"])
	if err != nil {
		return vault.Record{}, false, fmt.Errorf("last modified %q: %v", vals["LastModifiedDate"], err)
	}
	vid := vals["VersionId"]
	if vid == "" {
		vid = "null"
	}
	return vault.Record{Op: vault.OpVersion, Key: key, VersionID: vid, Time: t.UTC(), Size: size,
		ETag: s3x.TrimETag(vals["ETag"]), StorageClass: vals["StorageClass"], Origin: vault.OriginSnapshot}, true, nil
}

// inventoryPager merges the sorted runs into pages of entries.
type inventoryPager struct {
	m    *vault.Merger
	page int
	done bool
}

func (e *Engine) inventoryPager(ctx context.Context, v *vault.Vault, st *ScanState, page int) (*inventoryPager, error) {
	m, err := v.OpenSorted(ctx, st.Runs)
	if err != nil {
		return nil, err
	}
	return &inventoryPager{m: m, page: page}, nil
}

func (p *inventoryPager) HasMorePages() bool        { return !p.done }
func (p *inventoryPager) Markers() (string, string) { return "", "" }
func (p *inventoryPager) close()                    { p.m.Close() }
func (p *inventoryPager) Next(context.Context) ([]s3x.Entry, error) {
	var out []s3x.Entry
	for len(out) < p.page {
		_, recs, err := p.m.NextKey()
		if errors.Is(err, io.EOF) {
			p.done = true
			break
		}
		if err != nil {
			return nil, err
		}
		r := recs[0].Record // an inventory lists a key's latest version once
		out = append(out, s3x.Entry{Key: r.Key, VersionID: r.VersionID, IsLatest: true, LastModified: r.Time, Size: r.Size, ETag: r.ETag, StorageClass: r.StorageClass})
	}
	return out, nil
}
