package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restoretest"
)

// TestCLIReport: report writes the page of a vault with a protected
// bucket, a snapshot and two restore tests (one within its RTO, one
// past it), prints where; --json prints the file and the summary;
// --bucket and --now narrow it; nothing but the page is left in the
// directory; bad flags are usage errors (exit 2) that write nothing.
func TestCLIReport(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	bucket := srv.NewBucket(t, true)
	vaultName := srv.BucketName(t)
	for _, k := range []string{"a.txt", "dir/b c+d.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("v1 " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"vault", "create", "--vault", vaultName},
		{"protect", "--vault", vaultName, "--bucket", bucket},
		{"backup", "--vault", vaultName, "--bucket", bucket},
	} {
		if code, out, e := cli(t, srv, args...); code != 0 {
			t.Fatalf("%s: %d %s %s", strings.Join(args, " "), code, out, e)
		}
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if code, _, e := cli(t, srv, "reconcile", "--vault", vaultName, "--bucket", bucket); code != 0 {
		t.Fatalf("reconcile: %d %s", code, e)
	}
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "cli-report-"}
	var runs []*restoretest.Run
	for _, rto := range []time.Duration{time.Hour, time.Nanosecond} {
		run, err := tester.Run(ctx, restoretest.RunRequest{Vault: vaultName, Bucket: bucket, RTO: rto})
		if err != nil || run.Status != restoretest.StatusSuccessful {
			t.Fatalf("restore test: %+v %v", run, err)
		}
		runs = append(runs, run)
	}

	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte("an older page"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, e := cli(t, srv, "report", "--vault", vaultName, "--html", page)
	if code != 0 || !strings.Contains(out, "wrote "+page) || !strings.Contains(out, "1 buckets, 2 recovery points (1 continuous, 1 snapshots), 2 restore tests: 2 passed and 0 failed in the last 30 days, 1 of 2 with an RTO target missed it") {
		t.Fatalf("report: %d %q %s", code, out, e)
	}
	html := readFile(t, page)
	for what, n := range map[string]int{`<circle class="run-mark `: 2, `<circle class="miss-ring"`: 1, `<path class="pt-mark pt s-available`: 1, `<rect class="band `: 1} {
		if got := strings.Count(html, what); got != n {
			t.Errorf("the page has %d of %s, want %d", got, what, n)
		}
	}
	for _, id := range []string{runs[0].ID, runs[1].ID, bucket} {
		if !strings.Contains(html, id) {
			t.Errorf("the page does not name %s", id)
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v): want the page alone", entries, err)
	}

	// --json: the file and the summary.
	code, out, e = cli(t, srv, "--json", "report", "--vault", vaultName, "--html", page)
	var got struct {
		File    string `json:"file"`
		Summary struct {
			Buckets, Points, Tests, RecentPassed, RTOMissed int
		} `json:"summary"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.File != page || got.Summary.Buckets != 1 || got.Summary.Points != 2 ||
		got.Summary.Tests != 2 || got.Summary.RecentPassed != 2 || got.Summary.RTOMissed != 1 {
		t.Errorf("report --json: %d %q %s (%+v)", code, out, e, got)
	}

	// --now 40 days on: the tests are older than the last 30 days, and the
	// page says when it is of; --bucket of another bucket: nothing of it.
	later := time.Now().UTC().Add(40 * 24 * time.Hour).Truncate(time.Second)
	other := filepath.Join(dir, "other.html")
	if code, out, e := cli(t, srv, "report", "--vault", vaultName, "--html", other, "--now", later.Format(time.RFC3339)); code != 0 ||
		!strings.Contains(out, "0 passed and 0 failed in the last 30 days") || !strings.Contains(readFile(t, other), "Generated "+later.Format("2006-01-02 15:04:05")) {
		t.Errorf("report --now: %d %q %s", code, out, e)
	}
	if code, out, e := cli(t, srv, "report", "--vault", vaultName, "--html", other, "--bucket", srv.BucketName(t)); code != 0 ||
		!strings.Contains(out, "0 buckets, 0 recovery points") || strings.Contains(readFile(t, other), bucket) {
		t.Errorf("report --bucket: %d %q %s", code, out, e)
	}

	before := readFile(t, page)
	for _, args := range [][]string{
		{"report", "--vault", vaultName},
		{"report", "--html", page},
		{"report", "--vault", vaultName, "--html", page, "--now", "yesterday"},
		{"report", "--vault", vaultName, "--html", filepath.Join(dir, "no-such-dir", "r.html")},
		{"report", "--vault", vaultName, "--html", dir},
		{"report", "--vault", vaultName, "--html", page, "extra"},
	} {
		if code, out, e := cli(t, srv, args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%q %s)", strings.Join(args, " "), code, exitUsage, out, e)
		}
	}
	if readFile(t, page) != before {
		t.Error("a refused report changed the page")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
