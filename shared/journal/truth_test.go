package journal_test

import (
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

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// stateNow reads the journal's state of every key of bucket as of at.
func stateNow(t *testing.T, e env, at time.Time) map[string]vault.Object {
	t.Helper()
	m, err := e.v.OpenJournal(e.ctx, e.bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]vault.Object{}
	for {
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if obj, ok := vault.StateAt(recs, at); ok {
			out[key] = obj
		}
	}
}

// classicEvent is an S3 event notification of one change, as S3 sends it.
func classicEvent(name, bucket, key, versionID string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":%q,"eventName":%q,
"s3":{"s3SchemaVersion":"1.0","bucket":{"name":%q,"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"versionId":%q,"sequencer":"0066F00000000000FF"}}}]}`,
		at.UTC().Format(time.RFC3339Nano), name, bucket, bucket, key, versionID)
}

// TestDeletionEventsAreCheckedAgainstTheBucket: a deletion event that
// names a version the bucket still holds (ObjectRemoved:DeleteMarkerCreated,
// ObjectRemoved:Delete, LifecycleExpiration:Delete) erases nothing: the
// key stays in the journal's state, and its listing is what is journaled.
// A true permanent deletion is still journaled as one.
func TestDeletionEventsAreCheckedAgainstTheBucket(t *testing.T) {
	for _, name := range []string{"ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:Delete", "LifecycleExpiration:Delete"} {
		t.Run(name, func(t *testing.T) {
			e := setup(t)
			j := &journal.Journal{Vault: e.v, S3: e.c}
			live := aws.ToString(e.put(t, "live", "still here").VersionId)
			if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
				t.Fatal(err)
			}
			changes, err := event.Decode(classicEvent(name, e.bucket, "live", live, time.Now()))
			if err != nil || len(changes) != 1 {
				t.Fatalf("decode: %v %v", changes, err)
			}
			res, _, err := j.Ingest(e.ctx, changes)
			if err != nil || res[0].Err != nil {
				t.Fatalf("ingest: %v %v", err, res[0].Err)
			}
			for _, r := range res[0].Records {
				if (r.Op == vault.OpPurge || r.Op == vault.OpDeleteMarker) && r.VersionID == live {
					t.Errorf("journaled %s of the live version", r.Op)
				}
			}
			time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
			if got, ok := stateNow(t, e, time.Now())["live"]; !ok || got.Version.VersionID != live {
				t.Errorf("state of live after the event: %+v, %v; want version %s", got.Version, ok, live)
			}
			// A reconcile after it finds nothing to add and the state holds.
			p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Added != 0 {
				t.Errorf("reconcile added %d records after the event", p.Added)
			}
		})
	}
	t.Run("true permanent deletion", func(t *testing.T) {
		e := setup(t)
		j := &journal.Journal{Vault: e.v, S3: e.c}
		v1 := aws.ToString(e.put(t, "k", "one").VersionId)
		if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
			t.Fatal(err)
		}
		e.deleteVersion(t, "k", v1)
		changes, err := event.Decode(classicEvent("ObjectRemoved:Delete", e.bucket, "k", v1, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := j.Ingest(e.ctx, changes)
		if err != nil || res[0].Err != nil {
			t.Fatalf("ingest: %v %v", err, res[0].Err)
		}
		if len(res[0].Records) != 1 || res[0].Records[0].Op != vault.OpPurge {
			t.Errorf("records %+v, want one purge", res[0].Records)
		}
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		if _, ok := stateNow(t, e, time.Now())["k"]; ok {
			t.Errorf("k is still in the state after its only version was deleted for good")
		}
	})
}

func (e env) deleteVersion(t *testing.T, key, versionID string) {
	t.Helper()
	if _, err := e.c.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), VersionId: aws.String(versionID)}); err != nil {
		t.Fatal(err)
	}
}

