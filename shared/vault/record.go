package vault

import (
	"fmt"
	"time"
)

// Op is what a journal record says happened.
type Op string

const (
	// OpVersion: an object version was created and its bytes are in the vault.
	OpVersion Op = "version"
	// OpDeleteMarker: a delete marker was created.
	OpDeleteMarker Op = "delete-marker"
	// OpPurge: a version or delete marker was permanently deleted at Time.
	OpPurge Op = "purge"
	// OpTags: the version's tag set became Tags at Time.
	OpTags Op = "tags"
	// OpACL: the version's ACL became ACL at Time.
	OpACL Op = "acl"
	// OpStorageClass: the version moved to StorageClass at Time.
	OpStorageClass Op = "storage-class"
	// OpOrder: the versions in Order (oldest first) share one LastModified
	// second; this is their true order, read from a listing.
	OpOrder Op = "order"
	// OpSkip: a version that could not be backed up, and why.
	OpSkip Op = "skip"
	// OpListed: a listing at Time showed the version or delete marker (a
	// "null" version: the null version with ETag, written at Created).
	// The listing is the truth: every purge of it dated at or before Time
	// was wrong (a deletion event the bucket contradicts) and is void. A
	// reconcile writes one where it finds such a purge.
	OpListed Op = "listed"
)

// Origin says which path wrote a record.
const (
	OriginEvent     = "event"
	OriginReconcile = "reconcile"
	OriginSnapshot  = "snapshot"
)

