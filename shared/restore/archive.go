package restore

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Data in the vault's cold tier (vault/cold.go) is read as any other when
// the tier is Glacier Instant Retrieval. In Deep Archive (or Glacier
// Flexible Retrieval) S3 refuses to read or copy it (InvalidObjectState)
// until a temporary copy is requested back (RestoreObject) and ready:
// within 12 hours with the Standard tier, 48 with Bulk. A restore that
// meets such data sets its keys aside, finishes everything else, then
// requests each data object back once, and, when the request allows it
// (ArchiveWaitMinutes), waits for them, polling HEAD, and restores them;
// what is not back in time is FAILED with the reason, and running the same
// restore again later writes it (a non-destructive restore leaves what is
// already there). The report says all of it.

// Archive retrieval tiers (RestoreObject's GlacierJobParameters.Tier);
// Expedited does not reach Deep Archive.
const (
	ArchiveTierStandard = "Standard"
	ArchiveTierBulk     = "Bulk"
)

// ArchiveDays is how long a copy requested back from an archive stays
// readable (RestoreRequest.Days): long enough for a restore that waits,
// and for a second run.
const ArchiveDays = 7

// ArchivePoll is how often a waiting restore asks whether archived data
// is back. Tests shorten it.
var ArchivePoll = 5 * time.Minute

// archiveMargin is what a waiting restore keeps of its deadline (a
// Lambda's) to restore what came back and write its report.
const archiveMargin = 2 * time.Minute

// archived collects the tasks whose data is in an archive class.
type archived struct {
	mu    sync.Mutex
	tasks []task
}

func (a *archived) add(t task) {
	a.mu.Lock()
	a.tasks = append(a.tasks, t)
	a.mu.Unlock()
}

// thaw requests the archived tasks' data back, waits for it as far as the
// request allows, and restores what came back; every task ends in one
// mapping on results.
func (r *Restorer) thaw(ctx context.Context, v *vault.Vault, req Request, tasks []task, results chan<- Mapping, rep *Report) {
	tier := req.ArchiveTier
	if tier == "" {
		tier = ArchiveTierStandard
	}
	// One request per data object version (packs hold many keys).
	type object struct{ key, version string }
	byTask := make([]object, len(tasks))
	pending := map[object]error{}
	var bytes int64
	for i, t := range tasks {
		rec := t.obj.Version
		_, dv, err := v.HeadData(ctx, rec)
		if err != nil {
			byTask[i] = object{}
			continue
		}
		o := object{rec.Data, dv.VersionID}
		byTask[i] = o
		if _, seen := pending[o]; !seen {
			pending[o] = r.requestBack(ctx, v, o.key, o.version, tier)
			bytes += rec.Size
		}
	}
	requested := r.now()
	rep.mu.Lock()
	rep.Archived = &ArchiveReport{Objects: len(pending), Keys: len(tasks), Tier: tier, RequestedAt: requested}
	rep.mu.Unlock()
	r.log().InfoContext(ctx, "restore: data in an archive storage class requested back", "dataObjects", len(pending), "keys", len(tasks), "tier", tier)
	// Wait for the requested copies, polling.
	wait := time.Duration(req.ArchiveWaitMinutes) * time.Minute
	deadline := requested.Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Add(-archiveMargin).Before(deadline) {
		deadline = d.Add(-archiveMargin)
	}
	back := map[object]bool{}
	for wait > 0 {
		waiting := 0
		for o, err := range pending {
			if err != nil || back[o] {
				continue
			}
			ok, err := r.isBack(ctx, v, o.key, o.version)
			if err != nil {
				pending[o] = err
				continue
			}
			back[o] = ok
			if !ok {
				waiting++
			}
		}
		if waiting == 0 || !r.now().Add(ArchivePoll).Before(deadline) {
			break
		}
		r.log().InfoContext(ctx, "restore: waiting for archived data to come back", "waiting", waiting, "of", len(pending),
			"since", requested.Format(time.RFC3339), "until", deadline.Format(time.RFC3339))
		select {
		case <-ctx.Done():
		case <-time.After(ArchivePoll):
		}
		if ctx.Err() != nil {
			break
		}
	}
	rep.mu.Lock()
	rep.Archived.Back = len(back)
	for _, ok := range back {
		if !ok {
			rep.Archived.Back--
		}
	}
	rep.Archived.Waited = r.now().Sub(requested).Round(time.Second).String()
	rep.Warnings = append(rep.Warnings, fmt.Sprintf("the data of %d keys (%d data objects) was in an archive storage class: requested back at %s (tier %s, %d days); %d back after waiting %s",
		len(tasks), len(pending), requested.Format(time.RFC3339), tier, ArchiveDays, rep.Archived.Back, rep.Archived.Waited))
	rep.mu.Unlock()
	for i, t := range tasks {
		o := byTask[i]
		rec := t.obj.Version
		mp := Mapping{Key: t.key, SourceVersionID: rec.VersionID, Size: rec.Size, Uncertain: t.uncertain, Action: ActionFailed}
		switch err := pending[o]; {
		case o.key == "":
			mp.Error = fmt.Sprintf("its data %s is in an archive storage class and could not be looked at", rec.Data)
		case err != nil:
			mp.Error = fmt.Sprintf("its data %s is in an archive storage class and could not be requested back: %v", rec.Data, err)
		case !back[o] && wait == 0:
			mp.Error = fmt.Sprintf("its data %s is in an archive storage class: requested back at %s (tier %s: %s); run the same restore again once it is back, or restore with a wait (--archive-wait)",
				rec.Data, requested.Format(time.RFC3339), tier, tierTime(tier))
		case !back[o]:
			mp.Error = fmt.Sprintf("its data %s is in an archive storage class: requested back at %s (tier %s: %s), not back after %s; run the same restore again once it is",
				rec.Data, requested.Format(time.RFC3339), tier, tierTime(tier), r.now().Sub(requested).Round(time.Second))
		default:
			mp = r.restoreOne(ctx, v, req, t)
			if mp.archived {
				mp.Error = "its data came back from the archive and is in an archive storage class again: " + mp.Error
			}
		}
		results <- mp
	}
}

