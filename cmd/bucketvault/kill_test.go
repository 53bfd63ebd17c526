package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// buildCLI builds the CLI into a temporary directory, for tests that run
// it as a process (to kill it).
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bucketvault")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestCLIExpireKilledResumes: `bucketvault expire` killed (SIGKILL) while
// it folds a journal of 300,000 records leaves a vault that the next run
// finishes: the journal reads, as of every second from the floor on,
// exactly as before the expiry, and the index names one folded run.
func TestCLIExpireKilledResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and folds 300,000 records")
	}
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bin := buildCLI(t)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := v.PutJSON(ctx, vault.BucketKey("src"), vault.ProtectedBucket{Bucket: "src", ProtectedAt: t0, FirstFullBackupAt: &t0, WindowDays: 1}); err != nil {
		t.Fatal(err)
	}
	// 30,000 keys, each overwritten every 10 seconds for 100 seconds.
	for s := range 60 {
		var batch []vault.Record
		for i := range 5000 {
			n := s*5000 + i
			key, ver := n%30000, n/30000
			batch = append(batch, vault.Record{Op: vault.OpVersion, Key: fmt.Sprintf("k%05d", key), VersionID: fmt.Sprintf("v%02d", ver),
				Time: t0.Add(time.Duration(ver*10) * time.Second), Data: vault.DataKey("src", fmt.Sprintf("k%05d", key), fmt.Sprintf("v%02d", ver), "", time.Time{})})
		}
		if _, err := v.WriteSegment(ctx, "src", batch); err != nil {
			t.Fatal(err)
		}
	}
	defer func(l time.Duration) { vault.CompactionLag = l }(vault.CompactionLag)
	vault.CompactionLag = 0
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Compact(ctx, "src", time.Now()); err != nil {
		t.Fatal(err)
	}
	floor := t0.Add(55 * time.Second)
	states := func() map[time.Time]map[string]string {
		out := map[time.Time]map[string]string{}
		for _, at := range []time.Time{floor, floor.Add(5 * time.Second), floor.Add(40 * time.Second)} {
			m, err := v.OpenJournal(ctx, "src", nil)
			if err != nil {
				t.Fatal(err)
			}
			st := map[string]string{}
			for {
				k, recs, err := m.NextKey()
				if err != nil {
					break
				}
				if obj, ok := vault.StateAt(recs, at); ok {
					st[k] = obj.Version.VersionID
				}
			}
			m.Close()
			out[at] = st
		}
		return out
	}
	before := states()
	env := os.Environ()
	env = append(env, srv.Env()...)
	args := []string{"--endpoint-url", srv.Endpoint, "--no-progress", "expire", "--vault", v.Bucket, "--now", floor.Add(24 * time.Hour).Format(time.RFC3339)}
	// Killed once a fold has written its first shard's progress (or after
	// a minute, which the test reports: proving nothing, it fails).
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The fold's progress names its floor (the compaction above left a
	// progress record of its own, without one).
	type progressRecord struct {
		Run    string    `json:"run"`
		Floor  time.Time `json:"floor"`
		Shards []struct {
			Key string `json:"key"`
		} `json:"shards"`
	}
	var progress progressRecord
	deadline := time.Now().Add(60 * time.Second)
	midFold := false
	for time.Now().Before(deadline) && !midFold {
		progress = progressRecord{}
		err := v.GetJSON(ctx, "scratch/compact/src.json", &progress)
		midFold = err == nil && progress.Floor.Equal(floor) && len(progress.Shards) > 0
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	state := cmd.Wait()
	idx, err := v.Index(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed (%v) with the fold's progress written: %v; the floor then: %s", state, midFold, idx.Floor)
	if !midFold || !idx.Floor.IsZero() {
		t.Fatalf("the kill did not land inside the fold (progress %v, floor %s): the test proves nothing", midFold, idx.Floor)
	}
	// What the killed fold had written: the next run goes on from it
	// (its run and shards end up in the index), it does not start over.
	if err := v.GetJSON(ctx, "scratch/compact/src.json", &progress); err != nil || progress.Run == "" {
		t.Fatalf("the killed fold's progress: %+v, %v", progress, err)
	}
	again := exec.Command(bin, args...)
	again.Env = env
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("expire after the kill: %v\n%s", err, out)
	}
	idx, err = v.Index(ctx, "src")
	if err != nil || !idx.Floor.Equal(floor) || len(idx.Runs) != 1 {
		t.Fatalf("index after the resumed expiry: floor %s, %d runs, %v; want floor %s, one run", idx.Floor, len(idx.Runs), err, floor)
	}
	if idx.Runs[0].ID != progress.Run {
		t.Errorf("the resumed fold wrote run %s; want the killed fold's run %s, gone on with", idx.Runs[0].ID, progress.Run)
	}
	kept := map[string]bool{}
	for _, sh := range idx.Runs[0].Shards {
		kept[sh.Key] = true
	}
	for _, sh := range progress.Shards {
		if !kept[sh.Key] {
			t.Errorf("shard %s, written before the kill, is not in the resumed fold's run: it started over", sh.Key)
		}
	}
	if got := states(); !reflect.DeepEqual(got, before) {
		t.Fatalf("the journal reads otherwise after the killed and resumed expiry")
	}
}

