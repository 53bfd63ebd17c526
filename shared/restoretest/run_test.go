package restoretest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestRestoreTestRun: a restore test of a protected bucket restores the
// newest second into a restore-test-* bucket, validates it SUCCESSFUL,
// keeps the run in the vault's history and deletes the bucket. With one
// vault data object's bytes replaced (the vault owner's raw PutObject),
// the next run is FAILED naming the key; with nothing in the window it
// cannot run and leaves no bucket.
func TestRestoreTestRun(t *testing.T) {
	srv, c, v := newVault(t)
	ctx := context.Background()
	bucket := protectedBucket(t, srv, v)
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("bytes of " + k),
			Tagging: aws.String("team=photos")}); err != nil {
			t.Fatal(err)
		}
	}
	reconciled(t, c, v, bucket)
	tester := &restoretest.Tester{S3: c}
	run, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != restoretest.StatusSuccessful || run.Type != restoretest.Continuous || run.Objects != 3 || run.Validation == nil ||
		run.Validation.Verdict != "SUCCESSFUL" || run.Validation.BytesChecked != 3 || run.DeletedAt == nil || !strings.HasPrefix(run.TargetBucket, restoretest.TargetPrefix) {
		t.Fatalf("run: %+v", run)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(run.TargetBucket)}); !s3x.IsNotFound(err) {
		t.Errorf("the restored bucket %s is still there: %v", run.TargetBucket, err)
	}

	// Replace one data object's bytes in the vault.
	rec := dataKeyOf(t, ctx, v, bucket, "a/2")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec), Body: strings.NewReader("other bytes!")}); err != nil {
		t.Fatal(err)
	}
	run2, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, f := range run2.Failures {
		named = named || f.Key == "a/2"
	}
	if run2.Status != restoretest.StatusFailed || !named || run2.DeletedAt == nil {
		t.Fatalf("run after damage: %s %q failures %+v", run2.Status, run2.StatusMessage, run2.Failures)
	}
	hist, err := restoretest.History(ctx, v, bucket)
	if err != nil || len(hist) != 2 || hist[0].Status != restoretest.StatusSuccessful || hist[1].Status != restoretest.StatusFailed || hist[1].DeletedAt == nil {
		t.Fatalf("history: %+v %v", hist, err)
	}

	// Only snapshots asked for, and there are none: nothing to pick.
	days := int64(1)
	_, err = tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: &restoretest.RecoveryPointSelection{
		Algorithm: restoretest.RandomWithinWindow, RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Snapshot}, IncludeVaults: []string{"*"}, SelectionWindowDays: &days}})
	if !errors.Is(err, restoretest.ErrNothingToPick) {
		t.Fatalf("nothing to pick: %v", err)
	}
	out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range out.Buckets {
		if strings.HasPrefix(aws.ToString(b.Name), restoretest.TargetPrefix) {
			t.Errorf("bucket %s left behind", aws.ToString(b.Name))
		}
	}
}

// dataKeyOf is the vault data key the journal recorded for key.
func dataKeyOf(t *testing.T, ctx context.Context, v *vault.Vault, bucket, key string) string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if err != nil {
			t.Fatalf("no data of %s: %v", key, err)
		}
		for _, r := range recs {
			if k == key && r.Data != "" {
				return r.Data
			}
		}
	}
}

// TestRestoreTestSweep: a run that keeps its bucket for an hour leaves it;
// the sweeper keeps it (and a young restore-test-* bucket no run names)
// until its time is up, then deletes both and records when; it never
// touches another bucket.
func TestRestoreTestSweep(t *testing.T) {
	srv, c, v := newVault(t)
	ctx := context.Background()
	bucket := protectedBucket(t, srv, v)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("k")}); err != nil {
		t.Fatal(err)
	}
	reconciled(t, c, v, bucket)
	// Its own prefix: the sweep must not take other tests' buckets.
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "sweep-"}
	run, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Keep: time.Hour})
	if err != nil || run.Status != restoretest.StatusSuccessful || run.DeletedAt != nil {
		t.Fatalf("run: %+v %v", run, err)
	}
	orphan := tester.Prefix + "orphan-" + strings.ToLower(run.ID[len(run.ID)-8:])
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(orphan)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sw, err := tester.Sweep(ctx, v, now)
	if err != nil || len(sw.Deleted) != 0 || len(sw.Kept) != 2 {
		t.Fatalf("sweep now: %+v %v; want both kept", sw, err)
	}
	sw, err = tester.Sweep(ctx, v, now.Add(restoretest.OrphanAfter+time.Hour))
	if err != nil || len(sw.Deleted) != 2 {
		t.Fatalf("sweep later: %+v %v; want both deleted", sw, err)
	}
	for _, b := range []string{run.TargetBucket, orphan} {
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); !s3x.IsNotFound(err) {
			t.Errorf("%s is still there: %v", b, err)
		}
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("the sweep touched another bucket: %v", err)
	}
	hist, err := restoretest.History(ctx, v, bucket)
	if err != nil || len(hist) != 1 || hist[0].DeletedAt == nil {
		t.Fatalf("history after the sweep: %+v %v", hist, err)
	}
}

