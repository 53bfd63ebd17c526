package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Verified data. A version record names its bytes by data key and by the
// ETag the vault reported when they were stored (DataETag). The vault is
// versioned, so whatever later happens to the data key — another PUT by
// the vault's owner, a copy over it, a delete marker — the object version
// that was stored is still there unless it was deleted for good. Every
// read of data therefore names that ETag:
//
//   - a server-side copy from the vault is conditional on it
//     (CopySourceIfMatch, on every part of a multipart copy), which costs
//     no request;
//   - a GET (a pack's range, a relayed version) is conditional on it
//     (IfMatch), and the bytes read are checked against the record's
//     digests (MD5 where the source's ETag is one, the recorded checksum)
//     before they are used;
//   - a HEAD for the metadata a data object carries compares its ETag.
//
// When the current version of the data key is not the recorded one, the
// reader lists the key's versions and takes the newest one whose ETag is
// the recorded ETag (FindData): the restore goes on from it and reports
// the damage. When none is, a version that repair wrote again from the
// source and vouched for with a repair record (rebuilt.go) is used, with
// its own ETag as the condition of every read. When there is neither,
// the data is lost from the vault (DamagedDataError) and nothing is
// written for the key.

// DamagedDataError says that no version of a record's data object holds
// the bytes the record names.
type DamagedDataError struct {
	Data   string // the data key (and the range of a pack)
	Want   string // the record's DataETag
	Reason string // what was found instead
	// Untrusted says, for each repair record of the data object that did
	// not vouch for a version of it, why.
	Untrusted []string
}

func (e *DamagedDataError) Error() string {
	msg := fmt.Sprintf("vault data %s is damaged: %s, and no version of it has the recorded ETag %s", e.Data, e.Reason, e.Want)
	if len(e.Untrusted) > 0 {
		msg += " or is vouched for by a repair record (" + strings.Join(e.Untrusted, "; ") + ")"
	}
	return msg
}

// DataVersion is the version of a data object that holds a record's bytes.
type DataVersion struct {
	// VersionID is the version to read; "" means the current one.
	VersionID string
	// ETag is the ETag of that version when it is not the record's
	// DataETag: a version repair wrote again, which Rebuilt (its repair
	// record's key) vouches for. Every read of it is conditional on this
	// ETag instead (IfMatch).
	ETag    string
	Rebuilt string
	// Damage says what was wrong with the current version when an older
	// good one is used instead ("" when the current one is good).
	Damage string
}

// IfMatch is the condition that makes a read of rec's data fail unless
// the object read is the one the record names: the quoted DataETag, or
// nil for a record that has none (written before DataETag existed).
func IfMatch(rec Record) *string {
	if rec.DataETag == "" {
		return nil
	}
	return aws.String(`"` + rec.DataETag + `"`)
}

// IfMatch is the condition of a read of rec's data in dv: the ETag of
// the version repair wrote again where dv is one, else IfMatch(rec).
func (dv DataVersion) IfMatch(rec Record) *string {
	if dv.ETag != "" {
		return aws.String(`"` + dv.ETag + `"`)
	}
	return IfMatch(rec)
}

// Found reports whether dv is what FindData found (not the current
// version taken on trust of the recorded ETag).
func (dv DataVersion) Found() bool { return dv.Damage != "" || dv.ETag != "" }

// CopySource is the x-amz-copy-source of rec's data in dv.
func (v *Vault) CopySource(rec Record, dv DataVersion) string {
	return s3x.CopySource(v.Bucket, rec.Data, dv.VersionID)
}

// CopyFrom makes in a copy of rec's data in dv: its copy source and the
// condition on it (dv.IfMatch).
func (v *Vault) CopyFrom(in *s3.CopyObjectInput, rec Record, dv DataVersion) {
	in.CopySource, in.CopySourceIfMatch = aws.String(v.CopySource(rec, dv)), dv.IfMatch(rec)
}

// IsDataMismatch reports whether err, from a read of rec's data made with
// IfMatch(rec) (a GET, HEAD or copy), says the current version of the data
// key is not the recorded one (or is gone): FindData then looks for it
// among the older versions.
func IsDataMismatch(err error) bool {
	return err != nil && (s3x.IsPreconditionFailed(err) || s3x.IsNotFound(err) || s3x.IsDeleteMarker(err))
}

