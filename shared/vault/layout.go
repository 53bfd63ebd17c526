package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The vault's key layout, format version 1 (docs/vault-format.md).
//
//	bucketvault.json                                  descriptor
//	data/<h0:4>/<h>                                   one object per source version
//	journal/<bucket>/<s0:2>/<segment>.jsonl.zst       journal segments
//	buckets/<bucket>.json                             protected bucket record
//	reconcile/<bucket>.json                           reconcile progress
//	jobs/<job>.json, jobs/<job>/mapping-<n>.jsonl.zst job records
//	restore-tests/<bucket>/<id>.json                  restore test runs
//
// h is the hex SHA-256 of the version's identity, so data keys spread
// evenly across prefixes whatever the source keys look like; s is a hash of
// the segment id, which spreads journal writes of one bucket likewise.
const (
	DescriptorKey  = "bucketvault.json"
	dataPrefix     = "data/"
	journalPrefix  = "journal/"
	bucketsPrefix  = "buckets/"
	reconcilePfx   = "reconcile/"
	jobsPrefix     = "jobs/"
	scratchPrefix  = "scratch/"
	restoreTestPfx = "restore-tests/"
	verdictPfx     = "restore-test-verdicts/"
	segmentSuffix  = ".jsonl.zst"
	segmentIDWidth = 13 // unix milliseconds, zero-padded
)

// Key patterns: every key of one area of the vault, for IAM resources and
// lifecycle rules (infra), in S3's wildcard syntax.
const (
	PatternData         = dataPrefix + "*"
	PatternJournal      = journalPrefix + "*"
	PatternBuckets      = bucketsPrefix + "*"
	PatternReconcile    = reconcilePfx + "*"
	PatternJobs         = jobsPrefix + "*"
	PatternRuns         = runsPfx + "*"
	PatternSnapshots    = snapshotsPrefix + "*"
	PatternScratch      = scratchPrefix + "*"
	PatternRestoreTests = restoreTestPfx + "*"
	// PatternRestoreTestVerdicts: the verdicts users' validations report.
	PatternRestoreTestVerdicts = verdictPfx + "*"
	// DataPrefix is the prefix of every data object (a lifecycle filter).
	DataPrefix = dataPrefix
)

// DataKey is the vault key of one source version's bytes. A version id
// names a version for good, except "null" (versioning never enabled or
// suspended), which S3 overwrites in place: its identity also takes the
// ETag and LastModified.
func DataKey(bucket, key, versionID, etag string, lastModified time.Time) string {
	h := sha256.New()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(versionID))
	if versionID == "" || versionID == "null" {
		h.Write([]byte{0})
		h.Write([]byte(etag))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatInt(lastModified.UnixMilli(), 10)))
	}
	// One level under data/: S3 partitions by the key's leading bytes,
	// which the hash spreads, whether or not a "/" follows them; a
	// file-system-backed server (MinIO) makes a directory per level, so a
	// level more costs it a directory per object (docs/vault-format.md).
	return dataPrefix + hex.EncodeToString(h.Sum(nil))
}

// ProbeVersion names the probe object (ProbeKey) as if it were a version
// of the vault's descriptor.
const ProbeVersion = "bucketvault-conditional-copy-probe"

// ProbeKey is the vault key of the object with which writers probe once
// whether the vault's server honours create-only writes: a data key (of a
// pseudo-version of the vault's own descriptor), which expiry keeps.
func ProbeKey(vaultBucket string) string {
	return DataKey(vaultBucket, DescriptorKey, ProbeVersion, "", time.Time{})
}

// NewSegmentID returns a segment id that sorts by the time it was written:
// unix milliseconds then random hex.
func NewSegmentID(now time.Time) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%0*d-%s", segmentIDWidth, now.UnixMilli(), hex.EncodeToString(r[:]))
}

// SegmentKey is the vault key of a journal segment of bucket.
func SegmentKey(bucket, segmentID string) string {
	s := sha256.Sum256([]byte(segmentID))
	return journalPrefix + bucket + "/" + hex.EncodeToString(s[:1]) + "/" + segmentID + segmentSuffix
}

// SegmentPrefix is the prefix under which every segment of bucket lives.
func SegmentPrefix(bucket string) string { return journalPrefix + bucket + "/" }

