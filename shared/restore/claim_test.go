package restore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// bothRead is the local server, holding the first two reads of a
// request's claim (vault.ActiveJobKey) until both have been made, so two
// restores started together both find it as it was before either wrote.
type bothRead struct {
	*s3.Client
	mu    sync.Mutex
	reads int
	both  chan struct{}
}

func (c *bothRead) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), strings.TrimSuffix(vault.ActiveJobKey(""), ".json")) {
		c.mu.Lock()
		c.reads++
		held := c.reads <= 2
		if c.reads == 2 {
			close(c.both)
		}
		c.mu.Unlock()
		if held {
			select {
			case <-c.both:
			case <-time.After(30 * time.Second):
			}
		}
	}
	return c.Client.GetObject(ctx, in, opts...)
}

// TestIdenticalRestoresStartedTogether: two runs of the same restore
// both read the request's claim before either writes it. Exactly one
// claims it (a create-only write) and restores; the other's write loses,
// it reads the winner's claim and is refused, naming the winner's job,
// and writes no job record of its own.
func TestIdenticalRestoresStartedTogether(t *testing.T) {
	f := newJournalFixture(t)
	target := f.srv.NewBucket(t, true)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: target}
	r := &restore.Restorer{S3: &bothRead{Client: f.c, both: make(chan struct{})}}
	var wg sync.WaitGroup
	reps, errs := make([]*restore.Report, 2), make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = r.Run(f.ctx, req)
		}()
	}
	wg.Wait()
	won, lost := 0, 1
	if errs[0] != nil {
		won, lost = 1, 0
	}
	if errs[won] != nil || reps[won] == nil || reps[won].State != restore.StateCompleted {
		t.Fatalf("neither restore ran: %v / %v", errs[0], errs[1])
	}
	var invalid *restore.InvalidRequestError
	if !errors.As(errs[lost], &invalid) || !strings.Contains(errs[lost].Error(), "as job "+reps[won].JobID) {
		t.Fatalf("the second of two identical restores started together: %v (it ran: %t); want it refused, naming job %s", errs[lost], reps[lost] != nil, reps[won].JobID)
	}
	jobs := strings.TrimSuffix(vault.JobKey(""), ".json")
	out, err := f.c.ListObjectsV2(f.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.v.Bucket), Prefix: aws.String(jobs)})
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	for _, o := range out.Contents {
		if rest := strings.TrimPrefix(aws.ToString(o.Key), jobs); !strings.Contains(rest, "/") {
			records = append(records, rest)
		}
	}
	if len(records) != 1 || records[0] != reps[won].JobID+".json" {
		t.Errorf("job records %v; want only the winner's, %s", records, reps[won].JobID)
	}
}

// failCreate is the local server failing CreateBucket once.
type failCreate struct {
	*s3.Client
	failed bool
}

func (c *failCreate) CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error) {
	if !c.failed {
		c.failed = true
		return nil, errors.New("injected: CreateBucket failed")
	}
	return c.Client.CreateBucket(ctx, in, opts...)
}

// TestFailedStartReleasesTheClaim: a restore that claimed its request and
// failed before writing its record (its target could not be created)
// releases the claim, so the same restore run again at once goes ahead
// instead of being refused as starting for StaleAfter.
func TestFailedStartReleasesTheClaim(t *testing.T) {
	f := newJournalFixture(t)
	req := restore.Request{Vault: f.v.Bucket, Bucket: f.bucket, At: f.at, TargetBucket: f.srv.BucketName(t), CreateBucket: true}
	r := &restore.Restorer{S3: &failCreate{Client: f.c}}
	if _, err := r.Run(f.ctx, req); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first run: %v; want the injected CreateBucket failure", err)
	}
	rep, err := r.Run(f.ctx, req)
	if err != nil || rep.State != restore.StateCompleted {
		t.Fatalf("the same restore run again: %+v, %v; want it to run (the failed start released its claim)", rep, err)
	}
}
