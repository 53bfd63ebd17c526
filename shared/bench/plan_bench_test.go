package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

const planKeys = 100000 // times the scale

// BenchmarkRestorePlan measures the restore state machine's plan step
// (restore.Restorer.Plan, one round: no deadline) on a synthetic journal
// of 100,000 keys (writeSyntheticJournal): it reads the journal as of T
// and writes the work items (1,000 keys each) to the vault. Beside it,
// reading the same journal alone (readJournal). Reported: keys/s of each
// and ratio_plan/read; docs/design.md ("Restore at scale") takes the
// plan's rate to estimate a plan of 10^9 keys.
func BenchmarkRestorePlan(b *testing.B) {
	srv := locals3.ForTest(b)
	ctx := b.Context()
	c := client(ctx, b, srv)
	n := scaled(b, planKeys)
	var planRate, readRate float64
	b.ResetTimer()
	for i := range b.N {
		vb := srv.BucketName(b)
		v, err := vault.Create(ctx, c, vb, vault.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		src := srv.BucketName(b)
		at := time.Now().UTC().Truncate(time.Second).Add(-time.Second)
		if err := writeSyntheticJournal(ctx, v, src, n, at.Add(-time.Hour)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		keys, err := readJournal(ctx, v, src)
		read := time.Since(t0)
		if err != nil || keys != n {
			b.Fatalf("read journal: %d keys (%v)", keys, err)
		}
		r := &restore.Restorer{S3: c}
		job := &restore.Job{Request: restore.Request{Vault: vb, Bucket: src, At: at, TargetBucket: srv.BucketName(b), CreateBucket: true, AllowIncomplete: true}}
		t0 = time.Now()
		out, err := r.Plan(ctx, restore.StepRequest{Step: restore.StepPlan, Job: job, Execution: "arn:aws:states:us-east-1:111122223333:execution:bench:plan-" + string(rune('a'+i%26))})
		plan := time.Since(t0)
		if err != nil || !out.Plan.Done || out.Plan.Keys != int64(n) {
			raw, _ := json.Marshal(out)
			b.Fatalf("plan: %s %v", raw, err)
		}
		b.Logf("%d keys: read the journal in %s (%.0f keys/s); planned in %s (%.0f keys/s), %d work items", n, read.Round(time.Millisecond),
			float64(n)/read.Seconds(), plan.Round(time.Millisecond), float64(n)/plan.Seconds(), out.Plan.Items)
		planRate += float64(n) / plan.Seconds() / float64(b.N)
		readRate += float64(n) / read.Seconds() / float64(b.N)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(planRate, "plan_keys/s")
	b.ReportMetric(readRate, "read_keys/s")
	b.ReportMetric(planRate/readRate, "ratio_plan/read")
}
