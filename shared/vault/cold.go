package vault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// The cold tier (docs/vault-format.md, "Cold tier"). A snapshot recovery
// point whose CalculatedLifecycle.MoveToColdStorageAt has come becomes
// COLD (its record's StorageClass, changed with If-Match, and ColdSince).
// Expiry's collection then tags each data object that only COLD points
// (COLD for at least ColdSettle) reference with TierTag=TierCold, on the
// version itself (PutObjectTagging: no new version, allowed under S3
// Object Lock), and the vault bucket's lifecycle rule for that tag moves
// it to the cold storage class the deployment chose (Glacier Instant
// Retrieval by default, or Deep Archive). A transition keeps the version,
// its bytes, its ETag and its retention.
//
// What never moves: data the journal references (every record inside
// the window, and the record current at the floor), data a WARM point or
// a running job references (its fragments, and the base its CREATING
// record names, COLD or not), and data written within GCGrace (a writer
// may still reference it: no store references data older than
// ReuseLimit). Nothing warm can come to reference a tagged object later:
// no store references it, and a snapshot never carries records from a
// COLD point (BaseOf); it copies those versions again, to new data
// objects, which is right for every cold class (Deep Archive's data
// could not even be read without a request back).
//
// A restore from a COLD point reads the tags a data object carries
// without TierTag (restore, `carried`), so the tag never reaches a
// restored object; a restore from a point that became COLD while it ran
// has ColdSettle to finish before the tags are written.

const (
	// TierTag is the tag key of the cold tier, reserved in the vault's data
	// objects: an object whose source tags already use it stays warm.
	TierTag  = "bucketvault:tier"
	TierCold = "cold"

	// StorageWarm and StorageCold are a recovery point's StorageClass.
	StorageWarm = "WARM"
	StorageCold = "COLD"

	// maxObjectTags is S3's limit of tags on one object: an object that has
	// as many already cannot take TierTag and stays warm.
	maxObjectTags = 10
)

// ColdSettle is how long a recovery point is COLD before expiry tags its
// data. Tests shorten it.
var ColdSettle = 24 * time.Hour

// ColdMinSize is the smallest data object the cold tier moves: the vault's
// lifecycle rule moves nothing smaller than 128 KiB (S3's default minimum,
// which the stack spells out), where the transition and the colder class's
// per-object overhead cost more than they save. Smaller ones are not
// tagged (a snapshot packs small objects into packs of 16 MiB, which do
// move). Tests lower it.
var ColdMinSize int64 = 128 << 10

// ColdSummary says what an expiry run moved to the cold tier (or, dry,
// would move).
type ColdSummary struct {
	// Points became COLD in this run.
	Points []ColdPoint `json:"points,omitempty"`
	// Tagged data objects (versions) were tagged for the cold tier now,
	// Bytes their size; Pending were tagged before and await the
	// lifecycle's transition; InColdClass are listed in a cold storage
	// class already.
	Tagged      int64 `json:"tagged"`
	TaggedBytes int64 `json:"taggedBytes"`
	Pending     int64 `json:"pending,omitempty"`
	InColdClass int64 `json:"inColdClass"`
	ColdBytes   int64 `json:"coldBytes"`
	KeptWarm    int64 `json:"keptWarm,omitempty"` // versions that cannot take the tag: 10 tags already, or TierTag of their own
	// TooSmall are data objects only COLD points reference that stay in
	// their class: smaller than ColdMinSize.
	TooSmall int64 `json:"tooSmall,omitempty"`
}

// ColdPoint is a recovery point that became COLD.
type ColdPoint struct {
	Bucket              string    `json:"bucket"`
	RecoveryPointID     string    `json:"recoveryPointId"`
	MoveToColdStorageAt time.Time `json:"moveToColdStorageAt"`
}

// IsCold says whether a recovery point is in the cold tier.
func (sp *SnapshotPoint) IsCold() bool { return sp.StorageClass == StorageCold }

// coldTagged says whether expiry may have tagged a COLD point's data by
// now: the point has been COLD for ColdSettle.
func (sp *SnapshotPoint) coldTagged(now time.Time) bool {
	return sp.IsCold() && sp.ColdSince != nil && !sp.ColdSince.Add(ColdSettle).After(now)
}

// isColdClass says whether a listed storage class is one the cold tier
// moves data to.
func isColdClass(sc string) bool {
	switch types.StorageClass(sc) { // ListObjectVersions' enum names only STANDARD
	case types.StorageClassGlacierIr, types.StorageClassGlacier, types.StorageClassDeepArchive:
		return true
	}
	return false
}

// SetPointCold moves a recovery point to COLD (If-Match on the record
// read): a sealed point only, once; a lost race is a ConflictError.
func (v *Vault) SetPointCold(ctx context.Context, bucket, id string, now time.Time) error {
	key := SnapshotKey(bucket, id)
	var cur SnapshotPoint
	etag, err := v.getJSONETag(ctx, key, &cur)
	if err != nil {
		return err
	}
	if cur.IsCold() {
		return nil
	}
	if cur.Status != PointAvailable && cur.Status != PointPartial {
		return &PointTransitionError{RecoveryPointID: id, From: cur.Status, To: StorageCold}
	}
	t := now.UTC()
	cur.StorageClass, cur.ColdSince = StorageCold, &t
	_, err = v.putJSONIf(ctx, key, &cur, etag)
	return err
}

