package journal_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/protect"
)

// The reconcile and protect functions' sample events decode into their
// input types with no unknown field.
func TestRequestSamples(t *testing.T) {
	for file, dst := range map[string]any{
		"../../events/reconcile.request.json": &journal.ReconcileRequest{},
		"../../events/protect.request.json":   &protect.Request{},
	} {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}
