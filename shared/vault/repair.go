package vault

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Repair is a damaged vault object with a good older version.
type Repair struct {
	Object      string `json:"object"`
	GoodVersion string `json:"goodVersion"`
	Reason      string `json:"reason"`
	// Removed lists the versions and delete markers above the good
	// version: what Repair deletes (or, dry, would delete).
	Removed []string `json:"removed,omitempty"`
}

// DroppedRun is a run RepairRuns set aside because a shard of it is lost:
// every segment it merged is still in the vault, so readers read them
// instead, and the next compaction writes the run again from them.
type DroppedRun struct {
	Bucket   string `json:"bucket"`
	Run      string `json:"run"`
	Segments int    `json:"segments"`
	Shard    string `json:"lostShard"`
}

// Holds says whether the vault object key is one of the dropped run's.
func (d DroppedRun) Holds(key string) bool {
	return strings.HasPrefix(key, runsPfx+d.Bucket+"/"+d.Run+"/")
}

// RepairRuns sets aside every run a lost shard of which Verify found, when
// the segments it merged are all still there. In a vault with a journal
// index it takes the run, and every newer run, out of the index (If-Match)
// and moves the cut back to where the run began, so readers read those
// segments and the next compaction merges them again; in a format 1 vault
// it hides the run's manifest behind a delete marker (its versions stay),
// so readers take the run before it. A run whose segments are not all
// there stays lost. With dry, it changes nothing.
func (v *Vault) RepairRuns(ctx context.Context, rep *VerifyReport, dry bool) ([]DroppedRun, error) {
	var dropped []DroppedRun
	done := map[string]bool{}
	for _, d := range rep.LostJournal {
		rest, ok := strings.CutPrefix(d.Object, runsPfx)
		parts := strings.Split(rest, "/")
		if !ok || len(parts) != 3 {
			continue
		}
		bucket, id := parts[0], parts[1]
		if done[bucket+"/"+id] {
			continue
		}
		done[bucket+"/"+id] = true
		idx, err := v.Index(ctx, bucket)
		if err != nil {
			return dropped, err
		}
		refs, err := v.Segments(ctx, bucket)
		if err != nil {
			return dropped, err
		}
		count := func(from, to string) int {
			n := 0
			for _, r := range refs {
				if r.ID > from && r.ID <= to {
					n++
				}
			}
			return n
		}
		if idx.etag == "" {
			m, _, err := v.readRun(ctx, bucket, runManifestKey(bucket, id))
			if err != nil {
				return dropped, err
			}
			if m == nil || count(m.Previous, m.Cut) != m.Segments {
				continue
			}
			if !dry {
				key := runManifestKey(bucket, id)
				if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)}); err != nil {
					return dropped, fmt.Errorf("set aside run s3://%s/%s: %w", v.Bucket, key, err)
				}
			}
			dropped = append(dropped, DroppedRun{Bucket: bucket, Run: id, Segments: m.Segments, Shard: d.Object})
			continue
		}
		i := slices.IndexFunc(idx.Runs, func(r IndexRun) bool {
			return slices.ContainsFunc(r.Shards, func(sh RunShard) bool { return sh.Key == d.Object })
		})
		if i < 0 {
			continue // not in the index (any more)
		}
		run, later := idx.Runs[i], idx.Runs[i:]
		want := 0
		for _, r := range later {
			want += r.Segments
		}
		if !run.Folded.IsZero() || count(run.From, idx.Cut) != want {
			continue // what it holds is not all in segments: lost
		}
		if !dry {
			next := *idx
			next.Runs = slices.Clone(idx.Runs[:i])
			next.Cut = run.From
			if err := v.putIndex(ctx, &next); err != nil {
				return dropped, err
			}
		}
		dropped = append(dropped, DroppedRun{Bucket: bucket, Run: run.ID, Segments: run.Segments, Shard: d.Object})
	}
	return dropped, nil
}

