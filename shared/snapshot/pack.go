package snapshot

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Pack sizes (see vault.PackKey and docs/design.md, "Packs").
const (
	// DefaultPackMax is the largest version a snapshot packs: larger ones
	// are copied server-side, one CopyObject each.
	DefaultPackMax = 256 << 10
	// DefaultPackBytes is the size at which a pack is closed. A copy step
	// holds at most two packs per file in flight, two files at once.
	DefaultPackBytes = 16 << 20
)

func (e *Engine) packMax() int64 {
	switch {
	case e.PackMax < 0:
		return -1
	case e.PackMax == 0:
		return DefaultPackMax
	}
	return e.PackMax
}

func (e *Engine) packBytes() int64 {
	if e.PackBytes > 0 {
		return e.PackBytes
	}
	return DefaultPackBytes
}

// packable says whether a version goes into a pack: small, and stored in
// one part (a multipart upload's ETag is rebuilt by a multipart copy, which
// needs a data object of its own).
func (e *Engine) packable(r vault.Record) bool {
	return r.Size <= e.packMax() && !strings.Contains(r.ETag, "-")
}

// packGroups splits the records at idx (in file order) into packs of at
// most limit bytes (a single larger member makes a pack of its own).
func packGroups(recs []vault.Record, idx []int, limit int64) [][]int {
	var out [][]int
	var cur []int
	var size int64
	for _, i := range idx {
		if len(cur) > 0 && size+recs[i].Size > limit {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, i)
		size += recs[i].Size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// packed is what packing one group did, for the file's counts.
type packed struct {
	stored, failed, bytes int64
}

// readMembers reads the versions of one pack from the source bucket,
// sem bounding the reads in flight with the rest of the step's requests.
// A version that cannot be read becomes its skip record (its body nil);
// only a failure of the step itself returns an error.
func (e *Engine) readMembers(ctx context.Context, job Job, recs []vault.Record, grp []int, stop time.Time, sem chan struct{}) ([][]byte, error) {
	bodies := make([][]byte, len(grp))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fatal error
	for k, i := range grp {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &recs[i]
			if !stop.IsZero() && !e.now().Before(stop) {
				*r = skip(*r, vault.SkipWindowEnded, "the completion window ended before this object was copied")
				return
			}
			b, err := e.readMember(ctx, job.Bucket, r)
			if err == nil && job.readACLs() {
				r.ACL, err = vault.ReadACL(ctx, e.S3, job.Bucket, r.Key, r.VersionID)
			}
			if err == nil {
				bodies[k] = b
				return
			}
			if err := e.skipOrFail(r, err); err != nil {
				mu.Lock()
				fatal = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return bodies, fatal
}

// readMember reads one version, checks its bytes against the listing's
// size and ETag, and completes its record with the metadata, checksum and
// tags the object carries (what a server-side copy would have carried).
func (e *Engine) readMember(ctx context.Context, bucket string, r *vault.Record) ([]byte, error) {
	b, err := e.readOnce(ctx, bucket, r)
	var bad *badReadError
	if errors.As(err, &bad) {
		b, err = e.readOnce(ctx, bucket, r) // once more: bytes damaged in transit
	}
	return b, err
}

// badReadError is a read whose bytes do not match the listing.
type badReadError struct{ msg string }

func (e *badReadError) Error() string { return e.msg }

func (e *Engine) readOnce(ctx context.Context, bucket string, r *vault.Record) ([]byte, error) {
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(r.Key), VersionId: aws.String(r.VersionID),
		IfMatch: aws.String(`"` + r.ETag + `"`), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, r.Size+1))
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s@%s: %w", bucket, r.Key, r.VersionID, err)
	}
	h := s3x.HeadOfGet(out)
	if int64(len(b)) != r.Size || aws.ToInt64(h.ContentLength) != r.Size {
		return nil, &badReadError{fmt.Sprintf("read s3://%s/%s@%s: %d bytes, listed with %d", bucket, r.Key, r.VersionID, len(b), r.Size)}
	}
	sse := string(h.ServerSideEncryption)
	if s3x.ETagIsMD5(r.ETag, sse) {
		if sum := md5.Sum(b); hex.EncodeToString(sum[:]) != r.ETag {
			return nil, &badReadError{fmt.Sprintf("read s3://%s/%s@%s: MD5 %x, ETag %s", bucket, r.Key, r.VersionID, sum, r.ETag)}
		}
	}
	r.Meta, r.Checksum, r.SSE = vault.MetaOf(h), vault.ChecksumOf(h), sse
	r.Tags = map[string]string{}
	if aws.ToInt32(h.TagCount) > 0 {
		tags, err := e.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(r.Key), VersionId: aws.String(r.VersionID)})
		if err != nil && !s3x.IsNotImplemented(err) {
			return nil, err
		}
		if err != nil {
			r.Tags = nil // the server keeps no tags: unknown
			return b, nil
		}
		for _, t := range tags.TagSet {
			r.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return b, nil
}

// writePack writes the members read (bodies not nil) as one pack and
// points their records at it. A pack of the same members the vault holds
// already (an earlier attempt's: pack keys name their members) is used as
// it is (vault.StorePack).
func (e *Engine) writePack(ctx context.Context, v *vault.Vault, bucket string, recs []vault.Record, grp []int, bodies [][]byte) (packed, error) {
	var res packed
	var ids []string
	var total int64
	for k, i := range grp {
		if bodies[k] == nil {
			res.failed++
			continue
		}
		r := recs[i]
		ids = append(ids, vault.DataKey(bucket, r.Key, r.VersionID, r.ETag, r.Time)+" "+r.ETag)
		total += int64(len(bodies[k]))
	}
	if len(ids) == 0 {
		return res, nil
	}
	buf := make([]byte, 0, total)
	for _, b := range bodies {
		buf = append(buf, b...)
	}
	st, err := v.StorePack(ctx, bucket, ids, buf, md5.Sum(buf))
	if err != nil {
		return res, err
	}
	key, etag := st.Key, st.ETag
	var off int64
	for k, i := range grp {
		if bodies[k] == nil {
			continue
		}
		r := &recs[i]
		r.Data, r.Packed, r.DataOffset, r.DataETag, r.MetaInData = key, true, off, etag, false
		off += r.Size
		res.stored++
		res.bytes += r.Size
	}
	return res, nil
}
