package restore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/restore"
)

// The restore function's sample event decodes into its input type and
// round-trips.
func TestRequestSample(t *testing.T) {
	body, err := os.ReadFile("../../events/restore.request.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req restore.Request
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("decode sample: %v", err)
	}
	if req.Bucket == "" || req.At.IsZero() || req.TargetBucket == "" || len(req.Prefixes) == 0 {
		t.Fatalf("sample decoded incompletely: %+v", req)
	}
	again, _ := json.Marshal(req)
	var back restore.Request
	if err := json.Unmarshal(again, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(req, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ok := restore.Request{Vault: "vault", Bucket: "photos", At: now.Add(-time.Hour), TargetBucket: "tgt"}
	tests := []struct {
		name    string
		edit    func(*restore.Request)
		allowed []string
		wantErr bool
	}{
		{"valid", func(*restore.Request) {}, nil, false},
		{"no vault", func(r *restore.Request) { r.Vault = "" }, nil, true},
		{"no bucket", func(r *restore.Request) { r.Bucket = "" }, nil, true},
		{"no target", func(r *restore.Request) { r.TargetBucket = "" }, nil, true},
		{"no time", func(r *restore.Request) { r.At = time.Time{} }, nil, true},
		{"future", func(r *restore.Request) { r.At = now.Add(time.Minute) }, nil, true},
		{"bad mode", func(r *restore.Request) { r.Mode = "destroy" }, nil, true},
		{"rollback", func(r *restore.Request) { r.Mode = restore.Rollback }, nil, false},
		{"target allowed", func(*restore.Request) {}, []string{"tgt", "x-*"}, false},
		{"target pattern", func(r *restore.Request) { r.TargetBucket = "x-restore" }, []string{"tgt", "x-*"}, false},
		{"target refused", func(r *restore.Request) { r.TargetBucket = "prod" }, []string{"tgt", "x-*"}, true},
		{"vault name too short", func(r *restore.Request) { r.Vault = "v" }, nil, true},
		{"bucket name upper case", func(r *restore.Request) { r.Bucket = "UPPER" }, nil, true},
		{"target name with a space", func(r *restore.Request) { r.TargetBucket = "has space" }, nil, true},
		{"key of 1,024 bytes", func(r *restore.Request) { r.Keys = []string{strings.Repeat("k", 1024)} }, nil, false},
		{"key over 1,024 bytes", func(r *restore.Request) { r.Keys = []string{strings.Repeat("k", 1025)} }, nil, true},
		{"key not UTF-8", func(r *restore.Request) { r.Keys = []string{"caf\xe9"} }, nil, true},
		{"prefix not UTF-8", func(r *restore.Request) { r.Prefixes = []string{"\xff/"} }, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := r.Validate(now, tc.allowed)
			var invalid *restore.InvalidRequestError
			if tc.wantErr != (err != nil) || err != nil && !errors.As(err, &invalid) {
				t.Fatalf("Validate() = %v, want error %v of type *InvalidRequestError", err, tc.wantErr)
			}
		})
	}
}
