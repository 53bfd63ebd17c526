package event

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(sampleDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		doc, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	for _, seed := range []string{
		``,
		`[]`,
		`{"Records":[]}`,
		`{"Service":"Amazon S3","Event":"s3:TestEvent"}`,
		`{"Type":"Notification","Message":"{\"Records\":[{\"eventName\":\"ObjectRemoved:Delete\",\"eventTime\":\"2024-06-06T10:00:00Z\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"k\"}}}]}"}`,
		`{"detail-type":"Object Deleted","source":"aws.s3","time":"2024-06-06T10:00:00Z","detail":{"bucket":{"name":"b"},"object":{"key":"k"},"deletion-type":"Permanently Deleted"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		changes, err := Decode(doc)
		if err != nil {
			if _, ok := errors.AsType[*DecodeError](err); !ok {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			if changes != nil {
				t.Fatalf("changes %+v returned with error %v", changes, err)
			}
			return
		}
		for i, c := range changes {
			if c.Bucket == "" || c.Kind == "" || c.Key == "" {
				t.Fatalf("change %d is incomplete: %+v", i, c)
			}
		}
	})
}
