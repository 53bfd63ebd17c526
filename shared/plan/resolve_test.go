package plan

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// bucketSet creates buckets named base-SUFFIX on the local server with the
// given versioning ("Enabled", "Suspended" or "" for never) and tags.
func bucketSet(t *testing.T, srv *locals3.Server, base string, buckets map[string]struct {
	versioning string
	tags       map[string]string
}) {
	t.Helper()
	ctx := t.Context()
	c := srv.Client(ctx)
	for suffix, b := range buckets {
		name := base + "-" + suffix
		if err := srv.CreateBucket(ctx, name, locals3.BucketOptions{Versioned: b.versioning != ""}); err != nil {
			t.Fatal(err)
		}
		if b.versioning == "Suspended" {
			if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
				Bucket:                  aws.String(name),
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended},
			}); err != nil {
				t.Fatal(err)
			}
		}
		if len(b.tags) == 0 {
			continue
		}
		var set []types.Tag
		for k, v := range b.tags {
			set = append(set, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name), Tagging: &types.Tagging{TagSet: set}}); err != nil {
			t.Fatalf("tag %s: %v", name, err)
		}
	}
}

// shortBase returns a unique bucket-name prefix with room for a suffix.
func shortBase(t *testing.T, srv *locals3.Server) string {
	b := srv.BucketName(t)
	if len(b) > 45 {
		b = strings.TrimRight(b[len(b)-45:], "-")
		b = "bv" + strings.TrimLeft(b, "-")
	}
	return b
}

func names(bs []Bucket) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

// The example tag selection (Backup=daily AND Environment=production),
// narrowed to this test's buckets, against the real local server.
func TestResolveTagSelection(t *testing.T) {
	srv := locals3.ForTest(t)
	base := shortBase(t, srv)
	prod := map[string]string{"Backup": "daily", "Environment": "production"}
	bucketSet(t, srv, base, map[string]struct {
		versioning string
		tags       map[string]string
	}{
		"daily":      {"Enabled", prod},
		"daily2":     {"Enabled", map[string]string{"Backup": "daily", "Environment": "production", "Owner": "payments"}},
		"weekly":     {"Enabled", map[string]string{"Backup": "weekly", "Environment": "production"}},
		"staging":    {"Enabled", map[string]string{"Backup": "daily", "Environment": "staging"}},
		"case":       {"Enabled", map[string]string{"Backup": "Daily", "Environment": "production"}},
		"notags":     {"Enabled", nil},
		"unversion":  {"", prod},
		"suspended":  {"Suspended", prod},
		"excluded":   {"Enabled", prod},
		"onlybackup": {"Enabled", map[string]string{"Backup": "daily"}},
	})
	_, sels, err := Load(filepath.Join(plansDir, "selection-backup-daily-production.json"))
	if err != nil {
		t.Fatal(err)
	}
	sel := sels[0]
	sel.Resources = []string{"arn:aws:s3:::" + base + "-*"}
	sel.NotResources = []string{"arn:aws:s3:::" + base + "-excluded"}
	if err := sel.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(t.Context(), srv.Client(t.Context()), sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + "-daily", base + "-daily2"}, names(res.Selected)); diff != "" {
		t.Errorf("Selected (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{base + "-suspended", base + "-unversion"}, names(res.NotVersioned)); diff != "" {
		t.Errorf("NotVersioned (-want +got):\n%s", diff)
	}
	if len(res.Unreadable) != 0 {
		t.Errorf("Unreadable: %+v", res.Unreadable)
	}
	for _, b := range res.Selected {
		if b.Versioning != "Enabled" || b.ARN != "arn:aws:s3:::"+b.Name || b.Tags["Backup"] != "daily" {
			t.Errorf("selected %+v: want versioning Enabled, its ARN and its tags", b)
		}
	}
	for _, b := range res.NotVersioned {
		want := map[string]string{base + "-suspended": "Suspended", base + "-unversion": ""}[b.Name]
		if b.Versioning != want || !strings.Contains(b.Reason, "needs versioning Enabled") {
			t.Errorf("not versioned %+v: want versioning %q and a reason", b, want)
		}
	}
}

