package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/protect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func requireFlag(name, value string) error {
	if value == "" {
		return usagef("--%s is required", name)
	}
	return nil
}

// openJournal opens the vault and a journal writer over it.
func (a *app) openJournal(cmd *cobra.Command, vaultName string, concurrency int) (*journal.Journal, error) {
	v, err := a.openVault(cmd, vaultName)
	if err != nil {
		return nil, err
	}
	return &journal.Journal{Vault: v, S3: v.S3, Concurrency: concurrency, Log: a.log}, nil
}

// openVault opens the vault named by --vault.
func (a *app) openVault(cmd *cobra.Command, vaultName string) (*vault.Vault, error) {
	if err := requireFlag("vault", vaultName); err != nil {
		return nil, err
	}
	c, err := a.client(cmd.Context())
	if err != nil {
		return nil, err
	}
	return vault.Open(cmd.Context(), c, vaultName)
}

func (a *app) vaultCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Manage vaults"}
	var name string
	var retention int
	var lock bool
	create := &cobra.Command{
		Use:   "create --vault V",
		Short: "Create a vault bucket (versioned; with --object-lock, Object Lock enabled)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("vault", name); err != nil {
				return err
			}
			if !cmd.Flags().Changed("retention-days") {
				retention = 0 // the default for a new vault; an existing one keeps its own
			} else if retention < 1 {
				return usagef("--retention-days %d: want at least 1", retention)
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			v, err := vault.Create(cmd.Context(), c, name, vault.CreateOptions{RetentionDays: retention, ObjectLock: lock})
			if err != nil {
				return err
			}
			return a.print(v.Descriptor, fmt.Sprintf("vault s3://%s ready (format %s v%d, point-in-time window %d days)\n",
				v.Bucket, v.Descriptor.Format, v.Descriptor.FormatVersion, v.Descriptor.RetentionDays))
		},
	}
	create.Flags().StringVar(&name, "vault", "", "vault bucket name")
	create.Flags().IntVar(&retention, "retention-days", vault.DefaultRetentionDays, "how far back point-in-time restore reaches")
	create.Flags().BoolVar(&lock, "object-lock", false, "create the bucket with Object Lock enabled")
	cmd.AddCommand(create, a.vaultRepairCommand(), a.vaultShowCommand(), a.vaultUpgradeCommand(), a.vaultLockCommand())
	return cmd
}

// verify runs vault.Verify with a progress bar.
func (a *app) verify(ctx context.Context, v *vault.Vault, concurrency int, deep bool) (*vault.VerifyReport, error) {
	p := a.newProgress("verify")
	defer p.done()
	return v.Verify(ctx, concurrency, deep, func(r vault.VerifyReport) {
		p.set(r.Data, fmt.Sprintf("%d data objects checked", r.Data))
	})
}

