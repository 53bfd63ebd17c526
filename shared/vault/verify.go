package vault

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Buckets  int `json:"buckets"`
	Segments int `json:"segments"`
	// Snapshots is how many usable snapshot recovery points were checked.
	Snapshots int      `json:"snapshots"`
	Records   int64    `json:"records"`
	Data      int64    `json:"dataObjects"`
	Bytes     int64    `json:"bytes"`
	Problems  []string `json:"problems,omitempty"`
	// MoreProblems counts problems beyond the listed ones.
	MoreProblems int `json:"moreProblems,omitempty"`
	// Repairable are damaged objects an older version of which is good
	// (Repair puts it back); Lost are those with no good version.
	Repairable []Repair `json:"repairable,omitempty"`
	Lost       []string `json:"lost,omitempty"`
	// LostJournal are the lost journal objects among Lost.
	LostJournal []Damage `json:"lostJournal,omitempty"`
	// LostData are the lost data objects among Lost, each once, with the
	// records that name it (RepairData writes them again from their
	// sources): the first maxLostData of them; MoreLostData counts the
	// records naming others (a repair after the next verify reaches them).
	LostData     []*LostData `json:"lostData,omitempty"`
	MoreLostData int         `json:"moreLostData,omitempty"`
}

// OK reports whether verification found nothing wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 1000

// Verify checks that every reference in the vault resolves: the
// descriptor, every segment of every protected bucket and every manifest
// shard of every usable snapshot (it decodes, its records are sorted and
// counted as its header says), and every data object a version record
// names (it exists with the recorded size and ETag, in its current or an
// older version, or a repair record vouches for a version repair wrote
// again: FindData; a record that does not check is named, not trusted).
//
// With deep, it also reads every data object and checks its bytes: the MD5
// against the source ETag where that ETag is an MD5 (single-part, not
// SSE-KMS), and the source's additional checksum (SHA-256, SHA-1, CRC32,
// CRC32C) where one was recorded as a full-object checksum.
func (v *Vault) Verify(ctx context.Context, concurrency int, deep bool, progress func(VerifyReport)) (*VerifyReport, error) {
	if concurrency <= 0 {
		concurrency = 32
	}
	buckets, err := v.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	vr := &verifier{v: v, rep: &VerifyReport{Buckets: len(buckets)}, deep: deep, concurrency: concurrency, progress: progress, finder: packFinder{v: v}}
	for _, b := range buckets {
		js, err := v.Journal(ctx, b.Bucket)
		if err != nil {
			return nil, err
		}
		vr.rep.Segments += js.Compacted + js.Pending
		m, err := v.OpenJournal(ctx, b.Bucket, nil)
		if err != nil {
			vr.problem("journal of %s: %v", b.Bucket, err)
			continue
		}
		if err := vr.check(ctx, b.Bucket, "the journal", nil, m); err != nil {
			return nil, err
		}
	}
	// Snapshot manifests: every record's data, as for the journal.
	snapBuckets, err := v.SnapshotBuckets(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range snapBuckets {
		points, err := v.Snapshots(ctx, b)
		if err != nil {
			vr.problem("snapshots of %s: %v", b, err)
			continue
		}
		for _, sp := range points {
			if sp.Status != PointAvailable && sp.Status != PointPartial {
				continue
			}
			vr.rep.Snapshots++
			m, err := NewMerger([]RecordSource{v.OpenShards(ctx, sp.Shards, nil)})
			if err != nil {
				vr.problem("snapshot %s of %s: %v", sp.RecoveryPointID, b, err)
				continue
			}
			if err := vr.check(ctx, b, "snapshot "+sp.RecoveryPointID, &sp, m); err != nil {
				return nil, err
			}
		}
	}
	rep := vr.rep
	rep.Records, rep.Data, rep.Bytes = vr.records.Load(), vr.data.Load(), vr.bytes.Load()
	sort.Slice(rep.LostData, func(i, j int) bool { return rep.LostData[i].Object < rep.LostData[j].Object })
	return rep, nil
}

// verifier checks the data references of record streams.
type verifier struct {
	v                    *Vault
	rep                  *VerifyReport
	deep                 bool
	concurrency          int
	progress             func(VerifyReport)
	mu                   sync.Mutex
	packs                map[string]*s3.HeadObjectOutput // recent packs' HEADs
	finder               packFinder                      // the versions found of packs whose current version is not the recorded one
	lostData             map[string]*LostData            // by data key
	records, data, bytes atomic.Int64
}

func (vr *verifier) problem(f string, a ...any) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	if len(vr.rep.Problems) < maxProblems {
		vr.rep.Problems = append(vr.rep.Problems, fmt.Sprintf(f, a...))
	} else {
		vr.rep.MoreProblems++
	}
}

