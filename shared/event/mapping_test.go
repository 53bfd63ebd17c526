package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// classicDoc returns a classic S3 notification with one record.
func classicDoc(t *testing.T, name string, object map[string]any) []byte {
	t.Helper()
	obj := map[string]any{"key": "dir/my+file.txt", "sequencer": "0055AED6DCD90281E5"}
	for k, v := range object {
		if v == nil {
			delete(obj, k)
			continue
		}
		obj[k] = v
	}
	return mustJSON(t, map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1",
		"eventSource":  "aws:s3",
		"awsRegion":    "us-west-2",
		"eventTime":    "2024-06-06T10:00:00.123Z",
		"eventName":    name,
		"s3": map[string]any{
			"s3SchemaVersion": "1.0",
			"bucket":          map[string]any{"name": "bkt", "arn": "arn:aws:s3:::bkt"},
			"object":          obj,
		},
	}}})
}

// eventBridgeDoc returns an EventBridge S3 event.
func eventBridgeDoc(t *testing.T, detailType string, detail map[string]any) []byte {
	t.Helper()
	d := map[string]any{
		"version": "0",
		"bucket":  map[string]any{"name": "bkt"},
		"object":  map[string]any{"key": "dir/my+file.txt", "version-id": "v1", "sequencer": "617f08299329d189"},
	}
	for k, v := range detail {
		d[k] = v
	}
	return mustJSON(t, map[string]any{
		"version":     "0",
		"id":          "17793124-05d4-b198-2fde-7ededc63b103",
		"detail-type": detailType,
		"source":      "aws.s3",
		"account":     "111122223333",
		"time":        "2024-06-06T10:00:00Z",
		"region":      "us-west-2",
		"resources":   []string{"arn:aws:s3:::bkt"},
		"detail":      d,
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// singleKind decodes doc and returns the kind of its only change, or "" if
// it has none.
func singleKind(t *testing.T, doc []byte) Kind {
	t.Helper()
	changes, err := Decode(doc)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	switch len(changes) {
	case 0:
		return ""
	case 1:
		return changes[0].Kind
	}
	t.Fatalf("Decode returned %d changes, want at most 1", len(changes))
	return ""
}

func TestClassicMapping(t *testing.T) {
	withVersion := map[string]any{"versionId": "v1"}
	tests := []struct {
		name   string
		object map[string]any
		want   Kind // "" means no changes
	}{
		{"ObjectCreated:Put", withVersion, Created},
		{"ObjectCreated:Post", withVersion, Created},
		{"ObjectCreated:Copy", withVersion, Created},
		{"ObjectCreated:CompleteMultipartUpload", withVersion, Created},
		{"ObjectCreated:Put", nil, Created}, // versitygw: no versionId
		{"s3:ObjectCreated:Put", withVersion, Created},
		{"s3:ObjectCreated:PutTagging", withVersion, TagsChanged},
		{"s3:ObjectCreated:DeleteTagging", withVersion, TagsChanged},
		{"s3:ObjectCreated:PutRetention", withVersion, ""},
		{"s3:ObjectCreated:PutLegalHold", withVersion, ""},
		{"ObjectRemoved:DeleteMarkerCreated", withVersion, DeleteMarkerCreated},
		{"s3:ObjectRemoved:DeleteMarkerCreated", withVersion, DeleteMarkerCreated},
		{"ObjectRemoved:Delete", withVersion, PermanentlyDeleted},
		{"ObjectRemoved:Delete", nil, Removed},
		{"ObjectRemoved:Delete", map[string]any{"versionId": nil}, Removed},
		{"s3:ObjectRemoved:Delete", nil, Removed}, // versitygw, also for a delete marker
		{"s3:ObjectRemoved:DeleteObjects", nil, Removed},
		{"s3:ObjectRemoved:DeleteObjects", withVersion, PermanentlyDeleted},
		{"s3:ObjectRemoved:DeleteAllVersions", nil, Removed},
		{"s3:ObjectRemoved:NoOP", nil, ""},
		{"LifecycleExpiration:Delete", withVersion, PermanentlyDeleted},
		{"LifecycleExpiration:Delete", nil, Removed},
		{"LifecycleExpiration:DeleteMarkerCreated", withVersion, DeleteMarkerCreated},
		{"s3:LifecycleDelMarkerExpiration:Delete", withVersion, PermanentlyDeleted},
		{"ObjectTagging:Put", withVersion, TagsChanged},
		{"ObjectTagging:Delete", withVersion, TagsChanged},
		{"ObjectAcl:Put", withVersion, ACLChanged},
		{"LifecycleTransition", withVersion, StorageClassChanged},
		{"IntelligentTiering", withVersion, StorageClassChanged},
		{"s3:ObjectTransition:Complete", withVersion, StorageClassChanged},
		{"s3:ObjectTransition:Failed", withVersion, ""},
		{"ObjectRestore:Completed", withVersion, RestoreCompleted},
		{"ObjectRestore:Post", withVersion, ""},
		{"ObjectRestore:Delete", withVersion, ""},
		{"s3:ObjectAccessed:Get", withVersion, ""},
		{"s3:ObjectAccessed:Head", withVersion, ""},
		{"Replication:OperationFailedReplication", withVersion, ""},
		{"s3:Replication:OperationCompletedReplication", withVersion, ""},
		{"ReducedRedundancyLostObject", withVersion, ""},
		{"s3:BucketCreated:*", map[string]any{"key": ""}, ""},
		{"s3:Scanner:ManyVersions", withVersion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := singleKind(t, classicDoc(t, tt.name, tt.object)); got != tt.want {
				t.Errorf("kind = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventBridgeMapping(t *testing.T) {
	noVersion := map[string]any{"object": map[string]any{"key": "k", "sequencer": "617f0837b476e463"}}
	tests := []struct {
		name       string
		detailType string
		detail     map[string]any
		want       Kind // "" means no changes
	}{
		{"created", "Object Created", nil, Created},
		{"delete marker", "Object Deleted", map[string]any{"deletion-type": "Delete Marker Created"}, DeleteMarkerCreated},
		{"permanent", "Object Deleted", map[string]any{"deletion-type": "Permanently Deleted"}, PermanentlyDeleted},
		{"permanent unversioned", "Object Deleted", merge(noVersion, map[string]any{"deletion-type": "Permanently Deleted"}), Removed},
		{"lifecycle delete marker", "Object Deleted", map[string]any{"deletion-type": "Delete Marker Created", "reason": "Lifecycle Expiration"}, DeleteMarkerCreated},
		{"no deletion-type", "Object Deleted", nil, Removed},
		{"tags added", "Object Tags Added", nil, TagsChanged},
		{"tags deleted", "Object Tags Deleted", nil, TagsChanged},
		{"acl", "Object ACL Updated", nil, ACLChanged},
		{"storage class", "Object Storage Class Changed", map[string]any{"destination-storage-class": "GLACIER"}, StorageClassChanged},
		{"access tier", "Object Access Tier Changed", map[string]any{"destination-access-tier": "ARCHIVE_ACCESS"}, StorageClassChanged},
		{"restore completed", "Object Restore Completed", nil, RestoreCompleted},
		{"restore initiated", "Object Restore Initiated", nil, ""},
		{"restore expired", "Object Restore Expired", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := singleKind(t, eventBridgeDoc(t, tt.detailType, tt.detail)); got != tt.want {
				t.Errorf("kind = %q, want %q", got, tt.want)
			}
		})
	}
}

func merge(a, b map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func TestDecodeFields(t *testing.T) {
	tests := []struct {
		name string
		doc  []byte
		want Change
	}{
		{
			name: "classic",
			doc: classicDoc(t, "ObjectCreated:Put", map[string]any{
				"key": "a%2Fb+c%2Bd%25e%C3%A9", "size": 1024, "eTag": `"d41d8cd98f00b204e9800998ecf8427e"`, "versionId": "v1",
			}),
			want: Change{
				Kind: Created, Bucket: "bkt", Key: "a/b c+d%eé", VersionID: "v1", Sequencer: "0055AED6DCD90281E5",
				Time: time.Date(2024, 6, 6, 10, 0, 0, 123e6, time.UTC), Size: 1024,
				ETag: "d41d8cd98f00b204e9800998ecf8427e", Source: SourceS3, Name: "ObjectCreated:Put",
			},
		},
		{
			name: "classic size as string",
			doc:  classicDoc(t, "ObjectCreated:Put", map[string]any{"size": "2048"}),
			want: Change{
				Kind: Created, Bucket: "bkt", Key: "dir/my file.txt", Sequencer: "0055AED6DCD90281E5",
				Time: time.Date(2024, 6, 6, 10, 0, 0, 123e6, time.UTC), Size: 2048, Source: SourceS3, Name: "ObjectCreated:Put",
			},
		},
		{
			name: "eventbridge storage class",
			doc: eventBridgeDoc(t, "Object Storage Class Changed", map[string]any{
				"object":                    map[string]any{"key": "x%20y", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "version-id": "v2"},
				"destination-storage-class": "DEEP_ARCHIVE",
			}),
			want: Change{
				Kind: StorageClassChanged, Bucket: "bkt", Key: "x y", VersionID: "v2",
				Time: time.Date(2024, 6, 6, 10, 0, 0, 0, time.UTC), Size: 5, ETag: "b1946ac92492d2347c6235b4d2611184",
				StorageClass: "DEEP_ARCHIVE", Source: SourceEventBridge, Name: "Object Storage Class Changed",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.doc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff([]Change{tt.want}, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeTime(t *testing.T) {
	want := time.Date(2024, 6, 6, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{"2024-06-06T10:00:00Z", "2024-06-06T10:00:00.000Z", "2024-06-06T12:00:00+02:00"} {
		doc := []byte(strings.Replace(string(classicDoc(t, "ObjectCreated:Put", nil)), "2024-06-06T10:00:00.123Z", s, 1))
		changes, err := Decode(doc)
		if err != nil {
			t.Fatalf("Decode with time %s: %v", s, err)
		}
		if got := changes[0].Time; !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("time %s decoded as %v, want %v", s, got, want)
		}
	}
}

// wrapSNS returns doc inside an SNS notification envelope.
func wrapSNS(t *testing.T, doc []byte) []byte {
	return mustJSON(t, map[string]any{
		"Type":      "Notification",
		"MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
		"TopicArn":  "arn:aws:sns:us-west-2:111122223333:s3-events",
		"Subject":   "Amazon S3 Notification",
		"Message":   string(doc),
		"Timestamp": "2024-06-06T10:00:01.000Z",
	})
}

// wrapSQS returns docs as the bodies of a Lambda SQS event.
func wrapSQS(t *testing.T, docs ...[]byte) []byte {
	var records []any
	for i, d := range docs {
		records = append(records, map[string]any{
			"messageId":   "m" + string(rune('0'+i)),
			"body":        string(d),
			"eventSource": "aws:sqs",
		})
	}
	return mustJSON(t, map[string]any{"Records": records})
}

func TestDecodeEnvelopes(t *testing.T) {
	classic := classicDoc(t, "ObjectCreated:Put", map[string]any{"versionId": "v1"})
	eventBridge := eventBridgeDoc(t, "Object Created", nil)
	lambdaSNS := mustJSON(t, map[string]any{"Records": []any{map[string]any{
		"EventSource":          "aws:sns",
		"EventVersion":         "1.0",
		"EventSubscriptionArn": "arn:aws:sns:us-west-2:111122223333:s3-events:2bcfbf39",
		"Sns":                  map[string]any{"Type": "Notification", "Message": string(classic)},
	}}})
	tests := []struct {
		name string
		doc  []byte
		want int
	}{
		{"sns classic", wrapSNS(t, classic), 1},
		{"sns eventbridge", wrapSNS(t, eventBridge), 1},
		{"sqs sns classic", wrapSQS(t, wrapSNS(t, classic)), 1},
		{"sqs mixed", wrapSQS(t, classic, eventBridge, wrapSNS(t, classic)), 3},
		{"lambda sns", lambdaSNS, 1},
		{"array", []byte("[" + string(classic) + "," + string(eventBridge) + "]"), 2},
		{"test event", []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"bucketname","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`), 0},
		{"versitygw test event", []byte(`{"Bucket":"Test-Bucket","Event":"s3:TestEvent","Service":"S3","Time":"2024-06-06T10:00:00Z"}`), 0},
		{"sqs test event", wrapSQS(t, []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}`)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, err := Decode(tt.doc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(changes) != tt.want {
				t.Fatalf("Decode returned %d changes, want %d", len(changes), tt.want)
			}
			for _, c := range changes {
				if c.Key != "dir/my file.txt" {
					t.Errorf("Key = %q, want %q", c.Key, "dir/my file.txt")
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	created := func(object map[string]any) []byte { return classicDoc(t, "ObjectCreated:Put", object) }
	tests := []struct {
		name     string
		doc      []byte
		wantPath string
		wantText string
	}{
		{"empty", []byte("  "), "", "empty document"},
		{"not json", []byte("{not json"), "", "invalid json"},
		{"scalar", []byte(`"hello"`), "", "not a json object"},
		{"unknown object", []byte(`{"hello":"world"}`), "", "unrecognized document"},
		{"no records", []byte(`{"Records":[]}`), "Records", "no records"},
		{"records not array", []byte(`{"Records":{}}`), "Records", "not a json array"},
		{"non-s3 eventbridge", []byte(`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","time":"2024-06-06T10:00:00Z","detail":{"state":"running"}}`), "source", `"aws.ec2" is not aws.s3`},
		{"unknown detail-type", eventBridgeDoc(t, "Object Teleported", nil), "detail-type", "unknown detail-type"},
		{"eventbridge without detail", []byte(`{"detail-type":"Object Created","source":"aws.s3","time":"2024-06-06T10:00:00Z"}`), "detail", "missing detail"},
		{"unknown event name", classicDoc(t, "ObjectTeleported:Put", nil), "Records[0].eventName", "unknown event name"},
		{"missing event name", classicDoc(t, "", nil), "Records[0].eventName", "missing event name"},
		{"missing key", created(map[string]any{"key": nil}), "Records[0].s3.object.key", "missing object key"},
		{"bad key escape", created(map[string]any{"key": "100%"}), "Records[0].s3.object.key", "invalid url-encoded object key"},
		{"bad size", created(map[string]any{"size": "big"}), "Records[0]", "invalid record"},
		{"negative size", created(map[string]any{"size": -1}), "Records[0]", "invalid record"},
		{"bad time", []byte(strings.Replace(string(created(nil)), "2024-06-06T10:00:00.123Z", "yesterday", 1)), "Records[0].eventTime", "invalid event time"},
		{"missing bucket", []byte(strings.Replace(string(created(nil)), `"name":"bkt"`, `"name":""`, 1)), "Records[0].s3.bucket.name", "missing bucket name"},
		{"unknown test event", []byte(`{"Event":"s3:Other"}`), "Event", "unknown event"},
		{"sns subscription", []byte(`{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe"}`), "Type", "not a notification"},
		{"sqs body not json", wrapSQS(t, []byte("hello")), "Records[0].body", "invalid json"},
		{"sqs missing body", []byte(`{"Records":[{"messageId":"m","eventSource":"aws:sqs"}]}`), "Records[0].body", "missing sqs message body"},
		{"nested error", wrapSQS(t, created(nil), wrapSNS(t, created(map[string]any{"key": "%zz"}))), "Records[1].body.Message.Records[0].s3.object.key", "invalid url-encoded"},
		{"array element", []byte("[" + string(created(nil)) + `,{"x":1}]`), "[1]", "unrecognized document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, err := Decode(tt.doc)
			if err == nil {
				t.Fatalf("Decode = %+v, want error", changes)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q (error: %v)", de.Path, tt.wantPath, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if changes != nil {
				t.Errorf("changes = %+v, want nil on error", changes)
			}
		})
	}
}

func TestDecodeDepth(t *testing.T) {
	doc := classicDoc(t, "ObjectCreated:Put", nil)
	for range maxDepth {
		doc = wrapSNS(t, doc)
	}
	if _, err := Decode(doc); err != nil {
		t.Fatalf("Decode at depth %d: %v", maxDepth, err)
	}
	if _, err := Decode(wrapSNS(t, doc)); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Fatalf("Decode beyond max depth: err = %v, want nested too deeply", err)
	}
}
