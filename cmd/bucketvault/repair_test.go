package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIVaultRepair: `vault repair` puts back a damaged data object's
// good version, sets aside a run one of whose shards is lost (its
// segments are all there), lists nothing as lost, and leaves a vault that
// verifies and restores exactly; --dry-run changes nothing.
func TestCLIVaultRepair(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for i := range 6 {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(string(rune('a'+i)) + ".txt"), Body: strings.NewReader("bytes " + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	defer func(lag time.Duration, n int) { vault.CompactionLag, vault.RunShardRecords = lag, n }(vault.CompactionLag, vault.RunShardRecords)
	vault.CompactionLag, vault.RunShardRecords = 0, 2
	time.Sleep(5 * time.Millisecond)
	if st, err := v.Compact(ctx, bucket, time.Now()); err != nil || st.Shards != 3 {
		t.Fatalf("compact: %+v %v", st, err)
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil || len(idx.Runs) != 1 {
		t.Fatalf("index: %+v %v", idx, err)
	}
	run := idx.Runs[0]
	// Damage: a shard lost for good, a data object overwritten.
	shard := run.Shards[1].Key
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vaultName), Prefix: aws.String(shard)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(vaultName), Key: aws.String(shard), Body: strings.NewReader("truncated")}); err != nil {
		t.Fatal(err)
	}
	for _, o := range vs.Versions {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(vaultName), Key: o.Key, VersionId: o.VersionId}); err != nil {
			t.Fatal(err)
		}
	}
	// The data of a.txt, whose shard (the first) is intact: verify reads
	// the run, so the data of keys in the lost shard is not reached.
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt")})
	if err != nil {
		t.Fatal(err)
	}
	dataKey := vault.DataKey(bucket, "a.txt", aws.ToString(head.VersionId), "", time.Time{})
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey)}); err != nil {
		t.Fatalf("the data of a.txt: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey), Body: strings.NewReader("other bytes")}); err != nil {
		t.Fatal(err)
	}

	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 || !strings.Contains(out, "lost") || !strings.Contains(out, "repairable") {
		t.Fatalf("verify of the damaged vault: %d\n%s", code, out)
	}
	code, out, e := cli(t, srv, "vault", "repair", "--vault", vaultName, "--dry-run")
	if code != 0 || !strings.Contains(out, "would repair") || !strings.Contains(out, "1 runs to read from their segments, 0 lost") {
		t.Fatalf("repair --dry-run: %d\n%s%s", code, out, e)
	}
	if code, _, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 {
		t.Fatalf("a dry run repaired the vault")
	}
	if code, out, e := cli(t, srv, "vault", "repair", "--vault", vaultName); code != 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("repair: %d\n%s%s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName, "--deep", "--against-source"); code != 0 {
		t.Fatalf("verify after repair: %d\n%s", code, out)
	}
	target := srv.BucketName(t)
	at := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
	if code, out, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %d %s %s", code, out, e)
	}
	if code, out, e := cli(t, srv, "restore", "--vault", vaultName, "--bucket", bucket, "--at", at.Format(time.RFC3339), "--target-bucket", target, "--create-bucket"); code != 0 || !strings.Contains(out, "restored 6 objects") {
		t.Fatalf("restore after repair: %d\n%s%s", code, out, e)
	}
	// The next compaction writes the run again, from the segments.
	if st, err := v.Compact(ctx, bucket, time.Now()); err != nil || st.Run == "" {
		t.Fatalf("compact after repair: %+v %v", st, err)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 0 {
		t.Fatalf("verify after the new compaction: %d\n%s", code, out)
	}
}

