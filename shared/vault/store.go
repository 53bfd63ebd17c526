package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// StoreData is the one path by which a source version's bytes enter the
// vault. A data object is written once and never rewritten:
//
//   - Where the server honours create-only writes (If-None-Match: *,
//     probed once per vault: ConditionalCopy, ConditionalPut), the write
//     itself is the check; elsewhere a HEAD comes first.
//   - A data key that holds an object already is that version, stored
//     before: it is used as it is if it has the version's size and was
//     written within ReuseLimit. One older than that is not referenced
//     again (expiry may be deleting it: see gc.go); nor is one of another
//     size (damage). The version is then stored under the data key of the
//     day (AlternateDataKey), once.
//
// Records name the key their bytes are at (Record.Data), so readers never
// need to know which of the two it is.

// StoreRequest names a source version to store.
type StoreRequest struct {
	Bucket, Key, VersionID, ETag string
	Size                         int64
	LastModified                 time.Time
	// Body, when not nil, holds the version's bytes, read already (the
	// journal's relay of small versions), with their MD5.
	Body    []byte
	BodyMD5 [16]byte
	// SourceMetadata copies the source's metadata and tags into the data
	// object (snapshots: the record says MetaInData); otherwise it carries
	// DataMetadata, and the record holds the metadata.
	SourceMetadata bool
	// Prepare, when set, completes the copy's input (the metadata of a
	// multipart copy, which S3 does not carry).
	Prepare func(*s3.CopyObjectInput) error
	Copy    s3x.CopyOptions
}

// Stored says where a version's bytes are.
type Stored struct {
	Key  string
	ETag string
	// MetaInData: the data object carries the source's metadata and tags
	// (false when it carries DataMetadata).
	MetaInData bool
	// Reused: the data object was there already (no bytes moved).
	Reused bool
	// VersionID is the version this write made ("" when reused).
	VersionID string
}

// DataMetadata is the user metadata of a data object the journal
// stores: the source version it holds, so an orphan can be identified.
func DataMetadata(bucket, versionID, etag string) map[string]string {
	return map[string]string{"bv-bucket": bucket, "bv-version": versionID, "bv-etag": etag}
}

// AlternateDataKey is where a version is stored when its data key holds
// an object that may not be referenced again: the data key with the day
// (days since 1970, UTC) appended.
func AlternateDataKey(key string, now time.Time) string {
	return key + "." + strconv.FormatInt(now.UTC().Unix()/86400, 10)
}

