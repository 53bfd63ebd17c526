package vault_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// lostFixture is a vault with a protected bucket (the journal's copies)
// and a bucket backed up by snapshots only (a pack of small versions, and
// a snapshot's own copy carrying metadata and tags), each captured at the
// time the restores are made as of. With kms, the vault encrypts with
// SSE-KMS (as deployed): every write gets an ETag of its own.
type lostFixture struct {
	srv       *locals3.Server
	ctx       context.Context
	c         *s3.Client
	v         *vault.Vault
	prot, snp string
	at        time.Time
	protSnap  string // a snapshot of prot (it carries the journal's data)
	snpSnap   string // a snapshot of snp
	before    map[string]map[string]inspect.Object
}

func newLostFixture(t *testing.T, kms bool) *lostFixture {
	t.Helper()
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	if kms && srv.KMSKeyID == "" {
		t.Skip("the local server has no KMS key to encrypt the vault with")
	}
	f := &lostFixture{srv: srv, ctx: context.Background(), c: srv.Client(context.Background())}
	var err error
	if f.v, err = vault.Create(f.ctx, f.c, srv.BucketName(t), vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if kms {
		f.encrypt(t)
	}
	f.prot, f.snp = srv.NewBucket(t, true), srv.NewBucket(t, true)
	// journaled.txt has a full-object checksum (CRC32), which the copy
	// repair writes must have too.
	if _, err := f.c.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(f.prot), Key: aws.String("journaled.txt"), Body: strings.NewReader("the journaled bytes"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
	f.put(t, f.prot, "kept.txt", "bytes nobody damages", nil, "")
	for _, k := range []string{"a.txt", "b.txt", "c.txt"} {
		f.put(t, f.snp, k, "small bytes of "+k, map[string]string{"who": k}, "")
	}
	f.put(t, f.snp, "big.bin", strings.Repeat("big ", 80<<10), map[string]string{"owner": "ann"}, "class=finance")
	if _, _, err := protect.Protect(f.ctx, &journal.Journal{Vault: f.v, S3: f.c}, f.prot, protect.Options{}); err != nil {
		t.Fatal(err)
	}
	for bucket, id := range map[string]*string{f.prot: &f.protSnap, f.snp: &f.snpSnap} {
		job, err := (&snapshot.Engine{S3: f.c}).Run(f.ctx, snapshot.Job{Vault: f.v.Bucket, Bucket: bucket})
		if err != nil || job.State != snapshot.StateCompleted {
			t.Fatalf("snapshot of %s: %+v %v", bucket, job, err)
		}
		*id = job.RecoveryPointID
	}
	f.at = time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(f.at.Add(1100 * time.Millisecond)))
	// A reconcile that starts after at vouches for it.
	if _, err := (&journal.Journal{Vault: f.v, S3: f.c}).Reconcile(f.ctx, f.prot, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	f.before = map[string]map[string]inspect.Object{}
	for _, b := range []string{f.prot, f.snp} {
		if f.before[b], err = inspect.Capture(f.ctx, f.c, b, ""); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// encrypt makes SSE-KMS the vault's default encryption.
func (f *lostFixture) encrypt(t *testing.T) {
	t.Helper()
	if _, err := f.c.PutBucketEncryption(f.ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(f.v.Bucket),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(f.srv.KMSKeyID)}}}}}); err != nil {
		t.Fatal(err)
	}
}

func (f *lostFixture) put(t *testing.T, bucket, key, body string, meta map[string]string, tags string) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body), Metadata: meta}
	if tags != "" {
		in.Tagging = aws.String(tags)
	}
	if _, err := f.c.PutObject(f.ctx, in); err != nil {
		t.Fatal(err)
	}
}

// dataOf is the data key of key's version record, from the journal of
// bucket (snapshot "") or from the snapshot's manifest.
func (f *lostFixture) dataOf(t *testing.T, bucket, snapshotID, key string) vault.Record {
	t.Helper()
	var m *vault.Merger
	var err error
	if snapshotID == "" {
		m, err = f.v.OpenJournal(f.ctx, bucket, nil)
	} else {
		var sp *vault.SnapshotPoint
		if sp, err = f.v.Snapshot(f.ctx, bucket, snapshotID); err == nil {
			m, err = vault.NewMerger([]vault.RecordSource{f.v.OpenShards(f.ctx, sp.Shards, nil)})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no version record of %s in %s %s", key, bucket, snapshotID)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range recs {
			if k == key && o.Op == vault.OpVersion && o.Data != "" {
				return o.Record
			}
		}
	}
}

