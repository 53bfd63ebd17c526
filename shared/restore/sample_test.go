package restore_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bucketvault/bucketvault/shared/restore"
)

// Every restore state machine sample in events/ decodes into the
// function's StepRequest with no unknown field, is a step
// (restore.IsStep), and carries that step's payload; the plain request
// sample is not a step.
func TestStepSamples(t *testing.T) {
	files, err := filepath.Glob("../../events/restore-*.request.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("samples %v %v", files, err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var req restore.StepRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || !restore.IsStep(body) {
			t.Errorf("%s: %v (a step: %v)", file, err, restore.IsStep(body))
			continue
		}
		switch req.Step {
		case restore.StepBatch:
			if req.BatchInput == nil || len(req.Items) == 0 || req.BatchInput.Job.JobID == "" {
				t.Errorf("%s: a batch needs Items and BatchInput.job", file)
			}
		case restore.StepPlan:
			if req.Job == nil || req.Job.Request.Bucket == "" || req.Execution == "" {
				t.Errorf("%s: a plan needs job.request and execution", file)
			}
		default:
			t.Errorf("%s: unknown step %q", file, req.Step)
		}
	}
	plain, err := os.ReadFile("../../events/restore.request.json")
	if err != nil || restore.IsStep(plain) {
		t.Errorf("events/restore.request.json is read as a step (%v)", err)
	}
}
