package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// coldFixture is a source bucket (small packed objects and larger copied
// ones, some with tags), a snapshot recovery point of it moved to the
// cold tier by expiry (COLD, every data object tagged for the tier), and
// what the bucket held.
type coldFixture struct {
	ctx    context.Context
	srv    *locals3.Server
	c      *s3.Client
	v      *vault.Vault
	bucket string
	point  string
	want   map[string]inspect.Object
}

func newColdFixture(t *testing.T) *coldFixture {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	f := &coldFixture{ctx: ctx, srv: srv, c: c, bucket: srv.NewBucket(t, true)}
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	for i := range 6 {
		size := 1 << 10
		if i%2 == 1 {
			size = 300 << 10 // above the pack limit: a data object of its own
		}
		in := &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(fmt.Sprintf("k%d", i)),
			Body: bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, size)), Metadata: map[string]string{"n": fmt.Sprint(i)}}
		if i < 4 {
			in.Tagging = aws.String(fmt.Sprintf("team=t%d", i))
		}
		if _, err := c.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if f.want, err = inspect.Capture(ctx, c, f.bucket, ""); err != nil {
		t.Fatal(err)
	}
	job, err := (&snapshot.Engine{S3: c}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: f.bucket,
		Lifecycle: &vault.Lifecycle{MoveToColdStorageAfterDays: 1, DeleteAfterDays: 91}})
	if err != nil || job.State != snapshot.StateCompleted {
		t.Fatalf("snapshot: %+v %v", job, err)
	}
	f.point = job.RecoveryPointID
	// Expiry two and three days on: the point becomes COLD, then its data
	// is tagged (nothing else references it).
	grace, reuse, bound, least := vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize
	// Expiry tags at once, whatever the size (the packs of 1 KiB objects
	// move too); writers reuse no data object they did not write this
	// instant (GCGrace >= ReuseLimit + WriterBound, at zero).
	vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize = 0, 0, 0, 0
	t.Cleanup(func() {
		vault.GCGrace, vault.ReuseLimit, vault.WriterBound, vault.ColdMinSize = grace, reuse, bound, least
	})
	sp, err := v.Snapshot(ctx, f.bucket, f.point)
	if err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{2, 3} {
		rep, err := v.Expire(ctx, vault.ExpireOptions{Now: sp.CreationDate.AddDate(0, 0, days)})
		if err != nil {
			t.Fatal(err)
		}
		if days == 3 && (rep.Cold.Tagged == 0 || rep.Cold.KeptWarm != 0) {
			t.Fatalf("expiry tagged %+v", rep.Cold)
		}
	}
	return f
}