func tierTime(tier string) string {
	if tier == ArchiveTierBulk {
		return "usually within 48 hours"
	}
	return "usually within 12 hours"
}

// requestBack asks S3 for a temporary copy of an archived version (one
// already requested is not an error).
func (r *Restorer) requestBack(ctx context.Context, v *vault.Vault, key, version, tier string) error {
	_, err := r.S3.RestoreObject(ctx, &s3.RestoreObjectInput{
		Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(version),
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(ArchiveDays), GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(tier)}},
	})
	if err != nil && s3x.Code(err) != "RestoreAlreadyInProgress" {
		return fmt.Errorf("request s3://%s/%s (version %s) back from its archive: %w", v.Bucket, key, version, err)
	}
	return nil
}

// isBack says whether a requested copy is readable: HEAD's x-amz-restore
// says ongoing-request="false".
func (r *Restorer) isBack(ctx context.Context, v *vault.Vault, key, version string) (bool, error) {
	h, err := r.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key), VersionId: nonEmpty(version)})
	if err != nil {
		return false, fmt.Errorf("head s3://%s/%s (version %s): %w", v.Bucket, key, version, err)
	}
	return strings.Contains(aws.ToString(h.Restore), `ongoing-request="false"`), nil
}

// ArchiveReport says what a restore requested back from an archive.
type ArchiveReport struct {
	// Objects are the data objects (versions) requested back, holding
	// Keys of the restore's keys.
	Objects     int       `json:"objects"`
	Keys        int       `json:"keys"`
	Tier        string    `json:"tier"`
	RequestedAt time.Time `json:"requestedAt"`
	// Back is how many were back when the restore stopped waiting, after
	// Waited.
	Back   int    `json:"back"`
	Waited string `json:"waited"`
}

// withoutTierTagging removes the cold tier's tag from a Tagging query
// string (a data object's tags carried into a copy).
func withoutTierTagging(q *string) (*string, error) {
	if q == nil || !strings.Contains(*q, url.QueryEscape(vault.TierTag)) {
		return q, nil
	}
	vals, err := url.ParseQuery(*q)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for k, vs := range vals {
		tags[k] = vs[0]
	}
	return aws.String(s3x.EncodeTags(vault.WithoutTierTag(tags))), nil
}