// RefusedError says a create-only copy was refused and nothing is at the
// data key: the source no longer matched the version (CopySourceIfMatch),
// so the version is gone or was overwritten in place.
type RefusedError struct {
	Key string
	Err error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("store data %s: refused (%v), and nothing is there", e.Key, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// conflictRetries bounds the conditional writes of one data key that a
// concurrent conditional write of it (409) makes repeat.
const conflictRetries = 4

// StoreData stores one source version's bytes (see above).
func (v *Vault) StoreData(ctx context.Context, req StoreRequest) (Stored, error) {
	key := DataKey(req.Bucket, req.Key, req.VersionID, req.ETag, req.LastModified)
	st, err := v.storeAt(ctx, key, req, false)
	if err == nil || !isStale(err) {
		return st, err
	}
	return v.storeAt(ctx, AlternateDataKey(key, time.Now()), req, true)
}

// staleError: the data key holds an object that may not be referenced
// again (too old, or not the version's size).
type staleError struct{ why string }

func (e *staleError) Error() string { return e.why }

func isStale(err error) bool {
	_, ok := err.(*staleError)
	return ok
}

func (v *Vault) storeAt(ctx context.Context, key string, req StoreRequest, alternate bool) (Stored, error) {
	var refused error
	conditional := false
	if req.Body != nil {
		conditional = v.ConditionalPut(ctx)
	} else {
		conditional = req.Copy.SingleCall(req.Size) && v.ConditionalCopy(ctx)
	}
	if conditional {
		for range conflictRetries {
			st, err := v.write(ctx, key, req, true)
			if err == nil {
				return st, nil
			}
			if !s3x.IsPreconditionFailed(err) && !s3x.IsConflict(err) {
				return Stored{}, err
			}
			refused = err
			if !s3x.IsConflict(err) {
				break
			}
		}
	}
	have, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	switch {
	case err == nil:
		size, written := aws.ToInt64(have.ContentLength), aws.ToTime(have.LastModified)
		switch {
		case size != req.Size && alternate:
			return Stored{}, fmt.Errorf("store s3://%s/%s@%s: vault s3://%s/%s holds %d bytes, not the version's %d", req.Bucket, req.Key, req.VersionID, v.Bucket, key, size, req.Size)
		case size != req.Size:
			return Stored{}, &staleError{"another size"}
		case time.Since(written) > ReuseLimit && !alternate:
			return Stored{}, &staleError{"written " + written.UTC().Format(time.RFC3339)}
		}
		return Stored{Key: key, ETag: s3x.TrimETag(aws.ToString(have.ETag)), MetaInData: have.Metadata["bv-bucket"] == "", Reused: true}, nil
	case !s3x.IsNotFound(err):
		return Stored{}, fmt.Errorf("head vault s3://%s/%s: %w", v.Bucket, key, err)
	case refused != nil:
		if req.Body != nil {
			// A put needs no source: refused, yet nothing there
			// (removed meanwhile); try again later.
			return Stored{}, fmt.Errorf("store s3://%s/%s@%s: refused (%v), and s3://%s/%s is absent", req.Bucket, req.Key, req.VersionID, refused, v.Bucket, key)
		}
		return Stored{}, &RefusedError{Key: key, Err: refused}
	}
	// Absent, on a server without create-only writes (or a multipart
	// copy, which takes no condition): write it.
	return v.write(ctx, key, req, false)
}

// write puts or copies the version's bytes to key (createOnly: with
// If-None-Match: *).
func (v *Vault) write(ctx context.Context, key string, req StoreRequest, createOnly bool) (Stored, error) {
	if req.Body != nil {
		in := &s3.PutObjectInput{
			Bucket: aws.String(v.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(req.Body), ContentLength: aws.Int64(int64(len(req.Body))),
			ContentMD5:  aws.String(base64.StdEncoding.EncodeToString(req.BodyMD5[:])),
			ContentType: aws.String("application/octet-stream"),
			Metadata:    DataMetadata(req.Bucket, req.VersionID, req.ETag),
		}
		if createOnly {
			in.IfNoneMatch = aws.String("*")
		}
		out, err := v.S3.PutObject(ctx, in)
		if err != nil {
			return Stored{}, err
		}
		return Stored{Key: key, ETag: s3x.TrimETag(aws.ToString(out.ETag)), VersionID: aws.ToString(out.VersionId)}, nil
	}
	in := &s3.CopyObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key),
		CopySource:        aws.String(s3x.CopySource(req.Bucket, req.Key, req.VersionID)),
		CopySourceIfMatch: aws.String(`"` + req.ETag + `"`),
	}
	if req.SourceMetadata {
		in.MetadataDirective, in.TaggingDirective = types.MetadataDirectiveCopy, types.TaggingDirectiveCopy
	} else {
		in.MetadataDirective, in.TaggingDirective = types.MetadataDirectiveReplace, types.TaggingDirectiveReplace
		in.ContentType = aws.String("application/octet-stream")
		in.Metadata = DataMetadata(req.Bucket, req.VersionID, req.ETag)
	}
	if req.Prepare != nil {
		if err := req.Prepare(in); err != nil {
			return Stored{}, err
		}
	}
	if createOnly {
		in.IfNoneMatch = aws.String("*")
	}
	res, err := s3x.Copy(ctx, v.S3, in, req.Size, req.Copy)
	if err != nil {
		return Stored{}, err
	}
	return Stored{Key: key, ETag: res.ETag, MetaInData: req.SourceMetadata, VersionID: res.VersionID}, nil
}

// probes caches what the vault's server was found to honour.
type probes struct {
	mu             sync.Mutex
	copyKnown, cc  bool
	putKnown, cp   bool
	copyErr, putEr error
}

// ProbeResult is the answer of a capability probe and, when it failed,
// why (a failed probe counts as "no": the HEAD-first path is right on
// every server).
type ProbeResult struct {
	Honoured bool
	Err      error
}

// ConditionalCopy reports whether the vault's server honours a
// create-only CopyObject (If-None-Match: *), probing it once
// (s3x.ProbeConditionalCopy on ProbeKey).
func (v *Vault) ConditionalCopy(ctx context.Context) bool { return v.ProbeCopy(ctx).Honoured }

// ProbeCopy is ConditionalCopy with the probe's error.
func (v *Vault) ProbeCopy(ctx context.Context) ProbeResult {
	p := v.probes()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.copyKnown {
		ok, err := s3x.ProbeConditionalCopy(ctx, v.S3, v.Bucket, DescriptorKey, ProbeKey(v.Bucket),
			map[string]string{"bv-bucket": v.Bucket, "bv-version": ProbeVersion})
		if err != nil && ctx.Err() != nil {
			return ProbeResult{Err: err} // ask again on a live context
		}
		p.copyKnown, p.cc, p.copyErr = true, ok, err
	}
	return ProbeResult{Honoured: p.cc, Err: p.copyErr}
}

// ConditionalPut reports whether the vault's server honours a create-only
// PutObject (If-None-Match: *), probing it once with the probe object of
// ConditionalCopy (s3x.ProbeConditionalPut keeps that probe's mark).
func (v *Vault) ConditionalPut(ctx context.Context) bool { return v.ProbePut(ctx).Honoured }

// ProbePut is ConditionalPut with the probe's error.
func (v *Vault) ProbePut(ctx context.Context) ProbeResult {
	p := v.probes()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.putKnown {
		body, err := json.MarshalIndent(v.Descriptor, "", "  ") // as the descriptor is written
		if err != nil {
			body = nil
		}
		ok, err := s3x.ProbeConditionalPut(ctx, v.S3, v.Bucket, ProbeKey(v.Bucket), body,
			map[string]string{"bv-bucket": v.Bucket, "bv-version": ProbeVersion})
		if err != nil && ctx.Err() != nil {
			return ProbeResult{Err: err}
		}
		p.putKnown, p.cp, p.putEr = true, ok, err
	}
	return ProbeResult{Honoured: p.cp, Err: p.putEr}
}

var probeMu sync.Mutex

func (v *Vault) probes() *probes {
	probeMu.Lock()
	defer probeMu.Unlock()
	if v.probe == nil {
		v.probe = &probes{}
	}
	return v.probe
}

// StorePack stores a pack (see PackKey) of bucket's members, whose bytes
// are body, once: a pack key holding an object of the pack's size written
// within ReuseLimit is the same pack (a retried copy step's), used as it
// is; otherwise the pack goes under the key of the day, as StoreData does.
func (v *Vault) StorePack(ctx context.Context, bucket string, members []string, body []byte, bodyMD5 [16]byte) (Stored, error) {
	key := PackKey(bucket, members)
	put := func(key string, createOnly bool) (Stored, error) {
		in := v.packInput(key, bucket, len(members), body, bodyMD5)
		if createOnly {
			in.IfNoneMatch = aws.String("*")
		}
		out, err := v.S3.PutObject(ctx, in)
		if err != nil {
			return Stored{}, fmt.Errorf("write pack s3://%s/%s: %w", v.Bucket, key, err)
		}
		return Stored{Key: key, ETag: s3x.TrimETag(aws.ToString(out.ETag)), VersionID: aws.ToString(out.VersionId)}, nil
	}
	for _, alternate := range []bool{false, true} {
		if alternate {
			key = AlternateDataKey(key, time.Now())
		}
		conditional := v.ConditionalPut(ctx)
		if conditional {
			st, err := put(key, true)
			if err == nil || !s3x.IsPreconditionFailed(err) && !s3x.IsConflict(err) {
				return st, err
			}
		}
		have, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
		switch {
		case s3x.IsNotFound(err):
			return put(key, conditional)
		case err != nil:
			return Stored{}, fmt.Errorf("head vault s3://%s/%s: %w", v.Bucket, key, err)
		case aws.ToInt64(have.ContentLength) == int64(len(body)) && (alternate || time.Since(aws.ToTime(have.LastModified)) <= ReuseLimit):
			return Stored{Key: key, ETag: s3x.TrimETag(aws.ToString(have.ETag)), Reused: true}, nil
		case alternate:
			return Stored{}, fmt.Errorf("write pack s3://%s/%s: it holds %d bytes, not the pack's %d", v.Bucket, key, aws.ToInt64(have.ContentLength), len(body))
		}
	}
	return Stored{}, fmt.Errorf("write pack s3://%s/%s: no key to write it under", v.Bucket, key)
}

// packInput is the PUT of a pack of bucket's members whose bytes are body.
func (v *Vault) packInput(key, bucket string, members int, body []byte, bodyMD5 [16]byte) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(bodyMD5[:])),
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{"bv-pack-of": bucket, "bv-members": strconv.Itoa(members)},
	}
}
