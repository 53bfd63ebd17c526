package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Resolution is what a selection takes from an account's buckets.
type Resolution struct {
	// Selected are the matching buckets with versioning Enabled: the ones a
	// backup will protect.
	Selected []Bucket `json:"Selected"`
	// NotVersioned are matching buckets whose versioning is not Enabled
	// (never enabled, or Suspended). bucketvault cannot back them up until
	// it is; Reason says so.
	NotVersioned []Bucket `json:"NotVersioned"`
	// Unreadable are buckets whose tags, vault descriptor or versioning
	// could not be read (access denied, another partition), so whether
	// they match, or may be backed up, is unknown; Reason quotes the error.
	Unreadable []Bucket `json:"Unreadable"`
	// Vaults are matching buckets that are bucketvault vaults (they hold
	// vault.DescriptorKey): a vault is never backed up, into itself or
	// into another vault, so a selection of every bucket leaves them out;
	// Reason says so.
	Vaults []Bucket `json:"Vaults"`
}

// Bucket is one bucket of a Resolution.
type Bucket struct {
	Name string `json:"Name"`
	ARN  string `json:"ARN"`
	// Region is the bucket's region as ListBuckets reports it, if it does.
	Region string            `json:"Region,omitempty"`
	Tags   map[string]string `json:"Tags,omitempty"`
	// Versioning is GetBucketVersioning's status: Enabled, Suspended, or
	// empty for a bucket that never had versioning.
	Versioning string `json:"Versioning,omitempty"`
	Reason     string `json:"Reason,omitempty"`
}

// resolveConcurrency bounds the per-bucket GetBucketTagging, HeadObject
// and GetBucketVersioning calls in flight.
const resolveConcurrency = 16

// Resolve lists the account's buckets (ListBuckets, every page) and
// returns those sel takes, reading each candidate's tags (GetBucketTagging;
// no tag set means no tags) when the selection depends on tags, whether it
// is a vault (one HeadObject of vault.DescriptorKey, see isVault) and its
// versioning (GetBucketVersioning). A vault the selection matches is
// listed in Vaults, never in Selected. A bucket that a selection takes but
// whose versioning is not Enabled is listed in NotVersioned with the
// reason, and one whose vault descriptor cannot be checked (access denied)
// in Unreadable: none is dropped silently. Each bucket's calls go to the region
// ListBuckets names for it. Bucket ARNs are arn:PARTITION:s3:::NAME, the
// partition taken from the client's region (aws-cn for cn-*, aws-us-gov
// for us-gov-*, else aws).
func Resolve(ctx context.Context, client s3x.Client, sel Selection) (Resolution, error) {
	partition := partitionOf(client)
	var all []Bucket
	pages := s3.NewListBucketsPaginator(client, &s3.ListBucketsInput{MaxBuckets: aws.Int32(1000)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return Resolution{}, fmt.Errorf("list buckets: %w", err)
		}
		for _, b := range page.Buckets {
			name := aws.ToString(b.Name)
			all = append(all, Bucket{Name: name, ARN: "arn:" + partition + ":s3:::" + name, Region: aws.ToString(b.BucketRegion)})
		}
	}
	// Buckets that cannot match whatever their tags are never read.
	var candidates []Bucket
	for _, b := range all {
		if sel.couldMatch(b.ARN) {
			candidates = append(candidates, b)
		}
	}
	type outcome int
	const (
		dropped outcome = iota
		selected
		notVersioned
		unreadable
		aVault
	)
	outcomes := make([]outcome, len(candidates))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveConcurrency)
	for i := range candidates {
		g.Go(func() error {
			b := &candidates[i]
			inRegion := func(o *s3.Options) {
				if b.Region != "" {
					o.Region = b.Region
				}
			}
			if sel.needsTags() {
				tags, err := bucketTags(gctx, client, b.Name, inRegion)
				if err != nil {
					if s3x.IsNoSuchBucket(err) {
						return nil // deleted since it was listed
					}
					if fatal(gctx, err) {
						return err
					}
					b.Reason = "cannot read its tags, so whether the selection takes it is unknown: " + err.Error()
					outcomes[i] = unreadable
					return nil
				}
				b.Tags = tags
			}
			if !sel.Matches(b.ARN, b.Tags) {
				return nil
			}
			why, err := isVault(gctx, client, b.Name, inRegion)
			if err != nil {
				if fatal(gctx, err) {
					return err
				}
				b.Reason = "selected, but whether it is a vault cannot be read, and a vault is never backed up (without s3:ListBucket, S3 answers a HEAD of a missing key 403 too): " + err.Error()
				outcomes[i] = unreadable
				return nil
			}
			if why != "" {
				b.Reason = why + ": a vault is never backed up, into itself or into another vault"
				outcomes[i] = aVault
				return nil
			}
			out, err := client.GetBucketVersioning(gctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b.Name)}, inRegion)
			if err != nil {
				if s3x.IsNoSuchBucket(err) {
					return nil
				}
				if fatal(gctx, err) {
					return fmt.Errorf("get versioning of s3://%s: %w", b.Name, err)
				}
				b.Reason = "selected, but its versioning cannot be read: " + err.Error()
				outcomes[i] = unreadable
				return nil
			}
			b.Versioning = string(out.Status)
			switch b.Versioning {
			case "Enabled":
				outcomes[i] = selected
			case "Suspended":
				b.Reason = "versioning is Suspended: bucketvault backs up object versions and needs versioning Enabled (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled)"
				outcomes[i] = notVersioned
			default:
				b.Reason = "versioning was never enabled: bucketvault backs up object versions and needs versioning Enabled (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled)"
				outcomes[i] = notVersioned
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Resolution{}, err
	}
	r := Resolution{Selected: []Bucket{}, NotVersioned: []Bucket{}, Unreadable: []Bucket{}, Vaults: []Bucket{}}
	for i, b := range candidates {
		switch outcomes[i] {
		case selected:
			r.Selected = append(r.Selected, b)
		case notVersioned:
			r.NotVersioned = append(r.NotVersioned, b)
		case unreadable:
			r.Unreadable = append(r.Unreadable, b)
		case aVault:
			r.Vaults = append(r.Vaults, b)
		}
	}
	for _, l := range [][]Bucket{r.Selected, r.NotVersioned, r.Unreadable, r.Vaults} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return r, nil
}

