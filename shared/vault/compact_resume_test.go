package vault

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// shardGets counts the GETs of objects under one prefix.
type shardGets struct {
	s3x.Client
	prefix string
	mu     sync.Mutex
	n      int
}

func (c *shardGets) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), c.prefix) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return c.Client.GetObject(ctx, in, opts...)
}

// foldableRun compacts 8 segments of 15 records (60 keys) into one run of
// 20-record shards and returns the vault, the run and the journal's reading.
func foldableRun(t *testing.T) (context.Context, *Vault, IndexRun, map[string][]string) {
	ctx, v := compactTestVault(t)
	writeSegments(t, ctx, v, "src", 0, 8)
	if _, err := v.Compact(ctx, "src", time.Now()); err != nil {
		t.Fatal(err)
	}
	idx, err := v.Index(ctx, "src")
	if err != nil || len(idx.Runs) != 1 || len(idx.Runs[0].Shards) < 5 {
		t.Fatalf("index %+v, %v; want one run of at least 5 shards", idx, err)
	}
	return ctx, v, idx.Runs[0], journalOf(t, ctx, v, "src")
}

// TestResumedFoldReadsEachShardOnce: a fold stopped after some of its
// shards (a Lambda invocation's end) resumes without reading the input
// run's shards it had finished: at 10⁹ records a fold takes several
// invocations, and each must go on, not read the history again.
func TestResumedFoldReadsEachShardOnce(t *testing.T) {
	ctx, v, run, before := foldableRun(t)
	crash := errors.New("crash")
	n := 0
	compactFault = func(step string) error {
		if step == "progress" {
			if n++; n == 3 {
				return crash
			}
		}
		return nil
	}
	floor := time.Unix(1700000004, 0)
	if _, err := v.Fold(ctx, "src", time.Now(), floor); !errors.Is(err, crash) {
		t.Fatalf("fold with a crash at its third progress: %v", err)
	}
	compactFault = nil
	gets := &shardGets{Client: v.S3, prefix: runsPfx + "src/" + run.ID + "/"}
	resumed := *v
	resumed.S3 = gets
	st, err := resumed.Fold(ctx, "src", time.Now(), floor)
	if err != nil || !st.Resumed {
		t.Fatalf("resumed fold: %+v, %v", st, err)
	}
	if gets.n >= len(run.Shards) {
		t.Errorf("the resumed fold read %d of the input run's %d shards; want fewer: the ones written out before the stop are not read again", gets.n, len(run.Shards))
	}
	after := journalOf(t, ctx, v, "src")
	for k, recs := range before {
		if len(after[k]) == 0 && len(recs) > 0 {
			t.Errorf("key %s lost by the resumed fold", k)
		}
	}
}

// TestResumedFoldNeverSkipsALostShard: a fold that read a lost shard
// (no version good) refuses, and saves no progress past it, so a later
// fold reads it again and refuses too, instead of resuming past it and
// writing a run that hides the loss.
func TestResumedFoldNeverSkipsALostShard(t *testing.T) {
	ctx, v, run, _ := foldableRun(t)
	lost := run.Shards[1].Key
	vs, _, err := v.versions(ctx, lost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(lost), Body: strings.NewReader("garbage")}); err != nil {
		t.Fatal(err)
	}
	for _, o := range vs {
		if _, err := v.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(lost), VersionId: aws.String(o.id)}); err != nil {
			t.Fatal(err)
		}
	}
	floor := time.Unix(1700000004, 0)
	for i := range 2 {
		var refused *CompactRefusedError
		if _, err := v.Fold(ctx, "src", time.Now(), floor); !errors.As(err, &refused) || refused.Damage.Object != lost {
			t.Fatalf("fold #%d over a lost shard: %v; want it refused naming %s", i+1, err, lost)
		}
	}
	idx, err := v.Index(ctx, "src")
	if err != nil || len(idx.Runs) != 1 || idx.Runs[0].ID != run.ID || !idx.Floor.IsZero() {
		t.Fatalf("index after the refused folds: %+v, %v; want the run as it was, no floor", idx, err)
	}
}
