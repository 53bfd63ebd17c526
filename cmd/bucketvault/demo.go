package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/runner"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func (a *app) demoCommand() *cobra.Command {
	var objects int
	var reportFile string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the end-to-end demo on a local S3 server: protect, write, break, restore, verify",
		Long: `demo starts the local S3 server (installing it on first use), creates a
versioned bucket and a vault, protects the bucket, journals its events
continuously (as serve does), writes a realistic workload, then plays
ransomware: overwrites and deletes much of the bucket. It restores the bucket
as of the second before the incident into a new bucket, verifies it object by
object against the pre-incident state, runs a restore test, verifies the
vault, writes the vault's report page (--report) and prints a report. It exits non-zero if anything does not match.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if objects < 10 {
				return usagef("--objects %d: want at least 10", objects)
			}
			return a.demo(cmd.Context(), objects, reportFile)
		},
	}
	cmd.Flags().IntVar(&objects, "objects", 300, "objects in the workload")
	cmd.Flags().StringVar(&reportFile, "report", filepath.Join(os.TempDir(), "bucketvault-demo-report.html"), "where to write the vault's report page")
	return cmd
}

type demoStep struct {
	a     *app
	start time.Time
}

func (d *demoStep) say(f string, args ...any) {
	fmt.Fprintf(d.a.stdout, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(f, args...))
}

func (a *app) demo(ctx context.Context, objects int, reportFile string) error {
	d := &demoStep{a: a, start: time.Now()}
	r := &runner.Runner{ReconcileEvery: -1, BatchWait: 200 * time.Millisecond, Log: a.log}
	rcv, err := locals3.NewReceiverFunc(r.Handle)
	if err != nil {
		return err
	}
	defer rcv.Close()
	d.say("starting the local S3 server (MinIO; the first run builds it, several minutes)")
	srv, err := locals3.Start(ctx, locals3.Options{WebhookURL: rcv.URL()})
	if err != nil {
		return err
	}
	defer srv.Stop()
	d.say("local S3 server at %s, webhook events to %s", srv.Endpoint, rcv.URL())
	c := srv.Client(ctx)
	w := &demoWorkload{ctx: ctx, c: c, bucket: "photos", rng: mrand.New(mrand.NewPCG(1, 2))}
	if err := srv.CreateBucket(ctx, w.bucket, locals3.BucketOptions{Versioned: true}); err != nil {
		return err
	}
	// Data that exists before protection: the initial full backup takes it.
	for i := range 20 {
		if err := w.put(fmt.Sprintf("archive/2023/scan-%03d.pdf", i), 2048+w.rng.IntN(8192), "application/pdf", true); err != nil {
			return err
		}
	}
	w.events = 0 // not subscribed yet: these reach the vault through the initial backup
	v, err := vault.Create(ctx, c, "vault", vault.CreateOptions{})
	if err != nil {
		return err
	}
	j := &journal.Journal{Vault: v, S3: c, Log: a.log, Copy: s3x.CopyOptions{Threshold: 8 << 20, PartSize: 5 << 20}}
	r.Journal = j
	pb, pr, err := protect.Protect(ctx, j, w.bucket, protect.Options{QueueARN: srv.WebhookARN})
	if err != nil {
		return err
	}
	d.say("protected s3://%s in vault s3://%s (events: %s); initial full backup: %d versions", w.bucket, v.Bucket, pb.Events, pr.Added)
	runCtx, stopRunner := context.WithCancel(ctx)
	defer stopRunner()
	go func() { _ = r.Run(runCtx) }()

	d.say("writing the workload: %d objects in nested prefixes, overwrites, deletes, tags, metadata, a multipart object", objects)
	if err := w.workload(objects); err != nil {
		return err
	}
	if err := waitJournal(ctx, r, w.events); err != nil {
		return err
	}
	st := r.Stats()
	d.say("journal caught up: %d events journaled (%d skipped)", st.Journaled, st.Skipped)

	before, err := inspect.Capture(ctx, c, w.bucket, "")
	if err != nil {
		return err
	}
	d.say("snapshot: bucketvault backup --vault %s --bucket %s", v.Bucket, w.bucket)
	snap, err := (&snapshot.Engine{S3: c, Log: a.log, Events: notify.Log{Logger: a.log}}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: w.bucket})
	if err != nil {
		return err
	}
	d.say("snapshot %s: %s, %d objects, %d copied (the journal had the rest)", snap.RecoveryPointID, snap.State, snap.Totals.Objects, snap.Totals.Copied)
	at := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(at.Add(time.Second + 100*time.Millisecond)))
	d.say("the bucket holds %d objects at %s: this is the moment to return to", len(before), at.Format(time.RFC3339))

	d.say("ransomware: overwriting and deleting much of the bucket")
	hit, gone, err := w.ransomware(before)
	if err != nil {
		return err
	}
	if err := waitJournal(ctx, r, w.events); err != nil {
		return err
	}
	after, err := inspect.Capture(ctx, c, w.bucket, "")
	if err != nil {
		return err
	}
	d.say("incident: %d objects encrypted, %d deleted; %d of %d objects still intact", hit, gone, countSame(before, after), len(before))

	// Events are hints: a listing vouches for the journal. The scheduled
	// reconcile does this in a deployment; in an incident, run it first.
	d.say("making the journal complete: bucketvault reconcile --vault %s --bucket %s", v.Bucket, w.bucket)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 100*time.Millisecond)))
	rp, err := j.Reconcile(ctx, w.bucket, journal.ReconcileOptions{})
	if err != nil {
		return err
	}
	d.say("reconcile: %d listed, %d records the events had missed; the journal is complete through %s", rp.Listed, rp.Added, rp.CompleteThrough.Format(time.RFC3339))

	d.say("restoring: bucketvault restore --vault %s --bucket %s --at %s --target-bucket photos-restored --create-bucket",
		v.Bucket, w.bucket, at.Format(time.RFC3339))
	rs := &restore.Restorer{S3: c, Log: a.log}
	rep, err := rs.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: w.bucket, At: at, TargetBucket: "photos-restored", CreateBucket: true})
	if err != nil {
		return err
	}
	d.say("restore %s: %s, %d objects (%d bytes) restored and verified in %.1fs", rep.JobID, rep.State, rep.Restored, rep.Bytes, rep.DurationSeconds)

	restored, err := inspect.Capture(ctx, c, "photos-restored", "")
	if err != nil {
		return err
	}
	diffs := inspect.Diff(before, restored)
	d.say("restoring the snapshot too: bucketvault restore --vault %s --bucket %s --recovery-point %s --target-bucket photos-from-snapshot --create-bucket",
		v.Bucket, w.bucket, snap.RecoveryPointID)
	srep, err := rs.Run(ctx, restore.Request{Vault: v.Bucket, Bucket: w.bucket, RecoveryPointID: snap.RecoveryPointID, TargetBucket: "photos-from-snapshot", CreateBucket: true})
	if err != nil {
		return err
	}
	fromSnap, err := inspect.Capture(ctx, c, "photos-from-snapshot", "")
	if err != nil {
		return err
	}
	snapDiffs := inspect.Diff(before, fromSnap)
	vr, err := v.Verify(ctx, 16, true, nil)
	if err != nil {
		return err
	}
	// What expiry would do a window later (a dry run: nothing deleted).
	later := time.Now().AddDate(0, 0, v.Descriptor.RetentionDays).Add(time.Hour)
	d.say("expiry, as of one window later (dry run): bucketvault expire --vault %s --now %s --dry-run", v.Bucket, later.UTC().Format(time.RFC3339))
	exp, err := v.Expire(ctx, vault.ExpireOptions{Now: later, DryRun: true})
	if err != nil {
		return err
	}
	// Prove the backup comes back, as a scheduled restore test does, and
	// draw the vault for a person to look at.
	d.say("restore test: bucketvault restore-test run --vault %s --bucket %s --algorithm random --seed 2026 --rto 5m", v.Bucket, w.bucket)
	rt, err := (&restoretest.Tester{S3: c}).Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: w.bucket, Seed: 2026, RTO: 5 * time.Minute,
		Selection: &restoretest.RecoveryPointSelection{Algorithm: restoretest.RandomWithinWindow, IncludeVaults: []string{"*"},
			RecoveryPointTypes: []restoretest.RecoveryPointType{restoretest.Snapshot, restoretest.Continuous}}})
	if err != nil {
		return err
	}
	d.say("restore test %s: %s, %s %s restored into %s and validated (%d of %d objects read whole), bucket deleted", rt.ID, rt.Status, rt.Type, rt.At.Format(time.RFC3339),
		rt.TargetBucket, rt.Validation.SampleSize, rt.Objects)
	page, err := filepath.Abs(reportFile)
	if err != nil {
		return err
	}
	d.say("the vault's page: bucketvault report --vault %s --html %s", v.Bucket, page)
	rpt, err := report.Build(ctx, v, "", time.Now())
	if err != nil {
		return err
	}
	if err := rpt.WriteFile(page); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nbucketvault demo report\n")
	fmt.Fprintf(a.stdout, "  protected bucket      s3://%s (%d objects before the incident)\n", w.bucket, len(before))
	fmt.Fprintf(a.stdout, "  vault                 s3://%s: %d segments, %d records, %d data objects (%d bytes)\n", v.Bucket, vr.Segments, vr.Records, vr.Data, vr.Bytes)
	fmt.Fprintf(a.stdout, "  events journaled      %d (skipped %d, failed %d)\n", r.Stats().Journaled, r.Stats().Skipped, r.Stats().Failed)
	fmt.Fprintf(a.stdout, "  incident              %d encrypted, %d deleted\n", hit, gone)
	fmt.Fprintf(a.stdout, "  restore               %s as of %s: %d restored, %d failed\n", rep.State, at.Format(time.RFC3339), rep.Restored, rep.Failed)
	fmt.Fprintf(a.stdout, "  object-by-object      %d of %d match the pre-incident state\n", len(before)-len(diffs), len(before))
	fmt.Fprintf(a.stdout, "  snapshot              %s %s: %d objects, %d copied by the snapshot\n", snap.RecoveryPointID, snap.State, snap.Totals.Objects, snap.Totals.Copied)
	fmt.Fprintf(a.stdout, "  snapshot restore      %s: %d of %d match the pre-incident state\n", srep.State, len(before)-len(snapDiffs), len(before))
	fmt.Fprintf(a.stdout, "  restore test          %s: %s as of %s, %d objects in %.1fs (RTO 5m %s)\n", rt.Status, rt.Type, rt.At.Format(time.RFC3339), rt.Objects, rt.RestoreSeconds,
		map[bool]string{true: "met", false: "MISSED"}[rt.RTOMet != nil && *rt.RTOMet])
	fmt.Fprintf(a.stdout, "  report page           %s\n", page)
	fmt.Fprintf(a.stdout, "  vault verify          %s\n", map[bool]string{true: "OK", false: fmt.Sprintf("%d problems", len(vr.Problems))}[vr.OK()])
	fmt.Fprintf(a.stdout, "  expiry (dry run)      a window later it would fold %d journals and expire %d recovery points; %d data objects referenced, %d to collect once a day old\n",
		len(exp.Folds), len(exp.Expired), exp.Collected.Live, exp.Data.Objects+exp.Collected.Young)
	for _, df := range diffs {
		fmt.Fprintf(a.stdout, "  MISMATCH %s\n", df)
	}
	for _, df := range snapDiffs {
		fmt.Fprintf(a.stdout, "  SNAPSHOT MISMATCH %s\n", df)
	}
	for _, p := range vr.Problems {
		fmt.Fprintf(a.stdout, "  VAULT PROBLEM %s\n", p)
	}
	for _, f := range rt.Failures {
		fmt.Fprintf(a.stdout, "  RESTORE TEST FAILED %s: %s\n", f.Key, f.Why)
	}
	if len(diffs) > 0 || len(snapDiffs) > 0 || !vr.OK() || rep.State != restore.StateCompleted || srep.State != restore.StateCompleted || snap.State != snapshot.StateCompleted ||
		rt.Status != restoretest.StatusSuccessful {
		return fmt.Errorf("demo failed: %d mismatches, %d snapshot mismatches, %d vault problems, restore %s, snapshot restore %s, restore test %s",
			len(diffs), len(snapDiffs), len(vr.Problems), rep.State, srep.State, rt.Status)
	}
	fmt.Fprintf(a.stdout, "  result                PASS\n")
	return nil
}

// waitJournal waits until the runner has received want events and
// journaled them all.
func waitJournal(ctx context.Context, r *runner.Runner, want int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for r.Stats().Received < int64(want) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events arrived from the server in 2 minutes", r.Stats().Received, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.WaitIdle()
	return nil
}

func countSame(a, b map[string]inspect.Object) int {
	n := 0
	for k, o := range a {
		if p, ok := b[k]; ok && inspect.Equal(o, p) {
			n++
		}
	}
	return n
}

type demoWorkload struct {
	ctx    context.Context
	c      *s3.Client
	bucket string
	rng    *mrand.Rand
	events int // changes made since protection: each one an event
	keys   []string
}

func (w *demoWorkload) put(key string, size int, contentType string, tags bool) error {
	body := make([]byte, size)
	_, _ = rand.Read(body)
	in := &s3.PutObjectInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String(contentType),
		Metadata: map[string]string{"uploaded-by": "demo", "camera": []string{"x100", "gr3", "q2"}[w.rng.IntN(3)]},
	}
	if tags {
		in.Tagging = aws.String("project=demo&tier=" + []string{"hot", "warm"}[w.rng.IntN(2)])
	}
	if strings.HasSuffix(key, ".html") {
		in.CacheControl = aws.String("max-age=3600")
		in.ContentLanguage = aws.String("en")
	}
	if _, err := w.c.PutObject(w.ctx, in); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	w.events++
	return nil
}

func (w *demoWorkload) workload(n int) error {
	prefixes := []string{"photos/2024/06/", "photos/2024/07/", "photos/2025/01/raw/", "docs/contracts/", "site/en/", "logs/app/"}
	contentTypes := map[string]string{"photos": "image/jpeg", "docs": "application/pdf", "site": "text/html", "logs": "text/plain"}
	for i := range n {
		p := prefixes[w.rng.IntN(len(prefixes))]
		ext := map[string]string{"photos": ".jpg", "docs": ".pdf", "site": ".html", "logs": ".log"}[strings.SplitN(p, "/", 2)[0]]
		key := fmt.Sprintf("%sitem %04d%s", p, i, ext)
		if i%17 == 0 {
			key = fmt.Sprintf("%scafé+ünïcode %04d%s", p, i, ext)
		}
		if err := w.put(key, 512+w.rng.IntN(16<<10), contentTypes[strings.SplitN(p, "/", 2)[0]], w.rng.IntN(3) == 0); err != nil {
			return err
		}
		w.keys = append(w.keys, key)
	}
	for range n / 5 { // overwrites, some twice within a second
		k := w.keys[w.rng.IntN(len(w.keys))]
		for range 1 + w.rng.IntN(2) {
			if err := w.put(k, 512+w.rng.IntN(16<<10), "image/jpeg", false); err != nil {
				return err
			}
		}
	}
	for range n / 10 { // deletes
		i := w.rng.IntN(len(w.keys))
		if _, err := w.c.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(w.keys[i])}); err != nil {
			return err
		}
		w.events++
		w.keys = append(w.keys[:i], w.keys[i+1:]...)
	}
	for range n / 10 { // tag changes
		k := w.keys[w.rng.IntN(len(w.keys))]
		if _, err := w.c.PutObjectTagging(w.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(w.bucket), Key: aws.String(k),
			Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("reviewed"), Value: aws.String("yes")}}}}); err != nil {
			return err
		}
		w.events++
	}
	return w.multipart("videos/launch.mp4", []int{5 << 20, 5 << 20, 2 << 20})
}

func (w *demoWorkload) multipart(key string, parts []int) error {
	up, err := w.c.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(key), ContentType: aws.String("video/mp4")})
	if err != nil {
		return err
	}
	var done []types.CompletedPart
	for i, size := range parts {
		body := make([]byte, size)
		_, _ = rand.Read(body)
		out, err := w.c.UploadPart(w.ctx, &s3.UploadPartInput{Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
		if err != nil {
			return err
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	_, err = w.c.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		return err
	}
	w.events++
	w.keys = append(w.keys, key)
	return nil
}

// ransomware overwrites about 60% of the objects with noise and deletes
// about 30%.
func (w *demoWorkload) ransomware(before map[string]inspect.Object) (hit, gone int, err error) {
	for k := range before {
		switch x := w.rng.IntN(10); {
		case x < 6:
			body := make([]byte, 1024)
			_, _ = rand.Read(body)
			if _, err := w.c.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(k), Body: bytes.NewReader(body),
				Metadata: map[string]string{"note": "pay-up"}}); err != nil {
				return hit, gone, err
			}
			w.events++
			hit++
		case x < 9:
			if _, err := w.c.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(k)}); err != nil {
				return hit, gone, err
			}
			w.events++
			gone++
		}
	}
	return hit, gone, nil
}
