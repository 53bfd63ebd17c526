package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/vault"
)

// expireCommand is `bucketvault expire`: the expire function's work, run
// here.
func (a *app) expireCommand() *cobra.Command {
	var vaultName, now string
	var dry bool
	cmd := &cobra.Command{
		Use:   "expire --vault V [--now RFC3339] [--dry-run]",
		Short: "Age a vault: fold journals past their window, expire recovery points at DeleteAt, collect what nothing references",
		Long: `expire does what the scheduled expire function does daily. Each protected
bucket's journal is folded at the floor of its point-in-time window (a
restore before the floor is refused from then on); snapshot recovery
points whose DeleteAt has come are deleted, and a point still CREATING
past its job's deadline (its job was abandoned) is STOPPED; journal
objects and data that no record references any more are deleted (data
only when written more than a day ago, so nothing a running backup has
just stored goes).

It resumes where an interrupted run stopped: run it again. --now measures
windows and lifecycles at another time (tests, what-if runs); --dry-run
prints what would be deleted and deletes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := vault.ExpireOptions{DryRun: dry}
			if now != "" {
				t, err := time.Parse(time.RFC3339Nano, now)
				if err != nil {
					return usagef("--now %q: want RFC 3339, for example 2026-11-23T10:15:00Z", now)
				}
				o.Now = t
			}
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			p := a.newProgress("expire")
			o.Progress = func(r vault.ExpireReport) {
				p.set(r.Data.Versions+r.Journal.Versions, fmt.Sprintf("%s: %d folds, %d recovery points, %d journal and %d data objects",
					r.Stage, len(r.Folds), len(r.Expired), r.Journal.Objects, r.Data.Objects))
			}
			rep, err := v.Expire(cmd.Context(), o)
			p.done()
			if err != nil {
				return err
			}
			return a.print(rep, expireText(rep))
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&now, "now", "", "measure windows and lifecycles at this time (RFC 3339) instead of now")
	f.BoolVar(&dry, "dry-run", false, "print what would be deleted; delete nothing")
	return cmd
}

func expireText(r *vault.ExpireReport) string {
	var b strings.Builder
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(&b, "vault s3://%s, expiry as of %s", r.Vault, r.Now.Format(time.RFC3339))
	if r.DryRun {
		b.WriteString(" (dry run: nothing deleted)")
	}
	b.WriteString("\n")
	for _, f := range r.Folds {
		switch {
		case r.DryRun:
			fmt.Fprintf(&b, "  journal of %s: would fold at %s (%d-day window)", f.Bucket, f.Floor.Format(time.RFC3339), f.WindowDays)
		default:
			fmt.Fprintf(&b, "  journal of %s: folded at %s (%d-day window): %d records kept, %d left out", f.Bucket, f.Floor.Format(time.RFC3339), f.WindowDays, f.Records, f.Folded)
		}
		if f.Reason != "" && !r.DryRun {
			fmt.Fprintf(&b, " (%s)", f.Reason)
		}
		b.WriteString("\n")
	}
	for _, p := range r.Stopped {
		// Before the expired ones: a stopped point no longer holds its base.
		stop, job := "stopped", fmt.Sprintf("its job %s is %s", p.BackupJobID, p.JobState)
		if r.DryRun {
			stop, job = "would stop", fmt.Sprintf("its job %s would be FAILED", p.BackupJobID)
		}
		if p.JobState == "" && !r.DryRun {
			job = fmt.Sprintf("its job %s has no record", p.BackupJobID)
		}
		fmt.Fprintf(&b, "  recovery point %s of %s: CREATING past its job's deadline %s (from %s): %s (STOPPED); %s\n",
			p.RecoveryPointID, p.Bucket, p.Deadline.Format(time.RFC3339), p.DeadlineFrom, stop, job)
	}
	for _, p := range r.Expired {
		fmt.Fprintf(&b, "  recovery point %s of %s: expired (DeleteAt %s), %s %d objects\n", p.RecoveryPointID, p.Bucket, p.DeleteAt.Format(time.RFC3339), verb, p.Objects)
	}
	fmt.Fprintf(&b, "  journal and manifest objects: %s %d (%d versions, %s)\n", verb, r.Journal.Objects, r.Journal.Versions, byteSize(r.Journal.Bytes))
	fmt.Fprintf(&b, "  data objects: %s %d (%d versions, %s)\n", verb, r.Data.Objects, r.Data.Versions, byteSize(r.Data.Bytes))
	if n := r.RepairRecords; n.Objects > 0 {
		fmt.Fprintf(&b, "  repair records, with their data objects: %s %d (%d versions)\n", verb, n.Objects, n.Versions)
	}
	c := r.Collected
	if c.SkippedBecause != "" {
		fmt.Fprintf(&b, "  data not collected: %s\n", c.SkippedBecause)
	} else {
		fmt.Fprintf(&b, "  kept: %d data objects referenced (%s), %d unreferenced but written within a day (%s)\n", c.Live, byteSize(c.LiveBytes), c.Young, byteSize(c.YoungBytes))
	}
	for _, p := range r.Cold.Points {
		fmt.Fprintf(&b, "  recovery point %s of %s: %s cold storage (MoveToColdStorageAt %s)\n", p.RecoveryPointID, p.Bucket, map[bool]string{true: "would move to", false: "moved to"}[r.DryRun], p.MoveToColdStorageAt.Format(time.RFC3339))
	}
	if cs := r.Cold; cs.Tagged+cs.Pending+cs.InColdClass+cs.KeptWarm+cs.TooSmall > 0 {
		tagVerb := "tagged"
		if r.DryRun {
			tagVerb = "would tag"
		}
		fmt.Fprintf(&b, "  cold tier: %s %d data object versions (%s) for the cold storage class; %d tagged before, awaiting the vault's lifecycle; %d objects (%s) in a cold class",
			tagVerb, cs.Tagged, byteSize(cs.TaggedBytes), cs.Pending, cs.InColdClass, byteSize(cs.ColdBytes))
		if cs.KeptWarm > 0 {
			fmt.Fprintf(&b, "; %d kept warm (10 tags already, or a %s tag of their own)", cs.KeptWarm, vault.TierTag)
		}
		if cs.TooSmall > 0 {
			fmt.Fprintf(&b, "; %d smaller than %s left where they are", cs.TooSmall, byteSize(vault.ColdMinSize))
		}
		b.WriteString("\n")
	}
	if n := r.Journal.Retained + r.Data.Retained + r.RepairRecords.Retained; n > 0 {
		fmt.Fprintf(&b, "  %d versions kept by S3 Object Lock until their retention ends\n", n)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  WARNING %s\n", w)
	}
	return b.String()
}

// byteSize prints a byte count for people.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// vaultShow is what `vault show` prints.
type vaultShow struct {
	Vault         string           `json:"vault"`
	Format        string           `json:"format"`
	FormatVersion int              `json:"formatVersion"`
	CreatedAt     time.Time        `json:"createdAt"`
	DefaultWindow int              `json:"defaultWindowDays"`
	Lock          *vault.VaultLock `json:"lock"`
	Buckets       []bucketShow     `json:"buckets"`
	Snapshots     map[string]int   `json:"snapshots"`               // live snapshot recovery points per bucket
	ColdSnapshots map[string]int   `json:"coldSnapshots,omitempty"` // of them, those in the cold tier
	Usage         *vault.Usage     `json:"usage,omitempty"`
}

type bucketShow struct {
	Bucket     string              `json:"bucket"`
	WindowDays int                 `json:"windowDays"`
	Window     vault.RestoreWindow `json:"restorable"`
	Journal    vault.JournalStatus `json:"journal"`
}

func (a *app) vaultShowCommand() *cobra.Command {
	var vaultName string
	var noUsage bool
	cmd := &cobra.Command{
		Use:   "show --vault V [--no-usage]",
		Short: "Show a vault: format, window per bucket, lock, and usage (what recovery points and the journal reference, what awaits collection)",
		Long: `show prints the vault's format version, each protected bucket's point-in-time
window and floor, its journal, the vault lock, and its usage. Usage reads
every reference and lists every object, as expiry's collection does (its
cost grows with the vault): --no-usage leaves it out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			d := v.Descriptor
			s := vaultShow{Vault: v.Bucket, Format: d.Format, FormatVersion: d.FormatVersion, CreatedAt: d.CreatedAt, DefaultWindow: d.RetentionDays,
				Lock: v.Lock, Snapshots: map[string]int{}}
			buckets, err := v.Buckets(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			for _, b := range buckets {
				w, err := v.WindowAt(ctx, b.Bucket, now)
				if err != nil {
					return err
				}
				js, err := v.Journal(ctx, b.Bucket)
				if err != nil {
					return err
				}
				s.Buckets = append(s.Buckets, bucketShow{Bucket: b.Bucket, WindowDays: v.Window(b), Window: w, Journal: js})
			}
			snaps, err := v.SnapshotBuckets(ctx)
			if err != nil {
				return err
			}
			for _, b := range snaps {
				points, err := v.Snapshots(ctx, b)
				if err != nil {
					return err
				}
				for _, p := range points {
					if p.Status == vault.PointAvailable || p.Status == vault.PointPartial {
						s.Snapshots[b]++
						if p.IsCold() {
							if s.ColdSnapshots == nil {
								s.ColdSnapshots = map[string]int{}
							}
							s.ColdSnapshots[b]++
						}
					}
				}
			}
			if !noUsage {
				p := a.newProgress("usage")
				s.Usage, err = v.Usage(ctx)
				p.done()
				if err != nil {
					return err
				}
			}
			return a.print(s, vaultShowText(s))
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().BoolVar(&noUsage, "no-usage", false, "leave out usage (which reads every reference)")
	return cmd
}

func vaultShowText(s vaultShow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vault s3://%s: format %s version %d, created %s, default point-in-time window %d days\n",
		s.Vault, s.Format, s.FormatVersion, s.CreatedAt.Format(time.RFC3339), s.DefaultWindow)
	if s.FormatVersion < vault.FormatVersion {
		fmt.Fprintf(&b, "  format %d: run `bucketvault vault upgrade --vault %s` (compaction and expiry need format %d)\n", s.FormatVersion, s.Vault, vault.FormatVersion)
	}
	if l := s.Lock; l != nil {
		fmt.Fprintf(&b, "  lock: %s, retention %d to %d days", l.Mode, l.MinRetentionDays, l.MaxRetentionDays)
		if l.ChangeableForDays > 0 {
			fmt.Fprintf(&b, ", changeable for %d days after it was set", l.ChangeableForDays)
		}
		b.WriteString("\n")
	} else {
		b.WriteString("  lock: none\n")
	}
	for _, x := range s.Buckets {
		fmt.Fprintf(&b, "  %s: %d-day window, restorable from %s", x.Bucket, x.WindowDays, x.Window.Earliest.Format(time.RFC3339))
		if !x.Window.Floor.IsZero() {
			fmt.Fprintf(&b, " (journal folded at %s)", x.Window.Floor.Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "; journal: %d runs (%d records), %d segments after them\n", x.Journal.Runs, x.Journal.Records, x.Journal.Pending)
	}
	for _, bucket := range slices.Sorted(maps.Keys(s.Snapshots)) {
		n := s.Snapshots[bucket]
		fmt.Fprintf(&b, "  %s: %d snapshot recovery points", bucket, n)
		if k := s.ColdSnapshots[bucket]; k > 0 {
			fmt.Fprintf(&b, ", %d of them COLD", k)
		}
		b.WriteString("\n")
	}
	if u := s.Usage; u != nil {
		fmt.Fprintf(&b, "  usage: %d data objects referenced (%s); journal and manifests %s\n", u.Live, byteSize(u.LiveBytes), byteSize(u.JournalBytes))
		if u.Cold.InColdClass+u.Cold.Tagged > 0 {
			fmt.Fprintf(&b, "  cold tier: %d data objects (%s) in a cold storage class; %d versions (%s) only cold points reference, not in a cold class yet (tagged, or for the next expiry to tag)\n",
				u.Cold.InColdClass, byteSize(u.Cold.ColdBytes), u.Cold.Tagged, byteSize(u.Cold.TaggedBytes))
		}
		fmt.Fprintf(&b, "  awaiting collection: %d data objects (%s), %d journal objects (%s); %d more written within a day (%s)\n",
			u.AwaitingData.Objects, byteSize(u.AwaitingData.Bytes), u.AwaitingJournal.Objects, byteSize(u.AwaitingJournal.Bytes), u.Young, byteSize(u.YoungBytes))
		if u.SkippedBecause != "" {
			fmt.Fprintf(&b, "  %s\n", u.SkippedBecause)
		}
		for _, w := range u.Warnings {
			fmt.Fprintf(&b, "  WARNING %s\n", w)
		}
	}
	return b.String()
}

func (a *app) vaultUpgradeCommand() *cobra.Command {
	var vaultName string
	cmd := &cobra.Command{
		Use:   "upgrade --vault V",
		Short: fmt.Sprintf("Bring a vault to format version %d (idempotent; run it again to finish an interrupted upgrade)", vault.FormatVersion),
		Long: `upgrade writes each journal's index, adopting the format 1 vault's newest
run as it is (nothing is rewritten: a few requests per bucket), then marks
the descriptor with the new format version. A vault already at it is left
as it is. Deploy the new bucketvault first: a reader that knows only
format 1 refuses an upgraded vault.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			rep, err := v.Upgrade(cmd.Context())
			if err != nil {
				return err
			}
			var b strings.Builder
			if rep.Already {
				fmt.Fprintf(&b, "vault s3://%s is at format version %d already: nothing to do\n", rep.Vault, rep.From)
			} else {
				fmt.Fprintf(&b, "vault s3://%s upgraded from format version %d to %d\n", rep.Vault, rep.From, rep.To)
				for _, u := range rep.Buckets {
					switch {
					case u.Existed:
						fmt.Fprintf(&b, "  %s: journal index written by an earlier run\n", u.Bucket)
					case u.Cut != "":
						fmt.Fprintf(&b, "  %s: journal index adopting the run up to segment %s (%d records)\n", u.Bucket, u.Cut, u.Records)
					default:
						fmt.Fprintf(&b, "  %s: journal index (no run yet: its segments are read)\n", u.Bucket)
					}
					for _, d := range u.Damage {
						fmt.Fprintf(&b, "    WARNING %s\n", d)
					}
				}
			}
			return a.print(rep, b.String())
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	return cmd
}

func (a *app) vaultLockCommand() *cobra.Command {
	var vaultName, mode string
	var minDays, maxDays, changeable int
	cmd := &cobra.Command{
		Use:   "lock --vault V --mode governance|compliance --min-retention-days N [--max-retention-days N] [--changeable-for-days N]",
		Short: "Lock a vault: every recovery point kept between the minimum and maximum retention, enforced by the engine and by S3 Object Lock",
		Long: `lock sets the vault lock, AWS Backup's semantics on S3 Object Lock. Every
recovery point's retention must lie between --min-retention-days and
--max-retention-days (a backup or a protect whose retention falls outside is
refused, naming the field); expiry never deletes a recovery point before the
minimum; and S3 Object Lock on the vault bucket (its default retention, in
the lock's mode) keeps every object, and what a recovery point references
until the point's DeleteAt, from being deleted by anyone.

A governance lock can be changed or removed by whoever may bypass governance
retention. A compliance lock can be changed until --changeable-for-days
(at least 3, the default) have passed; then it is immutable, and so is every
retention it set. The vault bucket needs S3 Object Lock, which S3 enables
only when a bucket is created (vault create --object-lock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("mode", mode); err != nil {
				return err
			}
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			l, err := v.SetLock(cmd.Context(), vault.LockOptions{Mode: mode, MinRetentionDays: minDays, MaxRetentionDays: maxDays, ChangeableForDays: changeable}, time.Now())
			if err != nil {
				if errors.As(err, new(*vault.LockInputError)) {
					return usagef("--%v", err)
				}
				return err
			}
			text := fmt.Sprintf("vault s3://%s locked: %s, recovery points kept %d to %d days\n", v.Bucket, l.Mode, l.MinRetentionDays, l.MaxRetentionDays)
			if l.LockDate != nil {
				text += fmt.Sprintf("  the lock can be changed or removed until %s; after that it is immutable\n", l.LockDate.Format(time.RFC3339))
			}
			return a.print(l, text)
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&mode, "mode", "", "governance or compliance")
	f.IntVar(&minDays, "min-retention-days", 0, "the shortest retention of a recovery point (1 to 36500)")
	f.IntVar(&maxDays, "max-retention-days", 0, "the longest retention of a recovery point (0: no maximum)")
	f.IntVar(&changeable, "changeable-for-days", 0, "compliance: days the lock can still be changed (at least 3, the default)")
	return cmd
}
