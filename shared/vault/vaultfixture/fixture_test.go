package vaultfixture

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

func TestMain(m *testing.M) { locals3.Main(m) }

func readFixture(t *testing.T) *Fixture {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRead checks the fixture's files agree with each other, without a
// server: every file holds the bytes its versions and objects say, each
// state names every key once, and the vault holds the data of every
// object a state expects.
func TestRead(t *testing.T) {
	f := readFixture(t)
	if f.VaultFormatVersion != 1 || f.Commit == "" || f.VaultName == "" || f.SourceName == "" {
		t.Fatalf("fixture: format %d, commit %q, vault %q, source %q", f.VaultFormatVersion, f.Commit, f.VaultName, f.SourceName)
	}
	if len(f.Times) < 3 || !slices.IsSortedFunc(f.Times, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("times %v: want at least 3, ascending", f.Times)
	}
	for _, at := range f.Times {
		if !at.Equal(at.Truncate(time.Second)) || at.Location() != time.UTC {
			t.Errorf("time %v: want whole seconds, UTC", at)
		}
	}

	checkFile := func(t *testing.T, what, file, etag string, size int64) {
		t.Helper()
		body, err := f.Body(file)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		sum, sha := md5.Sum(body), sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != etag || int64(len(body)) != size || path.Base(file) != hex.EncodeToString(sha[:]) {
			t.Errorf("%s: %s holds %d bytes, MD5 %x, SHA-256 %x; want %d bytes, MD5 %s, named by its SHA-256", what, file, len(body), sum, sha, size, etag)
		}
	}
	for _, b := range []Bucket{f.Vault, f.Source} {
		if !slices.IsSortedFunc(b.Keys, func(x, y Key) int { return strings.Compare(x.Key, y.Key) }) {
			t.Errorf("bucket %s: keys not in order", b.Name)
		}
		for _, k := range b.Keys {
			for i, v := range k.Versions {
				if v.N != i+1 || (i > 0 && v.LastModified.Before(k.Versions[i-1].LastModified)) {
					t.Errorf("%s/%s: version %d is number %d, modified %v: want oldest first", b.Name, k.Key, i+1, v.N, v.LastModified)
				}
				if v.DeleteMarker {
					if v.File != "" {
						t.Errorf("%s/%s: delete marker %d has a file", b.Name, k.Key, v.N)
					}
					continue
				}
				checkFile(t, b.Name+"/"+k.Key, v.File, v.ETag, v.Size)
			}
		}
	}

	// The vault's data objects name the source version they hold.
	dataOf := map[string]Version{}
	for _, k := range f.Vault.Keys {
		for _, v := range k.Versions {
			if v.Metadata["bv-bucket"] == f.SourceName && v.Metadata["bv-version"] != "" {
				dataOf[v.Metadata["bv-version"]] = v
			}
		}
	}
	var sourceKeys []string
	for _, k := range f.Source.Keys {
		sourceKeys = append(sourceKeys, k.Key)
	}
	for _, st := range f.States() {
		var keys []string
		for _, o := range st.Objects {
			keys = append(keys, o.Key)
			checkFile(t, st.At.Format(time.RFC3339)+" "+o.Key, o.File, o.ETag, o.Size)
			if o.MD5 != o.ETag {
				t.Errorf("%s %s: MD5 %s, ETag %s", st.At.Format(time.RFC3339), o.Key, o.MD5, o.ETag)
			}
			if o.LastModified.Truncate(time.Second).After(st.At) {
				t.Errorf("%s %s: modified %v, after T", st.At.Format(time.RFC3339), o.Key, o.LastModified)
			}
			if d, ok := dataOf[o.VersionID]; !ok || d.ETag != o.ETag || d.Size != o.Size {
				t.Errorf("%s %s@%s: the vault holds no data object of it (found %v: %+v)", st.At.Format(time.RFC3339), o.Key, o.VersionID, ok, d)
			}
		}
		keys = append(keys, st.Absent...)
		slices.Sort(keys)
		if diff := cmp.Diff(sourceKeys, keys); diff != "" {
			t.Errorf("%s: present and absent keys are not every key of the source once (-source +state):\n%s", st.At.Format(time.RFC3339), diff)
		}
	}

	// The journal: a run, segments after its cut; the snapshot's point.
	vaultKeys := map[string]bool{}
	for _, k := range f.Vault.Keys {
		vaultKeys[k.Key] = true
	}
	j := f.Journal
	if j.SourceBucket != f.SourceName || j.RunCut == "" || j.SegmentsAfterCut < 1 || j.SegmentsAfterCut >= len(j.Segments) {
		t.Errorf("journal %+v: want a run of some segments and segments after its cut", j)
	}
	if !vaultKeys["runs/"+f.SourceName+"/"+j.RunCut+".json"] {
		t.Errorf("the vault has no run manifest of cut %s", j.RunCut)
	}
	for _, id := range j.Segments {
		found := false
		for k := range vaultKeys {
			found = found || (strings.HasPrefix(k, "journal/"+f.SourceName+"/") && strings.HasSuffix(k, "/"+id+".jsonl.zst"))
		}
		if !found {
			t.Errorf("the vault has no segment %s", id)
		}
	}
	if len(f.Snapshots) != 1 {
		t.Fatalf("snapshots %+v: want one", f.Snapshots)
	}
	sn := f.Snapshots[0]
	if st, ok := f.State(sn.At); !ok || int64(len(st.Objects)) != sn.Objects || sn.State != "COMPLETED" {
		t.Errorf("snapshot %+v: want a COMPLETED snapshot of one of the times, with its objects", sn)
	}
	if !vaultKeys["snapshots/"+f.SourceName+"/"+sn.RecoveryPointID+".json"] {
		t.Errorf("the vault has no record of snapshot %s", sn.RecoveryPointID)
	}
}

// TestLoad loads the vault and its source into a fresh local server and
// checks every recorded version is there, in order, as recorded.
func TestLoad(t *testing.T) {
	s := locals3.ForTest(t)
	ctx := t.Context()
	c := s.Client(ctx)
	src := readFixture(t).SourceName
	vb := s.BucketName(t)
	f, err := Load(ctx, c, vb, src)
	if err != nil {
		t.Fatal(err)
	}
	if f.VaultBucket != vb || f.SourceBucket != src {
		t.Fatalf("loaded into %q and %q, want %q and %q", f.VaultBucket, f.SourceBucket, vb, src)
	}

	t.Run("descriptor", func(t *testing.T) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(vb), Key: aws.String("bucketvault.json")})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		var d struct {
			Format        string `json:"format"`
			FormatVersion int    `json:"formatVersion"`
			Name          string `json:"name"`
			RetentionDays int    `json:"retentionDays"`
		}
		if err := json.NewDecoder(out.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		if d.Format != "bucketvault" || d.FormatVersion != 1 || d.Name != f.VaultName {
			t.Errorf("descriptor %+v: want format bucketvault, formatVersion 1, name %s", d, f.VaultName)
		}
		// The recorded times stay inside the point-in-time window.
		if days := time.Since(f.Times[0]).Hours() / 24; float64(d.RetentionDays) < days {
			t.Errorf("retentionDays %d: the first recorded time is %.0f days old", d.RetentionDays, days)
		}
	})
	t.Run("vault", func(t *testing.T) { checkBucket(t, c, f, vb, f.Vault) })
	t.Run("source", func(t *testing.T) { checkBucket(t, c, f, src, f.Source) })

	t.Run("diff", func(t *testing.T) {
		last := f.Times[len(f.Times)-1]
		diffs, err := f.Diff(ctx, c, src, last)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Errorf("the source's current objects differ from the state at the last time %s:\n%s", last.Format(time.RFC3339), strings.Join(diffs, "\n"))
		}
		// At the first time, later keys were absent and some keys held
		// other versions: Diff names them.
		first := f.Times[0]
		diffs, err = f.Diff(ctx, c, src, first)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.State(first)
		lastSt, _ := f.State(last)
		want := 0
		for _, o := range lastSt.Objects {
			if slices.Contains(st.Absent, o.Key) {
				want++
				if !slices.Contains(diffs, o.Key+": present, absent at "+first.Format(time.RFC3339)) {
					t.Errorf("diff at %s does not name %s, absent then: %q", first.Format(time.RFC3339), o.Key, diffs)
				}
			}
		}
		if want == 0 || len(diffs) <= want {
			t.Errorf("diff at %s: %d lines, want more than the %d keys absent then (versions changed too): %q", first.Format(time.RFC3339), len(diffs), want, diffs)
		}
		if _, err := f.Diff(ctx, c, src, first.Add(-time.Hour)); err == nil {
			t.Error("diff at a time not recorded: no error")
		}
	})
}

