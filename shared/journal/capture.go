package journal

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// captureVersion backs up one source version: reads its metadata, tags and
// ACL, copies its bytes into the vault unless they are there already, and
// returns the journal record. A version that cannot be backed up yields an
// OpSkip record that says why; only retryable failures return an error.
// listed, when not nil, is what a listing said of the version (its
// LastModified is more precise than HeadObject's on some servers). size is
// the version's size as an event or listing gave it, -1 when unknown: a
// small version is relayed (see relay.go), its metadata read from the
// headers of the GET that fetches its bytes instead of a HEAD.
func (j *Journal) captureVersion(ctx context.Context, bucket, key, versionID string, listed *s3x.Entry, size int64) (vault.Record, error) {
	var head *s3.HeadObjectOutput
	var body *relayBody
	var err error
	if j.relays(ctx, size) {
		head, body, err = j.fetch(ctx, bucket, key, versionID)
		if err != nil {
			return vault.Record{}, err
		}
	}
	if head == nil {
		head, err = j.S3.HeadObject(ctx, &s3.HeadObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonNull(versionID),
			ChecksumMode: types.ChecksumModeEnabled,
		})
	}
	if err != nil {
		if s3x.IsDeleteMarker(err) {
			return j.deleteMarkerRecord(bucket, key, versionID, err, listed), nil
		}
		if s3x.IsBareBadRequest(err) {
			return j.badRequest(ctx, bucket, key, versionID, err)
		}
		if skip, ok := skipFor(err); ok {
			return skipRecord(key, versionID, skip, err), nil
		}
		return vault.Record{}, fmt.Errorf("head s3://%s/%s@%s: %w", bucket, key, versionID, err)
	}
	if versionID == "" {
		versionID = aws.ToString(head.VersionId)
		if versionID == "" {
			versionID = "null"
		}
	}
	rec := vault.Record{
		Op: vault.OpVersion, Key: key, VersionID: versionID, Time: aws.ToTime(head.LastModified).UTC(),
		Size: aws.ToInt64(head.ContentLength), ETag: s3x.TrimETag(aws.ToString(head.ETag)),
		StorageClass: string(head.StorageClass), SSE: string(head.ServerSideEncryption),
		Checksum: vault.ChecksumOf(head), Meta: vault.MetaOf(head),
	}
	if listed != nil && !listed.LastModified.IsZero() {
		rec.Time = listed.LastModified.UTC()
	}
	if head.SSECustomerAlgorithm != nil {
		return skipRecord(key, versionID, vault.SkipSSEC, nil), nil
	}
	if archived(head) {
		return skipRecord(key, versionID, vault.SkipArchived, fmt.Errorf("storage class %s, archive status %s", head.StorageClass, head.ArchiveStatus)), nil
	}
	if strings.Contains(rec.ETag, "-") {
		// A multipart upload: remember its part size so a restore can
		// rebuild the same parts, and so the same ETag.
		p1, err := j.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonNull(versionID), PartNumber: aws.Int32(1)})
		if err == nil {
			rec.PartSize = aws.ToInt64(p1.ContentLength)
		}
	}
	if aws.ToInt32(head.TagCount) == 0 {
		rec.Tags = map[string]string{}
	} else {
		tags, err := j.tags(ctx, bucket, key, versionID)
		if err != nil {
			if skip, ok := skipFor(err); ok {
				return skipRecord(key, versionID, skip, err), nil
			}
			return vault.Record{}, err
		}
		rec.Tags = tags
	}
	rec.TagsAt = time.Now().UTC()
	if j.usesACLs(ctx, bucket) {
		acl, err := vault.ReadACL(ctx, j.S3, bucket, key, versionID)
		if err != nil {
			if skip, ok := skipFor(err); ok {
				return skipRecord(key, versionID, skip, err), nil
			}
			return vault.Record{}, err
		}
		rec.ACL = acl
	}
	rec.Data = vault.DataKey(bucket, key, versionID, rec.ETag, rec.Time)
	if body != nil {
		// Errors of the relay are never skips: its 412 says the data
		// key exists, not that the source version is gone.
		st, err := j.relayData(ctx, bucket, key, versionID, rec, body)
		if err != nil {
			return vault.Record{}, err
		}
		rec.Data, rec.DataETag = st.Key, st.ETag
		return rec, nil
	}
	st, err := j.storeData(ctx, bucket, key, versionID, rec)
	if err != nil {
		if skip, ok := skipFor(err); ok {
			return skipRecord(key, versionID, skip, err), nil
		}
		return vault.Record{}, err
	}
	rec.Data, rec.DataETag = st.Key, st.ETag
	return rec, nil
}

// storeData copies a version's bytes into the vault (vault.StoreData:
// once, never over another object) and returns where they are.
func (j *Journal) storeData(ctx context.Context, bucket, key, versionID string, rec vault.Record) (vault.Stored, error) {
	j.logProbes(ctx)
	st, err := j.Vault.StoreData(ctx, vault.StoreRequest{Bucket: bucket, Key: key, VersionID: versionID, ETag: rec.ETag, Size: rec.Size,
		LastModified: rec.Time, Copy: j.Copy})
	if err != nil {
		return st, fmt.Errorf("copy s3://%s/%s@%s to vault: %w", bucket, key, versionID, err)
	}
	return st, nil
}

