package report_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoretest"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

// ScreenshotDir is where the browser test leaves the page and its
// screenshot (kept after the test, to look at).
var screenshotDir = filepath.Join(os.TempDir(), "bucketvault-report")

// TestReportInBrowser: a vault with a protected bucket, a SNAPSHOT point,
// and three restore tests (a snapshot restored within its RTO, the
// continuous window restored past its RTO, and, after one vault data
// object's bytes were replaced, a FAILED one naming the key) makes a
// report whose page a headless Chromium, with no network, renders: one
// mark per run, the RTO line, the damaged key, the snapshot and the
// window; its screenshot is not blank and shows the runs' colours.
func TestReportInBrowser(t *testing.T) {
	chrome := chromium(t)
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, true)
	damaged := "photos/2026/ünïcödé + plus.jpg"
	for _, k := range []string{"photos/2026/a.jpg", damaged, "notes.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("bytes of " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	j := &journal.Journal{Vault: v, S3: c}
	if _, _, err := protect.Protect(ctx, j, bucket, protect.Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := (&snapshot.Engine{S3: c}).Run(ctx, snapshot.Job{Vault: v.Bucket, Bucket: bucket})
	if err != nil || snap.State != snapshot.StateCompleted {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	// The completeness watermark is the second before a reconcile starts:
	// start one in the next second, so the window is more than a second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	tester := &restoretest.Tester{S3: c, Prefix: restoretest.TargetPrefix + "report-"}
	only := func(t restoretest.RecoveryPointType) *restoretest.RecoveryPointSelection {
		return &restoretest.RecoveryPointSelection{Algorithm: restoretest.LatestWithinWindow, IncludeVaults: []string{"*"}, RecoveryPointTypes: []restoretest.RecoveryPointType{t}}
	}
	met, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: only(restoretest.Snapshot), RTO: time.Hour, Seed: 1})
	if err != nil || met.Status != restoretest.StatusSuccessful || met.Type != restoretest.Snapshot || met.RTOMet == nil || !*met.RTOMet {
		t.Fatalf("snapshot restore test within its RTO: %+v %v", met, err)
	}
	missed, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: only(restoretest.Continuous), RTO: time.Nanosecond, Seed: 2})
	if err != nil || missed.Status != restoretest.StatusSuccessful || missed.Type != restoretest.Continuous || missed.RTOMet == nil || *missed.RTOMet {
		t.Fatalf("continuous restore test past its RTO: %+v %v", missed, err)
	}
	// Replace one data object's bytes in the vault (its owner's raw PutObject).
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(dataKeyOf(t, ctx, v, bucket, damaged)),
		Body: strings.NewReader("other bytes!")}); err != nil {
		t.Fatal(err)
	}
	failed, err := tester.Run(ctx, restoretest.RunRequest{Vault: v.Bucket, Bucket: bucket, Selection: only(restoretest.Continuous), RTO: time.Hour, Seed: 3})
	if err != nil || failed.Status != restoretest.StatusFailed {
		t.Fatalf("restore test after damage: %+v %v", failed, err)
	}

	r, err := report.Build(ctx, v, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if s.Buckets != 1 || s.Points != 2 || s.Snapshots != 1 || s.ContinuousPoints != 1 || s.Tests != 3 || s.RecentPassed != 2 || s.RecentFailed != 1 ||
		s.RTOMeasured != 3 || s.RTOMissed != 1 {
		t.Errorf("summary %+v", s)
	}
	if len(r.Failures) != 1 || r.Failures[0].ID != failed.ID || len(r.Runs) != 3 || r.Runs[0].ID != failed.ID || r.Buckets[0].LastTest.ID != failed.ID {
		t.Errorf("failures %+v runs %d", r.Failures, len(r.Runs))
	}
	named := false
	for _, f := range r.Failures[0].Failures {
		named = named || f.Key == damaged
	}
	if !named {
		t.Errorf("the failure does not name %q: %+v", damaged, r.Failures[0].Failures)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(screenshotDir, "report.html")
	if err := r.WriteFile(page); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	report.CheckSelfContained(t, string(html))

	dom := runChromium(t, chrome, "--dump-dom", "file://"+page)
	for what, n := range map[string]int{
		`<circle class="run-mark `:            3, // one per run
		`<circle class="miss-ring"`:           1, // the run past its RTO
		`<path class="rto-line"`:              1,
		`<path class="pt-mark pt s-available`: 1, // the snapshot
		`<rect class="band s-available"`:      1, // the continuous window
		`<article class="failure"`:            1,
	} {
		if got := strings.Count(dom, what); got != n {
			t.Errorf("the rendered page has %d of %s, want %d", got, what, n)
		}
	}
	failures := dom[strings.Index(dom, `<section id="failures">`):]
	if !strings.Contains(failures, "<code>"+damaged+"</code>") || !strings.Contains(failures, failed.ID) {
		t.Errorf("the rendered failures do not name %q of run %s:\n%.2000s", damaged, failed.ID, failures)
	}
	if m := regexp.MustCompile(`id="sum-tests"><span class="ok-text">(\d+)</span> / <span class="bad-text">(\d+)</span>`).FindStringSubmatch(dom); m == nil || m[1] != "2" || m[2] != "1" {
		t.Errorf("the rendered summary of tests: %v", m)
	}

	shot := filepath.Join(screenshotDir, "report.png")
	os.Remove(shot)
	runChromium(t, chrome, "--screenshot="+shot, "--window-size=1280,2400", "file://"+page)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{1280, 2400}) {
		t.Errorf("screenshot of %v, want 1280×2400", got)
	}
	colours := map[[3]uint32]int{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	if len(colours) < 16 {
		t.Errorf("screenshot has %d colours: blank?", len(colours))
	}
	for name, want := range map[string][3]uint32{"SUCCESSFUL green": {0x1a, 0x98, 0x50}, "FAILED red": {0xd7, 0x30, 0x27}, "RTO purple": {0x7b, 0x2c, 0xbf}, "window blue": {0x3a, 0x6f, 0xb0}} {
		if n := near(colours, want); n < 20 {
			t.Errorf("screenshot has %d pixels of the %s (#%02x%02x%02x)", n, name, want[0], want[1], want[2])
		}
	}
	t.Logf("report page: %s", page)
	t.Logf("screenshot (%d colours): %s", len(colours), shot)
}

// near counts the pixels within a small distance of want.
func near(colours map[[3]uint32]int, want [3]uint32) int {
	n := 0
	for c, k := range colours {
		d := 0
		for i := range 3 {
			d += max(int(c[i])-int(want[i]), int(want[i])-int(c[i]))
		}
		if d <= 12 {
			n += k
		}
	}
	return n
}

// runChromium runs headless Chromium with every network request made
// impossible (every host resolves to nothing, and everything, loopback
// included, goes through a proxy on the discard port, which refuses) and
// returns what it printed.
func runChromium(t *testing.T, chrome string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, chrome, append(base, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", chrome, strings.Join(args, " "), err, tail(errOut.String(), 30))
	}
	return out.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chromium finds Chromium, or installs Debian's (with fonts) the way the
// local S3 server installs itself: on first use, once, under a lock that
// go test's package processes share. -short does not install it (the
// test skips); set BUCKETVAULT_CHROMIUM to use another Chromium or
// Chrome.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BUCKETVAULT_CHROMIUM"); p != "" {
		return p
	}
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	if testing.Short() {
		t.Skip("chromium is not installed; go test without -short installs it (apt-get)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		t.Fatalf("chromium is not installed and this test can install it only as root with apt-get (Debian, Ubuntu): install chromium, or set BUCKETVAULT_CHROMIUM to a Chromium or Chrome")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	unlock, err := locals3.LockFile(ctx, filepath.Join(os.TempDir(), "bucketvault-chromium-install.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if p := find(); p != "" {
		return p
	}
	start := time.Now()
	for _, args := range [][]string{
		{"-o", "DPkg::Lock::Timeout=600", "update"},
		{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"},
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 30))
		}
	}
	p := find()
	if p == "" {
		t.Fatal("apt-get installed chromium, but it is not in PATH")
	}
	t.Logf("installed %s in %s", p, time.Since(start).Round(time.Second))
	return p
}

// dataKeyOf is the vault data key the journal recorded for key.
func dataKeyOf(t *testing.T, ctx context.Context, v *vault.Vault, bucket, key string) string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		k, recs, err := m.NextKey()
		if err != nil {
			t.Fatalf("no data of %s: %v", key, err)
		}
		for _, r := range recs {
			if k == key && r.Data != "" {
				return r.Data
			}
		}
	}
}
