// Package journal is continuous backup: it turns S3 change events into
// vault data and journal records, and reconciles the journal against
// ListObjectVersions so that lost events lose nothing.
package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Journal writes changes of protected buckets into a vault.
type Journal struct {
	Vault *vault.Vault
	// S3 reads the protected buckets (often the same client as the vault's).
	S3 s3x.Client
	// Copy tunes the server-side copies into the vault.
	Copy s3x.CopyOptions
	// Concurrency bounds parallel captures; 0 means 16.
	Concurrency int
	// RelayMax: a new version of at most this many bytes (as its event or
	// listing says) is relayed, fetched by GET and written by a
	// create-only PUT, 2 calls, where the vault's server honours
	// If-None-Match: * on PutObject (see relay.go). 0 means
	// DefaultRelayMax (256 KiB); negative turns the relay off (every
	// version is copied server-side). Memory: up to RelayMax per capture
	// in flight, RelayMax × Concurrency per Ingest or Reconcile.
	RelayMax int64
	// Log receives progress and skips; nil means slog.Default().
	Log *slog.Logger

	mu   sync.Mutex
	acls map[string]bool

	ccMu    sync.Mutex // logProbes, once
	ccKnown bool       // the probes' answers are logged
}

func (j *Journal) log() *slog.Logger {
	if j.Log != nil {
		return j.Log
	}
	return slog.Default()
}

func (j *Journal) concurrency() int {
	if j.Concurrency > 0 {
		return j.Concurrency
	}
	return 16
}

// usesACLs reports whether the vault's record of bucket says it uses ACLs.
func (j *Journal) usesACLs(ctx context.Context, bucket string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.acls == nil {
		j.acls = map[string]bool{}
	}
	if v, ok := j.acls[bucket]; ok {
		return v
	}
	pb, err := j.Vault.Protected(ctx, bucket)
	j.acls[bucket] = err == nil && pb.ACLs
	return j.acls[bucket]
}

// Result is the outcome of ingesting one change.
type Result struct {
	Change  event.Change
	Records []vault.Record
	// Err: the change was not journaled; deliver it again. A retryable
	// failure, or bad input (InvalidVersionError) that fails again each
	// time until its message reaches the dead-letter queue.
	Err error
	// Refused says why the change was not journaled and will not be
	// (its bucket is not protected by the vault); Err is nil: delivering
	// it again would change nothing.
	Refused string
}

// IngestStats counts what an ingest did.
type IngestStats struct {
	Changes, Records, Skipped, Failed, Refused int
	Segments                                   []string
}

