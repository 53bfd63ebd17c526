package restore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestLostSegmentBoundsItsDoubt: a segment no version of which is good
// held changes made by the time its id names, no later. A key whose state
// as of T is decided by a change made after that (with the clock skew
// allowed) is restored and vouched for; the rest of the lost segment's
// range is named, and the report says which changes it cannot vouch for.
func TestLostSegmentBoundsItsDoubt(t *testing.T) {
	f := newJournalFixture(t)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	for _, k := range []string{"a/1", "b/1"} {
		f.put(t, f.bucket, k, "changed after the lost segment was written")
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := f.j.Reconcile(f.ctx, f.bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	wm, err := f.v.CompleteThrough(f.ctx, f.bucket)
	if err != nil || wm == nil {
		t.Fatalf("watermark %v, %v", wm, err)
	}
	f.at = *wm
	f.damage(t, f.segs[0].Key, true) // a/1, a/2, a/3 as first journaled
	want := sha256.Sum256([]byte("changed after the lost segment was written"))

	defer func(s time.Duration) { vault.DamageClockSkew = s }(vault.DamageClockSkew)
	vault.DamageClockSkew = 0
	rep, got := f.restore(t)
	if rep.State != restore.StatePartial || len(rep.Unvouched) != 1 || rep.Unvouched[0].JournaledBy.IsZero() {
		t.Fatalf("restore with a lost segment: want PARTIAL naming the segment and when it was written:\n%s", rep.Text())
	}
	if by := rep.Unvouched[0].JournaledBy; by.After(time.Now()) || time.Since(by) > 5*time.Minute {
		t.Errorf("the lost segment held changes made by %s: want the time it was written, a few seconds ago", by)
	}
	named := uncertainKeys(rep)
	for _, k := range []string{"a/1", "b/1"} {
		if got[k] != hex.EncodeToString(want[:]) || slices.Contains(named, k) {
			t.Errorf("%s, changed after the lost segment was written: restored %t, named uncertain %t; want it restored and vouched for\n%s",
				k, got[k] == hex.EncodeToString(want[:]), slices.Contains(named, k), rep.Text())
		}
	}
	// With S3's clock allowed to run 5 minutes ahead, a change seconds
	// after the segment's write decides nothing.
	vault.DamageClockSkew = 5 * time.Minute
	rep, got = f.restore(t)
	if named := uncertainKeys(rep); !slices.Contains(named, "a/1") || got["a/1"] != "" {
		t.Errorf("with 5 minutes of skew allowed, a/1 (changed seconds after the lost segment): named %v, restored %t; want it named and not written", named, got["a/1"] != "")
	}
}
