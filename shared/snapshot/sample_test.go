package snapshot_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bucketvault/bucketvault/shared/snapshot"
)

// Every snapshot sample in events/ decodes into the function's Request
// with no unknown field, names a step, and carries that step's payload.
func TestRequestSamples(t *testing.T) {
	files, err := filepath.Glob("../../events/snapshot-*.request.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("samples %v %v", files, err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var req snapshot.Request
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		switch req.Step {
		case snapshot.StepCopy:
			if req.BatchInput == nil || len(req.Items) == 0 || req.BatchInput.Job.JobID == "" {
				t.Errorf("%s: a copy request needs Items and BatchInput.job", file)
			}
		case snapshot.StepStart, snapshot.StepScan, snapshot.StepSeal, snapshot.StepNotify, snapshot.StepFail:
			if req.Job == nil || req.Job.Bucket == "" {
				t.Errorf("%s: a %s request needs job.bucket", file, req.Step)
			}
		default:
			t.Errorf("%s: unknown step %q", file, req.Step)
		}
	}
}
