package vault

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJobScratchKeys pins every key of a job's working files: they are
// read back by later steps (and by a later deploy of the code while a job
// runs), so a key that changes is a format change.
func TestJobScratchKeys(t *testing.T) {
	rs := RestoreScratch{Job: "restore-1", Run: RestoreRun("arn:aws:states:eu-west-1:123456789012:execution:restore:x")}
	got := map[string]string{
		"snapshot items list":  SnapshotItemsListKey("backup-1"),
		"snapshot scan":        SnapshotScanKey("backup-1"),
		"snapshot item":        SnapshotItemKey("backup-1", 7),
		"snapshot started":     SnapshotStartedKey("backup-1", 7),
		"snapshot fragment":    JobFragmentKey("backup-1", 7),
		"snapshot inventory":   SnapshotInventoryRunKey("backup-1", 7),
		"restore run":          rs.Run,
		"restore prefix":       rs.Prefix(),
		"restore items list":   rs.ItemsList(),
		"restore item":         rs.Item(7),
		"restore marker":       rs.Marker(7),
		"restore result":       rs.Result(7),
		"restore marker res.":  rs.MarkerResult(7),
		"restore results":      rs.Results(),
		"restore begun work":   rs.Begun(RestoreWork, 7),
		"restore begun marker": rs.Begun(RestoreMarker, 7),
		"restore work part":    RestoreItemPartKey("restore-1", RestoreWork, 7, 2),
		"restore marker part":  RestoreItemPartKey("restore-1", RestoreMarker, 7, 2),
		"IAM items list":       SnapshotItemsListKey("*"),
		"IAM restore list":     RestoreScratch{Job: "*", Run: "*"}.ItemsList(),
	}
	run := "scratch/jobs/restore-1/restore/" + got["restore run"] + "/"
	want := map[string]string{
		"snapshot items list":  "scratch/jobs/backup-1/items.json",
		"snapshot scan":        "scratch/jobs/backup-1/scan.json",
		"snapshot item":        "scratch/jobs/backup-1/items/000007.jsonl.zst",
		"snapshot started":     "scratch/jobs/backup-1/items/000007.started",
		"snapshot fragment":    "scratch/jobs/backup-1/fragments/000007.jsonl.zst",
		"snapshot inventory":   "scratch/jobs/backup-1/inventory/000007.jsonl.zst",
		"restore run":          "bd468d787898", // sha256sum of the ARN, its first 12 hex digits,
		"restore prefix":       run,
		"restore items list":   run + "items.json",
		"restore item":         run + "items/00000007.seg",
		"restore marker":       run + "markers/00000007.seg",
		"restore result":       run + "results/00000007.json",
		"restore marker res.":  run + "results/m00000007.json",
		"restore results":      run + "results/",
		"restore begun work":   run + "begun/i00000007",
		"restore begun marker": run + "begun/m00000007",
		"restore work part":    "jobs/restore-1/mapping-i00000007-002.jsonl.zst",
		"restore marker part":  "jobs/restore-1/mapping-i50000007-002.jsonl.zst",
		"IAM items list":       "scratch/jobs/*/items.json",
		"IAM restore list":     "scratch/jobs/*/restore/*/items.json",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
	for key, marker := range map[string]bool{rs.Result(7): false, rs.MarkerResult(7): true} {
		if IsMarkerResult(key) != marker {
			t.Errorf("IsMarkerResult(%s) = %v, want %v", key, !marker, marker)
		}
	}
}