// Ingest journals a batch of changes: it captures each change (in
// parallel), then writes one segment per bucket. Results line up with
// changes; a change whose Err is set was not journaled and should be
// delivered again (all of its bucket's changes fail if the segment write
// fails). Replaying a batch copies no data twice.
func (j *Journal) Ingest(ctx context.Context, changes []event.Change) ([]Result, IngestStats, error) {
	results := make([]Result, len(changes))
	// A change delivered twice in one batch is captured once: two parallel
	// captures of one version would both find its data key empty and copy.
	type changeID struct {
		kind                            event.Kind
		bucket, key, version, sequencer string
		time                            int64
	}
	first := make(map[changeID]int, len(changes))
	dup := make([]int, len(changes))
	pending := make([]int, 0, len(changes)) // changes to capture: all but repeats
	refused, err := j.unprotected(ctx, changes)
	if err != nil {
		return nil, IngestStats{}, err
	}
	for i, c := range changes {
		results[i].Change = c
		if why, ok := refused[c.Bucket]; ok {
			results[i].Refused = why
			continue
		}
		if err := s3x.ValidateKey(c.Key); err != nil {
			// No object has such a key: a malformed or forged event, which
			// delivering again would not cure.
			results[i].Refused = fmt.Sprintf("%s event of s3://%s names no possible object: %v", c.Name, c.Bucket, err)
			continue
		}
		id := changeID{c.Kind, c.Bucket, c.Key, c.VersionID, c.Sequencer, c.Time.UnixNano()}
		if f, ok := first[id]; ok {
			dup[i] = f + 1
			continue
		}
		first[id] = i
		pending = append(pending, i)
	}
	// A fixed set of workers, not a goroutine per change: a capture runs
	// deep in the SDK's middleware, and a new goroutine grows its stack
	// there each time (a tenth of the journal's client CPU in the
	// benchmark); a worker keeps its grown stack for the next capture.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(j.concurrency(), len(pending)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(pending) {
					return
				}
				i := pending[k]
				results[i].Records, results[i].Err = j.capture(ctx, changes[i])
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, IngestStats{}, err
	}
	for i, f := range dup {
		if f > 0 {
			results[i].Err = results[f-1].Err
		}
	}
	st := IngestStats{Changes: len(changes)}
	byBucket := map[string][]int{}
	var order []string
	for i, r := range results {
		if r.Err != nil || r.Refused != "" {
			continue
		}
		b := r.Change.Bucket
		if _, ok := byBucket[b]; !ok {
			order = append(order, b)
		}
		byBucket[b] = append(byBucket[b], i)
	}
	for _, b := range order {
		var recs []vault.Record
		for _, i := range byBucket[b] {
			recs = append(recs, results[i].Records...)
		}
		id, err := j.Vault.WriteSegment(ctx, b, recs)
		if err != nil {
			for _, i := range byBucket[b] {
				results[i].Err = err
			}
			continue
		}
		if id != "" {
			st.Segments = append(st.Segments, id)
		}
	}
	for _, r := range results {
		if r.Refused != "" {
			st.Refused++
			j.log().WarnContext(ctx, "change refused", "bucket", r.Change.Bucket, "key", r.Change.Key, "versionId", r.Change.VersionID, "reason", r.Refused)
			continue
		}
		if r.Err != nil {
			st.Failed++
			j.log().WarnContext(ctx, "change not journaled", "bucket", r.Change.Bucket, "key", r.Change.Key, "versionId", r.Change.VersionID, "error", r.Err)
			continue
		}
		st.Records += len(r.Records)
		for _, rec := range r.Records {
			if rec.Op == vault.OpSkip {
				st.Skipped++
				j.log().WarnContext(ctx, "version skipped", "bucket", r.Change.Bucket, "key", rec.Key, "versionId", rec.VersionID, "reason", rec.Reason, "detail", rec.Detail)
			}
		}
	}
	return results, st, nil
}

// unprotected returns, for each bucket of changes the vault does not
// protect (no buckets/<bucket>.json), why its changes are refused: a
// vault journals only what it was asked to protect (a server that sends
// every bucket's events, a notification left behind on an unprotected
// bucket, a misrouted queue), never silently another bucket's objects.
func (j *Journal) unprotected(ctx context.Context, changes []event.Change) (map[string]string, error) {
	out := map[string]string{}
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Bucket == "" || seen[c.Bucket] {
			continue
		}
		seen[c.Bucket] = true
		if _, err := j.Vault.Protected(ctx, c.Bucket); err != nil {
			if !s3x.IsNotFound(err) {
				return nil, err
			}
			out[c.Bucket] = fmt.Sprintf("s3://%s is not protected by vault %s: its events are not journaled (protect it with `bucketvault protect --vault %s --bucket %s`, or turn its event delivery off)",
				c.Bucket, j.Vault.Bucket, j.Vault.Bucket, c.Bucket)
		}
	}
	return out, nil
}

