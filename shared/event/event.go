package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind says what happened to an object (version).
type Kind string

// The kinds of change Decode reports.
const (
	Created             Kind = "Created"             // a new object version
	DeleteMarkerCreated Kind = "DeleteMarkerCreated" // a delete marker became current; VersionID is the marker's
	PermanentlyDeleted  Kind = "PermanentlyDeleted"  // the version VersionID was removed for good
	Removed             Kind = "Removed"             // something was deleted but the event does not say what (no versionId): caller resolves against the bucket
	TagsChanged         Kind = "TagsChanged"
	ACLChanged          Kind = "ACLChanged"
	StorageClassChanged Kind = "StorageClassChanged"
	RestoreCompleted    Kind = "RestoreCompleted"
)

// Sources of a Change.
const (
	SourceEventBridge = "eventbridge" // an EventBridge event
	SourceS3          = "s3"          // a classic S3 notification record (AWS, MinIO, versitygw)
)

// Change is one decoded change to one object (version).
type Change struct {
	Kind         Kind      `json:"kind"`
	Bucket       string    `json:"bucket"`
	Key          string    `json:"key"`                    // decoded: '+' is space, %XX escapes resolved
	VersionID    string    `json:"versionId,omitempty"`    // empty when the event carries none
	Sequencer    string    `json:"sequencer,omitempty"`    // as sent
	Time         time.Time `json:"time"`                   // event time, UTC
	Size         int64     `json:"size,omitempty"`         // object size, when the event says
	ETag         string    `json:"etag,omitempty"`         // without quotes
	StorageClass string    `json:"storageClass,omitempty"` // the new storage class, when the event says
	Source       string    `json:"source"`                 // SourceEventBridge or SourceS3
	Name         string    `json:"name"`                   // original event name or detail-type
}

// DecodeError reports input that could not be decoded.
type DecodeError struct {
	// Line is the 1-based line of the failing document when DecodeStream
	// read JSON lines, or of the syntax error in a single document; 0 when
	// not known.
	Line int
	// Path locates the problem inside the document, for example
	// "Records[0].body.Records[1].s3.object.key"; a leading "[2]" is the
	// index of the failing document in a top-level array.
	Path string
	// Reason says what was wrong.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("event: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// fail returns a *DecodeError at path.
func fail(path, reason string, err error) error {
	return &DecodeError{Path: path, Reason: reason, Err: err}
}

// within prefixes the path of a *DecodeError with prefix.
func within(prefix string, err error) error {
	de, ok := errors.AsType[*DecodeError](err)
	if prefix == "" || !ok {
		return err
	}
	e := *de
	switch {
	case e.Path == "":
		e.Path = prefix
	case strings.HasPrefix(e.Path, "["):
		e.Path = prefix + e.Path
	default:
		e.Path = prefix + "." + e.Path
	}
	return &e
}

// maxDepth bounds how deeply documents may be nested in string fields
// (SQS body, SNS Message). Real input nests at most three deep.
const maxDepth = 8

// Decode decodes one JSON document: an EventBridge S3 event, a classic S3
// notification, a MinIO webhook body, the s3:TestEvent message, an SNS
// envelope or Lambda SNS event carrying any of these, or a Lambda SQS event
// whose bodies carry any of these. A top-level JSON array is decoded as a
// sequence of such documents.
//
// Event types that are understood but not journaled, such as
// "s3:ObjectAccessed:Get" or replication events, and the test event yield
// zero changes and no error. Anything else that cannot be decoded, including
// EventBridge events from sources other than "aws.s3", yields a
// *DecodeError.
func Decode(doc []byte) ([]Change, error) {
	return decode(doc, 0)
}

func decode(doc []byte, depth int) ([]Change, error) {
	if depth > maxDepth {
		return nil, fail("", "documents nested too deeply", nil)
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return nil, fail("", "empty document", nil)
	}
	switch doc[0] {
	case '{':
		return decodeObject(doc, depth)
	case '[':
		var docs []json.RawMessage
		if err := json.Unmarshal(doc, &docs); err != nil {
			return nil, fail("", "invalid json", err)
		}
		var changes []Change
		for i, d := range docs {
			c, err := decode(d, depth+1)
			if err != nil {
				return nil, within(fmt.Sprintf("[%d]", i), err)
			}
			changes = append(changes, c...)
		}
		return changes, nil
	default:
		if !json.Valid(doc) {
			return nil, fail("", "invalid json", syntaxError(doc))
		}
		return nil, fail("", "document is not a json object", nil)
	}
}

// syntaxError returns the error json reports for an invalid document.
func syntaxError(doc []byte) error {
	var v any
	return json.Unmarshal(doc, &v)
}

// decodeObject recognizes the format of one JSON object by its exact
// top-level field names and decodes it.
func decodeObject(doc []byte, depth int) ([]Change, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return nil, fail("", "invalid json", err)
	}
	has := func(name string) bool { _, ok := fields[name]; return ok }
	switch {
	case has("Records"):
		return decodeRecords(fields["Records"], depth)
	case has("detail-type") || has("detail"):
		return decodeEventBridge(doc)
	case has("Type") && has("Message"):
		return decodeSNS(doc, depth)
	case has("Event"):
		return decodeTestEvent(fields["Event"])
	case has("eventName") && has("s3"):
		// A bare classic record, as some versitygw releases send them.
		return decodeRecord(doc, depth)
	default:
		return nil, fail("", "unrecognized document: not an s3, eventbridge, sns or sqs event", nil)
	}
}

