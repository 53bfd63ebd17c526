package restoretest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// Every restore test function sample in events/ decodes with no unknown
// field: a step into StepRequest, the others into a RunRequest (or a
// sweep).
func TestSamples(t *testing.T) {
	files, err := filepath.Glob("../../events/restoretest*.request.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if restoretest.IsStep(raw) {
			var s restoretest.StepRequest
			if err := dec.Decode(&s); err != nil || s.Scheduled == nil || len(s.Scheduled.Selections) == 0 {
				t.Errorf("%s: %+v %v", f, s, err)
				continue
			}
			for _, sel := range s.Scheduled.Selections {
				if err := sel.Validate(); err != nil {
					t.Errorf("%s: selection: %v", f, err)
				}
			}
			continue
		}
		if string(bytes.TrimSpace(raw)) == `{"sweep": true}` {
			continue // the sweeper's (shared/handler decodes it)
		}
		var r restoretest.RunRequest
		if err := json.Unmarshal(raw, &r); err != nil || r.Bucket == "" {
			t.Errorf("%s: %+v %v", f, r, err)
		}
	}
}