// Record is one line of a journal segment. Records of one key, read from
// every segment, are enough to know that key's state at any time.
type Record struct {
	Op        Op     `json:"op"`
	Key       string `json:"key"`
	VersionID string `json:"versionId,omitempty"`
	// Time is the version's or marker's LastModified (for OpVersion and
	// OpDeleteMarker), or the time of the change (other ops).
	Time time.Time `json:"time"`
	// Sequencer is the S3 event sequencer (upper case), when the record came
	// from an event; compare with event.CompareSequencer.
	Sequencer string `json:"seq,omitempty"`
	Origin    string `json:"origin,omitempty"`

	Size         int64     `json:"size,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	PartSize     int64     `json:"partSize,omitempty"` // first part's size of a multipart upload, to restore the same ETag
	Checksum     *Checksum `json:"checksum,omitempty"`
	StorageClass string    `json:"storageClass,omitempty"`
	Meta         *Meta     `json:"meta,omitempty"`
	// Tags is the version's tag set; nil means unknown, empty means none.
	Tags map[string]string `json:"tags,omitzero"` // omitzero: an empty set ({}) is not an unknown one (absent)
	// TagsAt is when Tags were read (after Time: S3 events carry no tag
	// values and S3 keeps no tag history, so the journal reads them when
	// it captures). A tag change the journal knows of between Time and
	// TagsAt means the tags before it were never read (UncertainFor).
	TagsAt time.Time `json:"tagsAt,omitzero"`
	ACL    *ACL      `json:"acl,omitempty"`
	// SSE is the source's server-side encryption ("AES256", "aws:kms").
	SSE string `json:"sse,omitempty"`

	// Data is the vault key holding the version's bytes, and DataETag that
	// object's ETag as the vault reported it after the copy.
	Data     string `json:"data,omitempty"`
	DataETag string `json:"dataEtag,omitempty"`
	// MetaInData says the data object itself carries the version's system
	// and user metadata and its tags: a snapshot copied it with S3's COPY
	// metadata and tagging directives instead of reading them one object
	// at a time. Meta and Tags are then nil, and a restore copies them
	// from the data object.
	MetaInData bool `json:"metaInData,omitempty"`
	// Packed says Data is a pack: one vault object holding the bytes of
	// many small versions end to end (a snapshot packs them, see
	// PackKey). The version's bytes are the Size bytes at DataOffset;
	// DataETag is the pack's ETag. Meta, Tags and Checksum are then in the
	// record, as for the journal's copies.
	Packed     bool  `json:"packed,omitempty"`
	DataOffset int64 `json:"dataOffset,omitempty"`

	// Since, on a purge a reconcile learnt from a listing (no event told
	// of it), is the last time the journal knew the version existed: the
	// deletion happened after Since and by Time, S3 keeps no record of
	// when. A restore as of a time between them names the key uncertain.
	Since time.Time `json:"since,omitzero"`

	// Created is the LastModified of the version an OpListed record
	// names (it tells a "null" version from the null versions before it).
	Created time.Time `json:"created,omitzero"`

	// Order lists version ids of one key, oldest first (OpOrder).
	Order []string `json:"order,omitempty"`

	// Reason says why a version was skipped (OpSkip), as one of the Skip*
	// constants, and Detail says more.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Skip reasons: why a version was not backed up (Record.Reason of an
// OpSkip record, in the journal or in a snapshot's failure shards).
const (
	// SkipSSEC: encrypted with a customer key (SSE-C) the service never
	// holds, so it cannot be read or copied.
	SkipSSEC = "sse-c"
	// SkipArchived: in Glacier Flexible Retrieval, Deep Archive or an
	// Intelligent-Tiering archive tier, readable only once restored.
	SkipArchived = "archived"
	// SkipGone: the version was deleted (or, for the null version,
	// overwritten) before it could be copied.
	SkipGone = "deleted-before-copy"
	// SkipAccessDenied: the source refused the read.
	SkipAccessDenied = "access-denied"
	// SkipWindowEnded: a snapshot's completion window ended before the
	// version was copied.
	SkipWindowEnded = "completion-window-ended"
	// SkipCopyFailed: a snapshot's copy of the version failed after the
	// SDK's retries, for a reason none of the above names.
	SkipCopyFailed = "copy-failed"
	// SkipBatchFailed: the copy step of a snapshot's batch holding the
	// version failed outright (the state machine's Catch), so it was
	// never copied.
	SkipBatchFailed = "batch-failed"
)

// Checksum is an S3 additional checksum of a version.
type Checksum struct {
	Algorithm string `json:"algorithm"`      // CRC32, CRC32C, CRC64NVME, SHA1, SHA256
	Value     string `json:"value"`          // base64, as S3 reports it
	Type      string `json:"type,omitempty"` // FULL_OBJECT or COMPOSITE
}

// Meta is the system and user metadata of a version.
type Meta struct {
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	Expires            string            `json:"expires,omitempty"` // as sent, an HTTP date
	WebsiteRedirect    string            `json:"websiteRedirect,omitempty"`
	User               map[string]string `json:"user,omitempty"`
}

// ACL is an object's access control list.
type ACL struct {
	Owner  string  `json:"owner,omitempty"`
	Grants []Grant `json:"grants,omitempty"`
}

// Grant is one grant of an ACL.
type Grant struct {
	Type       string `json:"type"` // CanonicalUser, Group, AmazonCustomerByEmail
	ID         string `json:"id,omitempty"`
	URI        string `json:"uri,omitempty"`
	Email      string `json:"email,omitempty"`
	Permission string `json:"permission"`
}

// normalize puts a decoded record's times in UTC (the writers write UTC;
// a time with another offset, even one Go cannot write back, such as
// -24:59, is the same instant) and refuses a year outside 0000-9999, which
// no writer can encode again (a compaction or a spill would fail on it
// for good).
func (r *Record) normalize() error {
	for _, t := range []*time.Time{&r.Time, &r.Created, &r.Since} {
		if t.IsZero() {
			continue
		}
		*t = t.UTC()
		if y := t.Year(); y < 0 || y > 9999 {
			return fmt.Errorf("record of %q: time %s is outside years 0000-9999", r.Key, t.Format(time.RFC3339))
		}
	}
	return nil
}