// fatal reports whether a per-bucket error should stop the resolution
// (cancelled, or still failing after the SDK's retries) rather than be
// reported against that bucket.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || s3x.IsRetryable(err)
}

// isVault says why bucket is a bucketvault vault, or "" if it is not,
// from one HeadObject of the vault descriptor (vault.DescriptorKey, so the
// descriptor's name lives in shared/vault alone). A vault of any format
// version counts (the descriptor is not read), and so does a bucket whose
// descriptor is behind a delete marker: it held a vault, whose data is
// not to be copied into another. An error other than not-found (access
// denied, say) is returned: it never means "not a vault".
func isVault(ctx context.Context, c s3x.Client, bucket string, optFns ...func(*s3.Options)) (string, error) {
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(vault.DescriptorKey)}, optFns...)
	switch {
	case err == nil:
		return "a bucketvault vault (it holds " + vault.DescriptorKey + ")", nil
	case s3x.IsDeleteMarker(err):
		return "a bucketvault vault (its " + vault.DescriptorKey + " is behind a delete marker)", nil
	case s3x.IsNotFound(err):
		return "", nil
	}
	return "", fmt.Errorf("head s3://%s/%s: %w", bucket, vault.DescriptorKey, err)
}

func bucketTags(ctx context.Context, c s3x.Client, bucket string, optFns ...func(*s3.Options)) (map[string]string, error) {
	out, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(bucket)}, optFns...)
	if err != nil {
		// S3 answers NoSuchTagSet (404) for a bucket without tags.
		if s3x.IsNotFound(err) && !s3x.IsNoSuchBucket(err) {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("get tags of s3://%s: %w", bucket, err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

// couldMatch reports whether some set of tags would make the selection
// take the bucket with this ARN.
func (s *Selection) couldMatch(arn string) bool {
	for _, p := range s.NotResources {
		if glob(p, arn, false) {
			return false
		}
	}
	if len(s.Resources) == 0 || len(s.ListOfTags) > 0 {
		return true
	}
	for _, p := range s.Resources {
		if glob(p, arn, false) {
			return true
		}
	}
	return false
}

// partitionOf names the AWS partition of the client's region.
func partitionOf(c s3x.Client) string {
	region := ""
	if o, ok := c.(interface{ Options() s3.Options }); ok {
		region = o.Options().Region
	}
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// Backups is what a backup rule's selections take together, each bucket
// once: what the rule backs up when it fires.
type Backups struct {
	// Buckets are the buckets to back up (some selection selects them),
	// sorted by name.
	Buckets []Bucket `json:"Buckets"`
	// NotBackedUp are the buckets some selection takes but none backs up,
	// sorted by name, each with its reason: versioning not Enabled,
	// unreadable, a vault, or the rule's own vault.
	NotBackedUp []Bucket `json:"NotBackedUp"`
}

// ResolveBackups resolves a rule's selections (Resolve, one after another)
// and merges them: the one resolver of both the dispatch function
// (shared/schedule) and the local scheduler (shared/runner), so that
// neither backs up a vault. A bucket one selection selects is backed up
// even if another finds it unreadable or not versioned (resolved a moment
// later), but never once some selection found it a vault. ruleVault, the
// vault the rule backs up into, is never backed up even where its
// descriptor does not show (a vault not created yet, say): it is reported
// as the vault itself.
func ResolveBackups(ctx context.Context, client s3x.Client, sels []Selection, ruleVault string) (Backups, error) {
	selected := map[string]Bucket{}
	notBackedUp := map[string]Bucket{}
	vaults := map[string]Bucket{}
	for _, sel := range sels {
		r, err := Resolve(ctx, client, sel)
		if err != nil {
			return Backups{}, fmt.Errorf("resolve selection %s: %w", sel.SelectionName, err)
		}
		for _, b := range r.Selected {
			selected[b.Name] = b
		}
		for _, b := range r.Vaults {
			vaults[b.Name] = b
		}
		for _, b := range append(r.NotVersioned, r.Unreadable...) {
			if _, seen := notBackedUp[b.Name]; !seen {
				notBackedUp[b.Name] = b
			}
		}
	}
	if b, ok := selected[ruleVault]; ok {
		if _, known := vaults[ruleVault]; !known {
			b.Reason = "the vault itself: a vault is not backed up into itself"
			vaults[ruleVault] = b
		}
	}
	for name, b := range vaults {
		delete(selected, name)
		notBackedUp[name] = b
	}
	out := Backups{Buckets: []Bucket{}, NotBackedUp: []Bucket{}}
	for _, b := range selected {
		out.Buckets = append(out.Buckets, b)
	}
	for name, b := range notBackedUp {
		if _, ok := selected[name]; !ok {
			out.NotBackedUp = append(out.NotBackedUp, b)
		}
	}
	for _, l := range [][]Bucket{out.Buckets, out.NotBackedUp} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return out, nil
}