// FindData finds the newest version of rec's data object whose ETag is
// the recorded DataETag, after a read of the current version failed that
// condition; with none, the version a repair record vouches for (dv.ETag
// and dv.Rebuilt say so; dv.Damage is empty when it is the current one).
// It returns a DamagedDataError when there is neither.
func (v *Vault) FindData(ctx context.Context, rec Record) (DataVersion, error) {
	dv, _, err := v.findData(ctx, rec)
	return dv, err
}

// findData is FindData, with the repair record that vouches for the
// version found (nil: the version has the recorded ETag).
func (v *Vault) findData(ctx context.Context, rec Record) (DataVersion, *RepairRecord, error) {
	if rec.DataETag == "" {
		return DataVersion{}, nil, &DamagedDataError{Data: dataRef(rec), Want: "(none recorded)", Reason: "the data object is missing or unreadable"}
	}
	vs, markers, err := v.versions(ctx, rec.Data)
	if err != nil {
		return DataVersion{}, nil, err
	}
	current, seen := "", len(vs)
	for _, m := range markers {
		if m.latest {
			current = "a delete marker"
		}
	}
	for _, o := range vs {
		if o.latest {
			current = "its current version has ETag " + o.etag
		}
	}
	for _, o := range vs { // newest first
		if o.etag != rec.DataETag {
			continue
		}
		if o.latest {
			// The current version is the recorded one after all (a
			// transient failure, or a repair in between).
			return DataVersion{}, nil, nil
		}
		if current == "" {
			current = "its current version is not the recorded one"
		}
		return DataVersion{VersionID: o.id, Damage: fmt.Sprintf("vault data %s: %s, not the recorded %s: read the older version %s that has it",
			dataRef(rec), current, rec.DataETag, o.id)}, nil, nil
	}
	rr, untrusted, err := v.rebuiltVersion(ctx, rec)
	if err != nil {
		return DataVersion{}, nil, err
	}
	if rr != nil {
		dv := rr.dataVersion()
		if !slices.ContainsFunc(vs, func(o objectVersion) bool { return o.latest && o.id == rr.Version }) {
			if current == "" {
				current = "its current version is not the rebuilt one"
			}
			dv.Damage = fmt.Sprintf("vault data %s: %s, not the version %s repair wrote again (%s vouches for it): read that version",
				dataRef(rec), current, rr.Version, dv.Rebuilt)
		}
		return dv, rr, nil
	}
	reason := current
	switch {
	case seen == 0 && reason == "":
		reason = "it is missing"
	case seen == 0:
		reason += ", no version is left"
	case reason == "":
		reason = fmt.Sprintf("%d versions differ", seen)
	}
	return DataVersion{}, nil, &DamagedDataError{Data: dataRef(rec), Want: rec.DataETag, Reason: reason, Untrusted: untrusted}
}

// HeadData answers the HEAD of rec's data object as the record names it:
// the current version if its ETag is the recorded one, else the newest
// older version that has it, else the version a repair record vouches
// for (dv says which, and the damage; FindData).
func (v *Vault) HeadData(ctx context.Context, rec Record) (*s3.HeadObjectOutput, DataVersion, error) {
	in := &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data), IfMatch: IfMatch(rec)}
	h, err := v.S3.HeadObject(ctx, in)
	if err == nil {
		return h, DataVersion{VersionID: aws.ToString(h.VersionId)}, nil
	}
	if !IsDataMismatch(err) {
		return nil, DataVersion{}, fmt.Errorf("head vault data %s: %w", rec.Data, err)
	}
	dv, err := v.FindData(ctx, rec)
	if err != nil {
		return nil, dv, err
	}
	in.VersionId, in.IfMatch = nonEmpty(dv.VersionID), dv.IfMatch(rec)
	if h, err = v.S3.HeadObject(ctx, in); err != nil {
		return nil, dv, fmt.Errorf("head vault data %s@%s: %w", rec.Data, dv.VersionID, err)
	}
	return h, dv, nil
}

