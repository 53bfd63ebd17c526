package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Rebuilt data. Every reader of data conditions on the ETag a record
// names (DataETag). A data object that repair writes again from its
// source (RepairData) gets that ETag only where the vault's ETags are the
// MD5 of the bytes written in the same shape; a vault encrypted with
// SSE-KMS (as deployed) gives every write an ETag of its own. Such a
// version is vouched for by a repair record, which RepairData writes
// after it has checked the version:
//
//   - the bytes came from the source version the records name, checked
//     before (its ETag, size and full-object checksum, a "null" version's
//     time) and copied conditional on its ETag (a pack: each member read
//     conditional on its ETag and checked against its record, the
//     members end to end from byte 0);
//   - the version written is asked for afterwards: its size, its ETag,
//     and the checksum the vault computed over the bytes on the write
//     (asked for on the write: the source's full-object algorithm, else
//     SHA-256), which must be of the algorithm of the source's full-object
//     checksum, where it has one, and equal to it.
//
// The record, repairs/<data key>/<version>.json (RepairRecordKey), is
// sealed (its SHA-256 in the object's metadata, as PutSealedJSON) and
// written create-only; it names the data key, the ETag it stands in for,
// the version and its ETag, size and checksum, and every source version
// (with its offset in a pack) it vouches for.
//
// A reader that finds no version of a data object with the recorded ETag
// (FindData) lists the key's repair records, newest first, and takes the
// first that passes every check: its seal, its key naming its data key
// and version, the record being read among its sources (key, version id,
// ETag, size, offset) and inside its size, the checksum it names equal to
// the record's full-object checksum (a record of a whole version that has
// one: of its algorithm), and the version it names there with its ETag,
// size and checksum (a HEAD).
// The DataVersion it returns carries the version and its ETag, which
// every read of it is conditional on instead of the recorded one. A
// record that fails a check vouches for nothing: the data object stays
// lost, and verify says which record failed and why.
//
// The seal detects damage, not a writer with the vault's write
// permission; what ties a rebuilt version's bytes to the records is the
// checksum comparison above, and the digests every reader checks bytes
// against (CheckData: the source's MD5 ETag, its full-object checksum).

// RepairRecord vouches for a version of a data object that RepairData
// wrote again and whose ETag is not the one its records name.
type RepairRecord struct {
	// Data is the data key; DataETag the ETag its records name, which
	// the version stands in for.
	Data     string `json:"data"`
	DataETag string `json:"dataEtag"`
	// Version is the version written, with its ETag and size.
	Version string `json:"version"`
	ETag    string `json:"etag"`
	Size    int64  `json:"size"`
	// Checksum is the checksum the vault computed over the bytes on the
	// write (nil when the server gave none).
	Checksum *Checksum `json:"checksum,omitempty"`
	// Sources are the source versions the bytes were read from, each
	// checked before: one, or a pack's members.
	Sources []RepairSource `json:"sources"`
	// Checked says what was compared before and after the write.
	Checked   []string  `json:"checked"`
	RebuiltAt time.Time `json:"rebuiltAt"`
}

