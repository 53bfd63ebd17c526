package vault

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
)

// A job's working files live under JobScratchPrefix(job), scratch/jobs/<job>/
// (see scratch.go for their retention and lifecycle). Their layout is the
// format's like every other key's: the snapshot and restore engines ask
// for each key here, and infra's IAM patterns come from the same
// functions.

// A snapshot job's working files:
//
//	items.json                  the Distributed Map's item list (SnapshotItemsListKey)
//	scan.json                   the scan's saved progress (SnapshotScanKey)
//	items/<n>.jsonl.zst         work-item file n (SnapshotItemKey)
//	items/<n>.started           a copy step began file n (SnapshotStartedKey)
//	fragments/<n>.jsonl.zst     manifest fragment n (JobFragmentKey)
//	inventory/<n>.jsonl.zst     sorted run n of the job's inventory rows (SnapshotInventoryRunKey)
//
// n is six digits, zero-padded.

// SnapshotItemsListKey is the vault key of a snapshot job's items list, the
// JSON array of work-item files the Distributed Map's ItemReader reads.
func SnapshotItemsListKey(jobID string) string { return JobScratchKey(jobID, "items.json") }

// SnapshotScanKey is the vault key of a snapshot job's saved scan
// progress.
func SnapshotScanKey(jobID string) string { return JobScratchKey(jobID, "scan.json") }

// SnapshotItemKey is the vault key of a snapshot job's nth work-item file.
func SnapshotItemKey(jobID string, n int) string {
	return JobScratchKey(jobID, fmt.Sprintf("items/%06d%s", n, segmentSuffix))
}

// SnapshotStartedKey is the vault key of the marker a snapshot's copy step
// writes before it copies anything of work-item file n: a copy step that
// finds it checks the vault before each copy.
func SnapshotStartedKey(jobID string, n int) string {
	return JobScratchKey(jobID, fmt.Sprintf("items/%06d.started", n))
}

// SnapshotInventoryRunKey is the vault key of the nth sorted run of a
// snapshot job's inventory rows.
func SnapshotInventoryRunKey(jobID string, n int) string {
	return JobScratchKey(jobID, fmt.Sprintf("inventory/%06d%s", n, segmentSuffix))
}

// RestoreItemKind tells a restore state machine's two kinds of work item
// apart in their keys: work items (versions to write) and marker items
// (delete markers to put, a rollback's).
type RestoreItemKind string

const (
	RestoreWork   RestoreItemKind = "i"
	RestoreMarker RestoreItemKind = "m"
)

// RestoreScratch names the working files of one run of a restore state
// machine's job: one execution's, so a job id run again by another
// execution plans and batches anew. Under
// scratch/jobs/<job>/restore/<run>/:
//
//	items.json               the Distributed Map's item list, [{"item": n}, ...]
//	items/<n>.seg            work item n
//	markers/<n>.seg          marker item n
//	results/<n>.json         work item n's result (sealed JSON)
//	results/m<n>.json        marker item n's result
//	begun/i<n>, begun/m<n>   an item's first run began
//
// n is eight digits, zero-padded.
type RestoreScratch struct {
	Job string
	Run string // RestoreRun of the execution
}

// RestoreRun names an execution's run: the first 12 hex digits of the
// SHA-256 of its ARN.
func RestoreRun(execution string) string {
	sum := sha256.Sum256([]byte(execution))
	return hex.EncodeToString(sum[:6])
}

// Prefix is the prefix of every working file of the run.
func (s RestoreScratch) Prefix() string { return JobScratchKey(s.Job, "restore/"+s.Run+"/") }

// ItemsList is the vault key of the run's items list.
func (s RestoreScratch) ItemsList() string { return s.Prefix() + "items.json" }

// Item is the vault key of work item n.
func (s RestoreScratch) Item(n int) string { return s.Prefix() + fmt.Sprintf("items/%08d.seg", n) }

// Marker is the vault key of marker item n.
func (s RestoreScratch) Marker(n int) string {
	return s.Prefix() + fmt.Sprintf("markers/%08d.seg", n)
}

// Result is the vault key of work item n's result.
func (s RestoreScratch) Result(n int) string {
	return s.Prefix() + fmt.Sprintf("results/%08d.json", n)
}

// MarkerResult is the vault key of marker item n's result.
func (s RestoreScratch) MarkerResult(n int) string {
	return s.Prefix() + fmt.Sprintf("results/m%08d.json", n)
}

// Results is the prefix of the run's items' results.
func (s RestoreScratch) Results() string { return s.Prefix() + "results/" }

// Begun is the vault key that says item n of kind began a first run.
func (s RestoreScratch) Begun(kind RestoreItemKind, n int) string {
	return s.Prefix() + fmt.Sprintf("begun/%s%08d", kind, n)
}

// IsMarkerResult says whether a key under Results is a marker item's
// result (else a work item's).
func IsMarkerResult(key string) bool {
	return strings.HasPrefix(path.Base(key), string(RestoreMarker))
}

// RestoreMarkerItems is where marker items' numbers start in their mapping
// parts' keys (RestoreItemPartKey), apart from work items'.
const RestoreMarkerItems = 50_000_000

// RestoreItemPartKey is the vault key of part p of the mapping that item
// n of kind writes (JobItemPartKey; marker items from RestoreMarkerItems).
func RestoreItemPartKey(jobID string, kind RestoreItemKind, n, p int) string {
	if kind == RestoreMarker {
		n += RestoreMarkerItems
	}
	return JobItemPartKey(jobID, n, p)
}