// Repair puts back the good version of every repairable object Verify
// found: it deletes the versions and delete markers above it (the damage:
// another PUT, a delete marker), so the good version is current again
// with its own ETag, which the records name. Nothing else is touched; an
// object whose versions changed since Verify read them is left alone and
// reported. With dry, it only fills Removed. Lost objects (no good
// version) are not repaired here: RepairData writes lost data again from
// its sources, RepairRuns sets aside runs whose segments are there.
func (v *Vault) Repair(ctx context.Context, rep *VerifyReport, dry bool) ([]Repair, error) {
	var done []Repair
	for _, r := range rep.Repairable {
		above, err := v.versionsAbove(ctx, r.Object, r.GoodVersion)
		if err != nil {
			return done, err
		}
		r.Removed = above
		if !dry {
			for _, id := range above {
				if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(r.Object), VersionId: aws.String(id)}); err != nil {
					return done, fmt.Errorf("repair s3://%s/%s: delete damaged version %s: %w", v.Bucket, r.Object, id, err)
				}
			}
		}
		done = append(done, r)
	}
	return done, nil
}

// versionsAbove lists the versions and delete markers of key newer than
// version good; an error when good is not among them. S3 lists a key's
// versions newest first; delete markers come in their own list, placed by
// their time.
func (v *Vault) versionsAbove(ctx context.Context, key, good string) ([]string, error) {
	vs, markers, err := v.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	var above []string
	var goodAt *time.Time
	for _, o := range vs { // newest first: those before good are above it
		if o.id == good {
			goodAt = &o.modified
			break
		}
		above = append(above, o.id)
	}
	if goodAt == nil {
		return nil, fmt.Errorf("repair s3://%s/%s: its good version %s is gone since verify read it", v.Bucket, key, good)
	}
	for _, m := range markers {
		if !m.modified.Before(*goodAt) {
			above = append(above, m.id)
		}
	}
	return above, nil
}

// Lost data. A data object no version of which holds the bytes its
// records name (LostData, found by Verify) is written again, to the same
// key, from the source version the records name, where that version is
// still in its bucket and still what the records say: RepairData. What
// is written is checked before and after, so nothing unverified becomes
// what the records vouch for:
//
//   - the source version is asked for (HeadObject with its checksum) and
//     must have the recorded ETag, size and full-object checksum (and a
//     "null" version the recorded time: it is overwritten in place);
//   - the copy is the one StoreData makes (its metadata, its tags where a
//     snapshot's copy carries them), conditional on the recorded source
//     ETag (CopySourceIfMatch), shaped as the data object was (one copy
//     for a single-part ETag, parts for a multipart one);
//   - a pack is rebuilt from its members' source versions, each read
//     whole conditional on its ETag and checked against its record (MD5,
//     checksum, size), when they cover it end to end from byte 0;
//   - the copy asks the vault for a checksum of the bytes it writes (the
//     source's full-object algorithm, else SHA-256; a pack's PUT carries
//     its SHA-256);
//   - a version written with the recorded ETag, which every reader
//     conditions on, makes every record naming the key whole again. A
//     vault whose writes get ETags of their own (SSE-KMS, as deployed, or
//     another part size), or a pack whose members do not hash to its
//     recorded ETag, cannot give it: the version written is asked for
//     (its size, its ETag, its checksum, which must be of the algorithm
//     of the source's full-object checksum where it has one, and equal
//     to it) and vouched for by a repair record (rebuilt.go), which
//     readers then follow. A version that fails those checks is removed
//     again and the object listed as not rebuilt, with why.
//
// In a locked vault the version written, and its repair record, are
// retained as long as the snapshots that reference it live
// (PointRetainUntil); expiry extends them while anything references the
// data.