// vaultRepairCommand puts back the good versions of damaged vault
// objects, sets aside runs with a lost shard, writes lost data again from
// its sources, and lists what none of these can rebuild.
func (a *app) vaultRepairCommand() *cobra.Command {
	var name string
	var dry, deep bool
	var concurrency int
	cmd := &cobra.Command{
		Use:   "repair --vault V [--dry-run] [--deep]",
		Short: "Rebuild what verify finds damaged (good older versions, runs from their segments, lost data from its source), and list what cannot be rebuilt",
		Long: `repair runs verify (--deep: reading every data object's bytes too), then:

- for every damaged object whose older version is good (the vault is
  versioned), deletes the versions and delete markers above that good
  version, so it is current again with the ETag the records name;
- sets aside a run with a lost shard when the segments it merged are all
  still there (they are read instead, and the next compaction merges them
  again);
- writes every lost data object (no version holds the recorded bytes)
  again, to its own key, from the source version its records name, when
  that version is still in its bucket with the recorded ETag, size and
  checksum (a pack: from its members, each read and checked); a copy
  whose ETag is not the one the records name (an SSE-KMS vault gives
  every write its own) is checked (size, ETag, the checksum the vault
  computed) and vouched for by a repair record, which readers follow.

--dry-run checks the same and changes nothing. What none of these can
rebuild is listed with why (exit 3).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.openVault(cmd, name)
			if err != nil {
				return err
			}
			rep, err := a.verify(cmd.Context(), v, concurrency, deep)
			if err != nil {
				return err
			}
			done, err := v.Repair(cmd.Context(), rep, dry)
			if err != nil {
				return err
			}
			runs, err := v.RepairRuns(cmd.Context(), rep, dry)
			if err != nil {
				return err
			}
			data, err := v.RepairData(cmd.Context(), rep, dry)
			if err != nil {
				return err
			}
			return a.printRepair(v, rep, dry, done, runs, data)
		},
	}
	cmd.Flags().StringVar(&name, "vault", "", "vault bucket name")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "list what would be repaired; change nothing")
	cmd.Flags().BoolVar(&deep, "deep", false, "read every data object's bytes too")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "parallel checks")
	return cmd
}

// printRepair prints what repair did (or would do) and what it cannot
// rebuild, with the next step each of those has, if any.
func (a *app) printRepair(v *vault.Vault, rep *vault.VerifyReport, dry bool, done []vault.Repair, runs []vault.DroppedRun, data []vault.RebuiltData) error {
	verb, wrote := "repaired", "written again"
	if dry {
		verb, wrote = "would repair (dry run)", "would be written again (dry run)"
	}
	// Lost journal objects: those of a run set aside are rebuilt.
	var lostJournal []vault.Damage
	for _, d := range rep.LostJournal {
		if !slices.ContainsFunc(runs, func(r vault.DroppedRun) bool { return r.Holds(d.Object) }) {
			lostJournal = append(lostJournal, d)
		}
	}
	sources := map[string][]string{}
	for _, ld := range rep.LostData {
		sources[ld.Object] = ld.Sources
	}
	var rebuilt, lostData []vault.RebuiltData
	for _, r := range data {
		switch {
		case !r.Rebuilt():
			lostData = append(lostData, r)
		case r.Version != "" || dry:
			rebuilt = append(rebuilt, r)
		}
	}
	lost := len(lostJournal) + len(lostData)
	var b strings.Builder
	fmt.Fprintf(&b, "vault s3://%s: %d damaged objects with a good version, %d runs to read from their segments, %d lost data objects to write again from their sources, %d lost\n",
		v.Bucket, len(rep.Repairable), len(runs), len(rebuilt), lost)
	for _, r := range done {
		fmt.Fprintf(&b, "  %s %s: version %s is current again (removed %s); it was: %s\n", verb, r.Object, r.GoodVersion, strings.Join(r.Removed, ", "), r.Reason)
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "  %s run %s of s3://%s (shard %s lost): set aside; its %d segments are read instead, and the next compaction writes it again\n", verb, r.Run, r.Bucket, r.Shard, r.Segments)
	}
	for _, r := range data {
		switch {
		case r.Rebuilt() && (r.Version != "" || dry):
			fmt.Fprintf(&b, "  %s %s from %s: %s", verb, r.Object, strings.Join(r.From, ", "), wrote)
			switch {
			case r.RepairRecord != "":
				fmt.Fprintf(&b, " (version %s), with an ETag of its own (%s) that repair record %s vouches for", r.Version, r.ETag, r.RepairRecord)
			case r.Version != "":
				fmt.Fprintf(&b, " with the ETag its records name (version %s)", r.Version)
			}
			if r.Note != "" {
				fmt.Fprintf(&b, "; %s", r.Note)
			}
			b.WriteString("\n")
		case r.Rebuilt():
			fmt.Fprintf(&b, "  nothing to do for %s: %s\n", r.Object, r.Note)
		}
	}
	buckets := map[bool][]string{} // in a snapshot: the buckets of the lost journal objects
	for _, d := range lostJournal {
		fmt.Fprintf(&b, "  CANNOT REPAIR %s\n", d)
		if !slices.Contains(buckets[d.InSnapshot()], d.Bucket()) {
			buckets[d.InSnapshot()] = append(buckets[d.InSnapshot()], d.Bucket())
		}
	}
	for _, r := range lostData {
		fmt.Fprintf(&b, "  CANNOT REPAIR %s (the data of %s): %s\n", r.Object, strings.Join(sources[r.Object], ", "), r.Cannot)
	}
	if rep.MoreLostData > 0 {
		fmt.Fprintf(&b, "  %d more records name lost data objects beyond the %d verify keeps: repair again once those above are rebuilt\n", rep.MoreLostData, len(rep.LostData))
	}
	type lostOut struct {
		Journal []vault.Damage      `json:"journal,omitempty"`
		Data    []vault.RebuiltData `json:"data,omitempty"`
		More    int                 `json:"moreData,omitempty"`
	}
	if err := a.print(struct {
		Repaired []vault.Repair      `json:"repaired"`
		Runs     []vault.DroppedRun  `json:"runsSetAside"`
		Data     []vault.RebuiltData `json:"dataRebuilt"`
		DryRun   bool                `json:"dryRun"`
		Lost     lostOut             `json:"lost"`
	}{done, runs, rebuilt, dry, lostOut{lostJournal, lostData, rep.MoreLostData}}, b.String()); err != nil {
		return err
	}
	if lost == 0 && rep.MoreLostData == 0 {
		return nil
	}
	var next []string
	for _, bucket := range buckets[false] {
		next = append(next, fmt.Sprintf("`bucketvault reconcile --vault %s --bucket %s` journals again what s3://%s holds now (the history the lost journal objects held stays unknown)", v.Bucket, bucket, bucket))
	}
	for _, bucket := range buckets[true] {
		next = append(next, fmt.Sprintf("`bucketvault backup --vault %s --bucket %s` takes a new snapshot of what s3://%s holds now (the lost shards' keys stay unknown in the old one)", v.Bucket, bucket, bucket))
	}
	if len(lostData) > 0 {
		next = append(next, "lost data with no source to rebuild it from is gone from the vault: a restore of those versions fails them (FAILED), and restores everything else")
	}
	msg := fmt.Sprintf("%d objects cannot be rebuilt from the vault or from their buckets", lost)
	if rep.MoreLostData > 0 {
		msg += fmt.Sprintf(", and %d more records name lost data: repair again", rep.MoreLostData)
	}
	if len(next) > 0 {
		msg += "; " + strings.Join(next, "; ")
	}
	return &partialError{msg: msg}
}

func (a *app) protectCommand() *cobra.Command {
	var vaultName, bucket, events, queueARN, planName, ruleName string
	var acls, skipInitial bool
	var concurrency, windowDays int
	cmd := &cobra.Command{
		Use:   "protect --vault V --bucket B [--window-days N | --plan FILE [--rule NAME]]",
		Short: "Protect a bucket: check versioning, turn on event delivery, run the initial full backup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("bucket", bucket); err != nil {
				return err
			}
			window, err := protectWindow(cmd, windowDays, planName, ruleName)
			if err != nil {
				return err
			}
			j, err := a.openJournal(cmd, vaultName, concurrency)
			if err != nil {
				return err
			}
			o := protect.Options{SkipInitialBackup: skipInitial, WindowDays: window}
			if cmd.Flags().Changed("acls") {
				o.ACLs = &acls
			}
			// Neither named: a bucket protected before keeps its delivery,
			// and the default below is for a bucket protected first now.
			o.KeepEvents = !cmd.Flags().Changed("events") && !cmd.Flags().Changed("queue-arn")
			if events == "" {
				events = "eventbridge"
				if a.endpointURL != "" {
					events = "webhook"
				}
			}
			switch events {
			case "eventbridge":
				o.EventBridge = true
			case "webhook":
				o.QueueARN = queueARN
				if o.QueueARN == "" {
					o.QueueARN = locals3.MinIOWebhookARN
				}
			case "queue":
				if queueARN == "" {
					return usagef("--events queue needs --queue-arn")
				}
				o.QueueARN = queueARN
			case "none":
			default:
				return usagef("--events %q: want eventbridge, webhook, queue or none", events)
			}
			p := a.newProgress("initial full backup")
			o.Reconcile.Progress = func(pr journal.Progress) {
				p.set(pr.Listed, fmt.Sprintf("listed %d, backed up %d", pr.Listed, pr.Added))
			}
			pb, pr, err := protect.Protect(cmd.Context(), j, bucket, o)
			p.done()
			if err != nil {
				return err
			}
			text := fmt.Sprintf("protected s3://%s in vault s3://%s (events: %s; point-in-time window: %d days)\n", bucket, j.Vault.Bucket, pb.Events, j.Vault.Window(pb))
			if pr != nil {
				text += fmt.Sprintf("initial full backup: %d versions and markers listed, %d records added, %d skipped\n", pr.Listed, pr.Added, pr.Skipped)
			}
			return a.print(map[string]any{"bucket": pb, "initialBackup": pr}, text)
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&bucket, "bucket", "", "bucket to protect (versioning must be Enabled)")
	f.StringVar(&events, "events", "", "event delivery: eventbridge, webhook, queue, none (default: what a protected bucket has; for a bucket protected first, eventbridge on AWS, webhook with --endpoint-url)")
	f.StringVar(&queueARN, "queue-arn", "", "notification queue ARN for --events queue or webhook")
	f.BoolVar(&acls, "acls", false, "the bucket uses object ACLs: back them up and restore them (default: what a protected bucket has, else off; --acls=false turns them off)")
	f.BoolVar(&skipInitial, "skip-initial-backup", false, "leave the first full backup to the next reconcile")
	f.IntVar(&concurrency, "concurrency", 16, "parallel copies")
	f.IntVar(&windowDays, "window-days", 0, fmt.Sprintf("point-in-time window in days, 1 to %d (default: what the bucket has, or the vault's)", vault.MaxWindowDays))
	f.StringVar(&planName, "plan", "", "take the window from this backup plan's continuous rule (Lifecycle.DeleteAfterDays)")
	f.StringVar(&ruleName, "rule", "", "with --plan: the continuous rule to take (needed when the plan has several)")
	return cmd
}

// protectWindow is the window protect asks for: --window-days, or the
// DeleteAfterDays of a plan's continuous rule; 0 keeps what the bucket has.
func protectWindow(cmd *cobra.Command, days int, planName, ruleName string) (int, error) {
	if cmd.Flags().Changed("window-days") {
		if planName != "" {
			return 0, usagef("give --window-days or --plan, not both")
		}
		if days < 1 || days > vault.MaxWindowDays {
			return 0, usagef("--window-days %d: want 1 to %d", days, vault.MaxWindowDays)
		}
		return days, nil
	}
	if planName == "" {
		if ruleName != "" {
			return 0, usagef("--rule needs --plan")
		}
		return 0, nil
	}
	f, err := readPlanFile(planName, nil)
	if err != nil {
		return 0, err
	}
	if !f.Valid {
		return 0, invalid([]*planFile{f})
	}
	if f.plan == nil {
		return 0, usagef("%s holds no backup plan", planName)
	}
	var found []*plan.Rule
	for i := range f.plan.Rules {
		r := &f.plan.Rules[i]
		if r.Continuous() && (ruleName == "" || r.RuleName == ruleName) {
			found = append(found, r)
		}
	}
	switch {
	case len(found) == 0 && ruleName != "":
		return 0, usagef("plan %s has no continuous rule %q", planName, ruleName)
	case len(found) == 0:
		return 0, usagef("plan %s has no continuous rule (EnableContinuousBackup)", planName)
	case len(found) > 1:
		return 0, usagef("plan %s has %d continuous rules: name one with --rule", planName, len(found))
	}
	return int(*found[0].Lifecycle.DeleteAfterDays), nil
}

func (a *app) journalCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "journal", Short: "Work with the journal"}
	var vaultName string
	var concurrency int
	ingest := &cobra.Command{
		Use:   "ingest --vault V [FILE|-]",
		Short: "Journal S3 events read from a file or stdin (one JSON document, an array, or JSON lines)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			name := "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r, name = f, args[0]
			}
			changes, err := event.DecodeStream(r)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			j, err := a.openJournal(cmd, vaultName, concurrency)
			if err != nil {
				return err
			}
			results, st, err := j.Ingest(cmd.Context(), changes)
			if err != nil {
				return err
			}
			var failed []string
			refused := map[string]int{}
			var why []string
			for _, r := range results {
				switch {
				case r.Refused != "":
					if refused[r.Refused] == 0 {
						why = append(why, r.Refused)
					}
					refused[r.Refused]++
				case r.Err != nil:
					failed = append(failed, fmt.Sprintf("%s s3://%s/%s: %v", r.Change.Kind, r.Change.Bucket, r.Change.Key, r.Err))
				}
			}
			text := fmt.Sprintf("journaled %d changes: %d records, %d skipped, %d refused, %d failed, %d segments\n", st.Changes, st.Records, st.Skipped, st.Refused, st.Failed, len(st.Segments))
			for _, w := range why {
				text += fmt.Sprintf("  REFUSED %d changes: %s\n", refused[w], w)
			}
			for _, f := range failed {
				text += "  FAILED " + f + "\n"
			}
			if err := a.print(st, text); err != nil {
				return err
			}
			switch {
			case len(failed) > 0:
				return &partialError{msg: fmt.Sprintf("%d changes were not journaled; run again", len(failed))}
			case st.Refused > 0:
				return &partialError{msg: fmt.Sprintf("%d changes refused: their buckets are not protected by this vault", st.Refused)}
			}
			return nil
		},
	}
	ingest.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	ingest.Flags().IntVar(&concurrency, "concurrency", 16, "parallel copies")
	cmd.AddCommand(ingest)
	return cmd
}

func (a *app) reconcileCommand() *cobra.Command {
	var vaultName, bucket string
	var concurrency int
	var tags bool
	cmd := &cobra.Command{
		Use:   "reconcile --vault V --bucket B [--tags]",
		Short: "Add every version and delete marker the journal lacks (resumes an interrupted run); vouch for the journal up to its start",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("bucket", bucket); err != nil {
				return err
			}
			j, err := a.openJournal(cmd, vaultName, concurrency)
			if err != nil {
				return err
			}
			p := a.newProgress("reconcile")
			pr, err := j.Reconcile(cmd.Context(), bucket, journal.ReconcileOptions{Tags: tags, Progress: func(pr journal.Progress) {
				p.set(pr.Listed, fmt.Sprintf("listed %d, added %d", pr.Listed, pr.Added))
			}})
			p.done()
			if err != nil {
				return err
			}
			text := fmt.Sprintf("reconciled s3://%s: %d versions and markers listed, %d records added, %d skipped\n", bucket, pr.Listed, pr.Added, pr.Skipped)
			if pr.CompleteThrough != nil {
				text += fmt.Sprintf("the journal is complete through %s\n", pr.CompleteThrough.UTC().Format(time.RFC3339))
			}
			if pr.TagsThrough != nil {
				text += fmt.Sprintf("its tags are complete through %s\n", pr.TagsThrough.UTC().Format(time.RFC3339))
			}
			if tags && !pr.ReadsTags {
				text += "  WARNING this finished a reconcile started without --tags, which reads no tags: run it again to read them\n"
			}
			for _, w := range pr.Warnings {
				text += "  WARNING " + w + "\n"
			}
			return a.print(pr, text)
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().StringVar(&bucket, "bucket", "", "protected bucket")
	cmd.Flags().BoolVar(&tags, "tags", false, "also read the tags of every current version (one request each) and journal changes whose event was lost")
	cmd.Flags().IntVar(&concurrency, "concurrency", 16, "parallel copies")
	return cmd
}

func (a *app) compactCommand() *cobra.Command {
	var vaultName, bucket string
	cmd := &cobra.Command{
		Use:   "compact --vault V --bucket B",
		Short: "Merge the journal's older segments into a sorted run (reconcile does this on its own when due)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("bucket", bucket); err != nil {
				return err
			}
			j, err := a.openJournal(cmd, vaultName, 1)
			if err != nil {
				return err
			}
			st, err := j.Vault.Compact(cmd.Context(), bucket, time.Now())
			if err != nil {
				return err
			}
			text := "nothing to compact: no segment older than an hour after the latest run\n"
			if st.Run != "" {
				text = fmt.Sprintf("compacted %d segments (%d records) of s3://%s into run %s (%d shards)\n", st.Segments, st.Records, bucket, st.Run, st.Shards)
			}
			return a.print(st, text)
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().StringVar(&bucket, "bucket", "", "protected bucket")
	return cmd
}

func (a *app) restoreCommand() *cobra.Command {
	var req restore.Request
	var at, function, machine string
	var allowed []string
	var archiveWait, wait time.Duration
	cmd := &cobra.Command{
		Use:   "restore --vault V --bucket B (--at RFC3339 | --recovery-point ID) --target-bucket T",
		Short: "Restore a bucket, prefixes or keys as of a point in time or a snapshot",
		Long: `Restore writes, into the target bucket, every selected key as it was at the
end of the second --at names (or as the snapshot --recovery-point names holds
it): bytes, metadata, tags, storage class (and ACLs where the bucket uses
them). Keys already identical in the target are skipped, so a re-run resumes
an interrupted restore cheaply. A point in time starts from the newest
snapshot before it and replays the journal.

Modes: non-destructive (default) writes what differs and leaves keys that did
not exist at that time; rollback also puts delete markers on them (no version
is ever deleted).

Data a snapshot moved to the cold tier restores as any other in Glacier
Instant Retrieval. In Deep Archive S3 must first bring it back: the restore
requests it (--archive-tier), restores everything else, and with
--archive-wait waits for it and restores it; without, those keys fail saying
when to run the same restore again.

Where it runs: in this process (the default), in the deployed restore
function (--function, one invocation: up to a few hundred thousand
objects), or as the deployed restore state machine (--state-machine, any
size: a plan in key ranges, a Distributed Map of batches, the rollback, the
report), which the CLI follows with its progress, rate and time left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ n, v string }{{"vault", req.Vault}, {"bucket", req.Bucket}, {"target-bucket", req.TargetBucket}} {
				if err := requireFlag(f.n, f.v); err != nil {
					return err
				}
			}
			switch {
			case at == "" && req.RecoveryPointID == "":
				return usagef("give --at (a point in time) or --recovery-point (a snapshot)")
			case at != "" && req.RecoveryPointID != "":
				return usagef("give --at or --recovery-point, not both")
			case at != "":
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return usagef("--at %q: want RFC 3339, for example 2026-11-23T10:15:00Z", at)
				}
				req.At = t
			}
			if archiveWait < 0 {
				return usagef("--archive-wait %s: want 0 or more", archiveWait)
			}
			if req.DryRun && function != "" {
				return usagef("--dry-run only reads: run it here, without --function")
			}
			if machine != "" && (function != "" || req.DryRun) {
				return usagef("--state-machine runs the restore in the deployed state machine: not with --function or --dry-run")
			}
			if wait < 0 || wait > 0 && machine == "" {
				return usagef("--wait %s: a positive time, with --state-machine", wait)
			}
			if req.JobID != "" && function != "" {
				return usagef("--job-id with --function: the CLI names the function's job itself; run a stopped job again here, without --function")
			}
			req.ArchiveWaitMinutes = int((archiveWait + time.Minute - 1) / time.Minute)
			var rep *restore.Report
			var err error
			if function != "" || machine != "" {
				// Validate here what can be, so a bad request fails now, not
				// in the function's log.
				if err := req.Validate(time.Now(), allowed); err != nil {
					return usagef("%v", err)
				}
			}
			switch {
			case function != "":
				rep, err = a.restoreRemote(cmd.Context(), function, req)
			case machine != "":
				rep, err = a.restoreStateMachine(cmd.Context(), machine, req, wait)
			default:
				c, cerr := a.client(cmd.Context())
				if cerr != nil {
					return cerr
				}
				p := a.newProgress("restore")
				r := &restore.Restorer{S3: c, AllowedTargets: allowed, Log: a.log, Progress: func(pr restore.Progress) {
					p.set(pr.Examined, fmt.Sprintf("restored %d, identical %d, failed %d", pr.Restored, pr.Identical, pr.Failed))
				}}
				rep, err = r.Run(cmd.Context(), req)
				p.done()
			}
			var invalid *restore.InvalidRequestError
			if errors.As(err, &invalid) {
				return usagef("%v", err)
			}
			if rep != nil {
				if perr := a.print(rep, rep.Text()); perr != nil {
					return perr
				}
			}
			if err != nil {
				return err
			}
			if rep.State != restore.StateCompleted {
				return &partialError{msg: fmt.Sprintf("restore %s ended %s: %s", rep.JobID, rep.State, rep.StatusMessage)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Vault, "vault", "", "vault bucket name")
	f.StringVar(&req.Bucket, "bucket", "", "the protected bucket to restore")
	f.StringVar(&at, "at", "", "point in time, RFC 3339 (UTC or with offset)")
	f.StringVar(&req.RecoveryPointID, "recovery-point", "", "a SNAPSHOT recovery point id (see recovery-points) instead of --at")
	f.StringVar(&req.TargetBucket, "target-bucket", "", "where to restore: the original bucket, an existing one, or a new one with --create-bucket")
	f.BoolVar(&req.CreateBucket, "create-bucket", false, "create the target bucket (with versioning)")
	f.StringArrayVar(&req.Prefixes, "prefix", nil, "restore keys under this prefix (repeatable)")
	f.StringArrayVar(&req.Keys, "key", nil, "restore this key (repeatable)")
	f.StringVar(&req.Mode, "mode", restore.NonDestructive, "non-destructive or rollback")
	f.IntVar(&req.Concurrency, "concurrency", 32, "parallel copies")
	f.BoolVar(&req.IncludeUncertain, "include-uncertain", false, "also write keys a lost journal object held records of, as the rest of the vault knows them (named uncertain); without it they are skipped")
	f.BoolVar(&req.AllowIncomplete, "allow-incomplete", false, "accept a time after the journal's completeness watermark (the last finished reconcile; see recovery-points): "+
		"restore what events journaled since, COMPLETED with a warning, instead of PARTIAL (exit 3)")
	f.StringSliceVar(&allowed, "allowed-targets", nil, "refuse targets not matching these bucket patterns")
	f.StringVar(&function, "function", "", "run the restore in the deployed restore function (its name or ARN) and follow the job, instead of in-process")
	f.StringVar(&machine, "state-machine", "", "run the restore as the deployed restore state machine (its ARN: the stack's RestoreStateMachineArn output) and follow it with progress, for restores of any size")
	f.DurationVar(&wait, "wait", 0, "with --state-machine: stop following after this long (exit 4; the restore goes on), instead of following it to its end")
	f.StringVar(&req.JobID, "job-id", "", "name the job (default: a new id); running a stopped or failed restore again with its job id finishes it, and a finished one is not run again")
	f.BoolVar(&req.DryRun, "dry-run", false, "say what the restore would do (keys it would write and their bytes, identical keys it would skip, delete markers a rollback would put) and write nothing")
	f.DurationVar(&archiveWait, "archive-wait", 0, "when data is in Deep Archive (the cold tier's archive class): request it back, wait up to this long (e.g. 48h) and restore it; 0 requests it back and fails those keys, saying when to run again")
	f.StringVar(&req.Verify, "verify", restore.VerifyAll, "what is read back after each write: all (bytes, metadata, tags, storage class, ACL: one HEAD per object) or bytes (by the write's own ETag where it proves them: faster)")
	f.StringVar(&req.ArchiveTier, "archive-tier", restore.ArchiveTierStandard, "retrieval tier of those requests: Standard (within 12 hours) or Bulk (within 48, cheaper)")
	return cmd
}

