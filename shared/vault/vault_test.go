package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

func TestCreateOpenAndUnknownFormat(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	name := srv.BucketName(t)
	v, err := vault.Create(ctx, c, name, vault.CreateOptions{RetentionDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{0, 7} {
		again, err := vault.Create(ctx, c, name, vault.CreateOptions{RetentionDays: days})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v.Descriptor, again.Descriptor); diff != "" {
			t.Errorf("second create changed the vault (-want +got):\n%s", diff)
		}
	}
	// A different window is refused, saying what the vault keeps, not
	// silently ignored.
	var refused *vault.CreateRefusedError
	if _, err := vault.Create(ctx, c, name, vault.CreateOptions{RetentionDays: 99}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "7-day") {
		t.Errorf("create with another window = %v, want CreateRefusedError naming the 7-day window", err)
	}
	opened, err := vault.Open(ctx, c, name)
	if err != nil || opened.Descriptor.RetentionDays != 7 {
		t.Fatalf("Open = %+v, %v", opened, err)
	}

	plain := srv.NewBucket(t, true)
	var notVault *vault.NotAVaultError
	if _, err := vault.Open(ctx, c, plain); !errors.As(err, &notVault) {
		t.Errorf("Open(plain bucket) = %v, want NotAVaultError", err)
	}

	future := srv.NewBucket(t, true)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(future), Key: aws.String(vault.DescriptorKey),
		Body: strings.NewReader(`{"format":"bucketvault","formatVersion":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	var unknown *vault.UnknownFormatError
	if _, err := vault.Open(ctx, c, future); !errors.As(err, &unknown) || unknown.Version != 3 {
		t.Errorf("Open(format 3) = %v, want UnknownFormatError for version 3", err)
	}
}

// TestCreateRefusesAUsersBucket: create never takes over a bucket that
// holds anything (a source bucket, versioned or never versioned), leaves
// it as it was, and refuses names S3 would not take; an existing empty
// bucket becomes a vault.
func TestCreateRefusesAUsersBucket(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	for _, versioned := range []bool{true, false} {
		b := srv.NewBucket(t, versioned)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("user-data"), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		var refused *vault.CreateRefusedError
		if _, err := vault.Create(ctx, c, b, vault.CreateOptions{}); !errors.As(err, &refused) {
			t.Errorf("create on a non-empty bucket (versioned %v) = %v, want CreateRefusedError", versioned, err)
		}
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(vault.DescriptorKey)}); err == nil {
			t.Errorf("create wrote the descriptor into a user's bucket (versioned %v)", versioned)
		}
		ver, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b)})
		if err != nil {
			t.Fatal(err)
		}
		if !versioned && ver.Status != "" {
			t.Errorf("create changed the versioning of a never-versioned bucket to %q", ver.Status)
		}
	}
	empty := srv.NewBucket(t, false)
	if v, err := vault.Create(ctx, c, empty, vault.CreateOptions{}); err != nil || v.Descriptor.RetentionDays != vault.DefaultRetentionDays {
		t.Errorf("create on an empty bucket = %+v, %v; want a vault with the default window", v, err)
	}
	for _, name := range []string{"v", "UPPER", "has space"} {
		var refused *vault.CreateRefusedError
		if _, err := vault.Create(ctx, c, name, vault.CreateOptions{}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "invalid bucket name") {
			t.Errorf("create %q = %v, want CreateRefusedError for the name", name, err)
		}
	}
}

// TestCreateRefusesAnEmptyProtectedBucket: an empty bucket that protect
// turned event delivery on for (its notification configuration
// vault.NotificationID) is a source bucket, not a vault to be: create
// refuses it and writes nothing; a notification configuration of the
// user's own does not stop it.
func TestCreateRefusesAnEmptyProtectedBucket(t *testing.T) {
	srv := locals3.ForTest(t)
	if srv.WebhookARN == "" {
		t.Skip("the local server has no webhook target to protect a bucket with")
	}
	ctx := context.Background()
	c := srv.Client(ctx)
	home, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	source := srv.NewBucket(t, true)
	j := &journal.Journal{Vault: home, S3: c}
	if _, _, err := protect.Protect(ctx, j, source, protect.Options{QueueARN: srv.WebhookARN}); err != nil {
		t.Fatal(err)
	}
	var refused *vault.CreateRefusedError
	if _, err := vault.Create(ctx, c, source, vault.CreateOptions{}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "empty but protected") {
		t.Fatalf("create on an empty protected bucket = %v, want CreateRefusedError saying it is protected", err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(source), Key: aws.String(vault.DescriptorKey)}); err == nil {
		t.Errorf("create wrote the descriptor into a protected bucket")
	}
	mine := srv.NewBucket(t, true)
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(mine),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			Id: aws.String("the-users-own"), QueueArn: aws.String(srv.WebhookARN), Events: []types.Event{"s3:ObjectCreated:*"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Create(ctx, c, mine, vault.CreateOptions{}); err != nil {
		t.Errorf("create on an empty bucket with a notification of its own = %v, want a vault", err)
	}
}

func recs(keys ...string) []vault.Record {
	var out []vault.Record
	for i, k := range keys {
		out = append(out, vault.Record{Op: vault.OpVersion, Key: k, VersionID: fmt.Sprint("v", i), Time: time.Unix(int64(1700000000+i), 0).UTC()})
	}
	return out
}

func TestSegmentRoundTrip(t *testing.T) {
	in := recs("b", "a", "c", "a")
	body, err := vault.EncodeSegment("bkt", "0000000000001-00", append([]vault.Record(nil), in...), time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	r, err := vault.NewSegmentReader(vault.SegmentRef{ID: "0000000000001-00"}, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Key+"/"+rec.VersionID)
	}
	want := []string{"a/v1", "a/v3", "b/v0", "c/v2"} // sorted by key, stable
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// A truncated segment is an error, never a silent loss.
	cut := body[:len(body)/2]
	if r, err := vault.NewSegmentReader(vault.SegmentRef{ID: "x"}, io.NopCloser(bytes.NewReader(cut))); err == nil {
		for {
			if _, err = r.Next(); err != nil {
				break
			}
		}
		if err == io.EOF {
			t.Error("a truncated segment read to the end without error")
		}
	}
}

// TestJournalMerge writes more segments than are held open at once, so the
// merge goes through spilled runs, and checks every key comes back once, in
// order, with all its records.
func TestJournalMerge(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := vault.MaxOpenSegments
	vault.MaxOpenSegments = 4
	defer func() { vault.MaxOpenSegments = old }()
	want := map[string]int{}
	for s := 0; s < 11; s++ {
		var batch []vault.Record
		for k := 0; k < 20; k++ {
			key := fmt.Sprintf("k%03d", (s*7+k*13)%50)
			want[key]++
			batch = append(batch, vault.Record{Op: vault.OpVersion, Key: key, VersionID: fmt.Sprint(s, "-", k), Time: time.Unix(1700000000, 0)})
		}
		if _, err := v.WriteSegment(ctx, "src", batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefixes := range [][]string{nil, {"k01", "k04"}} {
		m, err := v.OpenJournal(ctx, "src", prefixes)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for k, rs := range vault.ReadKeys(t, m) {
			got[k] = len(rs)
		}
		m.Close()
		if prefixes == nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records per key (-want +got):\n%s", diff)
			}
			continue
		}
		for k, n := range got {
			if !strings.HasPrefix(k, "k01") && !strings.HasPrefix(k, "k04") {
				continue // segments overlapping the prefixes bring other keys too
			}
			if want[k] != n {
				t.Errorf("%s: %d records, want %d", k, n, want[k])
			}
		}
	}
}

// readAll returns, per key, its records as "segment:line op version".
func readAll(t *testing.T, ctx context.Context, v *vault.Vault, bucket string, prefixes []string) map[string][]string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, prefixes)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]string{}
	for {
		k, rs, err := m.NextKey()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out[k] = append(out[k], fmt.Sprintf("%s:%d %s %s", r.Segment, r.Line, r.Op, r.VersionID))
		}
	}
}

// TestCompaction: a run holds exactly what the segments it covers held
// (record for record, with where each was first journaled), readers use the
// runs plus later segments, a second compaction writes only what is new,
// and runs merge as a binary counter's digits do.
func TestCompaction(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldLag, oldShard := vault.CompactionLag, vault.RunShardRecords
	vault.CompactionLag, vault.RunShardRecords = 0, 40
	defer func() { vault.CompactionLag, vault.RunShardRecords = oldLag, oldShard }()
	write := func(from, to int) {
		for s := from; s < to; s++ {
			var batch []vault.Record
			for k := 0; k < 15; k++ {
				batch = append(batch, vault.Record{Op: vault.OpVersion, Key: fmt.Sprintf("p%d/k%03d", k%3, (s*11+k*7)%60), VersionID: fmt.Sprint(s, "-", k), Time: time.Unix(1700000000, 0)})
			}
			if _, err := v.WriteSegment(ctx, "src", batch); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond) // segment ids are milliseconds
	}
	write(0, 12)
	before := readAll(t, ctx, v, "src", nil)
	st, err := v.Compact(ctx, "src", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 12 || st.Records != 12*15 || st.Shards < 3 {
		t.Errorf("first compaction %+v: want 12 segments, 180 records, several shards", st)
	}
	if diff := cmp.Diff(before, readAll(t, ctx, v, "src", nil)); diff != "" {
		t.Errorf("journal changed by compaction (-before +after):\n%s", diff)
	}
	write(12, 17)
	before = readAll(t, ctx, v, "src", nil)
	st2, err := v.Compact(ctx, "src", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st2.Segments != 5 || st2.Records != 5*15 || st2.Runs != 2 || st2.Merged != 0 {
		t.Errorf("second compaction %+v: want 5 new segments, their 75 records only, in a second run", st2)
	}
	if diff := cmp.Diff(before, readAll(t, ctx, v, "src", nil)); diff != "" {
		t.Errorf("journal changed by the second compaction (-before +after):\n%s", diff)
	}
	if st, err := v.Compact(ctx, "src", time.Now()); err != nil || st.Run != "" {
		t.Errorf("compacting again with nothing new: %+v, %v", st, err)
	}
	// 180 new records: a run as large as the one before it merges with it
	// ([180 75 180] -> [180 255] -> [435]).
	write(17, 29)
	before = readAll(t, ctx, v, "src", nil)
	st3, err := v.Compact(ctx, "src", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st3.Segments != 12 || st3.Runs != 1 || st3.Merged != 4 || st3.Records != 180+255+435 {
		t.Errorf("third compaction %+v: want 12 segments, then the runs merged into one", st3)
	}
	if diff := cmp.Diff(before, readAll(t, ctx, v, "src", nil)); diff != "" {
		t.Errorf("journal changed by the third compaction (-before +after):\n%s", diff)
	}
	// Prefix reads skip shards and still see every record of the prefix.
	all := readAll(t, ctx, v, "src", nil)
	for k, recs := range readAll(t, ctx, v, "src", []string{"p1/"}) {
		if strings.HasPrefix(k, "p1/") && !cmp.Equal(all[k], recs) {
			t.Errorf("%s: prefix read %v, full read %v", k, recs, all[k])
		}
	}
}
