package vault

import (
	"context"
	"fmt"
	"slices"
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

// DroppedRun is a run RepairRuns set aside because a shard of it is lost:
// every segment it merged is still in the vault, so readers read them
// instead, and the next compaction writes the run again from them.
type DroppedRun struct {
	Bucket   string `json:"bucket"`
	Run      string `json:"run"`
	Segments int    `json:"segments"`
	Shard    string `json:"lostShard"`
}

// Holds says whether the vault object key is one of the dropped run's.
func (d DroppedRun) Holds(key string) bool {
	return strings.HasPrefix(key, runsPfx+d.Bucket+"/"+d.Run+"/")
}

// RepairRuns sets aside every run a lost shard of which Verify found, when
// the segments it merged are all still there. In a vault with a journal
// index it takes the run, and every newer run, out of the index (If-Match)
// and moves the cut back to where the run began, so readers read those
// segments and the next compaction merges them again; in a format 1 vault
// it hides the run's manifest behind a delete marker (its versions stay),
// so readers take the run before it. A run whose segments are not all
// there stays lost. With dry, it changes nothing.
func (v *Vault) RepairRuns(ctx context.Context, rep *VerifyReport, dry bool) ([]DroppedRun, error) {
	var dropped []DroppedRun
	done := map[string]bool{}
	for _, d := range rep.LostJournal {
		rest, ok := strings.CutPrefix(d.Object, runsPfx)
		parts := strings.Split(rest, "/")
		if !ok || len(parts) != 3 {
			continue
		}
		bucket, id := parts[0], parts[1]
		if done[bucket+"/"+id] {
			continue
		}
		done[bucket+"/"+id] = true
		idx, err := v.Index(ctx, bucket)
		if err != nil {
			return dropped, err
		}
		refs, err := v.Segments(ctx, bucket)
		if err != nil {
			return dropped, err
		}
		count := func(from, to string) int {
			n := 0
			for _, r := range refs {
				if r.ID > from && r.ID <= to {
					n++
				}
			}
			return n
		}
		if idx.etag == "" {
			m, _, err := v.readRun(ctx, bucket, runManifestKey(bucket, id))
			if err != nil {
				return dropped, err
			}
			if m == nil || count(m.Previous, m.Cut) != m.Segments {
				continue
			}
			if !dry {
				key := runManifestKey(bucket, id)
				if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)}); err != nil {
					return dropped, fmt.Errorf("set aside run s3://%s/%s: %w", v.Bucket, key, err)
				}
			}
			dropped = append(dropped, DroppedRun{Bucket: bucket, Run: id, Segments: m.Segments, Shard: d.Object})
			continue
		}
		i := slices.IndexFunc(idx.Runs, func(r IndexRun) bool {
			return slices.ContainsFunc(r.Shards, func(sh RunShard) bool { return sh.Key == d.Object })
		})
		if i < 0 {
			continue // not in the index (any more)
		}
		run, later := idx.Runs[i], idx.Runs[i:]
		want := 0
		for _, r := range later {
			want += r.Segments
		}
		if !run.Folded.IsZero() || count(run.From, idx.Cut) != want {
			continue // what it holds is not all in segments: lost
		}
		if !dry {
			next := *idx
			next.Runs = slices.Clone(idx.Runs[:i])
			next.Cut = run.From
			if err := v.putIndex(ctx, &next); err != nil {
				return dropped, err
			}
		}
		dropped = append(dropped, DroppedRun{Bucket: bucket, Run: run.ID, Segments: run.Segments, Shard: d.Object})
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
