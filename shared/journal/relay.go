package journal

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// The relay: a small new version is backed up with a GET of the version
// and a create-only PUT of its bytes to its data key (2 calls), instead of
// a HEAD of the version, a HEAD of the data key and a server-side copy (3
// calls where the vault's server ignores a create-only copy, as MinIO
// does). The GET's headers are the HEAD's answer (s3x.HeadOfGet), so the
// record is the same either way; the PUT's If-None-Match: * is the
// duplicate check, as a create-only copy is where a server honours that.
//
// A version is relayed when
//   - its size, as its event or listing says, is at most RelayMax (a
//     version of unknown size takes the copy path);
//   - the vault's server honours a create-only PUT (probed once per
//     Journal, see conditionalPut);
//   - the GET succeeds: any failure of it (a delete marker, SSE-C, an
//     archived or deleted version, denied access) falls back to the HEAD,
//     whose answer the copy path classifies as before;
//   - its headers show a single-part ETag (a multipart object keeps its
//     ETag only through a server-side copy of its parts), no SSE-C, no
//     archive storage class and at most RelayMax bytes. Otherwise the body
//     is closed unread and the version takes the copy path with the GET's
//     headers for the HEAD.
//
// The bytes are checked before they are written: their count must be the
// headers' Content-Length and, where the ETag is the MD5 of the content (a
// single-part ETag of a version not encrypted with SSE-KMS), their MD5 must
// be the ETag. The PUT carries that MD5 as Content-MD5, so the server
// refuses bytes altered on the way. A mismatch fails the capture
// (ErrCorruptBody, retried like any failure) and stores nothing.
//
// Memory: one body of at most RelayMax bytes per capture in flight, so
// RelayMax × Concurrency per Ingest or Reconcile (4 MiB at the defaults).

// DefaultRelayMax is the RelayMax of a Journal that sets none: 256 KiB.
// On Amazon S3 a GET and a PUT cost what a HEAD and a COPY do (one request
// of each price class), and bytes up to this size pass through the
// function in a few milliseconds, less than a copy's own latency.
const DefaultRelayMax = 256 << 10

// ErrCorruptBody says that the bytes a GET returned do not match the
// size or MD5 (ETag) of its own headers. The capture fails and stores
// nothing; a later delivery or reconcile tries again.
var ErrCorruptBody = errors.New("body does not match its headers")

// relayBody is a version's bytes, read whole and checked, and their MD5.
type relayBody struct {
	data []byte
	md5  [md5.Size]byte
}

func (j *Journal) relayMax() int64 {
	switch {
	case j.RelayMax < 0:
		return 0
	case j.RelayMax == 0:
		return DefaultRelayMax
	}
	return j.RelayMax
}

// relays reports whether a version of size bytes (-1: unknown) is to be
// fetched by GET for the relay.
func (j *Journal) relays(ctx context.Context, size int64) bool {
	max := j.relayMax()
	return size >= 0 && size <= max && max > 0 && j.Copy.SingleCall(size) && j.conditionalPut(ctx)
}

// fetch GETs a version to relay it. It returns its headers as a HEAD
// would have answered them, and its checked bytes when the version is to
// be relayed (nil: copy it). A failed GET returns neither, and no error:
// the caller HEADs the version, whose answer it knows how to classify.
func (j *Journal) fetch(ctx context.Context, bucket, key, versionID string) (*s3.HeadObjectOutput, *relayBody, error) {
	out, err := j.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), VersionId: nonNull(versionID),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, nil
	}
	defer out.Body.Close()
	head := s3x.HeadOfGet(out)
	size := aws.ToInt64(head.ContentLength)
	etag := s3x.TrimETag(aws.ToString(head.ETag))
	if size < 0 || size > j.relayMax() || head.ContentRange != nil || etag == "" || strings.Contains(etag, "-") ||
		head.SSECustomerAlgorithm != nil || archiveClass(head) {
		return head, nil, nil // copy it: Close drops the body unread
	}
	data := make([]byte, size+1) // one byte more shows a longer body
	n, err := io.ReadFull(out.Body, data)
	switch {
	case err == nil:
		return nil, nil, fmt.Errorf("relay s3://%s/%s@%s: more than the %d bytes its headers say: %w", bucket, key, versionID, size, ErrCorruptBody)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if int64(n) != size {
			return nil, nil, fmt.Errorf("relay s3://%s/%s@%s: %d bytes, its headers say %d: %w", bucket, key, versionID, n, size, ErrCorruptBody)
		}
	default:
		return nil, nil, fmt.Errorf("relay s3://%s/%s@%s: read: %w", bucket, key, versionID, err)
	}
	body := &relayBody{data: data[:n], md5: md5.Sum(data[:n])}
	if s3x.ETagIsMD5(etag, string(head.ServerSideEncryption)) {
		if got := hex.EncodeToString(body.md5[:]); got != strings.ToLower(etag) {
			return nil, nil, fmt.Errorf("relay s3://%s/%s@%s: MD5 %s, ETag %s: %w", bucket, key, versionID, got, etag, ErrCorruptBody)
		}
	}
	return head, body, nil
}