// check reads m (and closes it) and checks every data object its version
// records name: it exists with the recorded size and ETag (and, deep, the
// recorded digests). what names the stream in problems; point is the
// snapshot it is the manifest of (nil: the journal).
func (vr *verifier) check(ctx context.Context, bucket, what string, point *SnapshotPoint, m *Merger) error {
	defer m.Close()
	v := vr.v
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(vr.concurrency)
	seen := map[string]bool{}
	for {
		_, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			vr.problem("%s of %s: %v", what, bucket, err)
			break
		}
		clear(seen)
		for _, o := range recs {
			vr.records.Add(1)
			if o.Op != OpVersion || o.Data == "" || seen[dataRef(o.Record)] {
				continue
			}
			seen[dataRef(o.Record)] = true
			rec := o.Record
			g.Go(func() error {
				where := fmt.Sprintf("s3://%s/%s@%s: data %s", bucket, rec.Key, rec.VersionID, rec.Data)
				head, err := vr.head(gctx, rec)
				var damage string
				switch {
				case err != nil && (s3x.IsNotFound(err) || s3x.IsDeleteMarker(err)):
					damage = "is missing"
				case err != nil:
					return fmt.Errorf("head %s: %w", rec.Data, err)
				case rec.DataETag != "" && s3x.TrimETag(aws.ToString(head.ETag)) != rec.DataETag:
					damage = fmt.Sprintf("has ETag %s, %s says %s", s3x.TrimETag(aws.ToString(head.ETag)), what, rec.DataETag)
				}
				dv := DataVersion{}
				if damage != "" {
					// The current version is not the recorded one: an older
					// version may still hold the recorded bytes.
					found, err := vr.find(gctx, rec)
					var lost *DamagedDataError
					switch {
					case errors.As(err, &lost):
						if len(lost.Untrusted) > 0 {
							damage += "; " + strings.Join(lost.Untrusted, "; ")
						}
						vr.problem("%s %s; no version of it holds the recorded bytes (lost from the vault)", where, damage)
						vr.lost(fmt.Sprintf("%s %s (data of s3://%s/%s@%s)", rec.Data, damage, bucket, rec.Key, rec.VersionID))
						vr.addLostData(bucket, rec, damage, point)
						return nil
					case err != nil:
						return err
					case found.Damage == "":
						// The current version is good: changed back in
						// between, or the version repair wrote again, which
						// its repair record vouches for.
						dv = found
					default:
						vr.problem("%s %s; its older version %s holds the recorded bytes (repairable)", where, damage, found.VersionID)
						vr.repairable(Repair{Object: rec.Data, GoodVersion: found.VersionID, Reason: damage})
						dv = found
					}
					if head, err = v.S3.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data), VersionId: nonEmpty(dv.VersionID)}); err != nil {
						return fmt.Errorf("head %s: %w", rec.Data, err)
					}
				}
				deep := vr.deep
				switch got := aws.ToInt64(head.ContentLength); {
				case rec.Packed && (rec.DataOffset < 0 || rec.DataOffset+rec.Size > got):
					deep = false // no such range to read
					vr.problem("%s has %d bytes, %s says the version is bytes %d-%d", where, got, what, rec.DataOffset, rec.DataOffset+rec.Size-1)
				case !rec.Packed && got != rec.Size:
					deep = false
					vr.problem("%s has %d bytes, %s says %d", where, got, what, rec.Size)
				}
				if deep {
					if err := v.checkBytes(gctx, rec, dv, string(head.ServerSideEncryption)); err != nil {
						if !errors.As(err, new(*mismatchError)) {
							return err
						}
						vr.problem("%s: %v", where, err)
					}
				}
				vr.data.Add(1)
				vr.bytes.Add(rec.Size)
				if vr.progress != nil {
					vr.progress(VerifyReport{Buckets: vr.rep.Buckets, Records: vr.records.Load(), Data: vr.data.Load(), Bytes: vr.bytes.Load()})
				}
				return nil
			})
		}
	}
	err := g.Wait()
	// The objects of records themselves: the reader read around damage.
	for _, d := range m.Damage() {
		if d.Lost && d.Version != "" && d.Object == IndexKey(bucket) {
			// A damaged index read from a good older version: repair
			// makes that version current; what newer ones named is
			// unknown until then.
			vr.problem("%s of %s: %s (repairable; until repaired, the journal cannot vouch for any key)", what, bucket, d)
			vr.repairable(Repair{Object: d.Object, GoodVersion: d.Version, Reason: d.Reason})
			continue
		}
		if d.Lost {
			vr.problem("%s of %s: %s (lost from the vault)", what, bucket, d)
			vr.lost(d.String())
			vr.mu.Lock()
			vr.rep.LostJournal = append(vr.rep.LostJournal, d)
			vr.mu.Unlock()
		} else {
			vr.problem("%s of %s: %s (repairable)", what, bucket, d)
			vr.repairable(Repair{Object: d.Object, GoodVersion: d.Version, Reason: d.Reason})
		}
	}
	return err
}