// lose puts other bytes over a vault object and deletes every version it
// had: no version of it is good.
func (f *lostFixture) lose(t *testing.T, key string) {
	t.Helper()
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(f.v.Bucket), Prefix: aws.String(key)})
	if err != nil || len(vs.Versions) == 0 {
		t.Fatalf("versions of %s: %v %v", key, vs, err)
	}
	f.put(t, f.v.Bucket, key, "other bytes", nil, "")
	for _, o := range vs.Versions {
		if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.v.Bucket), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *lostFixture) versions(t *testing.T, key string) int {
	t.Helper()
	vs, err := f.c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(f.v.Bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	return len(vs.Versions) + len(vs.DeleteMarkers)
}

// restoreExact restores bucket (as of f.at, or the snapshot) into a new
// bucket and checks it holds exactly what bucket held then.
func (f *lostFixture) restoreExact(t *testing.T, bucket, snapshotID string) {
	t.Helper()
	req := restore.Request{Vault: f.v.Bucket, Bucket: bucket, TargetBucket: f.srv.BucketName(t), CreateBucket: true}
	if snapshotID != "" {
		req.RecoveryPointID = snapshotID
	} else {
		req.At = f.at
	}
	rep, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, req)
	if err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("restore of %s %s: %v\n%s", bucket, snapshotID, err, rep.Text())
	}
	got, err := inspect.Capture(f.ctx, f.c, req.TargetBucket, "")
	if err != nil {
		t.Fatal(err)
	}
	want := f.before[bucket]
	if len(got) != len(want) {
		t.Errorf("restore of %s %s: %d objects, want %d", bucket, snapshotID, len(got), len(want))
	}
	for k, w := range want {
		if !inspect.Equal(w, got[k]) {
			t.Errorf("restore of %s %s: %s is %+v, want %+v", bucket, snapshotID, k, got[k], w)
		}
	}
}

