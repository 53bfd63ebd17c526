package event

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeStream(t *testing.T) {
	classic := string(classicDoc(t, "ObjectCreated:Put", map[string]any{"versionId": "v1"}))
	eventBridge := string(eventBridgeDoc(t, "Object Deleted", map[string]any{"deletion-type": "Delete Marker Created"}))
	sample, err := os.ReadFile(filepath.Join(sampleDir, "journal-sqs-s3.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		input string
		want  []Kind
	}{
		{"json lines", classic + "\n\n" + eventBridge + "\r\n" + `{"Service":"Amazon S3","Event":"s3:TestEvent"}` + "\n", []Kind{Created, DeleteMarkerCreated}},
		{"single line", classic, []Kind{Created}},
		{"single indented document", string(sample), []Kind{Created, DeleteMarkerCreated, PermanentlyDeleted, TagsChanged}},
		{"array", "[\n  " + classic + ",\n  " + eventBridge + "\n]\n", []Kind{Created, DeleteMarkerCreated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, err := DecodeStream(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("DecodeStream: %v", err)
			}
			var got []Kind
			for _, c := range changes {
				got = append(got, c.Kind)
			}
			if strings.Join(kindStrings(got), ",") != strings.Join(kindStrings(tt.want), ",") {
				t.Errorf("kinds = %v, want %v", got, tt.want)
			}
		})
	}
}

func kindStrings(kinds []Kind) []string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return s
}

func TestDecodeStreamErrors(t *testing.T) {
	classic := string(classicDoc(t, "ObjectCreated:Put", nil))
	tests := []struct {
		name     string
		input    string
		wantLine int
		wantText string
	}{
		{"bad line", classic + "\n\n" + `{"Records":[{"eventName":"Nope:Put","s3":{}}]}` + "\n" + classic + "\n", 3, `line 3: Records[0].eventName: unknown event name "Nope:Put"`},
		{"invalid json line", classic + "\n" + classic + "\n{broken\n", 3, "line 3: invalid json"},
		{"broken document", "{\n  \"Records\": [\n    {\n      \"eventName\": \"ObjectCreated:Put\",,\n", 4, "line 4: invalid json"},
		{"array element", "[" + classic + `,{"x":1}]`, 0, "[1]: unrecognized document"},
		{"empty", "\n \n", 0, "no documents in input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeStream(strings.NewReader(tt.input))
			if err == nil {
				t.Fatal("DecodeStream succeeded, want error")
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Line != tt.wantLine {
				t.Errorf("Line = %d, want %d (error: %v)", de.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestDecodeStreamReadError(t *testing.T) {
	_, err := DecodeStream(failingReader{})
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want *DecodeError wrapping the read error", err)
	}
}