// ProbeKey is the vault key of the object with which a journal probes
// whether the vault's server honours a create-only copy: a data key (of a
// pseudo-version of the vault's own descriptor), so an orphan data object
// like any a crash leaves behind, and not a version of a protected bucket.
func ProbeKey(vaultBucket string) string { return vault.ProbeKey(vaultBucket) }

// logProbes logs, once, what the vault's server was found to honour
// (vault.ProbeCopy, vault.ProbePut): a failed probe counts as "no".
func (j *Journal) logProbes(ctx context.Context) {
	j.ccMu.Lock()
	defer j.ccMu.Unlock()
	if j.ccKnown {
		return
	}
	v := j.Vault
	for _, p := range []struct {
		what string
		res  vault.ProbeResult
	}{{"copy", v.ProbeCopy(ctx)}, {"put", v.ProbePut(ctx)}} {
		if p.res.Err != nil {
			if ctx.Err() != nil {
				return // ask again on a live context
			}
			j.log().WarnContext(ctx, "conditional "+p.what+" probe failed: data keys are checked by HEAD", "vault", v.Bucket, "error", p.res.Err)
		} else {
			j.log().InfoContext(ctx, "conditional "+p.what+" probed", "vault", v.Bucket, "honoured", p.res.Honoured)
		}
	}
	j.ccKnown = true
}

func (j *Journal) tags(ctx context.Context, bucket, key, versionID string) (map[string]string, error) {
	out, err := j.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonNull(versionID)})
	if err != nil {
		if s3x.IsNotImplemented(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("tags of s3://%s/%s@%s: %w", bucket, key, versionID, err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

// InvalidVersionError says that a change names a version id that the
// server does not take for a version id at all: bad input (an event of
// another server, or a damaged one), not a version to skip. Ingest fails
// the change with it, so its message goes to the dead-letter queue after
// its retries; a version it might have meant is found by reconcile.
type InvalidVersionError struct {
	Bucket, Key, VersionID string
	Err                    error
}

func (e *InvalidVersionError) Error() string {
	return fmt.Sprintf("s3://%s/%s: %q is not a valid version id: %v", e.Bucket, e.Key, e.VersionID, e.Err)
}

func (e *InvalidVersionError) Unwrap() error { return e.Err }

// badRequest explains a bare 400 to a HEAD of a version: S3 answers so
// both when the version is encrypted with a customer key (SSE-C) and when
// the version id is invalid, and a HEAD has no body to say which. A GET of
// the version's first byte does: InvalidRequest for SSE-C,
// InvalidArgument for the version id.
func (j *Journal) badRequest(ctx context.Context, bucket, key, versionID string, headErr error) (vault.Record, error) {
	out, err := j.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonNull(versionID), Range: aws.String("bytes=0-0"),
	})
	if err == nil {
		out.Body.Close()
		return vault.Record{}, fmt.Errorf("head s3://%s/%s@%s (a GET of it succeeds): %w", bucket, key, versionID, headErr)
	}
	if s3x.IsInvalidVersion(err) {
		return vault.Record{}, &InvalidVersionError{Bucket: bucket, Key: key, VersionID: versionID, Err: err}
	}
	if skip, ok := skipFor(err); ok {
		return skipRecord(key, versionID, skip, err), nil
	}
	return vault.Record{}, fmt.Errorf("head s3://%s/%s@%s: %w; get: %w", bucket, key, versionID, headErr, err)
}

func (j *Journal) deleteMarkerRecord(bucket, key, versionID string, headErr error, listed *s3x.Entry) vault.Record {
	rec := vault.Record{Op: vault.OpDeleteMarker, Key: key, VersionID: versionID}
	switch {
	case listed != nil:
		rec.Time = listed.LastModified.UTC()
	default:
		if t, err := http.ParseTime(s3x.Header(headErr, "Last-Modified")); err == nil {
			rec.Time = t.UTC()
		}
	}
	if rec.VersionID == "" {
		rec.VersionID = s3x.Header(headErr, "x-amz-version-id")
	}
	return rec
}

func skipRecord(key, versionID, reason string, err error) vault.Record {
	rec := vault.Record{Op: vault.OpSkip, Key: key, VersionID: versionID, Reason: reason, Time: time.Now().UTC()}
	if err != nil {
		rec.Detail = err.Error()
	}
	return rec
}

// skipFor says which skip, if any, an error means.
func skipFor(err error) (string, bool) {
	switch {
	case s3x.IsNotFound(err) || s3x.IsPreconditionFailed(err):
		return vault.SkipGone, true
	case s3x.IsArchived(err):
		return vault.SkipArchived, true
	case s3x.IsSSEC(err):
		return vault.SkipSSEC, true
	case s3x.IsAccessDenied(err):
		return vault.SkipAccessDenied, true
	}
	return "", false
}

func archived(h *s3.HeadObjectOutput) bool {
	if h.ArchiveStatus != "" {
		return true // Intelligent-Tiering Archive Access or Deep Archive Access tier
	}
	switch h.StorageClass {
	case types.StorageClassGlacier, types.StorageClassDeepArchive:
		// Readable only while a restored copy exists.
		return !strings.Contains(aws.ToString(h.Restore), `ongoing-request="false"`)
	}
	return false
}

func nonNull(versionID string) *string {
	if versionID == "" {
		return nil
	}
	return aws.String(versionID)
}