// TestCLIVaultRepairRebuildsLostData: a data object lost from the vault
// (other bytes over it, every good version deleted) whose source version
// is still in the protected bucket. verify says lost; a snapshot taken
// meanwhile carries the journal's record of it; `vault repair --dry-run`
// says it would write it again from the source and writes nothing;
// `vault repair` writes it again and lists nothing as lost (in an SSE-KMS
// vault, as deployed, the copy gets an ETag of its own, and repair names
// the repair record that vouches for it); then verify (reading every
// byte) is clean and restores as of a point in time and of the snapshot
// are exact.
func TestCLIVaultRepairRebuildsLostData(t *testing.T) {
	for _, kms := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "sse-kms"}[kms], func(t *testing.T) { testCLIVaultRepairRebuildsLostData(t, kms) })
	}
}

func testCLIVaultRepairRebuildsLostData(t *testing.T, kms bool) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	if kms && srv.KMSKeyID == "" {
		t.Skip("the local server has no KMS key to encrypt the vault with")
	}
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for _, k := range []string{"a.txt", "b.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("the bytes of " + k),
			Metadata: map[string]string{"owner": "ann"}, Tagging: aws.String("class=" + k[:1])}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if kms {
		if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(vaultName),
			ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(srv.KMSKeyID)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	before, err := inspect.Capture(ctx, c, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt")})
	if err != nil {
		t.Fatal(err)
	}
	dataKey := vault.DataKey(bucket, "a.txt", aws.ToString(head.VersionId), "", time.Time{})
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vaultName), Prefix: aws.String(dataKey)})
	if err != nil || len(vs.Versions) != 1 {
		t.Fatalf("versions of the data of a.txt: %+v %v", vs, err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey), Body: strings.NewReader("other bytes")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(vaultName), Key: aws.String(dataKey), VersionId: vs.Versions[0].VersionId}); err != nil {
		t.Fatal(err)
	}

	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 || !strings.Contains(out, "lost from the vault") || !strings.Contains(out, "`bucketvault vault repair --vault "+vaultName+" --dry-run`") {
		t.Fatalf("verify of the damaged vault: %d\n%s", code, out)
	}
	code, out, e := cli(t, srv, "backup", "--vault", vaultName, "--bucket", bucket)
	if code != 0 {
		t.Fatalf("backup: %d\n%s%s", code, out, e)
	}
	snap := regexp.MustCompile(`snapshot-[0-9TZ]+-[0-9a-f]+`).FindString(out)
	if snap == "" {
		t.Fatalf("backup names no recovery point:\n%s", out)
	}
	source := fmt.Sprintf("s3://%s/a.txt@%s", bucket, aws.ToString(head.VersionId))
	code, out, e = cli(t, srv, "vault", "repair", "--vault", vaultName, "--dry-run")
	if code != 0 || !strings.Contains(out, "would repair (dry run) "+dataKey+" from "+source) || !strings.Contains(out, "1 lost data objects to write again from their sources, 0 lost") {
		t.Fatalf("repair --dry-run: %d\n%s%s", code, out, e)
	}
	if code, _, _ := cli(t, srv, "verify", "--vault", vaultName); code != 3 {
		t.Fatalf("a dry run repaired the vault")
	}
	code, out, e = cli(t, srv, "vault", "repair", "--vault", vaultName)
	if code != 0 || !strings.Contains(out, "repaired "+dataKey+" from "+source+": written again") || strings.Contains(out, "CANNOT") {
		t.Fatalf("repair: %d\n%s%s", code, out, e)
	}
	vouched := regexp.MustCompile(`with an ETag of its own \([0-9a-f]+\) that repair record ` + regexp.QuoteMeta(vault.RepairRecordPrefix(dataKey)) + `[^ ]+\.json vouches for`)
	switch {
	case kms && !vouched.MatchString(out):
		t.Errorf("repair in an SSE-KMS vault says:\n%s\nwant it to name the repair record that vouches for the copy", out)
	case !kms && !strings.Contains(out, "with the ETag its records name"):
		t.Errorf("repair in a plain vault says:\n%s\nwant the copy to have the ETag its records name", out)
	}
	if code, out, _ := cli(t, srv, "verify", "--vault", vaultName, "--deep", "--against-source"); code != 0 {
		t.Fatalf("verify after repair: %d\n%s", code, out)
	}
	at := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
	if code, out, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %d %s %s", code, out, e)
	}
	for _, point := range [][]string{{"--at", at.Format(time.RFC3339)}, {"--recovery-point", snap}} {
		target := srv.BucketName(t)
		args := append([]string{"restore", "--vault", vaultName, "--bucket", bucket, "--target-bucket", target, "--create-bucket"}, point...)
		if code, out, e := cli(t, srv, args...); code != 0 || !strings.Contains(out, "restored 2 objects") {
			t.Fatalf("restore %v after repair: %d\n%s%s", point, code, out, e)
		}
		got, err := inspect.Capture(ctx, c, target, "")
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range before {
			if !inspect.Equal(want, got[k]) {
				t.Errorf("restore %v: %s is %+v, want %+v", point, k, got[k], want)
			}
		}
	}
}