// TestRestoreTestCatchesRewrittenMetadata: a snapshot's copy keeps the
// source's metadata and tags in its data object (metaInData). Rewritten
// by the vault owner's raw PutObject with the same bytes (so the same
// ETag) and other metadata and tags, the next restore test is FAILED,
// naming the key and the rewrite; a restore of the point writes the
// original version's metadata and tags and counts the rewrite as vault
// damage.
func TestRestoreTestCatchesRewrittenMetadata(t *testing.T) {
	srv, c, v := newVault(t)
	ctx := context.Background()
	bucket := protectedBucket(t, srv, v)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("ledger.csv"), Body: strings.NewReader("id,amount\n1,100\n"),
		Metadata: map[string]string{"owner": "ann"}, Tagging: aws.String("class=finance"), ContentType: aws.String("text/csv")}); err != nil {
		t.Fatal(err)
	}
	snap, err := (&snapshot.Engine{S3: c, PackMax: -1}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: bucket})
	if err != nil || snap.State != snapshot.StateCompleted {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	data := onlyDataKey(t, ctx, c, v.Bucket)
	snapOnly := &restoretest.RecoveryPointSelection{Algorithm: restoretest.LatestWithinWindow, IncludeVaults: []string{"*"},
		RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Snapshot}}
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "meta-"}
	run, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: snapOnly})
	if err != nil || run.Status != restoretest.StatusSuccessful || run.Type != restoretest.Snapshot {
		t.Fatalf("before the rewrite: %+v %v", run, err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(data), Body: strings.NewReader("id,amount\n1,100\n"),
		Metadata: map[string]string{"owner": "mallory"}, Tagging: aws.String("class=public"), ContentType: aws.String("text/csv")}); err != nil {
		t.Fatal(err)
	}
	run, err = tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: snapOnly})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, f := range run.Failures {
		named = named || f.Key == "ledger.csv" && (strings.Contains(f.Why, "metadata") || strings.Contains(f.Why, "tags"))
	}
	if run.Status != restoretest.StatusFailed || !named {
		t.Fatalf("after the rewrite: %s %q failures %+v", run.Status, run.StatusMessage, run.Failures)
	}
	// A restore of the point writes the original's metadata and tags, and
	// reports the rewrite.
	target := srv.BucketName(t)
	rep, err := (&restore.Restorer{S3: c}).Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, RecoveryPointID: run.RecoveryPointID, TargetBucket: target, CreateBucket: true})
	if err != nil || rep.VaultDamaged != 1 {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(target), Key: aws.String("ledger.csv")})
	if err != nil || h.Metadata["owner"] != "ann" {
		t.Fatalf("restored metadata: %+v %v", h, err)
	}
	tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(target), Key: aws.String("ledger.csv")})
	if err != nil || len(tg.TagSet) != 1 || aws.ToString(tg.TagSet[0].Value) != "finance" {
		t.Fatalf("restored tags: %+v %v", tg, err)
	}
	if _, err := s3x.DeleteBucket(ctx, c, target); err != nil {
		t.Fatal(err)
	}
}

// onlyDataKey is the one data object of a vault that holds a source's
// version (not the vault's capability probes).
func onlyDataKey(t *testing.T, ctx context.Context, c *s3.Client, vaultBucket string) string {
	t.Helper()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(vaultBucket), Prefix: aws.String(vault.DataPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(vaultBucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata["bv-version"] != vault.ProbeVersion {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) != 1 {
		t.Fatalf("data objects: %v", keys)
	}
	return keys[0]
}

// newVault is a vault on the test's own local server.
func newVault(t *testing.T) (*locals3.Server, *s3.Client, *vault.Vault) {
	t.Helper()
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, v
}

// protectedBucket is a new versioned bucket the vault records as
// protected since a minute ago (its journal filled by reconciled).
func protectedBucket(t *testing.T, srv *locals3.Server, v *vault.Vault) string {
	t.Helper()
	bucket := srv.NewBucket(t, true)
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(context.Background(), vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	return bucket
}

// reconciled journals the buckets by a reconcile a second after their
// last writes, so the journal is complete up to them (its watermark).
func reconciled(t *testing.T, c *s3.Client, v *vault.Vault, buckets ...string) {
	t.Helper()
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	j := &journal.Journal{Vault: v, S3: c}
	for _, b := range buckets {
		if _, err := j.Reconcile(context.Background(), b, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