// archiveClass reports a storage class whose objects can be in an archive,
// restored or not: they take the copy path, which knows them.
func archiveClass(h *s3.HeadObjectOutput) bool {
	return h.ArchiveStatus != "" || h.StorageClass == types.StorageClassGlacier || h.StorageClass == types.StorageClassDeepArchive
}

// relayData writes a relayed version's bytes to its data key once, with
// the content type and metadata the copy path gives data objects, and
// returns the stored object's ETag. The create-only PUT is the duplicate
// check: a 412 means the data key holds an object already (a data key
// names one version), accepted when its size is the version's, as
// storeData does; a 409 (a concurrent create-only PUT of the same key) is
// asked again.
func (j *Journal) relayData(ctx context.Context, bucket, key, versionID string, rec vault.Record, body *relayBody) (string, error) {
	v := j.Vault
	put := func(createOnly bool) (string, error) {
		in := &s3.PutObjectInput{
			Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data),
			Body: bytes.NewReader(body.data), ContentLength: aws.Int64(int64(len(body.data))),
			ContentMD5:  aws.String(base64.StdEncoding.EncodeToString(body.md5[:])),
			ContentType: aws.String("application/octet-stream"),
			Metadata:    dataMetadata(bucket, versionID, rec.ETag),
		}
		if createOnly {
			in.IfNoneMatch = aws.String("*")
		}
		out, err := v.S3.PutObject(ctx, in)
		if err != nil {
			return "", err
		}
		return s3x.TrimETag(aws.ToString(out.ETag)), nil
	}
	var refused error
	for range conflictRetries {
		etag, err := put(true)
		if err == nil {
			return etag, nil
		}
		if !s3x.IsPreconditionFailed(err) && !s3x.IsConflict(err) {
			return "", fmt.Errorf("relay s3://%s/%s@%s to vault: %w", bucket, key, versionID, err)
		}
		refused = err
		if !s3x.IsConflict(err) {
			break
		}
	}
	have, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data)})
	switch {
	case err == nil && aws.ToInt64(have.ContentLength) == rec.Size:
		return s3x.TrimETag(aws.ToString(have.ETag)), nil
	case err == nil:
		// Not this version's bytes (a data key names one version): store
		// them over it, as storeData does.
		etag, err := put(false)
		if err != nil {
			return "", fmt.Errorf("relay s3://%s/%s@%s to vault: %w", bucket, key, versionID, err)
		}
		return etag, nil
	case s3x.IsNotFound(err):
		// Refused, yet nothing there (removed meanwhile): try again later.
		// Not wrapped: the refusal must not read as the version gone.
		return "", fmt.Errorf("relay s3://%s/%s@%s to vault: refused (%v), and s3://%s/%s is absent", bucket, key, versionID, refused, v.Bucket, rec.Data)
	}
	return "", fmt.Errorf("head vault s3://%s/%s: %w", v.Bucket, rec.Data, err)
}

// dataMetadata is the user metadata of a data object: the source version
// it holds, so an orphan can be identified.
func dataMetadata(bucket, versionID, etag string) map[string]string {
	return map[string]string{"bv-bucket": bucket, "bv-version": versionID, "bv-etag": etag}
}

// conditionalPut reports whether the vault's server honours a create-only
// PutObject (If-None-Match: *), probing it on first use with the probe
// object of conditionalCopy (s3x.ProbeConditionalPut, which keeps that
// probe's mark). A probe that fails counts as "no": versions are then
// copied, which is right on every server.
func (j *Journal) conditionalPut(ctx context.Context) bool {
	j.ccMu.Lock()
	defer j.ccMu.Unlock()
	if j.cpKnown {
		return j.cp
	}
	v := j.Vault
	body, err := json.MarshalIndent(v.Descriptor, "", "  ") // as the descriptor is written
	if err != nil {
		body = nil
	}
	ok, err := s3x.ProbeConditionalPut(ctx, v.S3, v.Bucket, ProbeKey(v.Bucket), body,
		map[string]string{"bv-bucket": v.Bucket, "bv-version": probeVersion})
	if err != nil {
		if ctx.Err() != nil {
			return false // ask again on a live context
		}
		j.log().WarnContext(ctx, "conditional put probe failed: small versions are copied, not relayed", "vault", v.Bucket, "error", err)
	} else {
		j.log().InfoContext(ctx, "conditional put probed", "vault", v.Bucket, "honoured", ok)
	}
	j.cpKnown, j.cp = true, ok
	return ok
}

// sizeOf returns the size a change's event gave its version, or -1 when
// it gave none. Object Created events carry the size; a 0 is taken for
// one only with the ETag of empty content, since a decoded change cannot
// tell a size of 0 from none.
func sizeOf(c event.Change) int64 {
	if c.Kind != event.Created || c.Size < 0 {
		return -1
	}
	if c.Size == 0 && c.ETag != emptyMD5 {
		return -1
	}
	return c.Size
}

// emptyMD5 is the ETag of an empty single-part object.
const emptyMD5 = "d41d8cd98f00b204e9800998ecf8427e"