// TestReconcileCorrectsTheJournal: the listing is the truth, in both
// directions. A journal that says a listed version was deleted for good,
// or that a listed version is a delete marker (records a wrong event
// left), is corrected by the next reconcile: the key is back in the state
// as the bucket holds it, and a second reconcile finds nothing to do.
func TestReconcileCorrectsTheJournal(t *testing.T) {
	e := setup(t)
	j := &journal.Journal{Vault: e.v, S3: e.c}
	a := aws.ToString(e.put(t, "a", "version of a").VersionId)
	b := aws.ToString(e.put(t, "b", "version of b").VersionId)
	if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	// What a wrong event journaled before events were checked: a purge of
	// a's live version, and b's live version id as a delete marker.
	now := time.Now().UTC()
	if _, err := e.v.WriteSegment(e.ctx, e.bucket, []vault.Record{
		{Op: vault.OpPurge, Key: "a", VersionID: a, Time: now, Origin: vault.OriginEvent},
	}); err != nil {
		t.Fatal(err)
	}
	// A marker record with b's id dated before b's version record: the
	// earliest record of an id would otherwise win.
	if _, err := e.v.WriteSegment(e.ctx, e.bucket, []vault.Record{
		{Op: vault.OpDeleteMarker, Key: "b", VersionID: b, Time: now.Add(-time.Hour), Origin: vault.OriginEvent},
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Added == 0 {
		t.Errorf("reconcile added nothing to a journal that contradicts the listing")
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	st := stateNow(t, e, time.Now())
	for key, want := range map[string]string{"a": a, "b": b} {
		if got, ok := st[key]; !ok || got.Version.VersionID != want {
			t.Errorf("state of %s after reconcile: %+v, %v; want version %s", key, got.Version, ok, want)
		}
	}
	p, err = j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Added != 0 {
		t.Errorf("a second reconcile added %d records", p.Added)
	}
	// A restore as of now puts both back (the check the user sees).
	rep, err := (&restore.Restorer{S3: e.c}).Run(e.ctx, restore.Request{Vault: e.v.Bucket, Bucket: e.bucket, TargetBucket: e.bucket + "-r", CreateBucket: true, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restored != 2 || rep.Failed != 0 {
		t.Errorf("restore: %+v, want a and b", rep)
	}
}

// TestReconcileOfANullVersionSettles: a "null" version (written before
// versioning was enabled) deleted for good is purged once; later
// reconciles find nothing to add.
func TestReconcileOfANullVersionSettles(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := env{ctx: ctx, srv: srv, c: c, bucket: srv.NewBucket(t, false), v: v}
	e.put(t, "n", "written before versioning")
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(e.bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	if p, err := j.Reconcile(ctx, e.bucket, journal.ReconcileOptions{}); err != nil || p.Added != 1 {
		t.Fatalf("first reconcile: %+v, %v; want the null version", p, err)
	}
	e.deleteVersion(t, "n", "null")
	for i, want := range []int64{1, 0, 0} {
		p, err := j.Reconcile(ctx, e.bucket, journal.ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Added != want {
			t.Errorf("reconcile %d after the deletion added %d records, want %d", i+1, p.Added, want)
		}
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, ok := stateNow(t, e, time.Now())["n"]; ok {
		t.Errorf("n is in the state after its null version was deleted for good")
	}
}

// TestEventsOfAnUnprotectedBucketAreRefused: a vault journals only the
// buckets it protects; another bucket's events are refused with the
// reason, not journaled, and not delivered again.
func TestEventsOfAnUnprotectedBucketAreRefused(t *testing.T) {
	e := setup(t)
	other := e.srv.NewBucket(t, true)
	out, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(other), Key: aws.String("k"), Body: strings.NewReader("not ours")})
	if err != nil {
		t.Fatal(err)
	}
	mine := e.put(t, "k", "ours")
	j := &journal.Journal{Vault: e.v, S3: e.c}
	res, st, err := j.Ingest(e.ctx, []event.Change{
		{Kind: event.Created, Bucket: other, Key: "k", VersionID: aws.ToString(out.VersionId), Time: time.Now()},
		{Kind: event.Created, Bucket: e.bucket, Key: "k", VersionID: aws.ToString(mine.VersionId), Time: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || !strings.Contains(res[0].Refused, "not protected") || len(res[0].Records) != 0 {
		t.Errorf("the other bucket's change: %+v; want it refused with the reason", res[0])
	}
	if res[1].Err != nil || res[1].Refused != "" || len(res[1].Records) != 1 {
		t.Errorf("the protected bucket's change: %+v; want it journaled", res[1])
	}
	if st.Refused != 1 || len(st.Segments) != 1 {
		t.Errorf("stats %+v: want 1 refused, 1 segment", st)
	}
	if has, err := e.v.HasJournal(e.ctx, other); err != nil || has {
		t.Errorf("the vault holds a journal of the unprotected bucket: %v, %v", has, err)
	}
}

// TestEventsNamingImpossibleKeysAreRefused: an event naming a key S3
// cannot hold (over 1,024 bytes, not UTF-8) is refused with a message
// that says so, not failed with a raw 400 and delivered again forever.
func TestEventsNamingImpossibleKeysAreRefused(t *testing.T) {
	e := setup(t)
	j := &journal.Journal{Vault: e.v, S3: e.c}
	res, st, err := j.Ingest(e.ctx, []event.Change{
		{Kind: event.Created, Name: "ObjectCreated:Put", Bucket: e.bucket, Key: strings.Repeat("k", 1025), VersionID: "v", Time: time.Now()},
		{Kind: event.Created, Name: "ObjectCreated:Put", Bucket: e.bucket, Key: "caf\xe9", VersionID: "v", Time: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"1,024 bytes", "UTF-8"} {
		if res[i].Err != nil || !strings.Contains(res[i].Refused, want) {
			t.Errorf("change %d: err %v, refused %q; want it refused saying %q", i, res[i].Err, res[i].Refused, want)
		}
	}
	if st.Refused != 2 || st.Failed != 0 {
		t.Errorf("stats %+v: want 2 refused, none failed", st)
	}
}

// TestRemovedTagsStayRemoved: a tag change to no tags at all is journaled
// as an empty tag set, and reads back as one (not as "unknown", which a
// restore of a snapshot's copy would fill with the tags the copy has).
func TestRemovedTagsStayRemoved(t *testing.T) {
	e := setup(t)
	out, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), Body: strings.NewReader("x"), Tagging: aws.String("a=1")})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.DeleteObjectTagging(e.ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), VersionId: out.VersionId}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	res, _, err := j.Ingest(e.ctx, []event.Change{{Kind: event.TagsChanged, Name: "ObjectTagging:Delete", Bucket: e.bucket, Key: "k", VersionID: aws.ToString(out.VersionId), Time: time.Now()}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("ingest: %v %v", err, res[0].Err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	got, ok := stateNow(t, e, time.Now())["k"]
	if !ok || got.Tags == nil || len(got.Tags) != 0 {
		t.Errorf("tags of k after they were removed: %v (nil %v); want an empty set, not unknown", got.Tags, got.Tags == nil)
	}
}

// TestReconcileTagsFindsALostTagChange: a tag change whose event was lost
// is found by a reconcile that reads tags, journaled with the interval it
// lies in, and a state inside that interval is uncertain, not silently
// the old or the new tags.
func TestReconcileTagsFindsALostTagChange(t *testing.T) {
	e := setup(t)
	out, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), Body: strings.NewReader("x"), Tagging: aws.String("a=1")})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	if _, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := e.c.PutObjectTagging(e.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), VersionId: out.VersionId,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("2")}}}}); err != nil {
		t.Fatal(err)
	}
	during := time.Now()
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	// Without --tags nothing finds it.
	if p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{}); err != nil || p.Added != 0 {
		t.Fatalf("reconcile: %+v %v; want nothing added", p, err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{Tags: true})
	if err != nil || p.Added != 1 {
		t.Fatalf("reconcile --tags: %+v %v; want the tag change", p, err)
	}
	if p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{Tags: true}); err != nil || p.Added != 0 {
		t.Fatalf("a second reconcile --tags: %+v %v; want nothing", p, err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	m, err := e.v.OpenJournal(e.ctx, e.bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, recs, err := m.NextKey()
	if err != nil {
		t.Fatal(err)
	}
	if obj, _ := vault.StateAt(recs, time.Now()); obj.Tags["a"] != "2" {
		t.Errorf("tags now: %v; want a=2", obj.Tags)
	}
	if u := vault.UncertainAt(recs, during); !strings.Contains(u, "tags changed") {
		t.Errorf("state during the change: uncertain %q; want the tags named uncertain", u)
	}
}

// TestReconcileReadsTagsEvery: the scheduled reconcile reads tags once the
// last run that read them is TagsEvery old (or none did), and not in
// between; a run keeps the choice it started with when it resumes, so a
// run that read no tags in its first part never claims tagsThrough.
func TestReconcileReadsTagsEvery(t *testing.T) {
	e := setup(t)
	out, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), Body: strings.NewReader("x"), Tagging: aws.String("a=1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"l", "m"} {
		if _, err := e.c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	j := &journal.Journal{Vault: e.v, S3: e.c}
	week := 7 * 24 * time.Hour
	p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{TagsEvery: week})
	if err != nil || !p.ReadsTags || p.TagsThrough == nil {
		t.Fatalf("first reconcile: %+v %v; want it to read tags (none did before)", p, err)
	}
	first := *p.TagsThrough
	retag := func(v string) {
		t.Helper()
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		if _, err := e.c.PutObjectTagging(e.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(e.bucket), Key: aws.String("k"), VersionId: out.VersionId,
			Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String(v)}}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	}
	retag("2") // its event lost
	if p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{TagsEvery: week}); err != nil || p.ReadsTags || p.Added != 0 || !p.TagsThrough.Equal(first) {
		t.Fatalf("reconcile within the week: %+v %v; want no tags read, nothing added, tagsThrough kept", p, err)
	}
	if p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{TagsEvery: time.Second}); err != nil || !p.ReadsTags || p.Added != 1 || !p.TagsThrough.After(first) {
		t.Fatalf("reconcile past TagsEvery: %+v %v; want the tag change found and tagsThrough advanced", p, err)
	}

	// A run stopped after its first key, started without tags, resumed
	// by a run that asks for them: it finishes without reading tags and
	// leaves tagsThrough where it was.
	retag("3")
	p, err = j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{PageSize: 1, StopAt: time.Now()})
	if err != nil || p.CompletedAt != nil || p.ReadsTags {
		t.Fatalf("stopped reconcile: %+v %v; want it unfinished, reading no tags", p, err)
	}
	through, started := *p.TagsThrough, p.StartedAt
	p, err = j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{Tags: true})
	if err != nil || p.CompletedAt == nil || p.ReadsTags || !p.TagsThrough.Equal(through) {
		t.Fatalf("resumed with Tags: %+v %v; want it finished reading no tags, tagsThrough %s kept", p, err, through)
	}
	// The resumed run vouches for the journal from when its first part
	// started listing (a Lambda invocation's run taken up by the next).
	if want := started.Truncate(time.Second).Add(-time.Second); p.CompleteThrough == nil || !p.CompleteThrough.Equal(want) {
		t.Errorf("resumed run's watermark %v; want the second before its first part started, %s", p.CompleteThrough, want)
	}
	if p, err := j.Reconcile(e.ctx, e.bucket, journal.ReconcileOptions{Tags: true}); err != nil || !p.ReadsTags || p.Added != 1 {
		t.Fatalf("the next reconcile with Tags: %+v %v; want the change to a=3", p, err)
	}
}