// LostData is a data object no version of which holds the bytes its
// records name, with the records that name it.
type LostData struct {
	// Object is the data key; DataETag the ETag its records name.
	Object   string `json:"object"`
	DataETag string `json:"dataEtag,omitempty"`
	// Reason is what verify found instead.
	Reason string `json:"reason"`
	// Packed: the object is a pack, its records its members.
	Packed bool `json:"packed,omitempty"`
	// Sources are the source versions its records name (s3://b/k@v), each
	// once.
	Sources []string `json:"sources"`

	records []sourceRecord
	etags   []string                 // the DataETags its records name
	points  map[string]SnapshotPoint // the snapshots that reference it
}

// sourceRecord is a version record and its source bucket.
type sourceRecord struct {
	bucket string
	rec    Record
}

func (s sourceRecord) name() string {
	return fmt.Sprintf("s3://%s/%s@%s", s.bucket, s.rec.Key, s.rec.VersionID)
}

// add keeps rec, of bucket, once per source version (and offset, in a
// pack), and the point it is in (nil: the journal).
func (ld *LostData) add(bucket string, rec Record, point *SnapshotPoint) {
	if !slices.Contains(ld.etags, rec.DataETag) {
		ld.etags = append(ld.etags, rec.DataETag)
	}
	if point != nil {
		if ld.points == nil {
			ld.points = map[string]SnapshotPoint{}
		}
		ld.points[point.RecoveryPointID] = *point
	}
	sr := sourceRecord{bucket: bucket, rec: rec}
	for _, have := range ld.records {
		if have.bucket == bucket && have.rec.Key == rec.Key && have.rec.VersionID == rec.VersionID && have.rec.ETag == rec.ETag &&
			have.rec.DataOffset == rec.DataOffset && have.rec.Time.Equal(rec.Time) {
			return
		}
	}
	ld.records = append(ld.records, sr)
	ld.Sources = append(ld.Sources, sr.name())
}

// RebuiltData is what RepairData did, or on a dry run would do, for one
// lost data object.
type RebuiltData struct {
	Object string `json:"object"`
	// From names the source versions its bytes were (or would be) read
	// from: one, or a pack's members.
	From []string `json:"from,omitempty"`
	// Version is the version of the data key written ("" on a dry run,
	// or when nothing was written).
	Version string `json:"version,omitempty"`
	// ETag is the version's ETag when it is not the one its records
	// name, and RepairRecord the key of the repair record that vouches
	// for it (readers follow it).
	ETag         string `json:"etag,omitempty"`
	RepairRecord string `json:"repairRecord,omitempty"`
	// Note says what the object written carries that no record vouches
	// for, or why nothing was needed.
	Note string `json:"note,omitempty"`
	// Cannot says why the object cannot be rebuilt ("" when it was, or
	// would be).
	Cannot string `json:"cannot,omitempty"`
}

// Rebuilt reports whether the object was (or, dry, would be) written again.
func (r RebuiltData) Rebuilt() bool { return r.Cannot == "" }

