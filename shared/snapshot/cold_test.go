package snapshot_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestWarmSnapshotAfterAColdPointCopiesAnew: a snapshot taken after the
// bucket's only point went COLD (its data tagged for the cold tier, so
// the vault's lifecycle moves it, to Deep Archive perhaps) carries
// nothing from it: it copies every version again, and none of the data
// its WARM point references is tagged. It restores the bucket exactly,
// without the tier's tag.
func TestWarmSnapshotAfterAColdPointCopiesAnew(t *testing.T) {
	e := setup(t)
	grace, reuse, bound, least := vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize
	// Expiry tags at once, whatever the size; writers reuse no data
	// object they did not write this instant (GCGrace >= ReuseLimit +
	// WriterBound, at zero).
	vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize = 0, 0, 0, 0
	t.Cleanup(func() {
		vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize = grace, reuse, bound, least
	})
	for i := range 4 {
		e.put(t, fmt.Sprintf("k/%d", i), fmt.Sprint("v", i), func(in *s3.PutObjectInput) { in.Tagging = aws.String("team=t" + fmt.Sprint(i)) })
	}
	e.put(t, "k/big", strings.Repeat("x", 300<<10))
	want := e.capture(t)
	eng := e.engine(e.c)
	cold := e.run(t, eng, snapshot.Job{Lifecycle: &vault.Lifecycle{MoveToColdStorageAfterDays: 1, DeleteAfterDays: 91}})
	sp, err := e.v.Snapshot(e.ctx, e.bucket, cold.RecoveryPointID)
	if err != nil {
		t.Fatal(err)
	}
	// Two and three days on: COLD, then its data tagged.
	for _, days := range []int{2, 3} {
		rep, err := e.v.Expire(e.ctx, vault.ExpireOptions{Now: sp.CreationDate.AddDate(0, 0, days)})
		if err != nil {
			t.Fatal(err)
		}
		if days == 3 && rep.Cold.Tagged == 0 {
			t.Fatalf("expiry tagged nothing: %+v", rep.Cold)
		}
	}
	if e.tagged(t, cold.RecoveryPointID) == 0 {
		t.Fatal("the COLD point's data is not tagged")
	}

	warm := e.run(t, eng, snapshot.Job{Lifecycle: &vault.Lifecycle{DeleteAfterDays: 400}})
	if warm.State != snapshot.StateCompleted || warm.Totals.Copied != int64(len(want)) {
		t.Fatalf("the warm snapshot: %s %+v, want all %d objects copied", warm.State, warm.Totals, len(want))
	}
	wp, err := e.v.Snapshot(e.ctx, e.bucket, warm.RecoveryPointID)
	if err != nil || wp.IsCold() {
		t.Fatalf("the warm point: %+v %v", wp, err)
	}
	if n := e.tagged(t, warm.RecoveryPointID); n != 0 {
		t.Errorf("the WARM point references %d data objects tagged for the cold tier", n)
	}
	got, _ := e.restoreInto(t, warm.RecoveryPointID, time.Time{})
	if d := inspect.Diff(want, got); len(d) > 0 {
		t.Errorf("restore of the warm point differs:\n%s", strings.Join(d, "\n"))
	}
}

// tagged counts the data objects point rp references that carry the
// cold tier's tag.
func (e env) tagged(t *testing.T, rp string) int {
	t.Helper()
	seen, n := map[string]bool{}, 0
	for _, r := range e.manifest(t, rp) {
		if r.Data == "" || seen[r.Data] {
			continue
		}
		seen[r.Data] = true
		out, err := e.c.GetObjectTagging(e.ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(e.v.Bucket), Key: aws.String(r.Data)})
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range out.TagSet {
			if aws.ToString(tag.Key) == vault.TierTag && aws.ToString(tag.Value) == vault.TierCold {
				n++
			}
		}
	}
	return n
}