// ParseSegmentKey returns the segment id in a segment key, or false.
func ParseSegmentKey(key string) (string, bool) {
	if !strings.HasPrefix(key, journalPrefix) || !strings.HasSuffix(key, segmentSuffix) {
		return "", false
	}
	base := key[strings.LastIndexByte(key, '/')+1:]
	id := strings.TrimSuffix(base, segmentSuffix)
	if len(id) < segmentIDWidth+2 || id[segmentIDWidth] != '-' {
		return "", false
	}
	return id, true
}

// BucketKey is the vault key of a protected bucket's record.
func BucketKey(bucket string) string { return bucketsPrefix + bucket + ".json" }

// ReconcileKey is the vault key of a bucket's reconcile progress.
func ReconcileKey(bucket string) string { return reconcilePfx + bucket + ".json" }

// RestoreTestKey is the vault key of one restore test run of a bucket; its
// id starts with the run's time, so a listing is in time order.
func RestoreTestKey(bucket, id string) string { return restoreTestPfx + bucket + "/" + id + ".json" }

// RestoreTestsPrefix is the prefix of a bucket's restore test runs ("":
// every bucket's).
func RestoreTestsPrefix(bucket string) string {
	if bucket == "" {
		return restoreTestPfx
	}
	return restoreTestPfx + bucket + "/"
}

// RestoreTestVerdictKey is the vault key of the verdict a user's
// validation reported for one restore test run (AWS Backup's
// PutRestoreValidationResult): apart from the run's record, which only
// the restore test's own steps write.
func RestoreTestVerdictKey(bucket, id string) string { return verdictPfx + bucket + "/" + id + ".json" }

// JobKey is the vault key of a job record.
func JobKey(jobID string) string { return jobsPrefix + jobID + ".json" }

// ActiveJobKey is the vault key naming the latest job of one request (by
// the hash of what the request asks): a job id never holds a "/", so it
// cannot collide with a job's record.
func ActiveJobKey(requestHash string) string { return jobsPrefix + "active/" + requestHash + ".json" }

// JobScratchKey is the vault key of one of a job's working files (a
// snapshot's work items, scan progress, started markers, fragments,
// inventory runs): scratch/jobs/<job>/<name>. Scratch is not part of any
// recovery point: the vault's lifecycle rule removes it, and expiry
// reads it only for a running snapshot job's fragments (gc.go).
func JobScratchKey(jobID, name string) string { return JobScratchPrefix(jobID) + name }

// JobFragmentKey is the vault key of a snapshot job's nth manifest
// fragment: expiry reads a running job's fragments (their data is in no
// manifest yet).
func JobFragmentKey(jobID string, n int) string {
	return JobScratchKey(jobID, fmt.Sprintf("fragments/%06d%s", n, segmentSuffix))
}

// JobScratchPrefix is the prefix of a job's working files.
func JobScratchPrefix(jobID string) string { return scratchPrefix + "jobs/" + jobID + "/" }

// JobItemPartKey is the vault key of part n of the mapping of one work
// item of a job (a restore state machine's batch writes its own parts).
func JobItemPartKey(jobID string, item, n int) string {
	return fmt.Sprintf("%s%s/mapping-i%08d-%03d%s", jobsPrefix, jobID, item, n, segmentSuffix)
}

// JobPartKey is the vault key of part n of a job's mapping.
func JobPartKey(jobID string, n int) string {
	return fmt.Sprintf("%s%s/mapping-%05d%s", jobsPrefix, jobID, n, segmentSuffix)
}

// Job types: every job record (JobKey) says its type in "type", and its
// schema is its type's (restore.Report, snapshot.Job). A job id starts
// with its kind (NewJobID), which tells the type of records that say none.
const (
	JobTypeRestore = "RESTORE"
	JobTypeBackup  = "BACKUP"
)

// JobType reads the type of the job record of jobID.
func (v *Vault) JobType(ctx context.Context, jobID string) (string, error) {
	var rec struct {
		Type string `json:"type"`
	}
	if err := v.GetJSON(ctx, JobKey(jobID), &rec); err != nil {
		return "", err
	}
	switch {
	case rec.Type != "":
		return rec.Type, nil
	case strings.HasPrefix(jobID, "backup-"):
		return JobTypeBackup, nil
	case strings.HasPrefix(jobID, "restore-"):
		return JobTypeRestore, nil
	}
	return "", fmt.Errorf("job %s: its record says no type, and its id names none", jobID)
}

// NewJobID returns a job id that sorts by time.
func NewJobID(kind string, now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s-%s-%s", kind, now.UTC().Format("20060102T150405Z"), hex.EncodeToString(r[:]))
}