// TestCLIRestoreKilledFinishes: `bucketvault restore --job-id J` killed
// (SIGKILL) part way, run again with the same job id at once, finishes
// into the bucket the first run created: every key as at T, each written
// once (one version each), and the job's record COMPLETED.
func TestCLIRestoreKilledFinishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bin := buildCLI(t)
	bucket, vaultName := srv.NewBucket(t, true), srv.BucketName(t)
	const keys = 600
	for i := range keys {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("k%04d", i)), Body: strings.NewReader(fmt.Sprintf("bytes of %d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	if code, _, e := cli(t, srv, "protect", "--vault", vaultName, "--bucket", bucket, "--events", "none"); code != 0 {
		t.Fatalf("protect: %s", e)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %s", e)
	}
	at := time.Now().UTC().Add(-time.Second).Truncate(time.Second).Format(time.RFC3339)
	target := srv.BucketName(t)
	env := append(os.Environ(), srv.Env()...)
	args := []string{"--endpoint-url", srv.Endpoint, "--no-progress", "restore", "--vault", vaultName, "--bucket", bucket, "--at", at,
		"--target-bucket", target, "--create-bucket", "--job-id", "restore-killed-1", "--concurrency", "2", "--allow-incomplete"}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	written := 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && written < 50; time.Sleep(10 * time.Millisecond) {
		if out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(target)}); err == nil {
			written = len(out.Contents)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(target)})
	if err != nil || len(out.Contents) < 50 || len(out.Contents) >= keys {
		t.Fatalf("the kill did not land part way (%d of %d keys written, %v): the test proves nothing", len(out.Contents), keys, err)
	}
	t.Logf("killed with %d of %d keys written", len(out.Contents), keys)
	again := exec.Command(bin, args...)
	again.Env = env
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("restore again with its job id: %v\n%s", err, out)
	}
	var versions int
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(target)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.DeleteMarkers) > 0 {
			t.Fatalf("delete markers in the target: %d", len(page.DeleteMarkers))
		}
		for _, o := range page.Versions {
			versions++
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(target), Key: o.Key, VersionId: o.VersionId})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(g.Body)
			g.Body.Close()
			var n int
			if _, err := fmt.Sscanf(aws.ToString(o.Key), "k%04d", &n); err != nil || string(b) != fmt.Sprintf("bytes of %d", n) {
				t.Fatalf("%s holds %q", aws.ToString(o.Key), b)
			}
		}
	}
	if versions != keys {
		t.Fatalf("the target holds %d versions of %d keys: each must be written once", versions, keys)
	}
	if code, out, e := cli(t, srv, "job", "show", "--vault", vaultName, "restore-killed-1"); code != 0 || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("job show: %d\n%s%s", code, out, e)
	}
}

// TestCLIRestoreTestKilledIsSwept: `bucketvault restore-test run` killed
// (SIGKILL) while it restores leaves its restore-test-* bucket and a
// RUNNING run; the sweeper keeps both while the run could still be going,
// and once its deadline passed deletes the bucket and records the run
// FAILED.
func TestCLIRestoreTestKilledIsSwept(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bin := buildCLI(t)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, true)
	start := time.Now().UTC().Add(-time.Minute)
	if err := v.PutJSON(ctx, vault.BucketKey(bucket), vault.ProtectedBucket{Bucket: bucket, ProtectedAt: start, FirstFullBackupAt: &start}); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(8)
	for i := range 3000 {
		g.Go(func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("k%05d", i)), Body: strings.NewReader("x")})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := (&journal.Journal{Vault: v, S3: c}).Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), srv.Env()...)
	cmd := exec.Command(bin, "--endpoint-url", srv.Endpoint, "--no-progress", "restore-test", "run", "--vault", v.Bucket, "--bucket", bucket)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// Killed once its bucket holds some of the restore.
	target := ""
	for deadline := time.Now().Add(time.Minute); target == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("restore-test run ended before it was killed: %s", stderr.String())
		default:
		}
		out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Buckets {
			name := aws.ToString(b.Name)
			if !strings.HasPrefix(name, restoretest.TargetPrefix) {
				continue
			}
			if l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(name)}); err == nil && aws.ToInt32(l.KeyCount) > 0 {
				target = name
			}
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	if target == "" {
		t.Fatal("no restore-test bucket appeared")
	}
	hist, err := restoretest.History(ctx, v, bucket)
	if err != nil || len(hist) != 1 || hist[0].Status != restoretest.StatusRunning || hist[0].TargetBucket != target {
		t.Fatalf("history after the kill: %+v %v", hist, err)
	}
	sweep := func(now time.Time) restoretest.Swept {
		code, out, e := cli(t, srv, "--json", "restore-test", "sweep", "--vault", v.Bucket, "--now", now.Format(time.RFC3339))
		var sw restoretest.Swept
		if code != 0 || json.Unmarshal([]byte(out), &sw) != nil {
			t.Fatalf("sweep: %d %q %s", code, out, e)
		}
		return sw
	}
	if sw := sweep(time.Now()); len(sw.Deleted) != 0 {
		t.Fatalf("swept a run that could still be going: %+v", sw)
	}
	if sw := sweep(hist[0].Deadline.Add(time.Minute)); len(sw.Deleted) != 1 || sw.Deleted[0] != target {
		t.Fatalf("sweep after the deadline: %+v", sw)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(target)}); err == nil {
		t.Errorf("%s is still there", target)
	}
	hist, err = restoretest.History(ctx, v, bucket)
	if err != nil || len(hist) != 1 || hist[0].Status != restoretest.StatusFailed || hist[0].DeletedAt == nil {
		t.Fatalf("history after the sweep: %+v %v", hist, err)
	}
}
