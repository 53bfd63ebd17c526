package vault

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault/vaultfixture"
)

// TestUpgradeFormat1Vault: the format 1 fixture (written by the format 1
// engine) reads as format 1 read it; compaction and expiry ask for the
// upgrade; an upgrade stopped after a bucket's index goes on when run
// again; the journal reads the same at every recorded time before, during
// and after, and after a compaction on top; a second upgrade changes
// nothing.
func TestUpgradeFormat1Vault(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	f, err := vaultfixture.Load(ctx, c, srv.BucketName(t), "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(ctx, c, f.VaultBucket)
	if err != nil || v.Descriptor.FormatVersion != 1 {
		t.Fatalf("open the format 1 vault: %+v %v", v, err)
	}
	bucket := f.SourceName
	states := func() map[time.Time]map[string]string {
		out := map[time.Time]map[string]string{}
		for _, at := range f.Times {
			out[at] = statesAt(t, ctx, v, bucket, at)
		}
		return out
	}
	before := states()
	if len(before[f.Times[len(f.Times)-1]]) == 0 {
		t.Fatal("the fixture's journal reads empty")
	}
	var need *UpgradeNeededError
	if _, err := v.Compact(ctx, bucket, time.Now()); !errors.As(err, &need) {
		t.Errorf("compaction of a format 1 vault: %v, want UpgradeNeededError", err)
	}
	if _, err := v.Expire(ctx, ExpireOptions{DryRun: true}); !errors.As(err, &need) {
		t.Errorf("expiry of a format 1 vault: %v, want UpgradeNeededError", err)
	}

	crash := errors.New("crash")
	upgradeFault = func(string) error { return crash }
	defer func() { upgradeFault = nil }()
	if _, err := v.Upgrade(ctx); !errors.Is(err, crash) {
		t.Fatalf("upgrade with a crash: %v", err)
	}
	upgradeFault = nil
	if v, err = Open(ctx, c, f.VaultBucket); err != nil || v.Descriptor.FormatVersion != 1 {
		t.Fatalf("after the crash: %+v %v", v.Descriptor, err)
	}
	if got := states(); !reflect.DeepEqual(got, before) {
		t.Fatalf("the journal reads otherwise half upgraded")
	}
	rep, err := v.Upgrade(ctx)
	if err != nil || rep.From != 1 || rep.To != FormatVersion || len(rep.Buckets) != 1 || !rep.Buckets[0].Existed {
		t.Fatalf("upgrade after the crash: %+v %v", rep, err)
	}
	if v, err = Open(ctx, c, f.VaultBucket); err != nil || v.Descriptor.FormatVersion != FormatVersion || v.Descriptor.UpgradedFrom != 1 {
		t.Fatalf("after the upgrade: %+v %v", v.Descriptor, err)
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil || len(idx.Runs) != 1 || idx.Cut != f.Journal.RunCut || !idx.Upgraded {
		t.Fatalf("index %+v %v; want the format 1 run up to %s adopted", idx, err, f.Journal.RunCut)
	}
	if got := states(); !reflect.DeepEqual(got, before) {
		t.Fatalf("the journal reads otherwise after the upgrade")
	}
	if again, err := v.Upgrade(ctx); err != nil || !again.Already {
		t.Fatalf("a second upgrade: %+v %v", again, err)
	}
	defer func(lag time.Duration) { CompactionLag = lag }(CompactionLag)
	CompactionLag = 0
	if st, err := v.Compact(ctx, bucket, time.Now()); err != nil || st.Segments != f.Journal.SegmentsAfterCut {
		t.Fatalf("compaction after the upgrade: %+v %v; want the %d segments after the cut", st, err, f.Journal.SegmentsAfterCut)
	}
	if got := states(); !reflect.DeepEqual(got, before) {
		t.Fatalf("the journal reads otherwise after a compaction")
	}
	if rep, err := v.Verify(ctx, 8, true, nil); err != nil || !rep.OK() {
		t.Fatalf("verify after the upgrade: %+v %v", rep, err)
	}
}