// find is FindData, looked up once per pack for the records of its
// members (each checked against a repair record that vouches for the
// version found; one that does not name it is looked up on its own).
func (vr *verifier) find(ctx context.Context, rec Record) (DataVersion, error) {
	if rec.Packed {
		f := vr.finder.find(ctx, rec)
		var lost *DamagedDataError
		switch {
		case f.err == nil && (f.rr == nil || f.rr.vouches(rec) == ""):
			return f.dv, nil
		case errors.As(f.err, &lost) && len(lost.Untrusted) == 0:
			// No version and no repair record: as lost for every member.
			return DataVersion{}, &DamagedDataError{Data: dataRef(rec), Want: lost.Want, Reason: lost.Reason}
		}
	}
	return vr.v.FindData(ctx, rec)
}

func (vr *verifier) repairable(r Repair) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	for _, have := range vr.rep.Repairable {
		if have.Object == r.Object {
			return // a pack, named by each of its records
		}
	}
	vr.rep.Repairable = append(vr.rep.Repairable, r)
}

// maxLostData bounds the lost data objects a verify keeps the records
// of (memory: the records of each, a pack's members).
const maxLostData = 10000

// addLostData keeps rec, of bucket, as a record naming a lost data
// object, and the snapshot point it is in (nil: the journal).
func (vr *verifier) addLostData(bucket string, rec Record, damage string, point *SnapshotPoint) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	ld := vr.lostData[rec.Data]
	if ld == nil {
		if len(vr.rep.LostData) >= maxLostData {
			vr.rep.MoreLostData++
			return
		}
		if vr.lostData == nil {
			vr.lostData = map[string]*LostData{}
		}
		ld = &LostData{Object: rec.Data, DataETag: rec.DataETag, Reason: damage, Packed: rec.Packed}
		vr.lostData[rec.Data] = ld
		vr.rep.LostData = append(vr.rep.LostData, ld)
	}
	ld.add(bucket, rec, point)
}

func (vr *verifier) lost(what string) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	vr.rep.Lost = append(vr.rep.Lost, what)
}

