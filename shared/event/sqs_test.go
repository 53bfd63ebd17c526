package event

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestDecodeSQSPoisonMessage(t *testing.T) {
	good := classicDoc(t, "ObjectCreated:Put", map[string]any{"versionId": "v1"})
	ev := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "good-1", Body: string(good), EventSource: "aws:sqs"},
		{MessageId: "poison", Body: `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"bkt"},"object":{"key":"%zz"}}}]}`, EventSource: "aws:sqs"},
		{MessageId: "good-2", Body: string(wrapSNS(t, good)), EventSource: "aws:sqs"},
		{MessageId: "test", Body: `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"bkt"}`, EventSource: "aws:sqs"},
	}}
	msgs := DecodeSQS(ev)
	if len(msgs) != len(ev.Records) {
		t.Fatalf("DecodeSQS returned %d messages, want %d", len(msgs), len(ev.Records))
	}
	var failed int
	for i, m := range msgs {
		if m.MessageID != ev.Records[i].MessageId {
			t.Errorf("message %d: MessageID = %q, want %q", i, m.MessageID, ev.Records[i].MessageId)
		}
		if m.Err == nil {
			continue
		}
		failed++
		if m.MessageID != "poison" {
			t.Errorf("message %s failed: %v", m.MessageID, m.Err)
		}
		var de *DecodeError
		if !errors.As(m.Err, &de) || de.Path != "Records[0].s3.object.key" {
			t.Errorf("poison error = %v, want *DecodeError at Records[0].s3.object.key", m.Err)
		}
		if m.Changes != nil {
			t.Errorf("poison message has changes %+v", m.Changes)
		}
	}
	if failed != 1 {
		t.Errorf("%d messages failed, want exactly 1", failed)
	}
	for _, i := range []int{0, 2} {
		if len(msgs[i].Changes) != 1 {
			t.Errorf("message %s: %d changes, want 1", msgs[i].MessageID, len(msgs[i].Changes))
		}
	}
	if len(msgs[3].Changes) != 0 {
		t.Errorf("test event: %d changes, want 0", len(msgs[3].Changes))
	}
}

func TestDecodeSQSSamples(t *testing.T) {
	for _, name := range []string{"journal-sqs-eventbridge.json", "journal-sqs-s3.json", "journal-sqs-sns.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(sampleDir, name))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.SQSEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			var n int
			for _, m := range DecodeSQS(ev) {
				if m.Err != nil {
					t.Errorf("message %s: %v", m.MessageID, m.Err)
				}
				n += len(m.Changes)
			}
			whole := decodeFile(t, name)
			if n != len(whole) {
				t.Errorf("DecodeSQS found %d changes, Decode %d", n, len(whole))
			}
		})
	}
}