// decodeTestEvent accepts the message S3 sends when a notification
// configuration is created.
func decodeTestEvent(raw json.RawMessage) ([]Change, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return nil, fail("Event", "invalid field", err)
	}
	if name != "s3:TestEvent" {
		return nil, fail("Event", fmt.Sprintf("unknown event %q", name), nil)
	}
	return nil, nil
}

// snsNotification is the part of an SNS envelope Decode needs. It is not
// events.SNSEntity so that an odd Timestamp cannot fail decoding.
type snsNotification struct {
	Type    string  `json:"Type"`
	Message *string `json:"Message"`
}

func decodeSNS(doc []byte, depth int) ([]Change, error) {
	var n snsNotification
	if err := json.Unmarshal(doc, &n); err != nil {
		return nil, fail("", "invalid sns envelope", err)
	}
	return decodeSNSMessage(n, "", depth)
}

func decodeSNSMessage(n snsNotification, path string, depth int) ([]Change, error) {
	if n.Type != "Notification" {
		return nil, fail(joinPath(path, "Type"), fmt.Sprintf("sns message type %q is not a notification", n.Type), nil)
	}
	if n.Message == nil {
		return nil, fail(joinPath(path, "Message"), "missing sns message", nil)
	}
	changes, err := decode([]byte(*n.Message), depth+1)
	return changes, within(joinPath(path, "Message"), err)
}

func joinPath(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// decodeKey decodes an object key the way S3 encodes it in events.
func decodeKey(path string, raw *string) (string, error) {
	if raw == nil || *raw == "" {
		return "", fail(path, "missing object key", nil)
	}
	key, err := url.QueryUnescape(*raw)
	if err != nil {
		return "", fail(path, "invalid url-encoded object key", err)
	}
	if key == "" {
		return "", fail(path, "empty object key", nil)
	}
	return key, nil
}

// parseTime parses an RFC 3339 time with or without fractional seconds.
func parseTime(path, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fail(path, "missing event time", nil)
	}
	// Parsing accepts fractional seconds even though the layout has none.
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fail(path, "invalid event time", err)
	}
	return t.UTC(), nil
}

// objectSize is an object size sent as a JSON number or, by some emulators,
// as a string of digits.
type objectSize int64

func (s *objectSize) UnmarshalJSON(b []byte) error {
	text := string(b)
	if text == "null" {
		return nil
	}
	if unquoted, err := strconv.Unquote(text); err == nil {
		text = unquoted
	}
	if text == "" {
		return nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid object size %s", b)
	}
	*s = objectSize(n)
	return nil
}

// deletion is the kind of a delete event that says nothing more than
// whether it names a version.
func deletion(versionID string) Kind {
	if versionID == "" {
		return Removed
	}
	return PermanentlyDeleted
}

func trimETag(etag string) string {
	return strings.Trim(etag, `"`)
}
