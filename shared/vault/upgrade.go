package vault

import (
	"context"
	"fmt"
	"time"
)

// Upgrading a format 1 vault to format 2 (`bucketvault vault upgrade`):
//
//  1. each bucket with a journal gets its index (If-None-Match: a bucket
//     that has one is done), adopting format 1's newest sound run as it
//     is (its manifest and shards stay where they are; the index names
//     them), so nothing is rewritten and the upgrade costs a few requests
//     per bucket whatever the journal's size;
//  2. the descriptor says formatVersion 2 (If-Match on the version read).
//
// Readers take a bucket's index wherever it exists, whatever the
// descriptor says, and read the segments after its cut, format 1's
// included: a format 1 writer still running while the upgrade runs loses
// nothing. Run again, the upgrade goes on where it stopped; on a format 2
// vault it changes nothing.

// UpgradeReport says what an upgrade did.
type UpgradeReport struct {
	Vault   string          `json:"vault"`
	From    int             `json:"from"`
	To      int             `json:"to"`
	Buckets []UpgradeBucket `json:"buckets,omitempty"`
	// Already: the vault was at FormatVersion; nothing was changed.
	Already bool `json:"already,omitempty"`
}

// UpgradeBucket is one bucket's journal index as the upgrade left it.
type UpgradeBucket struct {
	Bucket  string `json:"bucket"`
	Cut     string `json:"cut,omitempty"` // the adopted run's
	Records int64  `json:"records"`       // in the adopted run
	// Existed: the bucket had its index already (an earlier, interrupted
	// upgrade's).
	Existed bool     `json:"existed,omitempty"`
	Damage  []string `json:"damage,omitempty"` // format 1 runs passed over (the segments are read instead)
}

// upgradeFault, when set (tests), is called after each step of an
// upgrade; an error it returns stops the upgrade there, as a crash would.
var upgradeFault func(step string) error

// Upgrade brings the vault to FormatVersion (see above).
func (v *Vault) Upgrade(ctx context.Context) (*UpgradeReport, error) {
	rep := &UpgradeReport{Vault: v.Bucket, From: v.Descriptor.FormatVersion, To: FormatVersion}
	if v.Descriptor.FormatVersion >= FormatVersion {
		rep.Already = true
		return rep, nil
	}
	buckets, err := v.journalBuckets(ctx)
	if err != nil {
		return rep, err
	}
	for _, b := range buckets {
		ub, err := v.upgradeBucket(ctx, b)
		if err != nil {
			return rep, fmt.Errorf("upgrade the journal of %s: %w", b, err)
		}
		rep.Buckets = append(rep.Buckets, ub)
		if upgradeFault != nil {
			if err := upgradeFault("bucket"); err != nil {
				return rep, err
			}
		}
	}
	var d Descriptor
	etag, err := v.getJSONETag(ctx, DescriptorKey, &d)
	if err != nil {
		return rep, err
	}
	if d.FormatVersion != v.Descriptor.FormatVersion {
		return rep, &ConflictError{Key: DescriptorKey}
	}
	d.FormatVersion = FormatVersion
	now := time.Now().UTC().Truncate(time.Second)
	d.UpgradedAt, d.UpgradedFrom = &now, rep.From
	if _, err := v.putJSONIf(ctx, DescriptorKey, d, etag); err != nil {
		return rep, err
	}
	v.Descriptor = d
	if v.Descriptor.RetentionDays == 0 {
		v.Descriptor.RetentionDays = DefaultRetentionDays
	}
	return rep, nil
}

func (v *Vault) upgradeBucket(ctx context.Context, bucket string) (UpgradeBucket, error) {
	ub := UpgradeBucket{Bucket: bucket}
	idx, err := v.Index(ctx, bucket)
	if err != nil {
		return ub, err
	}
	if idx.etag != "" {
		ub.Existed, ub.Cut = true, idx.Cut
		return ub, nil
	}
	run, err := v.LatestRun(ctx, bucket)
	if err != nil {
		return ub, err
	}
	if run != nil {
		for _, d := range run.damage {
			ub.Damage = append(ub.Damage, d.String())
		}
		if !run.noRun {
			idx.Runs = []IndexRun{adoptRun(run)}
			idx.Cut = run.Cut
			idx.Upgraded = true
			ub.Cut, ub.Records = run.Cut, run.Records
		}
	}
	if err := v.putIndex(ctx, idx); err != nil {
		return ub, err
	}
	return ub, nil
}