// ListOfTags is ORed with Resources; a bucket without tags (S3 answers
// NoSuchTagSet) has none.
func TestResolveResourcesOrListOfTags(t *testing.T) {
	srv := locals3.ForTest(t)
	base := shortBase(t, srv)
	bucketSet(t, srv, base, map[string]struct {
		versioning string
		tags       map[string]string
	}{
		"named":  {"Enabled", nil},
		"tagged": {"Enabled", map[string]string{"bvtest": base}},
		"other":  {"Enabled", map[string]string{"bvtest": "someone-else"}},
	})
	sel := Selection{
		SelectionName: "named-or-tagged",
		IamRoleArn:    "arn:aws:iam::123456789012:role/backup",
		Resources:     []string{"arn:aws:s3:::" + base + "-named"},
		ListOfTags:    []Condition{{ConditionType: "STRINGEQUALS", ConditionKey: "bvtest", ConditionValue: base}},
	}
	res, err := Resolve(t.Context(), srv.Client(t.Context()), sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + "-named", base + "-tagged"}, names(res.Selected)); diff != "" {
		t.Errorf("Selected (-want +got):\n%s", diff)
	}
	// Without tag conditions no tags are read: only the named bucket.
	sel.ListOfTags = nil
	res, err = Resolve(t.Context(), srv.Client(t.Context()), sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + "-named"}, names(res.Selected)); diff != "" {
		t.Errorf("Selected by ARN only (-want +got):\n%s", diff)
	}
}

// deniedTags is the real client with GetBucketTagging of one bucket
// refused, a fault the local server does not produce on its own.
type deniedTags struct {
	s3x.Client
	bucket string
}

func (d deniedTags) GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, optFns ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error) {
	if aws.ToString(in.Bucket) == d.bucket {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	}
	return d.Client.GetBucketTagging(ctx, in, optFns...)
}

func TestResolveUnreadableTagsReported(t *testing.T) {
	srv := locals3.ForTest(t)
	base := shortBase(t, srv)
	bucketSet(t, srv, base, map[string]struct {
		versioning string
		tags       map[string]string
	}{
		"open":   {"Enabled", map[string]string{"Backup": "daily"}},
		"denied": {"Enabled", map[string]string{"Backup": "daily"}},
	})
	sel := Selection{
		SelectionName: "daily",
		IamRoleArn:    "arn:aws:iam::123456789012:role/backup",
		Resources:     []string{"arn:aws:s3:::" + base + "-*"},
		Conditions:    &Conditions{StringEquals: []ConditionParameter{{ConditionKey: "aws:ResourceTag/Backup", ConditionValue: "daily"}}},
	}
	res, err := Resolve(t.Context(), deniedTags{Client: srv.Client(t.Context()), bucket: base + "-denied"}, sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + "-open"}, names(res.Selected)); diff != "" {
		t.Errorf("Selected (-want +got):\n%s", diff)
	}
	if len(res.Unreadable) != 1 || res.Unreadable[0].Name != base+"-denied" || !strings.Contains(res.Unreadable[0].Reason, "AccessDenied") {
		t.Errorf("Unreadable = %+v, want the denied bucket with the reason", res.Unreadable)
	}
}

