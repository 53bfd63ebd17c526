package vault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Repair is a damaged vault object with a good older version.
type Repair struct {
	Object      string `json:"object"`
	GoodVersion string `json:"goodVersion"`
	Reason      string `json:"reason"`
	// Removed lists the versions and delete markers above the good
	// version: what Repair deletes (or, dry, would delete).
	Removed []string `json:"removed,omitempty"`
}

// DroppedRun is a run Repair set aside because a shard of it is lost:
// every segment it merged is still in the vault, so readers read them
// (and the run before it) instead, and the next compaction writes the run
// again from them.
type DroppedRun struct {
	Bucket   string `json:"bucket"`
	Cut      string `json:"cut"`
	Segments int    `json:"segments"`
	Shard    string `json:"lostShard"`
}

// RepairRuns sets aside every run a lost shard of which Verify found,
// when the segments it merged are all still there: it hides the run's
// manifest behind a delete marker (its versions stay), so readers take the
// run before it and the segments after that one's cut. A run whose
// segments are not all there stays lost. With dry, it changes nothing.
func (v *Vault) RepairRuns(ctx context.Context, rep *VerifyReport, dry bool) ([]DroppedRun, error) {
	var dropped []DroppedRun
	done := map[string]bool{}
	for _, d := range rep.LostJournal {
		rest, ok := strings.CutPrefix(d.Object, runsPfx)
		parts := strings.Split(rest, "/")
		if !ok || len(parts) != 3 {
			continue
		}
		bucket, cut := parts[0], parts[1]
		if done[bucket+"/"+cut] {
			continue
		}
		done[bucket+"/"+cut] = true
		key := runManifestKey(bucket, cut)
		m, _, err := v.readRun(ctx, bucket, key)
		if err != nil {
			return dropped, err
		}
		if m == nil {
			continue
		}
		refs, err := v.Segments(ctx, bucket)
		if err != nil {
			return dropped, err
		}
		n := 0
		for _, r := range refs {
			if r.ID > m.Previous && r.ID <= m.Cut {
				n++
			}
		}
		if n != m.Segments {
			continue
		}
		if !dry {
			if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)}); err != nil {
				return dropped, fmt.Errorf("set aside run s3://%s/%s: %w", v.Bucket, key, err)
			}
		}
		dropped = append(dropped, DroppedRun{Bucket: bucket, Cut: cut, Segments: n, Shard: d.Object})
	}
	return dropped, nil
}

// Repair puts back the good version of every repairable object Verify
// found: it deletes the versions and delete markers above it (the damage:
// another PUT, a delete marker), so the good version is current again
// with its own ETag, which the records name. Nothing else is touched; an
// object whose versions changed since Verify read them is left alone and
// reported. With dry, it only fills Removed. Lost objects (no good
// version) cannot be repaired here: rep.Lost lists them, and a reconcile
// journals again what their buckets still hold.
func (v *Vault) Repair(ctx context.Context, rep *VerifyReport, dry bool) ([]Repair, error) {
	var done []Repair
	for _, r := range rep.Repairable {
		above, err := v.versionsAbove(ctx, r.Object, r.GoodVersion)
		if err != nil {
			return done, err
		}
		r.Removed = above
		if !dry {
			for _, id := range above {
				if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(r.Object), VersionId: aws.String(id)}); err != nil {
					return done, fmt.Errorf("repair s3://%s/%s: delete damaged version %s: %w", v.Bucket, r.Object, id, err)
				}
			}
		}
		done = append(done, r)
	}
	return done, nil
}

// versionsAbove lists the versions and delete markers of key newer than
// version good; an error when good is not among them. S3 lists a key's
// versions newest first; delete markers come in their own list, placed by
// their time.
func (v *Vault) versionsAbove(ctx context.Context, key, good string) ([]string, error) {
	vs, markers, err := v.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	var above []string
	var goodAt *time.Time
	for _, o := range vs { // newest first: those before good are above it
		if o.id == good {
			goodAt = &o.modified
			break
		}
		above = append(above, o.id)
	}
	if goodAt == nil {
		return nil, fmt.Errorf("repair s3://%s/%s: its good version %s is gone since verify read it", v.Bucket, key, good)
	}
	for _, m := range markers {
		if !m.modified.Before(*goodAt) {
			above = append(above, m.id)
		}
	}
	return above, nil
}