// capture turns one change into records.
func (j *Journal) capture(ctx context.Context, c event.Change) ([]vault.Record, error) {
	if c.Bucket == "" || c.Key == "" {
		return nil, fmt.Errorf("change %s without bucket or key", c.Name)
	}
	seq := strings.ToUpper(c.Sequencer)
	stamp := func(r vault.Record) ([]vault.Record, error) {
		r.Sequencer, r.Origin = seq, vault.OriginEvent
		return []vault.Record{r}, nil
	}
	switch c.Kind {
	case event.Created, event.RestoreCompleted:
		if c.VersionID == "" {
			return j.resolveKey(ctx, c.Bucket, c.Key)
		}
		rec, err := j.captureVersion(ctx, c.Bucket, c.Key, c.VersionID, nil, sizeOf(c))
		if err != nil {
			return nil, err
		}
		return stamp(rec)
	case event.DeleteMarkerCreated:
		if c.VersionID == "" {
			return j.resolveKey(ctx, c.Bucket, c.Key)
		}
		_, err := j.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(c.Key), VersionId: aws.String(c.VersionID)})
		rec := vault.Record{Op: vault.OpDeleteMarker, Key: c.Key, VersionID: c.VersionID, Time: c.Time}
		switch {
		case err == nil:
			// The id names an object version the bucket still holds, not
			// a delete marker: the event is wrong (S3 is the truth, events
			// are hints). Journal what the key's listing says instead.
			j.log().WarnContext(ctx, "delete-marker event names a live object version: journaling the key's listing instead",
				"bucket", c.Bucket, "key", c.Key, "versionId", c.VersionID)
			return j.resolveKey(ctx, c.Bucket, c.Key)
		case s3x.IsDeleteMarker(err):
			rec = j.deleteMarkerRecord(c.Bucket, c.Key, c.VersionID, err, nil)
			if rec.Time.IsZero() {
				rec.Time = c.Time
			}
		case err != nil && s3x.IsNotFound(err):
			// The marker is gone already: removed by a permanent delete
			// (which MinIO reports under this same event name). Journal
			// both; its creation, if this event was not it, has its own
			// earlier record, and restore keeps the earliest.
			out, _ := stamp(rec)
			purge, _ := stamp(vault.Record{Op: vault.OpPurge, Key: c.Key, VersionID: c.VersionID, Time: c.Time})
			return append(out, purge...), nil
		case err != nil && s3x.IsBareBadRequest(err):
			// An invalid version id, or a server that answers HEAD of a
			// marker so (badRequest tells them apart).
			if _, err := j.badRequest(ctx, c.Bucket, c.Key, c.VersionID, err); errors.As(err, new(*InvalidVersionError)) {
				return nil, err
			}
		case err != nil && !s3x.IsRetryable(err):
			// Some servers do not answer HEAD of a marker helpfully;
			// the event itself is the record.
		case err != nil:
			return nil, fmt.Errorf("head delete marker s3://%s/%s@%s: %w", c.Bucket, c.Key, c.VersionID, err)
		}
		return stamp(rec)
	case event.PermanentlyDeleted:
		if c.VersionID == "" {
			return j.resolveKey(ctx, c.Bucket, c.Key)
		}
		// A purge is final, so it is journaled only once the bucket
		// confirms the version is gone: one HEAD per permanent deletion.
		// A version (or marker) the bucket still holds is not deleted,
		// whatever the event says; its key's listing is journaled instead.
		_, err := j.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(c.Key), VersionId: aws.String(c.VersionID)})
		switch {
		case err != nil && s3x.IsNotFound(err):
			return stamp(vault.Record{Op: vault.OpPurge, Key: c.Key, VersionID: c.VersionID, Time: c.Time})
		case err == nil || s3x.IsDeleteMarker(err):
			j.log().WarnContext(ctx, "permanent-deletion event names a version the bucket still holds: journaling the key's listing instead",
				"bucket", c.Bucket, "key", c.Key, "versionId", c.VersionID)
			return j.resolveKey(ctx, c.Bucket, c.Key)
		case s3x.IsBareBadRequest(err):
			if _, err := j.badRequest(ctx, c.Bucket, c.Key, c.VersionID, err); err != nil {
				return nil, err
			}
			// SSE-C: the version is there (its bytes need a key).
			return j.resolveKey(ctx, c.Bucket, c.Key)
		default:
			return nil, fmt.Errorf("check permanent deletion of s3://%s/%s@%s: %w", c.Bucket, c.Key, c.VersionID, err)
		}
	case event.Removed:
		return j.resolveKey(ctx, c.Bucket, c.Key)
	case event.TagsChanged:
		if c.VersionID == "" {
			return nil, nil // unversioned tag change: the next reconcile of tags sees it
		}
		tags, err := j.tags(ctx, c.Bucket, c.Key, c.VersionID)
		if err != nil {
			if skip, ok := skipFor(err); ok && skip == vault.SkipGone {
				return nil, nil // the version is gone; its purge is journaled on its own
			}
			return nil, err
		}
		if tags == nil {
			tags = map[string]string{}
		}
		return stamp(vault.Record{Op: vault.OpTags, Key: c.Key, VersionID: c.VersionID, Time: c.Time, Tags: tags, TagsAt: time.Now().UTC()})
	case event.ACLChanged:
		if c.VersionID == "" {
			return nil, nil
		}
		acl, err := vault.ReadACL(ctx, j.S3, c.Bucket, c.Key, c.VersionID)
		if err != nil {
			if skip, ok := skipFor(err); ok && skip == vault.SkipGone {
				return nil, nil
			}
			return nil, err
		}
		if acl == nil {
			return nil, nil
		}
		return stamp(vault.Record{Op: vault.OpACL, Key: c.Key, VersionID: c.VersionID, Time: c.Time, ACL: acl})
	case event.StorageClassChanged:
		if c.VersionID == "" {
			return nil, nil
		}
		sc := c.StorageClass
		if sc == "" {
			head, err := j.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(c.Key), VersionId: aws.String(c.VersionID)})
			if err != nil {
				if s3x.IsNotFound(err) {
					return nil, nil
				}
				return nil, fmt.Errorf("head s3://%s/%s@%s: %w", c.Bucket, c.Key, c.VersionID, err)
			}
			sc = string(head.StorageClass)
		}
		return stamp(vault.Record{Op: vault.OpStorageClass, Key: c.Key, VersionID: c.VersionID, Time: c.Time, StorageClass: sc})
	}
	return nil, fmt.Errorf("change kind %q is not journaled", c.Kind)
}

