package s3x

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Entry is one version or delete marker of a ListObjectVersions listing.
type Entry struct {
	Key            string
	VersionID      string
	IsDeleteMarker bool
	IsLatest       bool
	LastModified   time.Time
	Size           int64
	ETag           string // without quotes
	StorageClass   string
	ChecksumAlgo   string
}

// VersionLister walks ListObjectVersions of a bucket (or a prefix of it) in
// S3's order: keys ascending, each key's versions and delete markers
// interleaved newest first, exactly as the server listed them.
//
// The SDK returns versions and delete markers as two separate lists, and
// LastModified has one-second precision on AWS, so the interleaving of a
// key's same-second entries cannot be recovered from the SDK's output. The
// lister therefore reads each page from the raw XML response itself, in
// one pass and in document order (parseListing, a deserialize-step
// middleware), and hands the SDK an empty result to decode, which also
// halves a listing's client CPU. A body it cannot read that way (an
// encoding type) is decoded by the SDK and reordered from a copy of the
// body; a client that runs no middleware (a fake) falls back to merging by
// LastModified, newest first, versions before delete markers at equal
// times.
//
// Entries a server repeats at page boundaries (versitygw does) are dropped.
type VersionLister struct {
	client Client
	in     s3.ListObjectVersionsInput
	done   bool
	prev   map[versionKey]bool // the entries of the page before
	cur    map[versionKey]bool // reused for the page being read
}

type versionKey struct{ key, versionID string }