// RepairData writes every lost data object Verify found again from the
// source versions its records name (see above); with dry, it checks the
// sources and writes nothing. An object that cannot be rebuilt is listed
// with why (Cannot); an error is a failure to ask (a retry may cure it).
func (v *Vault) RepairData(ctx context.Context, rep *VerifyReport, dry bool) ([]RebuiltData, error) {
	var out []RebuiltData
	for _, ld := range rep.LostData {
		r := RebuiltData{Object: ld.Object}
		var err error
		switch {
		case slices.ContainsFunc(rep.Repairable, func(x Repair) bool { return x.Object == ld.Object }):
			r.Cannot = "other records name a good older version of it: its records disagree on what it holds"
		case len(ld.etags) > 1:
			r.Cannot = fmt.Sprintf("its records name it with different ETags (%s): they disagree on what it holds", strings.Join(ld.etags, ", "))
		case len(ld.records) == 0:
			r.Cannot = "no record names its source"
		default:
			// Still lost? A writer may have put it back since verify.
			if _, ferr := v.FindData(ctx, ld.records[0].rec); ferr == nil {
				r.Note = "a version with the recorded bytes (the recorded ETag, or one a repair record vouches for) is there again since verify read it: nothing to do"
				out = append(out, r)
				continue
			} else if !errors.As(ferr, new(*DamagedDataError)) {
				return out, ferr
			}
			if ld.Packed {
				err = v.rebuildPack(ctx, ld, dry, &r)
			} else {
				err = v.rebuildData(ctx, ld, dry, &r)
			}
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// sourceProblem says why the source version src names cannot give the
// record's bytes ("" when it can), from a HEAD of it with its checksum.
func (v *Vault) sourceProblem(ctx context.Context, src sourceRecord) (string, error) {
	rec := src.rec
	h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(rec.Key), VersionId: aws.String(rec.VersionID),
		ChecksumMode: types.ChecksumModeEnabled})
	switch {
	case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
		return fmt.Sprintf("its source version %s is gone from its bucket", src.name()), nil
	case err != nil && ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return fmt.Sprintf("its source version %s cannot be read: %v", src.name(), err), nil
	}
	if rec.VersionID == "null" || rec.VersionID == "" {
		// Written over in place: another object under the same id.
		if got := aws.ToTime(h.LastModified).UTC().Truncate(time.Second); !got.Equal(rec.Time.UTC().Truncate(time.Second)) {
			return fmt.Sprintf("the null version of s3://%s/%s was written over since (at %s; the record's is of %s)",
				src.bucket, rec.Key, got.Format(time.RFC3339), rec.Time.UTC().Format(time.RFC3339)), nil
		}
	}
	if etag := s3x.TrimETag(aws.ToString(h.ETag)); etag != rec.ETag {
		return fmt.Sprintf("its source version %s has ETag %s, the record says %s", src.name(), etag, rec.ETag), nil
	}
	if size := aws.ToInt64(h.ContentLength); size != rec.Size {
		return fmt.Sprintf("its source version %s has %d bytes, the record says %d", src.name(), size, rec.Size), nil
	}
	if c := rec.Checksum; c != nil && c.Type != string(types.ChecksumTypeComposite) {
		if got := ChecksumOf(h); got != nil && got.Algorithm == c.Algorithm && got.Value != c.Value {
			return fmt.Sprintf("its source version %s has %s checksum %s, the record says %s", src.name(), c.Algorithm, got.Value, c.Value), nil
		}
	}
	return "", nil
}

// rebuildData writes a lost data object (not a pack) again from the
// first source version its records name that passes sourceProblem.
func (v *Vault) rebuildData(ctx context.Context, ld *LostData, dry bool, r *RebuiltData) error {
	var problems []string
	var src *sourceRecord
	for i := range ld.records {
		why, err := v.sourceProblem(ctx, ld.records[i])
		if err != nil {
			return err
		}
		if why == "" {
			src = &ld.records[i]
			break
		}
		if !slices.Contains(problems, why) {
			problems = append(problems, why)
		}
	}
	if src == nil {
		r.Cannot = strings.Join(problems, "; ")
		return nil
	}
	rec := src.rec
	r.From = []string{src.name()}
	metaInData := slices.ContainsFunc(ld.records, func(s sourceRecord) bool { return s.rec.MetaInData })
	if metaInData {
		r.Note = "its metadata is the source version's (which never changes); its tags are the version's tags now: no record holds the tags it had to check them against"
	}
	opts := copyShape(ld.DataETag, rec.Size)
	if dry {
		return nil
	}
	req := StoreRequest{Bucket: src.bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag, Size: rec.Size, LastModified: rec.Time,
		SourceMetadata: metaInData, Copy: opts}
	switch {
	case metaInData && !opts.SingleCall(rec.Size):
		// A copy in parts starts empty: the source's metadata and tags
		// are given explicitly, as a snapshot's copy does.
		req.Prepare = func(in *s3.CopyObjectInput) error {
			return s3x.CarryMetadata(ctx, v.S3, src.bucket, rec.Key, rec.VersionID, in)
		}
	case opts.SingleCall(rec.Size):
		// The vault computes a checksum of the bytes it writes, of the
		// source's algorithm where it has a full-object one.
		algo := types.ChecksumAlgorithmSha256
		if c := rec.Checksum; fullChecksum(c) && slices.Contains(types.ChecksumAlgorithm("").Values(), types.ChecksumAlgorithm(c.Algorithm)) {
			algo = types.ChecksumAlgorithm(c.Algorithm)
		}
		req.Prepare = func(in *s3.CopyObjectInput) error {
			in.ChecksumAlgorithm = algo
			return nil
		}
	}
	st, err := v.write(ctx, ld.Object, req, false)
	switch {
	case err != nil && (s3x.IsPreconditionFailed(err) || s3x.IsNotFound(err)):
		r.Cannot = fmt.Sprintf("its source version %s changed or went while it was copied (%v)", src.name(), err)
		return nil
	case err != nil && s3x.IsArchived(err):
		r.Cannot = fmt.Sprintf("its source version %s is in an archive tier: restore it in its bucket, then repair again", src.name())
		return nil
	case err != nil:
		return fmt.Errorf("rebuild s3://%s/%s from %s: %w", v.Bucket, ld.Object, src.name(), err)
	}
	return v.settle(ctx, ld, st, rec.Size, []RepairSource{repairSource(src.bucket, rec)}, r)
}

// copyShape is the copy that gives the bytes of a data object the shape
// of its recorded ETag (one copy for a single-part ETag, parts for a
// multipart one: the part size that makes as many parts as it says, the
// default one where that does); where no copy can have it (a
// single-part ETag over 5 GiB, a part count no copy of the size has),
// the default copy, whose version a repair record then vouches for.
func copyShape(dataETag string, size int64) s3x.CopyOptions {
	_, parts, multipart := strings.Cut(dataETag, "-")
	if !multipart {
		if size > s3x.MaxCopySize {
			return s3x.CopyOptions{}
		}
		return s3x.CopyOptions{Threshold: s3x.MaxCopySize}
	}
	n, err := strconv.ParseInt(parts, 10, 64)
	if err != nil || n < 1 || n > 10000 || size < n {
		return s3x.CopyOptions{}
	}
	partSize := int64(512 << 20) // s3x.Copy's default
	for size/partSize >= 10000 {
		partSize *= 2
	}
	if (size+partSize-1)/partSize != n {
		const mib = 1 << 20
		partSize = ((size+n-1)/n + mib - 1) / mib * mib
	}
	return s3x.CopyOptions{Multipart: true, PartSize: partSize}
}

// rebuildPack writes a lost pack again from its members' source
// versions (see above).
func (v *Vault) rebuildPack(ctx context.Context, ld *LostData, dry bool, r *RebuiltData) error {
	members := slices.Clone(ld.records)
	sort.SliceStable(members, func(i, j int) bool { return members[i].rec.DataOffset < members[j].rec.DataOffset })
	var off int64
	for i, m := range members {
		switch {
		case i > 0 && m.rec.DataOffset == members[i-1].rec.DataOffset:
			r.Cannot = fmt.Sprintf("its records name two members at byte %d (%s and %s)", m.rec.DataOffset, members[i-1].name(), m.name())
			return nil
		case m.rec.DataOffset != off:
			r.Cannot = fmt.Sprintf("no record names its bytes %d to %d: the members its records name are not all it holds", off, m.rec.DataOffset-1)
			return nil
		}
		off += m.rec.Size
	}
	body := make([]byte, 0, off)
	var sources []RepairSource
	for _, m := range members {
		b, why, err := v.readMember(ctx, m)
		if err != nil {
			return err
		}
		if why != "" {
			r.Cannot = why
			return nil
		}
		body = append(body, b...)
		r.From = append(r.From, m.name())
		sources = append(sources, repairSource(m.bucket, m.rec))
	}
	sum := md5.Sum(body)
	if got := hex.EncodeToString(sum[:]); got != ld.DataETag {
		// Not the recorded bytes end to end (the pack held bytes no
		// record names, or the vault's ETags are not MD5s): each member's
		// bytes are its source version's, checked, so the version written
		// is vouched for by a repair record.
		r.Note = fmt.Sprintf("its %d members' bytes, end to end, have MD5 %s, not its recorded ETag %s: readers read each member from the version written, which a repair record vouches for",
			len(members), got, ld.DataETag)
	}
	if dry {
		return nil
	}
	in := v.packInput(ld.Object, members[0].bucket, len(members), body, sum)
	sha := sha256.Sum256(body)
	in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sha[:]))
	out, err := v.S3.PutObject(ctx, in)
	if err != nil {
		return fmt.Errorf("rebuild pack s3://%s/%s: %w", v.Bucket, ld.Object, err)
	}
	return v.settle(ctx, ld, Stored{Key: ld.Object, ETag: s3x.TrimETag(aws.ToString(out.ETag)), VersionID: aws.ToString(out.VersionId)}, int64(len(body)), sources, r)
}