// checkBucket lists bucket and compares every key's versions, oldest
// first, with b: delete markers, version ids as loaded, bytes, ETag,
// headers, user metadata, tags and checksum.
func checkBucket(t *testing.T, c *s3.Client, f *Fixture, bucket string, b Bucket) {
	t.Helper()
	ctx := t.Context()
	byKey := map[string][]s3x.Entry{}
	var keys []string
	l := s3x.NewVersionLister(c, bucket, "", "", "", 1000)
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if byKey[e.Key] == nil {
				keys = append(keys, e.Key)
			}
			byKey[e.Key] = append([]s3x.Entry{e}, byKey[e.Key]...) // oldest first
		}
	}
	var wantKeys []string
	for _, k := range b.Keys {
		wantKeys = append(wantKeys, k.Key)
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("keys of %s (-recorded +loaded):\n%s", bucket, diff)
	}
	versions := 0
	for _, k := range b.Keys {
		got := byKey[k.Key]
		if len(got) != len(k.Versions) {
			t.Errorf("%s: %d versions, recorded %d", k.Key, len(got), len(k.Versions))
			continue
		}
		for i, v := range k.Versions {
			e := got[i]
			versions++
			if e.VersionID != v.LoadedVersionID || e.IsDeleteMarker != v.DeleteMarker || e.IsLatest != (i == len(k.Versions)-1) {
				t.Errorf("%s version %d: listed %+v, want loaded id %s, delete marker %v", k.Key, v.N, e, v.LoadedVersionID, v.DeleteMarker)
				continue
			}
			if v.DeleteMarker {
				continue
			}
			checkVersion(t, c, f, bucket, k.Key, v)
		}
	}
	if versions == 0 {
		t.Errorf("%s: no versions checked", bucket)
	}
}