// dataObjects are the vault's data keys.
func (f *coldFixture) dataObjects(t *testing.T) []string {
	out, err := f.c.ListObjectsV2(f.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.v.Bucket), Prefix: aws.String("data/")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		if k := aws.ToString(o.Key); k != vault.ProbeKey(f.v.Bucket) {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestRestoreFromTheColdTier: a restore from a COLD recovery point gives
// back every object with its own tags, never the cold tier's, whether it
// was packed or copied, and whether its data object carries its tags.
func TestRestoreFromTheColdTier(t *testing.T) {
	f := newColdFixture(t)
	for _, k := range f.dataObjects(t) {
		out, err := f.c.GetObjectTagging(f.ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, tg := range out.TagSet {
			found = found || aws.ToString(tg.Key) == vault.TierTag
		}
		if !found {
			t.Fatalf("data object %s is not tagged for the cold tier: %v", k, out.TagSet)
		}
	}
	for _, into := range []string{"new-bucket", "existing-bucket"} {
		t.Run(into, func(t *testing.T) {
			target := f.srv.BucketName(t)
			req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, RecoveryPointID: f.point, TargetBucket: target, CreateBucket: true}
			if into == "existing-bucket" {
				target = f.srv.NewBucket(t, true)
				req.TargetBucket, req.CreateBucket = target, false
			}
			rep, err := (&restore.Restorer{S3: f.c}).Run(f.ctx, req)
			if err != nil || rep.State != restore.StateCompleted || rep.Restored != int64(len(f.want)) {
				t.Fatalf("restore: %+v %v", rep, err)
			}
			got, err := inspect.Capture(f.ctx, f.c, target, "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f.want) {
				t.Fatalf("restored %v\nwant %v", got, f.want)
			}
		})
	}
}

// archiveS3 plays S3's part for data in Deep Archive (a fault it
// injects over the local server, which has no archive class): every
// vault data object refuses reads and copies (InvalidObjectState) until
// RestoreObject asks for it and backAfter HEADs have seen the request
// going on.
type archiveS3 struct {
	s3x.Client
	vault     string
	backAfter int
	mu        sync.Mutex
	requested map[string]int // data key -> HEADs since the request
	requests  int
}

func (a *archiveS3) archivedKey(bucket, key string) bool {
	return bucket == a.vault && strings.HasPrefix(key, "data/") && !strings.HasPrefix(key, "data/probe")
}

func (a *archiveS3) readable(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.requested[key]
	return ok && n >= a.backAfter
}

var errArchivedObject = &smithy.GenericAPIError{Code: "InvalidObjectState", Message: "The operation is not valid for the object's storage class"}

func (a *archiveS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if a.archivedKey(aws.ToString(in.Bucket), aws.ToString(in.Key)) && !a.readable(aws.ToString(in.Key)) {
		return nil, errArchivedObject
	}
	return a.Client.GetObject(ctx, in, opts...)
}

func (a *archiveS3) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	src, _ := url.PathUnescape(aws.ToString(in.CopySource))
	src, _, _ = strings.Cut(src, "?versionId=")
	if b, k, ok := strings.Cut(strings.TrimPrefix(src, "/"), "/"); ok && a.archivedKey(b, k) && !a.readable(k) {
		return nil, errArchivedObject
	}
	return a.Client.CopyObject(ctx, in, opts...)
}

func (a *archiveS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	h, err := a.Client.HeadObject(ctx, in, opts...)
	key := aws.ToString(in.Key)
	if err != nil || !a.archivedKey(aws.ToString(in.Bucket), key) {
		return h, err
	}
	out := *h
	out.StorageClass = "DEEP_ARCHIVE"
	a.mu.Lock()
	defer a.mu.Unlock()
	if n, ok := a.requested[key]; ok {
		if n >= a.backAfter {
			out.Restore = aws.String(`ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`)
		} else {
			out.Restore = aws.String(`ongoing-request="true"`)
			a.requested[key] = n + 1
		}
	}
	return &out, nil
}

func (a *archiveS3) RestoreObject(_ context.Context, in *s3.RestoreObjectInput, _ ...func(*s3.Options)) (*s3.RestoreObjectOutput, error) {
	key := aws.ToString(in.Key)
	if !a.archivedKey(aws.ToString(in.Bucket), key) {
		return nil, &smithy.GenericAPIError{Code: "InvalidObjectState", Message: "not archived"}
	}
	if in.RestoreRequest == nil || aws.ToInt32(in.RestoreRequest.Days) <= 0 || in.RestoreRequest.GlacierJobParameters == nil {
		return nil, &smithy.GenericAPIError{Code: "MalformedXML", Message: "no Days or tier"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if _, ok := a.requested[key]; ok {
		return nil, &smithy.GenericAPIError{Code: "RestoreAlreadyInProgress", Message: "in progress"}
	}
	a.requested[key] = 0
	return &s3.RestoreObjectOutput{}, nil
}

// TestRestoreFromDeepArchive: data in an archive class is requested back
// once per data object; without a wait its keys fail saying so (and when
// to run again) and everything else is restored; a run with a wait
// polls until the data is back and restores every key exactly; a run
// after the data came back needs no request.
func TestRestoreFromDeepArchive(t *testing.T) {
	f := newColdFixture(t)
	defer func(d time.Duration) { restore.ArchivePoll = d }(restore.ArchivePoll)
	restore.ArchivePoll = 5 * time.Millisecond
	data := len(f.dataObjects(t))
	a := &archiveS3{Client: f.c, vault: f.v.Bucket, backAfter: 3, requested: map[string]int{}}
	r := &restore.Restorer{S3: a}

	// No wait: requested back, every key FAILED with the reason.
	target := f.srv.BucketName(t)
	rep, err := r.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, RecoveryPointID: f.point, TargetBucket: target, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != int64(len(f.want)) || rep.Restored != 0 || rep.Archived == nil || rep.Archived.Objects != data || rep.Archived.Keys != len(f.want) || a.requests != data {
		t.Fatalf("no wait: %+v archived %+v, %d requests; want %d keys failed and %d data objects requested once", rep, rep.Archived, a.requests, len(f.want), data)
	}
	for _, m := range rep.Failures {
		if !strings.Contains(m.Error, "requested back") || !strings.Contains(m.Error, "run the same restore again") {
			t.Fatalf("failure %q does not say what happened and what to do", m.Error)
		}
	}
	if got, _ := inspect.Capture(f.ctx, f.c, target, ""); len(got) != 0 {
		t.Fatalf("wrote %d objects from archived data", len(got))
	}

	// A wait: polled until back, then every key restored exactly.
	a.requested, a.requests = map[string]int{}, 0
	target = f.srv.BucketName(t)
	rep, err = r.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, RecoveryPointID: f.point, TargetBucket: target, CreateBucket: true,
		ArchiveWaitMinutes: 10, ArchiveTier: restore.ArchiveTierBulk})
	if err != nil || rep.State != restore.StateCompleted || rep.Restored != int64(len(f.want)) {
		t.Fatalf("wait: %+v %v", rep, err)
	}
	if rep.Archived == nil || rep.Archived.Back != data || rep.Archived.Tier != restore.ArchiveTierBulk || a.requests != data {
		t.Fatalf("wait: archived %+v, %d requests", rep.Archived, a.requests)
	}
	got, err := inspect.Capture(f.ctx, f.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, f.want) {
		t.Fatalf("restored %v\nwant %v", got, f.want)
	}

	// The data is back: a new restore reads it without a request.
	a.requests = 0
	rep, err = r.Run(f.ctx, restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, RecoveryPointID: f.point, TargetBucket: f.srv.BucketName(t), CreateBucket: true})
	if err != nil || rep.State != restore.StateCompleted || rep.Archived != nil || a.requests != 0 {
		t.Fatalf("after: %+v archived %+v, %d requests, %v", rep, rep.Archived, a.requests, err)
	}
}