func (a *app) recoveryPointsCommand() *cobra.Command {
	var vaultName, bucket string
	cmd := &cobra.Command{
		Use:   "recovery-points --vault V [--bucket B]",
		Short: "List recovery points and the times they restore to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			rps, err := v.RecoveryPoints(cmd.Context(), bucket, time.Now())
			if err != nil {
				return err
			}
			var b strings.Builder
			if len(rps) == 0 {
				b.WriteString("no recovery points\n")
			}
			for _, rp := range rps {
				fmt.Fprintf(&b, "%s  %s  %s  s3://%s", rp.RecoveryPointID, rp.Type, rp.Status, rp.ResourceName)
				if rp.EarliestRestorableTime != nil {
					fmt.Fprintf(&b, "  restorable %s .. %s", rp.EarliestRestorableTime.Format(time.RFC3339), rp.LatestRestorableTime.Format(time.RFC3339))
				}
				if rp.ScanCompletionDate != nil {
					fmt.Fprintf(&b, "  scanned %s  %d objects, %d bytes", rp.ScanCompletionDate.Format(time.RFC3339), rp.ObjectCount, rp.BackupSizeInBytes)
				}
				if l := rp.CalculatedLifecycle; l != nil && l.MoveToColdStorageAt != nil {
					if rp.StorageClass == vault.StorageCold {
						fmt.Fprintf(&b, "  COLD since %s", l.MoveToColdStorageAt.Format(time.RFC3339))
					} else {
						fmt.Fprintf(&b, "  cold from %s", l.MoveToColdStorageAt.Format(time.RFC3339))
					}
				}
				if l := rp.CalculatedLifecycle; l != nil && l.DeleteAt != nil {
					fmt.Fprintf(&b, "  expires %s", l.DeleteAt.Format(time.RFC3339))
				}
				if rp.StatusMessage != "" {
					fmt.Fprintf(&b, "  (%s)", rp.StatusMessage)
				}
				b.WriteString("\n")
			}
			return a.print(rps, b.String())
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().StringVar(&bucket, "bucket", "", "only this protected bucket")
	return cmd
}

func (a *app) verifyCommand() *cobra.Command {
	var vaultName, bucket string
	var concurrency int
	var deep, against bool
	cmd := &cobra.Command{
		Use:   "verify --vault V [--deep] [--against-source [--bucket B]]",
		Short: "Check that every reference in the vault resolves, with the recorded size and ETag (--deep: and checksums of the bytes; --against-source: and that the journal's state is each bucket's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bucket != "" && !against {
				return usagef("--bucket goes with --against-source")
			}
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			rep, err := a.verify(cmd.Context(), v, concurrency, deep)
			if err != nil {
				return err
			}
			text := fmt.Sprintf("vault s3://%s: %d buckets, %d segments, %d records, %d data objects (%d bytes) checked\n",
				v.Bucket, rep.Buckets, rep.Segments, rep.Records, rep.Data, rep.Bytes)
			var sources []*restore.SourceReport
			if against {
				buckets := []string{bucket}
				if bucket == "" {
					pbs, err := v.Buckets(cmd.Context())
					if err != nil {
						return err
					}
					buckets = buckets[:0]
					for _, pb := range pbs {
						buckets = append(buckets, pb.Bucket)
					}
				}
				c, err := a.client(cmd.Context())
				if err != nil {
					return err
				}
				for _, b := range buckets {
					sr, err := restore.CompareSource(cmd.Context(), v, c, b, time.Now())
					if err != nil {
						return err
					}
					sources = append(sources, sr)
					text += fmt.Sprintf("s3://%s against the journal: %d keys compared, %d disagree\n", b, sr.Keys, len(sr.Problems)+sr.More)
					rep.Problems = append(rep.Problems, sr.Problems...)
					rep.MoreProblems += sr.More
				}
			}
			if rep.OK() {
				text += "OK: every reference resolves\n"
				if against {
					text += "OK: the journal's state is each bucket's current versions\n"
				}
			}
			for _, pr := range rep.Problems {
				text += "  PROBLEM " + pr + "\n"
			}
			if against {
				text += "  (a change still on its way shows as a disagreement until it is journaled: `bucketvault reconcile` journals every one)\n"
			}
			if len(rep.Repairable) > 0 || len(rep.Lost) > 0 {
				text += fmt.Sprintf("  (`bucketvault vault repair --vault %s --dry-run` says what it can rebuild: good older versions, runs from their segments, lost data from its source)\n", v.Bucket)
			}
			out := any(rep)
			if against {
				out = struct {
					*vault.VerifyReport
					Sources []*restore.SourceReport `json:"sources"`
				}{rep, sources}
			}
			if err := a.print(out, text); err != nil {
				return err
			}
			if !rep.OK() {
				return &partialError{msg: fmt.Sprintf("%d problems found", len(rep.Problems)+rep.MoreProblems)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.Flags().BoolVar(&against, "against-source", false, "also compare the journal's state now with each protected bucket's current versions (the listing is the truth)")
	cmd.Flags().StringVar(&bucket, "bucket", "", "with --against-source: only this protected bucket")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "parallel checks")
	cmd.Flags().BoolVar(&deep, "deep", false, "also read every data object and check its MD5 and checksum against the journal")
	return cmd
}

func (a *app) jobCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Show job records"}
	var vaultName string
	show := &cobra.Command{
		Use:   "show --vault V JOB-ID",
		Short: "Show a job's report (a restore's or a backup's, as its record's type says)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.openVault(cmd, vaultName)
			if err != nil {
				return err
			}
			typ, err := v.JobType(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if typ == vault.JobTypeBackup {
				var job snapshot.Job
				if err := v.GetJSON(cmd.Context(), vault.JobKey(args[0]), &job); err != nil {
					return err
				}
				job.Type = typ
				return a.print(job, jobText(&job))
			}
			rep, err := restore.LoadJob(cmd.Context(), v, args[0], time.Now())
			if err != nil {
				return err
			}
			return a.print(rep, rep.Text())
		},
	}
	show.Flags().StringVar(&vaultName, "vault", "", "vault bucket name")
	cmd.AddCommand(show)
	return cmd
}