// TestRepairRebuildsLostDataFromItsSource: data objects lost from the
// vault (other bytes over them, every good version deleted) whose source
// versions are still in their buckets: the journal's copy of a version
// (named by the journal and by a snapshot that carried it), a pack of a
// snapshot's small versions, and a snapshot's own copy carrying the
// version's metadata and tags. verify lists them lost; a dry run says it
// would rebuild each from its sources and writes nothing; repair writes
// each again to its own key, and then verify (reading every byte) finds
// nothing, and restores as of a point in time and of both snapshots are
// exact. In a plain vault each copy has the ETag its records name; in an
// SSE-KMS vault (as deployed) none can, and each is vouched for by a
// repair record that every reader follows.
func TestRepairRebuildsLostDataFromItsSource(t *testing.T) {
	for _, kms := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "sse-kms"}[kms], func(t *testing.T) {
			f := newLostFixture(t, kms)
			journaled := f.dataOf(t, f.prot, "", "journaled.txt")
			if carried := f.dataOf(t, f.prot, f.protSnap, "journaled.txt"); carried.Data != journaled.Data {
				t.Fatalf("the snapshot of %s does not carry the journal's data: %s, not %s", f.prot, carried.Data, journaled.Data)
			}
			pack := f.dataOf(t, f.snp, f.snpSnap, "b.txt")
			big := f.dataOf(t, f.snp, f.snpSnap, "big.bin")
			if !pack.Packed || big.Packed || !big.MetaInData {
				t.Fatalf("want b.txt packed and big.bin a snapshot's own copy: %+v %+v", pack, big)
			}
			lost := []string{journaled.Data, pack.Data, big.Data}
			for _, k := range lost {
				f.lose(t, k)
			}

			rep, err := f.v.Verify(f.ctx, 4, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, ld := range rep.LostData {
				found = append(found, ld.Object)
			}
			if rep.OK() || !sameSet(found, lost) {
				t.Fatalf("verify: lost data %v, want %v\n%s", found, lost, strings.Join(rep.Problems, "\n"))
			}

			dry, err := f.v.RepairData(f.ctx, rep, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(dry) != len(lost) {
				t.Fatalf("dry run: %+v", dry)
			}
			for _, r := range dry {
				if !r.Rebuilt() || r.Version != "" || r.RepairRecord != "" || len(r.From) == 0 {
					t.Errorf("dry run of %s: %+v; want it rebuildable from its sources, nothing written", r.Object, r)
				}
				if f.versions(t, r.Object) != 1 {
					t.Errorf("a dry run wrote %s", r.Object)
				}
				if r.Object == pack.Data && len(r.From) != 3 {
					t.Errorf("the pack would be rebuilt from %v; want its 3 members", r.From)
				}
			}

			done, err := f.v.RepairData(f.ctx, rep, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range done {
				if !r.Rebuilt() || r.Version == "" {
					t.Errorf("repair of %s: %+v; want it written again", r.Object, r)
				}
				if r.Object == big.Data && !strings.Contains(r.Note, "tags") {
					t.Errorf("repair of the snapshot's own copy says %q; want it to say its tags are not vouched for", r.Note)
				}
				switch {
				case !kms && r.RepairRecord != "":
					t.Errorf("repair of %s in a plain vault: %+v; want the ETag its records name, no repair record", r.Object, r)
				case kms && (r.RepairRecord != vault.RepairRecordKey(r.Object, r.Version) || r.ETag == ""):
					t.Errorf("repair of %s in an SSE-KMS vault: %+v; want a repair record vouching for version %s", r.Object, r, r.Version)
				case kms:
					rr := f.sealed(t, r.RepairRecord)
					if c := journaled.Checksum; r.Object == journaled.Data && (c == nil || rr.Checksum == nil || *rr.Checksum != *c) {
						t.Errorf("the repair record of the data of journaled.txt names checksum %+v; want the vault's, equal to the source's %+v", rr.Checksum, c)
					}
				}
			}
			after, err := f.v.Verify(f.ctx, 4, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !after.OK() {
				t.Fatalf("verify --deep after repair:\n%s", strings.Join(after.Problems, "\n"))
			}
			f.restoreExact(t, f.prot, "")
			f.restoreExact(t, f.prot, f.protSnap)
			f.restoreExact(t, f.snp, f.snpSnap)
		})
	}
}

// sealed reads the repair record at key: it is sealed and names its key's
// data and version.
func (f *lostFixture) sealed(t *testing.T, key string) vault.RepairRecord {
	t.Helper()
	var rr vault.RepairRecord
	if err := f.v.GetSealedJSON(f.ctx, key, &rr); err != nil {
		t.Fatalf("repair record %s: %v", key, err)
	}
	if vault.RepairRecordKey(rr.Data, rr.Version) != key || rr.ETag == "" || len(rr.Sources) == 0 || len(rr.Checked) == 0 {
		t.Errorf("repair record %s: %+v", key, rr)
	}
	return rr
}

// TestRepairListsLostDataItCannotRebuild: in an SSE-KMS vault (as
// deployed), a lost data object whose source version was deleted from its
// bucket, and one whose "null" source version was written over in place
// since (other bytes), are listed with why; nothing is written for them,
// and verify still finds each lost.
func TestRepairListsLostDataItCannotRebuild(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	if srv.KMSKeyID == "" {
		t.Skip("the local server has no KMS key to encrypt the vault with")
	}
	ctx := context.Background()
	c := srv.Client(ctx)
	f := &lostFixture{srv: srv, ctx: ctx, c: c}
	var err error
	if f.v, err = vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.encrypt(t)
	// The null version of null.txt: written before versioning was on.
	f.prot = srv.NewBucket(t, false)
	f.put(t, f.prot, "null.txt", "the null version's first bytes", nil, "")
	versioning := func(s types.BucketVersioningStatus) {
		t.Helper()
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(f.prot),
			VersioningConfiguration: &types.VersioningConfiguration{Status: s}}); err != nil {
			t.Fatal(err)
		}
	}
	versioning(types.BucketVersioningStatusEnabled)
	f.put(t, f.prot, "gone.txt", "bytes deleted from the bucket later", nil, "")
	if _, _, err := protect.Protect(ctx, &journal.Journal{Vault: f.v, S3: c}, f.prot, protect.Options{}); err != nil {
		t.Fatal(err)
	}
	gone, null := f.dataOf(t, f.prot, "", "gone.txt"), f.dataOf(t, f.prot, "", "null.txt")
	if null.VersionID != "null" {
		t.Fatalf("null.txt's version is %q", null.VersionID)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.prot), Key: aws.String("gone.txt"), VersionId: aws.String(gone.VersionID)}); err != nil {
		t.Fatal(err)
	}
	versioning(types.BucketVersioningStatusSuspended)
	time.Sleep(1100 * time.Millisecond) // a null version of another second
	f.put(t, f.prot, "null.txt", "the null version's other bytes", nil, "")
	versioning(types.BucketVersioningStatusEnabled)
	for _, k := range []string{gone.Data, null.Data} {
		f.lose(t, k)
	}
	rep, err := f.v.Verify(ctx, 4, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := f.v.RepairData(ctx, rep, false)
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, r := range done {
		why[r.Object] = r.Cannot
		if r.Rebuilt() || r.Version != "" {
			t.Errorf("repair of %s: %+v; want it listed as not rebuilt", r.Object, r)
		}
	}
	if w := why[gone.Data]; !strings.Contains(w, "gone from its bucket") {
		t.Errorf("the data of gone.txt: %q; want it to say its source version is gone", w)
	}
	if w := why[null.Data]; !strings.Contains(w, "written over") {
		t.Errorf("the data of null.txt: %q; want it to say the null version was written over", w)
	}
	for _, k := range []string{gone.Data, null.Data} {
		if n := f.versions(t, k); n != 1 {
			t.Errorf("%s has %d versions after a repair that could not rebuild it; want the one damaged version", k, n)
		}
	}
	again, err := f.v.Verify(ctx, 4, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.LostData) != 2 {
		t.Errorf("verify after repair: %d lost data objects, want 2", len(again.LostData))
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestRepairRecordThatDoesNotCheckIsNotTrusted: in an SSE-KMS vault, the
// repair record of a rebuilt data object is damaged (other bytes over
// it: its seal fails), and later one is forged (other bytes of the same
// size put over the data key with a checksum of the algorithm the good
// record names, the rebuilt version deleted, and a sealed record naming
// the other bytes' version, ETag and size, and the checksum the good
// record named; then naming no checksum). Each time verify reports the data
// lost and names the record it does not trust, a restore fails the key
// and writes nothing for it (everything else is restored), and repair
// writes the data again from its source with a new record, after which
// verify is clean and the restore exact.
func TestRepairRecordThatDoesNotCheckIsNotTrusted(t *testing.T) {
	f := newLostFixture(t, true)
	journaled := f.dataOf(t, f.prot, "", "journaled.txt")
	f.lose(t, journaled.Data)
	repair := func() vault.RepairRecord {
		t.Helper()
		rep, err := f.v.Verify(f.ctx, 4, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		done, err := f.v.RepairData(f.ctx, rep, false)
		if err != nil || len(done) != 1 || !done[0].Rebuilt() || done[0].RepairRecord == "" {
			t.Fatalf("repair: %+v %v", done, err)
		}
		rr := f.sealed(t, done[0].RepairRecord)
		if rr.Checksum == nil {
			t.Fatalf("repair record %s names no checksum the vault computed", done[0].RepairRecord)
		}
		if after, err := f.v.Verify(f.ctx, 4, true, nil); err != nil || !after.OK() {
			t.Fatalf("verify --deep after repair: %v\n%s", err, strings.Join(after.Problems, "\n"))
		}
		f.restoreExact(t, f.prot, "")
		return rr
	}
	// untrusted checks that verify and a restore do not trust key.
	untrusted := func(key, why string) {
		t.Helper()
		rep, err := f.v.Verify(f.ctx, 4, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.LostData) != 1 || rep.LostData[0].Object != journaled.Data {
			t.Fatalf("verify: lost data %+v, want %s\n%s", rep.LostData, journaled.Data, strings.Join(rep.Problems, "\n"))
		}
		said := strings.Join(rep.Problems, "\n")
		if !strings.Contains(said, "repair record "+key) || !strings.Contains(said, "not trusted") || !strings.Contains(said, why) {
			t.Errorf("verify says:\n%s\nwant it to name repair record %s as not trusted: %s", said, key, why)
		}
		target := f.srv.BucketName(t)
		res, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.prot, At: f.at, TargetBucket: target, CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.State == restore.StateCompleted || res.Failed != 1 || res.Restored != 1 {
			t.Errorf("restore: %s, %d restored, %d failed; want journaled.txt failed and kept.txt restored\n%s", res.State, res.Restored, res.Failed, res.Text())
		}
		if _, err := f.c.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(target), Key: aws.String("journaled.txt")}); err == nil {
			t.Errorf("the restore wrote journaled.txt from data no record vouches for")
		}
	}

	first := repair()
	firstKey := vault.RepairRecordKey(first.Data, first.Version)
	f.put(t, f.v.Bucket, firstKey, `{"data":"damaged"}`, map[string]string{"sha256": "0000"}, "")
	untrusted(firstKey, "does not match its SHA-256")

	second := repair()
	if second.Version == first.Version {
		t.Fatalf("the second repair vouches for the first's version %s", first.Version)
	}
	// Forged: other bytes of the same size, and a sealed record naming them.
	other := strings.Repeat("x", int(journaled.Size))
	out, err := f.c.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(journaled.Data), Body: strings.NewReader(other),
		ChecksumAlgorithm: types.ChecksumAlgorithm(second.Checksum.Algorithm)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(journaled.Data), VersionId: aws.String(second.Version)}); err != nil {
		t.Fatal(err)
	}
	forged := second
	forged.Version, forged.ETag = aws.ToString(out.VersionId), strings.Trim(aws.ToString(out.ETag), `"`)
	body, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	forgedKey := vault.RepairRecordKey(forged.Data, forged.Version)
	f.put(t, f.v.Bucket, forgedKey, string(body), map[string]string{"sha256": hex.EncodeToString(sum[:])}, "")
	untrusted(forgedKey, "has "+second.Checksum.Algorithm+" checksum")
	// Forged again, naming no checksum at all: the record's source has one.
	forged.Checksum = nil
	if body, err = json.Marshal(forged); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(body)
	f.put(t, f.v.Bucket, forgedKey, string(body), map[string]string{"sha256": hex.EncodeToString(sum[:])}, "")
	untrusted(forgedKey, "names no "+second.Checksum.Algorithm+" checksum")

	repair()
}
