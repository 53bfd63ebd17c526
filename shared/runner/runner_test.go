package runner_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/runner"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// TestRunnerJournalsWebhookEvents: the local runner turns the server's
// webhook deliveries into journal records, in batches, without a reconcile.
func TestRunnerJournalsWebhookEvents(t *testing.T) {
	srv := locals3.ForTest(t)
	if srv.WebhookARN == "" {
		t.Skipf("the %s server sends no per-bucket notifications", srv.Kind)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	r := &runner.Runner{Journal: &journal.Journal{Vault: v, S3: c}, ReconcileEvery: -1, BatchWait: 100 * time.Millisecond}
	bodies, unsubscribe := srv.Subscribe(bucket)
	defer unsubscribe()
	go func() {
		for b := range bodies {
			_ = r.Handle(ctx, b)
		}
	}()
	go func() { _ = r.Run(ctx) }()
	if err := srv.EnableEvents(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := range n {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("k/%02d", i)), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.Stats().Received < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	r.WaitIdle()
	st := r.Stats()
	if st.Received != n || st.Journaled != n || st.Failed != 0 {
		t.Fatalf("stats %+v: want %d received and journaled", st, n)
	}
	refs, err := v.Segments(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) == 0 || len(refs) > n/2 {
		t.Errorf("%d segments for %d events: want batches", len(refs), n)
	}
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	keys := 0
	for {
		_, recs, err := m.NextKey()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Op == vault.OpVersion && recs[0].Data != "" {
			keys++
		}
	}
	if keys != n {
		t.Errorf("journal has %d keys, want %d", keys, n)
	}
}