// readMember reads the bytes of one pack member from its source version
// and checks them against its record (size, MD5 where the ETag is one,
// the full-object checksum); why says what failed.
func (v *Vault) readMember(ctx context.Context, m sourceRecord) (body []byte, why string, err error) {
	rec := m.rec
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.bucket), Key: aws.String(rec.Key), VersionId: aws.String(rec.VersionID),
		IfMatch: aws.String(`"` + rec.ETag + `"`)})
	switch {
	case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
		return nil, fmt.Sprintf("its member's source version %s is gone from its bucket", m.name()), nil
	case err != nil && s3x.IsPreconditionFailed(err):
		return nil, fmt.Sprintf("its member's source version %s does not have the recorded ETag %s", m.name(), rec.ETag), nil
	case err != nil && ctx.Err() != nil:
		return nil, "", ctx.Err()
	case err != nil:
		return nil, fmt.Sprintf("its member's source version %s cannot be read: %v", m.name(), err), nil
	}
	defer out.Body.Close()
	body, err = io.ReadAll(io.LimitReader(out.Body, rec.Size+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", m.name(), err)
	}
	if int64(len(body)) != rec.Size {
		return nil, fmt.Sprintf("its member's source version %s has %d bytes, the record says %d", m.name(), len(body), rec.Size), nil
	}
	if err := CheckData(rec, bytes.NewReader(body), ""); err != nil {
		return nil, fmt.Sprintf("its member's source version %s: %v", m.name(), err), nil
	}
	return body, "", nil
}

