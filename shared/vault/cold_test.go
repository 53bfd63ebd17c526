package vault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// coldTierFixture: a journal (j), a point "cold" (j, x, y, z) whose
// MoveToColdStorageAt is t0 plus a day and a point "warm" (y) a year
// later; x carries a source tag, z S3's 10 tags.
type coldTierFixture struct {
	ctx  context.Context
	v    *Vault
	t0   time.Time
	data map[string]string
	x    Record
	f    *expireFixture
}

func newColdTierFixture(t *testing.T) *coldTierFixture {
	ctx, v := compactTestVault(t)
	oldGrace, oldSettle, oldMin := GCGrace, ColdSettle, ColdMinSize
	GCGrace, ColdMinSize = 0, 0
	t.Cleanup(func() { GCGrace, ColdSettle, ColdMinSize, expireFault = oldGrace, oldSettle, oldMin, nil })
	day := 24 * time.Hour
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := v.PutJSON(ctx, BucketKey("src"), ProtectedBucket{Bucket: "src", ProtectedAt: t0, WindowDays: 1}); err != nil {
		t.Fatal(err)
	}
	data := map[string]string{}
	version := func(name string, tags string) Record {
		d := DataKey("src", name, "v-"+name, "", time.Time{})
		body := "bytes of " + name
		in := &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(d), Body: strings.NewReader(body)}
		if tags != "" {
			in.Tagging = aws.String(tags)
		}
		out, err := v.S3.PutObject(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		data[name] = d
		return Record{Op: OpVersion, Key: name, VersionID: "v-" + name, Time: t0, Size: int64(len(body)), Data: d,
			DataETag: strings.Trim(aws.ToString(out.ETag), `"`), MetaInData: tags != ""}
	}
	var ten []string
	for i := range 10 {
		ten = append(ten, fmt.Sprintf("t%d=%d", i, i))
	}
	j := version("j", "")                     // the journal's
	x := version("x", "team=a")               // only the cold point's, with a source tag
	y := version("y", "")                     // the cold point's and the warm point's
	z := version("z", strings.Join(ten, "&")) // only the cold point's, 10 tags already
	if _, err := v.WriteSegment(ctx, "src", []Record{j}); err != nil {
		t.Fatal(err)
	}
	f := &expireFixture{ctx: ctx, v: v, t0: t0, data: data}
	f.snapshot(t, "cold", t0.Add(300*day), []Record{j, x, y, z})
	f.snapshot(t, "warm", t0.Add(600*day), []Record{y})
	setCold := func(id string, at time.Time) {
		sp, err := v.Snapshot(ctx, "src", id)
		if err != nil {
			t.Fatal(err)
		}
		sp.CalculatedLifecycle.MoveToColdStorageAt = &at
		if err := v.PutJSON(ctx, SnapshotKey("src", id), sp); err != nil {
			t.Fatal(err)
		}
	}
	setCold("cold", t0.Add(day))
	setCold("warm", t0.Add(400*day))
	return &coldTierFixture{ctx: ctx, v: v, t0: t0, data: data, x: x, f: f}
}