func checkVersion(t *testing.T, c *s3.Client, f *Fixture, bucket, key string, v Version) {
	t.Helper()
	ctx := t.Context()
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(v.LoadedVersionID), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(g.Body)
	g.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.Body(v.File)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != string(want) {
		t.Errorf("%s version %d: %d bytes, not the %d of %s", key, v.N, len(body), len(want), v.File)
	}
	tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(v.LoadedVersionID)})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tag := range tg.TagSet {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	algo, sum := "", ""
	for _, ck := range []struct {
		algo string
		v    *string
	}{{"CRC32", g.ChecksumCRC32}, {"CRC32C", g.ChecksumCRC32C}, {"CRC64NVME", g.ChecksumCRC64NVME}, {"SHA1", g.ChecksumSHA1}, {"SHA256", g.ChecksumSHA256}} {
		if aws.ToString(ck.v) != "" && algo == "" {
			algo, sum = ck.algo, *ck.v
		}
	}
	type headers struct {
		ETag, ContentType, CacheControl, ContentDisposition, ContentEncoding, ContentLanguage string
		Size                                                                                  int64
		Metadata, Tags                                                                        map[string]string
		ChecksumAlgorithm, Checksum                                                           string
	}
	gotH := headers{s3x.TrimETag(aws.ToString(g.ETag)), aws.ToString(g.ContentType), aws.ToString(g.CacheControl), aws.ToString(g.ContentDisposition),
		aws.ToString(g.ContentEncoding), aws.ToString(g.ContentLanguage), aws.ToInt64(g.ContentLength), lower(g.Metadata), tags, algo, sum}
	wantH := headers{v.ETag, v.ContentType, v.CacheControl, v.ContentDisposition, v.ContentEncoding, v.ContentLanguage, v.Size, lower(v.Metadata), lower(nil), v.ChecksumAlgorithm, v.Checksum}
	for k, val := range v.Tags {
		wantH.Tags[k] = val
	}
	if diff := cmp.Diff(wantH, gotH); diff != "" {
		t.Errorf("s3://%s/%s version %d (-recorded +loaded):\n%s", bucket, key, v.N, diff)
	}
}

// TestLoadVaultOnly loads the vault alone, twice on one server, and
// refuses a source bucket the vault's records do not name, creating
// nothing.
func TestLoadVaultOnly(t *testing.T) {
	s := locals3.ForTest(t)
	ctx := t.Context()
	c := s.Client(ctx)
	for range 2 {
		vb := s.BucketName(t)
		f, err := Load(ctx, c, vb, "")
		if err != nil {
			t.Fatal(err)
		}
		if f.SourceBucket != "" || f.Source.Keys[0].Versions[0].LoadedVersionID != "" {
			t.Errorf("loaded the source (%q) though asked not to", f.SourceBucket)
		}
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vb), Key: aws.String("bucketvault.json")}); err != nil {
			t.Errorf("vault %s: %v", vb, err)
		}
	}

	vb := s.BucketName(t)
	_, err := Load(ctx, c, vb, "some-other-bucket")
	var nameErr *SourceNameError
	if !errors.As(err, &nameErr) || nameErr.Given != "some-other-bucket" || nameErr.Recorded != readFixture(t).SourceName {
		t.Fatalf("load with another source name: %v, want a SourceNameError", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(vb)}); !s3x.IsNotFound(err) {
		t.Errorf("a refused load created %s (head: %v)", vb, err)
	}
}