// NewVersionLister lists bucket from (keyMarker, versionMarker), both
// possibly empty, restricted to prefix.
func NewVersionLister(client Client, bucket, prefix, keyMarker, versionMarker string, pageSize int32) *VersionLister {
	in := s3.ListObjectVersionsInput{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if keyMarker != "" {
		in.KeyMarker = aws.String(keyMarker)
		if versionMarker != "" {
			in.VersionIdMarker = aws.String(versionMarker)
		}
	}
	if pageSize > 0 {
		in.MaxKeys = aws.Int32(pageSize)
	}
	l := &VersionLister{client: client, in: in}
	if keyMarker != "" && versionMarker != "" {
		// A listing resumed from markers starts after the marker entry;
		// a server that repeats it (versitygw) must not return it twice.
		l.prev = map[versionKey]bool{{keyMarker, versionMarker}: true}
	}
	return l
}

// HasMorePages reports whether Next may return more entries.
func (l *VersionLister) HasMorePages() bool { return !l.done }

// Markers returns the key and version-id markers from which the next page
// starts; a lister made with them resumes exactly there.
func (l *VersionLister) Markers() (keyMarker, versionMarker string) {
	return aws.ToString(l.in.KeyMarker), aws.ToString(l.in.VersionIdMarker)
}

// Next returns the next page of entries in listing order.
func (l *VersionLister) Next(ctx context.Context) ([]Entry, error) {
	if l.done {
		return nil, nil
	}
	var raw bytes.Buffer
	var page parsedPage
	out, err := l.client.ListObjectVersions(ctx, &l.in, parseBody(&page, &raw))
	if err != nil {
		return nil, fmt.Errorf("list versions of s3://%s/%s: %w", aws.ToString(l.in.Bucket), aws.ToString(l.in.Prefix), err)
	}
	if page.ok {
		// Read from the body in one pass, in the server's order.
		out.IsTruncated, out.NextKeyMarker, out.NextVersionIdMarker = aws.Bool(page.truncated), nonEmpty(page.nextKey), nonEmpty(page.nextVers)
	}
	entries := merge(out)
	if page.ok {
		entries = page.entries
	} else if raw.Len() > 0 {
		ordered, err := orderFromXML(raw.Bytes(), entries)
		if err != nil {
			return nil, fmt.Errorf("list versions of s3://%s: %w", aws.ToString(l.in.Bucket), err)
		}
		entries = ordered
	}
	entries = l.dedupe(entries)
	nextKey, nextVersion := aws.ToString(out.NextKeyMarker), aws.ToString(out.NextVersionIdMarker)
	switch {
	case !aws.ToBool(out.IsTruncated) || nextKey == "" && nextVersion == "":
		l.done = true
	case nextKey == aws.ToString(l.in.KeyMarker) && nextVersion == aws.ToString(l.in.VersionIdMarker) && len(entries) == 0:
		// A page that brought nothing new and does not move the markers
		// would repeat forever (versitygw with a page of one entry).
		return nil, fmt.Errorf("list versions of s3://%s: the server repeats the page after key %q version %q; use a larger page size",
			aws.ToString(l.in.Bucket), nextKey, nextVersion)
	default:
		l.in.KeyMarker, l.in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	return entries, nil
}

// dedupe drops the entries the page before returned: a server that
// repeats an entry at a page boundary repeats one of the previous page's,
// though not always next to it (versitygw lists a page's delete markers
// before its versions, so the repeated version can follow a marker of a
// later key).
func (l *VersionLister) dedupe(entries []Entry) []Entry {
	if l.cur == nil {
		l.cur = make(map[versionKey]bool, len(entries))
	}
	cur := l.cur
	clear(cur)
	kept := entries[:0]
	for _, e := range entries {
		k := versionKey{e.Key, e.VersionID}
		if l.prev[k] || cur[k] {
			continue
		}
		cur[k] = true
		kept = append(kept, e)
	}
	l.prev, l.cur = cur, l.prev // the two maps take turns: no map per page
	return kept
}

// merge builds entries from the SDK's two lists: by key, then newest first.
func merge(out *s3.ListObjectVersionsOutput) []Entry {
	entries := make([]Entry, 0, len(out.Versions)+len(out.DeleteMarkers))
	for _, v := range out.Versions {
		entries = append(entries, fromVersion(v))
	}
	for _, m := range out.DeleteMarkers {
		entries = append(entries, Entry{
			Key: aws.ToString(m.Key), VersionID: versionOrNull(m.VersionId), IsDeleteMarker: true,
			IsLatest: aws.ToBool(m.IsLatest), LastModified: aws.ToTime(m.LastModified),
		})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.IsLatest != b.IsLatest {
			return a.IsLatest
		}
		return a.LastModified.After(b.LastModified)
	})
	return entries
}

func fromVersion(v types.ObjectVersion) Entry {
	e := Entry{
		Key: aws.ToString(v.Key), VersionID: versionOrNull(v.VersionId), IsLatest: aws.ToBool(v.IsLatest),
		LastModified: aws.ToTime(v.LastModified), Size: aws.ToInt64(v.Size), ETag: TrimETag(aws.ToString(v.ETag)),
		StorageClass: string(v.StorageClass),
	}
	if len(v.ChecksumAlgorithm) > 0 {
		e.ChecksumAlgo = string(v.ChecksumAlgorithm[0])
	}
	return e
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func versionOrNull(v *string) string {
	if aws.ToString(v) == "" {
		return "null"
	}
	return *v
}

// ETagIsMD5 reports whether an ETag is the MD5 of the object's bytes: a
// single-part ETag (32 hex digits) of an object not encrypted with SSE-KMS
// (sse as S3 reports it), whose ETags are not the MD5.
func ETagIsMD5(etag, sse string) bool {
	if strings.HasPrefix(sse, "aws:kms") || len(etag) != 2*md5.Size {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// TrimETag removes the quotes S3 puts around ETags.
func TrimETag(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}

// orderFromXML reorders entries to the order of the <Version> and
// <DeleteMarker> elements in the raw response body.
func orderFromXML(body []byte, entries []Entry) ([]Entry, error) {
	type ref struct{ key, version string }
	byRef := make(map[ref]int, len(entries))
	for i, e := range entries {
		byRef[ref{e.Key, e.VersionID}] = i
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	ordered := make([]Entry, 0, len(entries))
	used := make([]bool, len(entries))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read listing xml: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || (se.Name.Local != "Version" && se.Name.Local != "DeleteMarker") {
			continue
		}
		var el struct {
			Key       string `xml:"Key"`
			VersionID string `xml:"VersionId"`
		}
		if err := dec.DecodeElement(&el, &se); err != nil {
			return nil, fmt.Errorf("read listing xml: %w", err)
		}
		if el.VersionID == "" {
			el.VersionID = "null"
		}
		i, ok := byRef[ref{el.Key, el.VersionID}]
		if !ok || used[i] {
			continue // a repeat, removed later by dedupe anyway
		}
		used[i] = true
		ordered = append(ordered, entries[i])
	}
	if len(ordered) != len(entries) {
		// The body did not match what the SDK decoded (an encoding-type the
		// decoder does not undo, say): keep the SDK's merge.
		return entries, nil
	}
	return ordered, nil
}