// RepairSource is a source version a repair record vouches for.
type RepairSource struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"versionId"`
	ETag      string `json:"etag"`
	Size      int64  `json:"size"`
	// Offset is where its bytes begin in a pack.
	Offset int64 `json:"offset,omitempty"`
	// Checksum is the full-object checksum its record names, which the
	// source version had.
	Checksum *Checksum `json:"checksum,omitempty"`
}

// repairSource is the source a version record names, as a repair record
// names it.
func repairSource(bucket string, rec Record) RepairSource {
	s := RepairSource{Bucket: bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag, Size: rec.Size}
	if rec.Packed {
		s.Offset = rec.DataOffset
	}
	if fullChecksum(rec.Checksum) {
		s.Checksum = rec.Checksum
	}
	return s
}

// fullChecksum reports whether c is a checksum of a whole object's bytes.
func fullChecksum(c *Checksum) bool {
	return c != nil && c.Value != "" && c.Type != string(types.ChecksumTypeComposite)
}

// vouches says why rr does not vouch for rec's data ("" when it does),
// from what both say.
func (rr *RepairRecord) vouches(rec Record) string {
	switch {
	case rr.Data != rec.Data:
		return fmt.Sprintf("it names data %s", rr.Data)
	case rr.DataETag != rec.DataETag:
		return fmt.Sprintf("it stands in for ETag %s, the record names %s", rr.DataETag, rec.DataETag)
	case rr.Version == "" || rr.ETag == "":
		return "it names no version and ETag"
	}
	if !slices.ContainsFunc(rr.Sources, func(s RepairSource) bool {
		return s.Key == rec.Key && s.VersionID == rec.VersionID && s.ETag == rec.ETag && s.Size == rec.Size && (!rec.Packed || s.Offset == rec.DataOffset)
	}) {
		return fmt.Sprintf("it does not name the source version %s@%s (ETag %s, %d bytes) among its sources", rec.Key, rec.VersionID, rec.ETag, rec.Size)
	}
	if rec.Packed {
		if rec.DataOffset < 0 || rec.DataOffset+rec.Size > rr.Size {
			return fmt.Sprintf("it names %d bytes, the record says bytes %d-%d", rr.Size, rec.DataOffset, rec.DataOffset+rec.Size-1)
		}
		return ""
	}
	if rr.Size != rec.Size {
		return fmt.Sprintf("it names %d bytes, the record says %d", rr.Size, rec.Size)
	}
	if c := rec.Checksum; fullChecksum(c) {
		switch {
		case rr.Checksum == nil || rr.Checksum.Algorithm != c.Algorithm:
			return fmt.Sprintf("it names no %s checksum of the version to compare with the record's", c.Algorithm)
		case rr.Checksum.Value != c.Value:
			return fmt.Sprintf("the %s checksum it names is %s, the record says %s", c.Algorithm, rr.Checksum.Value, c.Value)
		}
	}
	return ""
}

// dataVersion is the DataVersion of the version rr vouches for.
func (rr *RepairRecord) dataVersion() DataVersion {
	return DataVersion{VersionID: rr.Version, ETag: rr.ETag, Rebuilt: RepairRecordKey(rr.Data, rr.Version)}
}

// putRepairRecord writes rr, sealed and create-only (where the server
// honours If-None-Match: *; its key names its version, so no other
// record is ever written there), and returns its key.
func (v *Vault) putRepairRecord(ctx context.Context, rr *RepairRecord) (string, error) {
	key := RepairRecordKey(rr.Data, rr.Version)
	body, err := json.Marshal(rr)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", key, err)
	}
	sum := sha256.Sum256(body)
	in := &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), Metadata: map[string]string{sealMeta: hex.EncodeToString(sum[:])},
	}
	if v.ConditionalPut(ctx) {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := v.S3.PutObject(ctx, in); err != nil {
		return "", fmt.Errorf("write repair record s3://%s/%s: %w", v.Bucket, key, err)
	}
	return key, nil
}

// readRepairRecord reads the repair record at key: why says what makes
// it damage (its seal, its JSON, its key not naming its data and
// version); gone, that it is not there.
func (v *Vault) readRepairRecord(ctx context.Context, key string) (rr *RepairRecord, why string, err error) {
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	switch {
	case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
		return nil, "it is gone", nil
	case err != nil:
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxRepairRecord+1))
	if err != nil {
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", v.Bucket, key, err)
	}
	rr, why = decodeRepairRecord(key, body, out.Metadata[sealMeta])
	return rr, why, nil
}

// maxRepairRecord bounds the bytes of a repair record a reader takes (a
// pack's has a source per member).
const maxRepairRecord = 16 << 20

// decodeRepairRecord decodes the repair record at key, whose body is
// body and whose seal (the hex SHA-256 of the body) is seal: why says
// what makes it damage ("" when it is sound).
func decodeRepairRecord(key string, body []byte, seal string) (rr *RepairRecord, why string) {
	if len(body) > maxRepairRecord {
		return nil, fmt.Sprintf("it holds more than %d bytes", maxRepairRecord)
	}
	sum := sha256.Sum256(body)
	if seal != hex.EncodeToString(sum[:]) {
		return nil, fmt.Sprintf("%v (sha256 %s, sealed %q)", ErrSealBroken, hex.EncodeToString(sum[:8]), seal)
	}
	rr = &RepairRecord{}
	if err := json.Unmarshal(body, rr); err != nil {
		return nil, fmt.Sprintf("it does not decode: %v", err)
	}
	if data, ok := repairRecordData(key); !ok || data != rr.Data || key != RepairRecordKey(rr.Data, rr.Version) {
		return nil, fmt.Sprintf("it names data %s version %s, which is not what its key names", rr.Data, rr.Version)
	}
	return rr, ""
}

// checkRebuilt says why the version rr names is not there as rr names it
// ("" when it is): a HEAD of it, with its checksum.
func (v *Vault) checkRebuilt(ctx context.Context, rr *RepairRecord) (string, error) {
	h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rr.Data), VersionId: aws.String(rr.Version),
		ChecksumMode: types.ChecksumModeEnabled})
	switch {
	case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
		return fmt.Sprintf("the version %s it names is gone", rr.Version), nil
	case err != nil && s3x.Status(err) == http.StatusBadRequest:
		return fmt.Sprintf("the version %s it names cannot be read: %v", rr.Version, err), nil
	case err != nil:
		return "", fmt.Errorf("head vault data %s@%s: %w", rr.Data, rr.Version, err)
	}
	if etag := s3x.TrimETag(aws.ToString(h.ETag)); etag != rr.ETag {
		return fmt.Sprintf("its version %s has ETag %s, the record names %s", rr.Version, etag, rr.ETag), nil
	}
	if size := aws.ToInt64(h.ContentLength); size != rr.Size {
		return fmt.Sprintf("its version %s has %d bytes, the record names %d", rr.Version, size, rr.Size), nil
	}
	if c := rr.Checksum; c != nil {
		switch got := ChecksumOf(h); {
		case got == nil:
			return fmt.Sprintf("its version %s has no checksum, the record names %s %s", rr.Version, c.Algorithm, c.Value), nil
		case got.Algorithm != c.Algorithm || got.Value != c.Value:
			return fmt.Sprintf("its version %s has %s checksum %s, the record names %s %s", rr.Version, got.Algorithm, got.Value, c.Algorithm, c.Value), nil
		}
	}
	return "", nil
}

// rebuiltVersion finds the newest repair record of rec's data object
// that vouches for rec and whose version is there as it names it (nil
// when none does); untrusted says, for each record that failed, why.
func (v *Vault) rebuiltVersion(ctx context.Context, rec Record) (rr *RepairRecord, untrusted []string, err error) {
	type entry struct {
		key      string
		modified time.Time
	}
	var entries []entry
	prefix := RepairRecordPrefix(rec.Data)
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: aws.String(v.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list repair records of %s: %w", rec.Data, err)
		}
		for _, o := range page.Contents {
			entries = append(entries, entry{aws.ToString(o.Key), aws.ToTime(o.LastModified)})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].modified.After(entries[j].modified) })
	for _, e := range entries {
		rr, why, err := v.readRepairRecord(ctx, e.key)
		if err != nil {
			return nil, untrusted, err
		}
		if why == "it is gone" {
			continue // deleted since the listing
		}
		if why == "" {
			why = rr.vouches(rec)
		}
		if why == "" {
			if why, err = v.checkRebuilt(ctx, rr); err != nil {
				return nil, untrusted, err
			}
		}
		if why == "" {
			return rr, untrusted, nil
		}
		untrusted = append(untrusted, fmt.Sprintf("repair record %s: %s (not trusted)", e.key, why))
	}
	return nil, untrusted, nil
}

// retainVersion extends the S3 Object Lock retention of one version of
// key to until (at least), in a locked vault; one retained longer already
// is left so.
func (v *Vault) retainVersion(ctx context.Context, key, versionID string, until time.Time) error {
	if v.Lock == nil {
		return nil
	}
	cur, err := v.S3.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID)})
	if err == nil && cur.Retention != nil && cur.Retention.RetainUntilDate != nil && !cur.Retention.RetainUntilDate.Before(until) {
		return nil
	}
	in := &s3.PutObjectRetentionInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(v.Lock.Mode), RetainUntilDate: aws.Time(until.UTC())}}
	if _, err := v.S3.PutObjectRetention(ctx, in); err != nil {
		return fmt.Errorf("extend the retention of s3://%s/%s@%s to %s: %w", v.Bucket, key, versionID, until.UTC().Format(time.RFC3339), err)
	}
	return nil
}
