package event

import (
	"encoding/json"
	"fmt"
	"strings"
)

// record is one element of a "Records" array: a classic S3 notification
// record, or the record of a Lambda SQS or SNS event.
type record struct {
	EventSource string `json:"eventSource"` // "aws:s3", "minio:s3", "aws:sqs", "aws:sns" ("EventSource" matches too)
	EventName   string `json:"eventName"`
	EventTime   string `json:"eventTime"`
	S3          *struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       *string    `json:"key"`
			Size      objectSize `json:"size"`
			ETag      string     `json:"eTag"`
			VersionID string     `json:"versionId"`
			Sequencer string     `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
	LifecycleEventData *struct {
		TransitionEventData *struct {
			DestinationStorageClass string `json:"destinationStorageClass"`
		} `json:"transitionEventData"`
	} `json:"lifecycleEventData"`

	Body *string          `json:"body"` // Lambda SQS event
	SNS  *snsNotification `json:"Sns"`  // Lambda SNS event
}

func decodeRecords(raw json.RawMessage, depth int) ([]Change, error) {
	var records []json.RawMessage
	if err := json.Unmarshal(raw, &records); err != nil {
		return nil, fail("Records", "records are not a json array", err)
	}
	if len(records) == 0 {
		return nil, fail("Records", "no records", nil)
	}
	var changes []Change
	for i, r := range records {
		c, err := decodeRecord(r, depth)
		if err != nil {
			return nil, within(fmt.Sprintf("Records[%d]", i), err)
		}
		changes = append(changes, c...)
	}
	return changes, nil
}

func decodeRecord(raw json.RawMessage, depth int) ([]Change, error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fail("", "invalid record", err)
	}
	switch {
	case r.EventSource == "aws:sqs" || (r.Body != nil && r.S3 == nil):
		if r.Body == nil {
			return nil, fail("body", "missing sqs message body", nil)
		}
		changes, err := decode([]byte(*r.Body), depth+1)
		return changes, within("body", err)
	case r.EventSource == "aws:sns" || (r.SNS != nil && r.S3 == nil):
		if r.SNS == nil {
			return nil, fail("Sns", "missing sns message", nil)
		}
		return decodeSNSMessage(*r.SNS, "Sns", depth)
	default:
		return classicChanges(r)
	}
}

// classicChanges maps one classic S3 notification record.
func classicChanges(r record) ([]Change, error) {
	if r.EventName == "" {
		return nil, fail("eventName", "missing event name", nil)
	}
	if r.S3 == nil {
		return nil, fail("s3", "missing s3 entity", nil)
	}
	obj := r.S3.Object
	kind, ok, err := classicKind(r.EventName, obj.VersionID)
	if err != nil || !ok {
		return nil, err
	}
	if r.S3.Bucket.Name == "" {
		return nil, fail("s3.bucket.name", "missing bucket name", nil)
	}
	key, err := decodeKey("s3.object.key", obj.Key)
	if err != nil {
		return nil, err
	}
	t, err := parseTime("eventTime", r.EventTime)
	if err != nil {
		return nil, err
	}
	c := Change{
		Kind:      kind,
		Bucket:    r.S3.Bucket.Name,
		Key:       key,
		VersionID: obj.VersionID,
		Sequencer: obj.Sequencer,
		Time:      t,
		Size:      int64(obj.Size),
		ETag:      trimETag(obj.ETag),
		Source:    SourceS3,
		Name:      r.EventName,
	}
	if d := r.LifecycleEventData; kind == StorageClassChanged && d != nil && d.TransitionEventData != nil {
		c.StorageClass = d.TransitionEventData.DestinationStorageClass
	}
	return []Change{c}, nil
}

// classicKind maps a classic event name, with or without the "s3:" prefix,
// to a Kind. ok is false for events that are understood but not journaled.
//
// Names are those of Amazon S3
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html),
// MinIO (internal/event/name.go) and versitygw (s3event/filter.go).
func classicKind(name, versionID string) (kind Kind, ok bool, err error) {
	category, action, _ := strings.Cut(strings.TrimPrefix(name, "s3:"), ":")
	switch category {
	case "ObjectCreated":
		switch action {
		case "PutTagging", "DeleteTagging": // MinIO
			return TagsChanged, true, nil
		case "PutRetention", "PutLegalHold": // MinIO
			return "", false, nil
		}
		return Created, true, nil
	case "ObjectRemoved":
		switch action {
		case "DeleteMarkerCreated":
			return DeleteMarkerCreated, true, nil
		case "Delete", "DeleteObjects": // DeleteObjects: versitygw
			return deletion(versionID), true, nil
		case "NoOP": // MinIO: the delete changed nothing
			return "", false, nil
		}
		// DeleteAllVersions (MinIO) and anything newer: let the caller look.
		return Removed, true, nil
	case "LifecycleExpiration":
		if action == "DeleteMarkerCreated" {
			return DeleteMarkerCreated, true, nil
		}
		return deletion(versionID), true, nil
	case "LifecycleDelMarkerExpiration": // MinIO: an expired delete marker was removed
		return deletion(versionID), true, nil
	case "ObjectTagging":
		return TagsChanged, true, nil
	case "ObjectAcl":
		return ACLChanged, true, nil
	case "LifecycleTransition", "IntelligentTiering":
		return StorageClassChanged, true, nil
	case "ObjectTransition": // MinIO tiering
		if action == "Complete" {
			return StorageClassChanged, true, nil
		}
		return "", false, nil
	case "ObjectRestore":
		if action == "Completed" {
			return RestoreCompleted, true, nil
		}
		return "", false, nil // Post (initiated), Delete (restored copy expired)
	case "ObjectAccessed", "Replication", "ReducedRedundancyLostObject",
		"TestEvent", "BucketCreated", "BucketRemoved", "Scanner":
		return "", false, nil
	}
	return "", false, fail("eventName", fmt.Sprintf("unknown event name %q", name), nil)
}
