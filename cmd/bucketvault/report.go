package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/report"
)

// reportCommand writes the vault's report as one HTML page
// (shared/report).
func (a *app) reportCommand() *cobra.Command {
	var vaultName, bucket, htmlFile, nowText string
	cmd := &cobra.Command{
		Use:   "report --vault V --html FILE [--bucket B]",
		Short: "Write the vault's report as one HTML page: recovery points on a timeline, restore tests against their RTO, failures",
		Long: `report reads the vault's recovery points and restore test records and writes
one self-contained HTML page (inline styles and charts; it loads nothing, so
it opens offline and can be mailed or archived):

  - a summary: buckets, recovery points, restore tests passed and failed in
    the last 30 days, RTO misses, each bucket's last test;
  - each bucket's recovery points on a timeline: the CONTINUOUS window (its
    earliest restorable second to the completeness watermark) as a band,
    SNAPSHOT points as marks coloured by status, restore tests as ticks;
  - each bucket's restore tests over time: the restore's time against the
    RTO target, coloured SUCCESSFUL or FAILED;
  - every FAILED test with its message and each failed key and why, and a
    table of every test.

The file is written whole or not at all (a temporary file renamed over it).
--now measures windows and the last 30 days at another time.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("report takes no arguments (got %q): the vault is --vault, the file --html", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ n, v string }{{"vault", vaultName}, {"html", htmlFile}} {
				if err := requireFlag(f.n, f.v); err != nil {
					return err
				}
			}
			now := time.Now()
			if nowText != "" {
				t, err := time.Parse(time.RFC3339, nowText)
				if err != nil {
					return usagef("--now %q: want an RFC 3339 time, such as 2026-11-23T10:15:00Z", nowText)
				}
				now = t
			}
			if st, err := os.Stat(htmlFile); err == nil && st.IsDir() {
				return usagef("--html %s is a directory: name the file to write", htmlFile)
			}
			if st, err := os.Stat(filepath.Dir(htmlFile)); err != nil || !st.IsDir() {
				return usagef("--html %s: no directory %s to write it in", htmlFile, filepath.Dir(htmlFile))
			}
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			r, err := report.Build(cmd.Context(), v, bucket, now)
			if err != nil {
				return err
			}
			if err := r.WriteFile(htmlFile); err != nil {
				return err
			}
			path, err := filepath.Abs(htmlFile)
			if err != nil {
				path = htmlFile
			}
			s := r.Summary
			text := fmt.Sprintf("wrote %s\n  %d buckets, %d recovery points (%d continuous, %d snapshots), %d restore tests: %d passed and %d failed in the last %d days, %d of %d with an RTO target missed it\n",
				path, s.Buckets, s.Points, s.ContinuousPoints, s.Snapshots, s.Tests, s.RecentPassed, s.RecentFailed, report.RecentDays, s.RTOMissed, s.RTOMeasured)
			return a.print(struct {
				File    string         `json:"file"`
				Summary report.Summary `json:"summary"`
			}{path, s}, text)
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&htmlFile, "html", "", "the HTML file to write (replaced whole)")
	f.StringVar(&bucket, "bucket", "", "only this protected bucket")
	f.StringVar(&nowText, "now", "", "report as of this time (RFC 3339; default: now)")
	return cmd
}