// settle checks the version a rebuild wrote (st, of size bytes, from
// sources): with the recorded ETag, it is what every record naming the
// key vouches for; with another, it is asked for (vouch) and vouched for
// by a repair record; a version that fails is removed again, and the
// object cannot be rebuilt here. In a locked vault the version (and its
// repair record) is retained as long as the snapshots that reference it
// live.
func (v *Vault) settle(ctx context.Context, ld *LostData, st Stored, size int64, sources []RepairSource, r *RebuiltData) error {
	var keep []string
	if ld.DataETag != "" && st.ETag != ld.DataETag {
		if st.VersionID == "" {
			r.Cannot = fmt.Sprintf("the copy written from its source has ETag %s, its records name %s, and the server named no version of it for a repair record to vouch for; the copy stays",
				st.ETag, ld.DataETag)
			return nil
		}
		rr, why, err := v.vouch(ctx, ld, st, size, sources)
		if err != nil {
			return err
		}
		if why != "" {
			r.Cannot = fmt.Sprintf("the copy written from its source %s", why) + v.unwrite(ctx, ld.Object, st.VersionID)
			return nil
		}
		key, err := v.putRepairRecord(ctx, rr)
		if err != nil {
			return fmt.Errorf("%w (the copy, version %s of %s, is not vouched for: readers take it for damage until a repair writes its record)", err, st.VersionID, ld.Object)
		}
		r.ETag, r.RepairRecord = st.ETag, key
		keep = append(keep, key)
	}
	r.Version = st.VersionID
	if v.Lock != nil && len(ld.points) > 0 {
		now := time.Now()
		var until time.Time
		for _, sp := range ld.points {
			if u := v.PointRetainUntil(&sp, now); u.After(until) {
				until = u
			}
		}
		if err := v.retainVersion(ctx, ld.Object, st.VersionID, until); err != nil {
			return err
		}
		for _, k := range keep {
			if err := v.retainVersion(ctx, k, "", until); err != nil {
				return err
			}
		}
	}
	return nil
}