func (c *coldTierFixture) tags(t *testing.T, name string) map[string]string {
	out, err := c.v.S3.GetObjectTagging(c.ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(c.v.Bucket), Key: aws.String(c.data[name])})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tg := range out.TagSet {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// tiered names the data objects tagged for the cold tier.
func (c *coldTierFixture) tiered(t *testing.T) []string {
	var out []string
	for _, n := range []string{"j", "x", "y", "z"} {
		if c.tags(t, n)[TierTag] == TierCold {
			out = append(out, n)
		}
	}
	return out
}

// TestColdTier: a recovery point past MoveToColdStorageAt becomes COLD;
// a day later expiry tags, on the version itself, exactly the data that
// only COLD points reference: not what the journal's window or a WARM
// point references, not an object with S3's 10 tags already, and the
// source tags a data object carries stay as they were beside the tier
// tag. A dry run tags nothing; a second run finds the tags in place.
func TestColdTier(t *testing.T) {
	c := newColdTierFixture(t)
	ctx, v, t0, x, f := c.ctx, c.v, c.t0, c.x, c.f
	day := 24 * time.Hour
	tags := func(name string) map[string]string { return c.tags(t, name) }
	tiered := func() []string { return c.tiered(t) }

	// Day 2: "cold" becomes COLD; nothing is tagged before ColdSettle.
	now := t0.Add(2 * day)
	rep, err := v.Expire(ctx, ExpireOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cold.Points) != 1 || rep.Cold.Points[0].RecoveryPointID != "cold" || rep.Cold.Tagged != 0 {
		t.Fatalf("day 2: cold %+v, want the point \"cold\" moved and nothing tagged yet", rep.Cold)
	}
	sp, err := v.Snapshot(ctx, "src", "cold")
	if err != nil {
		t.Fatal(err)
	}
	if !sp.IsCold() || sp.ColdSince == nil || !sp.ColdSince.Equal(now) {
		t.Fatalf("point cold: StorageClass %q since %v, want COLD since %s", sp.StorageClass, sp.ColdSince, now)
	}
	if sp, _ := v.Snapshot(ctx, "src", "warm"); sp.IsCold() {
		t.Fatal("the warm point became COLD before its MoveToColdStorageAt")
	}
	if got := tiered(); len(got) != 0 {
		t.Fatalf("tagged %v before ColdSettle", got)
	}

	// Day 3, dry: what would be tagged, nothing written.
	now = now.Add(day)
	rep, err = v.Expire(ctx, ExpireOptions{Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cold.Tagged != 2 || len(tiered()) != 0 {
		t.Fatalf("dry run: %+v, tagged %v; want 2 candidates (x, z) and nothing tagged", rep.Cold, tiered())
	}
	// Objects smaller than ColdMinSize stay where they are.
	ColdMinSize = x.Size + 1
	rep, err = v.Expire(ctx, ExpireOptions{Now: now, DryRun: true})
	ColdMinSize = 0
	if err != nil || rep.Cold.Tagged != 0 || rep.Cold.TooSmall != 2 {
		t.Fatalf("dry run, objects below ColdMinSize: %+v %v; want the 2 candidates too small", rep.Cold, err)
	}
	// Day 3: x is tagged; z cannot take an 11th tag; j (the journal's)
	// and y (a WARM point's) stay as they are.
	rep, err = v.Expire(ctx, ExpireOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cold.Tagged != 1 || rep.Cold.KeptWarm != 1 || rep.Cold.TaggedBytes != x.Size {
		t.Fatalf("day 3: cold %+v, want x tagged (%d bytes) and z kept warm", rep.Cold, x.Size)
	}
	if got := tiered(); len(got) != 1 || got[0] != "x" {
		t.Fatalf("tagged %v, want [x]", got)
	}
	if got, want := tags("x"), map[string]string{"team": "a", TierTag: TierCold}; !maps.Equal(got, want) {
		t.Fatalf("x's tags %v, want %v", got, want)
	}
	if got := WithoutTierTag(tags("x")); !maps.Equal(got, map[string]string{"team": "a"}) {
		t.Fatalf("WithoutTierTag: %v", got)
	}
	if len(tags("z")) != 10 {
		t.Fatalf("z's tags %v", tags("z"))
	}
	vs, err := v.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(c.data["x"])})
	if err != nil || len(vs.Versions) != 1 {
		t.Fatalf("x has %d versions (%v): tagging must not write one", len(vs.Versions), err)
	}
	// Again: the tag is found in place (the lifecycle has yet to move it).
	rep, err = v.Expire(ctx, ExpireOptions{Now: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cold.Tagged != 0 || rep.Cold.Pending != 1 {
		t.Fatalf("second run: cold %+v, want x pending", rep.Cold)
	}
	// Every datum is still there: moving is not collecting.
	if left := f.dataLeft(t); len(left) != 4 {
		t.Fatalf("data left %v", left)
	}
	// Once the lifecycle has moved x (the local server has no cold class:
	// a listing that says so stands in), expiry counts it and asks
	// nothing more of it.
	moved := *v
	lister := &transitioned{Client: v.S3, class: map[string]string{c.data["x"]: "GLACIER_IR"}}
	moved.S3 = lister
	rep, err = moved.Expire(ctx, ExpireOptions{Now: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cold.InColdClass != 1 || rep.Cold.ColdBytes != x.Size || rep.Cold.Tagged+rep.Cold.Pending != 0 || lister.tagReads[c.data["x"]] != 0 {
		t.Fatalf("after the move: cold %+v, %d tag reads of x", rep.Cold, lister.tagReads[c.data["x"]])
	}
}

// transitioned lists the keys of class in that storage class, as S3 does
// once a lifecycle rule has moved them, and counts tag reads.
type transitioned struct {
	s3x.Client
	class    map[string]string
	tagReads map[string]int
}

func (l *transitioned) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	out, err := l.Client.ListObjectVersions(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	for i, o := range out.Versions {
		if c, ok := l.class[aws.ToString(o.Key)]; ok {
			out.Versions[i].StorageClass = types.ObjectVersionStorageClass(c)
		}
	}
	return out, nil
}

func (l *transitioned) GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	if l.tagReads == nil {
		l.tagReads = map[string]int{}
	}
	l.tagReads[aws.ToString(in.Key)]++
	return l.Client.GetObjectTagging(ctx, in, opts...)
}

// TestIsColdClass: the classes the cold tier moves to, and no other.
func TestIsColdClass(t *testing.T) {
	for sc, want := range map[string]bool{"GLACIER_IR": true, "GLACIER": true, "DEEP_ARCHIVE": true,
		"STANDARD": false, "": false, "STANDARD_IA": false, "INTELLIGENT_TIERING": false, "ONEZONE_IA": false} {
		if got := isColdClass(sc); got != want {
			t.Errorf("isColdClass(%q) = %v", sc, got)
		}
	}
}

// TestColdTierResumesAfterACrash: expiry stopped as a point becomes COLD,
// or after the first data object is tagged, is finished by the next run:
// the same point COLD, the same objects tagged, nothing else.
func TestColdTierResumesAfterACrash(t *testing.T) {
	for _, step := range []string{"point-cold", "cold-tag"} {
		t.Run(step, func(t *testing.T) {
			c := newColdTierFixture(t)
			ColdSettle = 0 // move and tag in one run
			now := c.t0.Add(2 * 24 * time.Hour)
			crash := errors.New("crash")
			expireFault = func(s string) error {
				if s == step {
					return crash
				}
				return nil
			}
			if _, err := c.v.Expire(c.ctx, ExpireOptions{Now: now}); !errors.Is(err, crash) {
				t.Fatalf("expiry with a crash at %s: %v", step, err)
			}
			expireFault = nil
			rep, err := c.v.Expire(c.ctx, ExpireOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Cold.Tagged+rep.Cold.Pending != 1 || rep.Cold.KeptWarm != 1 {
				t.Fatalf("the resumed run: %+v", rep.Cold)
			}
			if got := c.tiered(t); len(got) != 1 || got[0] != "x" {
				t.Fatalf("tagged %v, want [x]", got)
			}
			if sp, err := c.v.Snapshot(c.ctx, "src", "cold"); err != nil || !sp.IsCold() {
				t.Fatalf("the point: %+v %v", sp, err)
			}
		})
	}
}

// TestSetPointColdOnlyFromSealed: only a sealed point moves to COLD, once.
func TestSetPointColdOnlyFromSealed(t *testing.T) {
	ctx, v := compactTestVault(t)
	sp := v.NewSnapshotPoint("src", "p", "job-p", time.Now())
	if err := v.CreatePoint(ctx, sp); err != nil {
		t.Fatal(err)
	}
	var te *PointTransitionError
	if err := v.SetPointCold(ctx, "src", "p", time.Now()); !errors.As(err, &te) {
		t.Fatalf("a CREATING point moved to COLD: %v", err)
	}
	sp.Status = PointAvailable
	if err := v.SetPoint(ctx, sp); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	for range 2 {
		if err := v.SetPointCold(ctx, "src", "p", at); err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Hour)
	}
	got, err := v.Snapshot(ctx, "src", "p")
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsCold() || !got.ColdSince.Equal(at.Add(-2*time.Hour)) {
		t.Fatalf("StorageClass %q since %v: want COLD since the first move", got.StorageClass, got.ColdSince)
	}
}

// TestLifecycleValidate: AWS Backup's 90 days between cold and delete.
func TestLifecycleValidate(t *testing.T) {
	for _, c := range []struct {
		l  Lifecycle
		ok bool
	}{
		{Lifecycle{MoveToColdStorageAfterDays: 10, DeleteAfterDays: 100}, true},
		{Lifecycle{MoveToColdStorageAfterDays: 10, DeleteAfterDays: 99}, false},
		{Lifecycle{MoveToColdStorageAfterDays: 10}, true},
		{Lifecycle{MoveToColdStorageAfterDays: -1, DeleteAfterDays: 5}, true},
		{Lifecycle{DeleteAfterDays: -3}, false},
		{Lifecycle{MoveToColdStorageAfterDays: -2}, false},
	} {
		err := c.l.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.l, err)
		}
		if err != nil && !strings.Contains(err.Error(), "Lifecycle.") {
			t.Errorf("%+v: %v names no field", c.l, err)
		}
	}
}