// head answers the HEAD of a record's data object. Packs are asked once
// each while they are recent: records of one pack come together (a pack
// holds versions of neighbouring keys), and the cache is emptied at a
// bound, so memory stays flat however many packs a vault holds.
func (vr *verifier) head(ctx context.Context, rec Record) (*s3.HeadObjectOutput, error) {
	if rec.Packed {
		vr.mu.Lock()
		h, ok := vr.packs[rec.Data]
		vr.mu.Unlock()
		if ok {
			return h, nil
		}
	}
	h, err := vr.v.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vr.v.Bucket), Key: aws.String(rec.Data)})
	if err != nil || !rec.Packed {
		return h, err
	}
	vr.mu.Lock()
	defer vr.mu.Unlock()
	if vr.packs == nil || len(vr.packs) >= maxPackHeads {
		vr.packs = map[string]*s3.HeadObjectOutput{}
	}
	vr.packs[rec.Data] = h
	return h, nil
}

// maxPackHeads bounds the pack HEADs a verify keeps.
const maxPackHeads = 4096

// mismatchError is a data object whose bytes do not match the record.
type mismatchError struct{ what, got, want string }

// IsBytesMismatch says whether err is CheckData finding bytes that differ
// from the record (not a read that failed).
func IsBytesMismatch(err error) bool { return errors.As(err, new(*mismatchError)) }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("%s is %s, the record says %s", e.what, e.got, e.want)
}

// checkBytes reads the data of rec in version dv of its data object and
// compares its digests with the record.
func (v *Vault) checkBytes(ctx context.Context, rec Record, dv DataVersion, dataSSE string) error {
	body, _, err := v.openData(ctx, rec, dv)
	if err != nil {
		return err
	}
	defer body.Close()
	return CheckData(rec, body, dataSSE)
}

// crc64NVME is the CRC-64/NVME table (S3's CRC64NVME checksum: the
// reflected polynomial 0x9a6c9329ac4bc9b5, with hash/crc64's complement
// on entry and exit).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// CheckData reads the bytes of rec's data from r and compares their
// digests with the record: the MD5 against the source's ETag where that
// ETag is an MD5 (single part, not SSE-KMS) — for a record whose data
// object carries its metadata (a snapshot's copy, which does not know the
// source's encryption) against the data object's own ETag where that is
// an MD5 (dataSSE is the data object's encryption, "" when unknown) —
// and the recorded full-object checksum (SHA-256, SHA-1, CRC32, CRC32C,
// CRC64NVME). It returns a *mismatchError for bytes that differ.
func CheckData(rec Record, r io.Reader, dataSSE string) error {
	md := md5.New()
	hashers := []io.Writer{md}
	var sum hash.Hash
	if c := rec.Checksum; c != nil && c.Type != "COMPOSITE" {
		switch c.Algorithm {
		case "SHA256":
			sum = sha256.New()
		case "SHA1":
			sum = sha1.New()
		case "CRC32":
			sum = crc32.NewIEEE()
		case "CRC32C":
			sum = crc32.New(crc32.MakeTable(crc32.Castagnoli))
		case "CRC64NVME":
			sum = crc64.New(crc64NVME)
		}
		if sum != nil {
			hashers = append(hashers, sum)
		}
	}
	if _, err := io.Copy(io.MultiWriter(hashers...), r); err != nil {
		return fmt.Errorf("read %s: %w", dataRef(rec), err)
	}
	switch {
	case rec.MetaInData:
		if dataSSE != "aws:kms" && len(rec.DataETag) == 32 {
			if got := hex.EncodeToString(md.Sum(nil)); got != rec.DataETag {
				return &mismatchError{what: "MD5", got: got, want: rec.DataETag}
			}
		}
	case s3x.ETagIsMD5(rec.ETag, rec.SSE):
		if got := hex.EncodeToString(md.Sum(nil)); got != rec.ETag {
			return &mismatchError{what: "MD5", got: got, want: rec.ETag}
		}
	}
	if sum != nil {
		if got := base64.StdEncoding.EncodeToString(sum.Sum(nil)); got != rec.Checksum.Value {
			return &mismatchError{what: rec.Checksum.Algorithm, got: got, want: rec.Checksum.Value}
		}
	}
	return nil
}