// vouch asks for the version a rebuild wrote with an ETag of its own
// (its ETag, its size, and its checksum, which must be of the algorithm
// of a whole source version's full-object checksum and equal to it) and
// returns the repair record that vouches for it, or why none can.
func (v *Vault) vouch(ctx context.Context, ld *LostData, st Stored, size int64, sources []RepairSource) (*RepairRecord, string, error) {
	h, err := v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(ld.Object), VersionId: aws.String(st.VersionID),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return nil, "", fmt.Errorf("head the copy written to s3://%s/%s@%s: %w", v.Bucket, ld.Object, st.VersionID, err)
	}
	if got := s3x.TrimETag(aws.ToString(h.ETag)); got != st.ETag {
		return nil, fmt.Sprintf("has ETag %s, the write said %s", got, st.ETag), nil
	}
	if got := aws.ToInt64(h.ContentLength); got != size {
		return nil, fmt.Sprintf("has %d bytes, its sources %d", got, size), nil
	}
	sum := ChecksumOf(h)
	if sum != nil && sum.Type == string(types.ChecksumTypeComposite) {
		sum = nil // of its parts: no reader compares it
	}
	checked := []string{"each source version's ETag, size and full-object checksum before the copy, which was conditional on its ETag",
		"the version written: its ETag and size"}
	if sum != nil {
		checked[1] += ", and the " + sum.Algorithm + " checksum the vault computed on the write"
	}
	if c := sources[0].Checksum; c != nil && !ld.Packed {
		// The one tie of the bytes written to the record that readers
		// can check without reading them: the source's checksum.
		switch {
		case sum == nil || sum.Algorithm != c.Algorithm:
			return nil, fmt.Sprintf("has no %s checksum from the vault to compare with its source's (a copy in parts, or a server that computes none)", c.Algorithm), nil
		case sum.Value != c.Value:
			return nil, fmt.Sprintf("has %s checksum %s, its source %s", c.Algorithm, sum.Value, c.Value), nil
		}
		checked[1] += ", equal to the source's"
	}
	if ld.Packed {
		checked[0] = "each member's source version read whole, conditional on its ETag, and checked against its record (size, MD5 where its ETag is one, full-object checksum); the members end to end from byte 0"
	}
	return &RepairRecord{Data: ld.Object, DataETag: ld.DataETag, Version: st.VersionID, ETag: st.ETag, Size: size, Checksum: sum,
		Sources: sources, Checked: checked, RebuiltAt: time.Now().UTC()}, "", nil
}

// unwrite removes the version a rebuild wrote and could not vouch for,
// and says how that went.
func (v *Vault) unwrite(ctx context.Context, key, versionID string) string {
	if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: aws.String(versionID)}); err != nil {
		return fmt.Sprintf("; the copy stays as its version %s (removing it failed: %v)", versionID, err)
	}
	return "; the copy was removed"
}