// resolveKey handles an event that does not say which version it is about
// (some servers send no versionId): it reconciles that one key against a
// listing of its versions.
func (j *Journal) resolveKey(ctx context.Context, bucket, key string) ([]vault.Record, error) {
	entries, err := listKey(ctx, j.S3, bucket, key)
	if err != nil {
		return nil, err
	}
	known, err := j.knownVersions(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	since, err := j.Vault.CompleteThrough(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return j.reconcileKey(ctx, bucket, key, entries, known, time.Now().UTC(), since)
}

// listKey lists every version and delete marker of exactly one key.
func listKey(ctx context.Context, c s3x.Client, bucket, key string) ([]s3x.Entry, error) {
	l := s3x.NewVersionLister(c, bucket, key, "", "", 1000)
	var out []s3x.Entry
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Key == key {
				out = append(out, e)
			} else if e.Key > key && !strings.HasPrefix(e.Key, key) {
				return out, nil
			}
		}
		if len(page) > 0 && page[len(page)-1].Key != key {
			return out, nil // versions of one key are contiguous and come first
		}
	}
	return out, nil
}

// knownVersions reads the journal's records of one key.
func (j *Journal) knownVersions(ctx context.Context, bucket, key string) ([]vault.Observed, error) {
	m, err := j.Vault.OpenJournal(ctx, bucket, []string{key})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, err
		}
		if k == key {
			return recs, nil
		}
		if k > key {
			return nil, nil
		}
	}
}

// ingestTime is the clock of lag metrics.
var ingestTime = time.Now
