package vault

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestExpireStopsAtItsDeadlineAndCollectsOnItsSchedule: a run whose
// deadline comes during a fold stops there, says so, collects nothing and
// leaves the journal reading as before; the next run finishes the fold and
// collects. With CollectEvery, a run soon after a collection folds and
// expires but does not list the data again; one past the period does.
func TestExpireStopsAtItsDeadlineAndCollectsOnItsSchedule(t *testing.T) {
	f := newExpireFixture(t)
	now := f.t0.Add(24*time.Hour + 12*time.Second) // floor: t0+12s
	before := statesAt(t, f.ctx, f.v, "src", f.t0.Add(15*time.Second))
	all := f.dataLeft(t)

	rep, err := f.v.Expire(f.ctx, ExpireOptions{Now: now, StopAt: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Incomplete, "src") || rep.Collected.SkippedBecause == "" || rep.Data.Objects != 0 {
		t.Fatalf("a run past its deadline: incomplete %q, collection %+v, data %+v; want the fold stopped, nothing collected", rep.Incomplete, rep.Collected, rep.Data)
	}
	if got := f.dataLeft(t); !reflect.DeepEqual(got, all) {
		t.Errorf("a run stopped at its deadline deleted data: %v, had %v", got, all)
	}
	if got := statesAt(t, f.ctx, f.v, "src", f.t0.Add(15*time.Second)); !reflect.DeepEqual(got, before) {
		t.Errorf("the journal reads otherwise after the stopped fold")
	}

	rep, err = f.v.Expire(f.ctx, ExpireOptions{Now: now, CollectEvery: time.Hour})
	if err != nil || rep.Incomplete != "" || len(rep.Folds) != 1 || rep.Collected.SkippedBecause != "" {
		t.Fatalf("the next run: %+v, %v; want the fold finished and a collection (none recorded yet)", rep, err)
	}
	if want := []string{"a2", "c1", "c2"}; !reflect.DeepEqual(f.dataLeft(t), want) {
		t.Errorf("data left %v, want %v", f.dataLeft(t), want)
	}

	// An object nothing references, written now: a run within the hour
	// does not collect it, one whose period has passed does.
	orphan := DataKey("src", "late-orphan", "v1", "", time.Time{})
	if _, err := f.v.S3.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(f.v.Bucket), Key: aws.String(orphan), Body: strings.NewReader("nothing references it")}); err != nil {
		t.Fatal(err)
	}
	rep, err = f.v.Expire(f.ctx, ExpireOptions{Now: now, CollectEvery: time.Hour})
	if err != nil || !strings.Contains(rep.Collected.SkippedBecause, "every 1h0m0s") || rep.Data.Objects != 0 {
		t.Fatalf("a run within the collection period: %+v, %v; want the collection skipped, saying why", rep.Collected, err)
	}
	rep, err = f.v.Expire(f.ctx, ExpireOptions{Now: now, CollectEvery: time.Nanosecond})
	if err != nil || rep.Collected.SkippedBecause != "" || rep.Data.Objects != 1 {
		t.Fatalf("a run past the collection period: %+v, data %+v, %v; want %s collected", rep.Collected, rep.Data, err, orphan)
	}
}
