package event

import (
	"encoding/json"
	"fmt"
)

// eventBridgeEvent is an S3 event as EventBridge delivers it; see
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html.
// It is not events.EventBridgeEvent so that the time is validated here and
// reported with a path.
type eventBridgeEvent struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Time       string `json:"time"`
	Detail     *struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       *string    `json:"key"`
			Size      objectSize `json:"size"`
			ETag      string     `json:"etag"`
			VersionID string     `json:"version-id"`
			Sequencer string     `json:"sequencer"`
		} `json:"object"`
		DeletionType            string `json:"deletion-type"`
		DestinationStorageClass string `json:"destination-storage-class"`
	} `json:"detail"`
}

func decodeEventBridge(doc []byte) ([]Change, error) {
	var ev eventBridgeEvent
	if err := json.Unmarshal(doc, &ev); err != nil {
		return nil, fail("", "invalid eventbridge event", err)
	}
	if ev.Source != "aws.s3" {
		return nil, fail("source", fmt.Sprintf("eventbridge source %q is not aws.s3", ev.Source), nil)
	}
	if ev.Detail == nil {
		return nil, fail("detail", "missing detail", nil)
	}
	obj := ev.Detail.Object
	kind, ok, err := eventBridgeKind(ev.DetailType, ev.Detail.DeletionType, obj.VersionID)
	if err != nil || !ok {
		return nil, err
	}
	if ev.Detail.Bucket.Name == "" {
		return nil, fail("detail.bucket.name", "missing bucket name", nil)
	}
	key, err := decodeKey("detail.object.key", obj.Key)
	if err != nil {
		return nil, err
	}
	t, err := parseTime("time", ev.Time)
	if err != nil {
		return nil, err
	}
	c := Change{
		Kind:      kind,
		Bucket:    ev.Detail.Bucket.Name,
		Key:       key,
		VersionID: obj.VersionID,
		Sequencer: obj.Sequencer,
		Time:      t,
		Size:      int64(obj.Size),
		ETag:      trimETag(obj.ETag),
		Source:    SourceEventBridge,
		Name:      ev.DetailType,
	}
	if kind == StorageClassChanged {
		c.StorageClass = ev.Detail.DestinationStorageClass
	}
	return []Change{c}, nil
}

// eventBridgeKind maps an S3 detail-type to a Kind. ok is false for events
// that are understood but not journaled. The detail-types are listed in
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html.
func eventBridgeKind(detailType, deletionType, versionID string) (kind Kind, ok bool, err error) {
	switch detailType {
	case "Object Created":
		return Created, true, nil
	case "Object Deleted":
		switch deletionType {
		case "Delete Marker Created":
			return DeleteMarkerCreated, true, nil
		case "Permanently Deleted":
			// Without a version-id (unversioned bucket) the caller
			// resolves what is gone.
			return deletion(versionID), true, nil
		}
		return Removed, true, nil
	case "Object Tags Added", "Object Tags Deleted":
		return TagsChanged, true, nil
	case "Object ACL Updated":
		return ACLChanged, true, nil
	case "Object Storage Class Changed", "Object Access Tier Changed":
		return StorageClassChanged, true, nil
	case "Object Restore Completed":
		return RestoreCompleted, true, nil
	case "Object Restore Initiated", "Object Restore Expired":
		return "", false, nil
	case "":
		return "", false, fail("detail-type", "missing detail-type", nil)
	}
	return "", false, fail("detail-type", fmt.Sprintf("unknown detail-type %q", detailType), nil)
}
