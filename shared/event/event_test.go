package event

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sampleDir holds the sample events shared with the rest of the project.
const sampleDir = "../../events"

// sampleFiles returns the sample events this package decodes: every
// events/*.json except restore-*.json and *.request.json, which are inputs
// of other functions.
func sampleFiles(t testing.TB) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(sampleDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "restore-") || strings.HasSuffix(name, ".request.json") {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no sample events in %s", sampleDir)
	}
	return files
}

func decodeFile(t *testing.T, name string) []Change {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(sampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Decode(doc)
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return changes
}

func TestDecodeSamples(t *testing.T) {
	for _, file := range sampleFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Decode(doc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(want) == 0 {
				t.Fatal("Decode returned no changes")
			}
			for i, c := range want {
				if c.Kind == "" || c.Bucket == "" || c.Key == "" || c.Time.IsZero() || c.Source == "" || c.Name == "" {
					t.Errorf("change %d is incomplete: %+v", i, c)
				}
			}

			data, err := json.Marshal(want)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var got []Change
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSampleKinds(t *testing.T) {
	tests := []struct {
		file string
		want []Kind
	}{
		{"journal-sqs-eventbridge.json", []Kind{Created, DeleteMarkerCreated, PermanentlyDeleted, TagsChanged}},
		{"journal-sqs-s3.json", []Kind{Created, DeleteMarkerCreated, PermanentlyDeleted, TagsChanged}},
		{"journal-sqs-sns.json", []Kind{Created, ACLChanged, StorageClassChanged, RestoreCompleted}},
		{"eventbridge-object-created.json", []Kind{Created}},
		{"s3-notification.json", []Kind{Created}},
		{"minio-webhook.json", []Kind{Created}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var got []Kind
			for _, c := range decodeFile(t, tt.file) {
				got = append(got, c.Kind)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("kinds mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeEventBridgeSample(t *testing.T) {
	changes := decodeFile(t, "journal-sqs-eventbridge.json")
	want := Change{
		Kind:      Created,
		Bucket:    "acme-prod-media",
		Key:       "photos/2024/caf\u00e9 r\u00e9sum\u00e9+1%2F2.jpg",
		VersionID: "3HL4kqtJvjVBH40Nrjfkd0qy0kS3Zb.e",
		Sequencer: "0066617e7f4a2b9c1d",
		Time:      time.Date(2024, 6, 6, 9, 14, 7, 0, time.UTC),
		Size:      2481734,
		ETag:      "7c9d2b4e1f0a8c6d3e5b7a9f1c2d4e6b",
		Source:    SourceEventBridge,
		Name:      "Object Created",
	}
	if diff := cmp.Diff(want, changes[0]); diff != "" {
		t.Errorf("first change mismatch (-want +got):\n%s", diff)
	}
	// The key must be exactly this string, byte for byte.
	if got, wantKey := changes[0].Key, "photos/2024/café résumé+1%2F2.jpg"; got != wantKey {
		t.Errorf("Key = %q, want %q", got, wantKey)
	}
	if got := changes[3].Key; got != "contracts/2024/acme globex (signed).pdf" {
		t.Errorf("tags change Key = %q", got)
	}
}

func TestDecodeClassicSamples(t *testing.T) {
	sns := decodeFile(t, "journal-sqs-sns.json")
	transition := sns[2]
	if transition.StorageClass != "GLACIER" || transition.Key != "archive/2023/ledger.csv.gz" {
		t.Errorf("lifecycle transition = %+v, want GLACIER archive/2023/ledger.csv.gz", transition)
	}

	s3 := decodeFile(t, "journal-sqs-s3.json")
	if got, want := s3[0].Key, "invoices/2024/INV-0042 final.pdf"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := s3[2].Key, "drafts/INV-0042 draft #1.docx"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := s3[0].Time, time.Date(2024, 6, 6, 10, 2, 17, 418e6, time.UTC); !got.Equal(want) {
		t.Errorf("Time = %v, want %v", got, want)
	}

	minio := decodeFile(t, "minio-webhook.json")
	want := Change{
		Kind:      Created,
		Bucket:    "backups",
		Key:       "db/2024-06-06 nightly.sql.gz",
		VersionID: "9b2f7d3e-5c1a-4e8b-a6f0-3d2c1b0a9e8f",
		Sequencer: "17D647C3A59EF1A1",
		Time:      time.Date(2024, 6, 6, 2, 0, 13, 511e6, time.UTC),
		Size:      314572800,
		ETag:      "2f1e5a9c7b3d0e8f4a6c1b9d7e5f3a20",
		Source:    SourceS3,
		Name:      "s3:ObjectCreated:Put",
	}
	if diff := cmp.Diff([]Change{want}, minio); diff != "" {
		t.Errorf("minio mismatch (-want +got):\n%s", diff)
	}
}