func TestResolveListFailure(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Resolve(ctx, srv.Client(t.Context()), Selection{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a cancelled context = %v, want context.Canceled", err)
	}
}

// A selection of every bucket never takes a vault: the vault made with
// vault.Create, and a bucket whose descriptor is behind a delete marker,
// are listed in Vaults with the reason; the plain versioned bucket beside
// them is taken.
func TestResolveEveryBucketSkipsVaults(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := t.Context()
	c := srv.Client(ctx)
	base := shortBase(t, srv)
	bucketSet(t, srv, base, map[string]struct {
		versioning string
		tags       map[string]string
	}{"data": {"Enabled", nil}})
	v, err := vault.Create(ctx, c, base+"-vault", vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old, err := vault.Create(ctx, c, base+"-old", vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(old.Bucket), Key: aws.String(vault.DescriptorKey)}); err != nil {
		t.Fatal(err)
	}
	sel := Selection{SelectionName: "everything", IamRoleArn: "arn:aws:iam::123456789012:role/backup", Resources: []string{"arn:aws:s3:::*"}}
	if err := sel.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(ctx, c, sel)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names(res.Selected), base+"-data") {
		t.Errorf("Selected %v: want %s", names(res.Selected), base+"-data")
	}
	for _, l := range [][]Bucket{res.Selected, res.NotVersioned, res.Unreadable} {
		for _, b := range l {
			if b.Name == v.Bucket || b.Name == old.Bucket {
				t.Errorf("vault %s resolved as %+v, want it in Vaults only", b.Name, b)
			}
		}
	}
	want := map[string]string{
		v.Bucket:   "it holds " + vault.DescriptorKey,
		old.Bucket: "its " + vault.DescriptorKey + " is behind a delete marker",
	}
	got := map[string]string{}
	for _, b := range res.Vaults {
		if _, ours := want[b.Name]; ours {
			got[b.Name] = b.Reason
		}
		if b.ARN != "arn:aws:s3:::"+b.Name || !strings.Contains(b.Reason, "a vault is never backed up") {
			t.Errorf("vault %+v: want its ARN and the reason", b)
		}
	}
	for name, why := range want {
		if !strings.Contains(got[name], why) {
			t.Errorf("Vaults: %s has reason %q, want one saying %q", name, got[name], why)
		}
	}
}

// failingHead is the real client with HeadObject of one bucket failing
// with err, a fault the local server does not produce on its own.
type failingHead struct {
	s3x.Client
	bucket string
	err    error
}

func (f failingHead) HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if aws.ToString(in.Bucket) == f.bucket {
		return nil, f.err
	}
	return f.Client.HeadObject(ctx, in, optFns...)
}

// A bucket whose vault check is denied is reported Unreadable, never taken
// for a bucket that is not a vault; a check still failing after the SDK's
// retries stops the resolution with the bucket named.
func TestResolveVaultCheckFailures(t *testing.T) {
	srv := locals3.ForTest(t)
	base := shortBase(t, srv)
	bucketSet(t, srv, base, map[string]struct {
		versioning string
		tags       map[string]string
	}{"open": {"Enabled", nil}, "closed": {"Enabled", nil}})
	sel := Selection{SelectionName: "these", IamRoleArn: "arn:aws:iam::123456789012:role/backup", Resources: []string{"arn:aws:s3:::" + base + "-*"}}
	closed := base + "-closed"

	denied := failingHead{Client: srv.Client(t.Context()), bucket: closed, err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}}
	res, err := Resolve(t.Context(), denied, sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{base + "-open"}, names(res.Selected)); diff != "" {
		t.Errorf("Selected (-want +got):\n%s", diff)
	}
	if len(res.Unreadable) != 1 || res.Unreadable[0].Name != closed ||
		!strings.Contains(res.Unreadable[0].Reason, "whether it is a vault cannot be read") || !strings.Contains(res.Unreadable[0].Reason, "AccessDenied") {
		t.Errorf("Unreadable = %+v, want %s with the reason", res.Unreadable, closed)
	}
	if len(res.Vaults) != 0 {
		t.Errorf("Vaults = %+v, want none", res.Vaults)
	}

	throttled := failingHead{Client: srv.Client(t.Context()), bucket: closed, err: &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}}
	_, err = Resolve(t.Context(), throttled, sel)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SlowDown" || !strings.Contains(err.Error(), closed) {
		t.Errorf("Resolve with the vault check throttled = %v, want the SlowDown error naming %s", err, closed)
	}
}