// TestCLIVaultRepairSaysWhatCannotBeRebuilt: a lost data object whose
// source version was deleted from its bucket, and a lost journal segment.
// `vault repair` exits 3 and names each with why, and the next step it
// gives is true: the reconcile it names journals again what the bucket
// holds now.
func TestCLIVaultRepairSaysWhatCannotBeRebuilt(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	put := func(bkt, key, body string) string {
		t.Helper()
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bkt), Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	gone := put(bucket, "gone.txt", "bytes deleted from the bucket later")
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	v, err := vault.Open(ctx, c, vaultName)
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Segments(ctx, bucket)
	if err != nil || len(first) != 1 {
		t.Fatalf("segments: %v %v", first, err)
	}
	put(bucket, "later.txt", "bytes journaled by the second segment")
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %s", e)
	}
	segs, err := v.Segments(ctx, bucket)
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	lose := func(key string) {
		t.Helper()
		vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(vaultName), Prefix: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		put(vaultName, key, "other bytes")
		for _, o := range vs.Versions {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(vaultName), Key: o.Key, VersionId: o.VersionId}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lostSegment := segs[1].Key
	if lostSegment == first[0].Key {
		lostSegment = segs[0].Key
	}
	lose(lostSegment)
	dataKey := vault.DataKey(bucket, "gone.txt", gone, "", time.Time{})
	lose(dataKey)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("gone.txt"), VersionId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}

	code, out, e := cli(t, srv, "vault", "repair", "--vault", vaultName)
	source := fmt.Sprintf("s3://%s/gone.txt@%s", bucket, gone)
	for _, want := range []string{
		"0 lost data objects to write again from their sources, 2 lost",
		"CANNOT REPAIR " + dataKey + " (the data of " + source + "): its source version " + source + " is gone from its bucket",
		"CANNOT REPAIR s3 object " + lostSegment + " is damaged and no version of it is good",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("repair says:\n%s\nwant it to say %q", out, want)
		}
	}
	hint := "`bucketvault reconcile --vault " + vaultName + " --bucket " + bucket + "` journals again what s3://" + bucket + " holds now"
	if code != 3 || !strings.Contains(e, hint) {
		t.Fatalf("repair: exit %d, %s; want 3 naming the reconcile", code, e)
	}
	if code, out, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 || strings.Contains(out, " 0 records added") {
		t.Fatalf("the reconcile repair names: %d\n%s%s; want it to journal later.txt again", code, out, e)
	}
	m, err := v.OpenJournal(ctx, bucket, []string{"later.txt"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		key, recs, err := m.NextKey()
		if err != nil {
			t.Fatalf("the journal after the reconcile holds no version of later.txt: %v", err)
		}
		if key == "later.txt" && slices.ContainsFunc(recs, func(o vault.Observed) bool { return o.Op == vault.OpVersion && o.Data != "" }) {
			return
		}
	}
}
