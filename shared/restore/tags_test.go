package restore_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestRestoreNamesTagsReadAfterAChange: a version's event arrives after a
// later tag change of the same version (late, or lost and the version
// found by a reconcile). The journal reads the tags when it captures, so
// it holds the changed ones for the version's first seconds too, and S3
// keeps no tag history to read the older ones from. A restore as of a
// second before the change restores the tags read and names the key
// uncertain with the interval, PARTIAL; one after the change is exact.
func TestRestoreNamesTagsReadAfterAChange(t *testing.T) {
	srv := locals3.ForTest(t)
	srv.RequireExactHistory(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, true)
	ch, cancel := srv.Subscribe(bucket)
	defer cancel()
	if err := srv.EnableEvents(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: v, S3: c}
	nextSecond := func() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond))) }

	put := func(key, tagging string) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("bytes of " + key), Tagging: aws.String(tagging)}); err != nil {
			t.Fatal(err)
		}
	}
	put("late", "stage=first")
	put("steady", "stage=first")
	created := receive(t, ch, 2)
	nextSecond()
	before := time.Now().UTC().Truncate(time.Second)
	nextSecond()
	if _, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String("late"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("stage"), Value: aws.String("second")}}}}); err != nil {
		t.Fatal(err)
	}
	retagged := receive(t, ch, 1)
	nextSecond()
	after := time.Now().UTC().Truncate(time.Second)

	// The tag change's event first, then both creations: "late"'s capture
	// reads the changed tags.
	for _, batch := range [][]event.Change{retagged, created} {
		res, _, err := j.Ingest(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("ingest %+v: %v", r.Change, r.Err)
			}
		}
	}

	r := &restore.Restorer{S3: c}
	run := func(at time.Time) (*restore.Report, map[string]string) {
		t.Helper()
		target := srv.BucketName(t)
		rep, err := r.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: target, CreateBucket: true, AllowIncomplete: true})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(target), Key: aws.String("late")})
		if err != nil {
			t.Fatal(err)
		}
		tags := map[string]string{}
		for _, tg := range out.TagSet {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return rep, tags
	}

	rep, tags := run(before)
	if rep.State != restore.StatePartial || len(rep.UncertainKeys) != 1 || rep.UncertainKeys[0].Key != "late" ||
		!strings.Contains(rep.UncertainKeys[0].Uncertain, "tags") {
		t.Errorf("restore as of %s, before the tag change: want PARTIAL naming only %q for its tags:\n%s", before, "late", rep.Text())
	}
	if want := map[string]string{"stage": "second"}; !maps.Equal(tags, want) {
		t.Errorf("restore as of %s restored tags %v, want the tags read (%v)", before, tags, want)
	}
	rep, tags = run(after)
	if rep.State != restore.StateCompleted || len(rep.UncertainKeys) != 0 {
		t.Errorf("restore as of %s, after the tag change: want COMPLETED with nothing uncertain:\n%s", after, rep.Text())
	}
	if want := map[string]string{"stage": "second"}; !maps.Equal(tags, want) {
		t.Errorf("restore as of %s restored tags %v, want %v", after, tags, want)
	}
}
