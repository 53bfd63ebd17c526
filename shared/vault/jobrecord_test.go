package vault

import (
	"testing"
)

// TestJobRecordWritersNeverOverwriteEachOther: a job's record is created
// once; its writer's changes go over the version it wrote; once another
// writer changed it, the first writer's next change is a ConflictError
// and what the other wrote stays.
func TestJobRecordWritersNeverOverwriteEachOther(t *testing.T) {
	ctx, v := compactTestVault(t)
	type rec struct{ State string }
	w, err := v.CreateJobRecord(ctx, "job-1", rec{"RUNNING"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateJobRecord(ctx, "job-1", rec{"RUNNING"}); !IsConflict(err) {
		t.Fatalf("a second create: %v, want a conflict", err)
	}
	if err := w.Put(ctx, rec{"RUNNING 2"}); err != nil {
		t.Fatal(err)
	}
	var cur rec
	if _, err := v.UpdateJobRecord(ctx, "job-1", &cur, func() bool { cur.State = "ABORTED"; return true }); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctx, rec{"COMPLETED"}); !IsConflict(err) {
		t.Fatalf("a change over another writer's: %v, want a conflict", err)
	}
	var got rec
	if err := v.GetJSON(ctx, JobKey("job-1"), &got); err != nil || got.State != "ABORTED" {
		t.Fatalf("record %+v %v, want the other writer's ABORTED", got, err)
	}
	// An update that changes nothing writes nothing.
	if _, err := v.UpdateJobRecord(ctx, "job-1", &cur, func() bool { return false }); err != nil {
		t.Fatal(err)
	}
}
