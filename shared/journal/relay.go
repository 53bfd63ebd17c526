package journal

import (
	"context"
	"crypto/md5"
	"encoding/hex"
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

// relayData stores a relayed version's bytes (vault.StoreData: once,
// never over another object) and returns where they are. Its errors are
// never skips: a refusal says the data key exists, not that the source
// version is gone.
func (j *Journal) relayData(ctx context.Context, bucket, key, versionID string, rec vault.Record, body *relayBody) (vault.Stored, error) {
	j.logProbes(ctx)
	st, err := j.Vault.StoreData(ctx, vault.StoreRequest{Bucket: bucket, Key: key, VersionID: versionID, ETag: rec.ETag, Size: rec.Size,
		LastModified: rec.Time, Body: body.data, BodyMD5: body.md5})
	if err != nil {
		var refused *vault.RefusedError
		if errors.As(err, &refused) {
			err = errors.New(refused.Error()) // not wrapped: the refusal must not read as the version gone
		}
		return st, fmt.Errorf("relay s3://%s/%s@%s to vault: %w", bucket, key, versionID, err)
	}
	return st, nil
}

// conditionalPut reports whether the vault's server honours a create-only
// PutObject (vault.ConditionalPut): the relay of small versions needs it.
func (j *Journal) conditionalPut(ctx context.Context) bool {
	j.logProbes(ctx)
	return j.Vault.ConditionalPut(ctx)
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