// OriginalData finds the version of rec's data object that was written
// first with the recorded ETag: the one the copy that recorded rec wrote.
// A data object is written once, so a later version with the same bytes
// (a PutObject of the same body with other metadata or tags) is a rewrite
// the ETag cannot tell: the metadata and tags a record keeps in its data
// object (MetaInData) are the original version's, and dv.Damage says when
// the current version is not it. It lists the key's versions (one
// request); a record without a DataETag, or a key no version of which has
// it (a version repair wrote again has an ETag of its own, and its repair
// record names it: it is the original), is HeadData's to answer (dv
// empty, ok false).
func (v *Vault) OriginalData(ctx context.Context, rec Record) (dv DataVersion, ok bool, err error) {
	if rec.DataETag == "" {
		return DataVersion{}, false, nil
	}
	vs, _, err := v.versions(ctx, rec.Data)
	if err != nil {
		return DataVersion{}, false, err
	}
	var orig *objectVersion
	latest := ""
	for i := range vs { // newest first: the last match is the oldest
		if vs[i].etag == rec.DataETag {
			orig = &vs[i]
		}
		if vs[i].latest {
			latest = vs[i].id
		}
	}
	if orig == nil {
		return DataVersion{}, false, nil
	}
	dv = DataVersion{VersionID: orig.id}
	if orig.id != latest {
		current := "a delete marker"
		if latest != "" {
			current = "version " + latest
		}
		dv.Damage = fmt.Sprintf("vault data %s was rewritten after it was written (its current version is %s, not the original %s): the original is used, its metadata and tags are the recorded ones",
			dataRef(rec), current, orig.id)
	}
	return dv, true, nil
}

// HeadOriginalData answers the HEAD of the original version of rec's
// data object (OriginalData), or HeadData's answer where there is none to
// find.
func (v *Vault) HeadOriginalData(ctx context.Context, rec Record) (*s3.HeadObjectOutput, DataVersion, error) {
	dv, ok, err := v.OriginalData(ctx, rec)
	if err != nil {
		return nil, dv, err
	}
	if !ok {
		return v.HeadData(ctx, rec)
	}
	h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data), VersionId: aws.String(dv.VersionID)})
	if err != nil {
		return nil, dv, fmt.Errorf("head vault data %s@%s: %w", rec.Data, dv.VersionID, err)
	}
	return h, dv, nil
}

// openData opens the bytes of a version record in version dv of its data
// object, conditional on its ETag (dv.IfMatch): its whole data object, or its
// range of a pack (an empty member has nothing to read).
// sse is the data object's server-side encryption.
func (v *Vault) openData(ctx context.Context, rec Record, dv DataVersion) (body io.ReadCloser, sse string, err error) {
	in := &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data), VersionId: nonEmpty(dv.VersionID), IfMatch: dv.IfMatch(rec)}
	if rec.Packed {
		if rec.Size == 0 {
			return io.NopCloser(strings.NewReader("")), "", nil
		}
		in.Range = aws.String("bytes=" + strconv.FormatInt(rec.DataOffset, 10) + "-" + strconv.FormatInt(rec.DataOffset+rec.Size-1, 10))
	}
	out, err := v.S3.GetObject(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", dataRef(rec), err)
	}
	return out.Body, string(out.ServerSideEncryption), nil
}

// ReadData reads the bytes of a version record from the vault and checks
// them against the record (size, and the digests CheckData compares)
// before returning them. A data object whose current version is not the
// recorded one is read from the older version that is (dv says which,
// and the damage); one with no such version, or whose bytes fail the
// check, is a DamagedDataError.
func (v *Vault) ReadData(ctx context.Context, rec Record) (body []byte, dv DataVersion, err error) {
	body, err = v.readData(ctx, rec, dv)
	if IsDataMismatch(err) {
		if dv, err = v.FindData(ctx, rec); err != nil {
			return nil, dv, err
		}
		body, err = v.readData(ctx, rec, dv)
	}
	if err != nil {
		return nil, dv, err
	}
	return body, dv, nil
}

func (v *Vault) readData(ctx context.Context, rec Record, dv DataVersion) ([]byte, error) {
	r, sse, err := v.openData(ctx, rec, dv)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, rec.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dataRef(rec), err)
	}
	if int64(len(b)) != rec.Size {
		return nil, &DamagedDataError{Data: dataRef(rec), Want: rec.DataETag, Reason: fmt.Sprintf("%d bytes read, the record says %d", len(b), rec.Size)}
	}
	if err := CheckData(rec, bytes.NewReader(b), sse); err != nil {
		return nil, &DamagedDataError{Data: dataRef(rec), Want: rec.DataETag, Reason: err.Error()}
	}
	return b, nil
}

// dataRef names a record's data in messages: the data key, and the range
// of a pack.
func dataRef(rec Record) string {
	if rec.Packed {
		return fmt.Sprintf("%s[%d:+%d]", rec.Data, rec.DataOffset, rec.Size)
	}
	return rec.Data
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