// coolPoints moves the sealed recovery points whose MoveToColdStorageAt
// has come to COLD (step 2 of Expire, with expirePoints).
func (v *Vault) coolPoints(ctx context.Context, o ExpireOptions, rep *ExpireReport) error {
	return v.eachBucketPoints(ctx, func(b string, points []SnapshotPoint) error {
		for _, sp := range points {
			cl := sp.CalculatedLifecycle
			if sp.IsCold() || cl == nil || cl.MoveToColdStorageAt == nil || cl.MoveToColdStorageAt.After(o.Now) ||
				(sp.Status != PointAvailable && sp.Status != PointPartial) {
				continue
			}
			if cl.DeleteAt != nil && !cl.DeleteAt.After(o.Now) {
				continue // it expires now
			}
			if !o.DryRun {
				if err := v.SetPointCold(ctx, b, sp.RecoveryPointID, o.Now); err != nil {
					return fmt.Errorf("move recovery point %s of %s to cold storage: %w", sp.RecoveryPointID, b, err)
				}
			}
			rep.Cold.Points = append(rep.Cold.Points, ColdPoint{Bucket: b, RecoveryPointID: sp.RecoveryPointID, MoveToColdStorageAt: *cl.MoveToColdStorageAt})
			if err := expireStep("point-cold"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Tiered references: the collection sorts each reference with a tier
// flag after a tab (less than any character of a data key, so a key's
// flags sort together, in key order): warm where any reference is warm.
const (
	refWarm = "\tw"
	refCold = "\tc"
)

// refGroups yields each referenced data key once, with whether every
// reference to it is cold.
type refGroups struct {
	it   *refIter
	pend string
	has  bool
	init bool
}

func (g *refGroups) Next() (key string, cold, ok bool) {
	if !g.init {
		g.pend, g.has = g.it.Next()
		g.init = true
	}
	if !g.has {
		return "", false, false
	}
	key, flag := splitRef(g.pend)
	cold = flag == refCold
	for {
		g.pend, g.has = g.it.Next()
		if !g.has {
			break
		}
		k, f := splitRef(g.pend)
		if k != key {
			break
		}
		cold = cold && f == refCold
	}
	return key, cold, true
}

func splitRef(r string) (key, flag string) {
	if i := strings.LastIndexByte(r, '\t'); i >= 0 {
		return r[:i], r[i:]
	}
	return r, refWarm
}

// tagger tags data object versions for the cold tier, Concurrency/4
// objects in flight.
type tagger struct {
	ctx  context.Context
	v    *Vault
	dry  bool
	g    *errgroup.Group
	gctx context.Context
	mu   sync.Mutex
	sum  ColdSummary
}

func (v *Vault) newTagger(ctx context.Context, o ExpireOptions) *tagger {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.Concurrency/4))
	return &tagger{ctx: ctx, v: v, dry: o.DryRun, g: g, gctx: gctx}
}

// add tags every version of key (size: their bytes).
func (t *tagger) add(key string, vs []types.ObjectIdentifier, size int64) error {
	if t.dry {
		t.sum.Tagged += int64(len(vs))
		t.sum.TaggedBytes += size
		return nil
	}
	if err := t.gctx.Err(); err != nil {
		return t.g.Wait()
	}
	t.g.Go(func() error {
		for _, id := range vs {
			n, err := t.v.tagCold(t.gctx, key, aws.ToString(id.VersionId))
			if err != nil {
				return err
			}
			if err := expireStep("cold-tag"); err != nil {
				return err
			}
			t.mu.Lock()
			switch n {
			case tagDone:
				t.sum.Tagged++
				t.sum.TaggedBytes += size / int64(len(vs))
			case tagWas:
				t.sum.Pending++
			case tagFull:
				t.sum.KeptWarm++
			}
			t.mu.Unlock()
		}
		return nil
	})
	return nil
}

func (t *tagger) close() (ColdSummary, error) {
	err := t.g.Wait()
	return t.sum, err
}

type tagResult int

const (
	tagDone tagResult = iota // tagged now
	tagWas                   // tagged before
	tagFull                  // cannot take the tag (S3's 10 tags, or TierTag of its own)
)

// tagCold adds TierTag=TierCold to one version's tags.
func (v *Vault) tagCold(ctx context.Context, key, versionID string) (tagResult, error) {
	out, err := v.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID)})
	if err != nil {
		return 0, fmt.Errorf("tags of s3://%s/%s (version %s): %w", v.Bucket, key, versionID, err)
	}
	tags := out.TagSet
	for _, t := range tags {
		if aws.ToString(t.Key) == TierTag {
			if aws.ToString(t.Value) == TierCold {
				return tagWas, nil
			}
			return tagFull, nil
		}
	}
	if len(tags) >= maxObjectTags {
		return tagFull, nil
	}
	tags = append(tags, types.Tag{Key: aws.String(TierTag), Value: aws.String(TierCold)})
	_, err = v.S3.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(versionID),
		Tagging: &types.Tagging{TagSet: tags}})
	if err != nil {
		return 0, fmt.Errorf("tag s3://%s/%s (version %s) for the cold tier: %w", v.Bucket, key, versionID, err)
	}
	return tagDone, nil
}

// WithoutTierTag returns tags without the cold tier's tag (nil stays nil).
func WithoutTierTag(tags map[string]string) map[string]string {
	if tags[TierTag] != TierCold {
		return tags
	}
	out := make(map[string]string, len(tags)-1)
	for k, val := range tags {
		if k != TierTag {
			out[k] = val
		}
	}
	return out
}
