// Package plan reads AWS Backup's BackupPlan and BackupSelection JSON
// unchanged, validates it, computes when each rule fires, and resolves a
// selection against the account's S3 buckets.
//
// An existing `aws backup create-backup-plan --backup-plan file://plan.json`
// file works as it is, as do create-backup-plan's and
// create-backup-selection's --cli-input-json files, the output of
// get-backup-plan and get-backup-selection, and bucketvault's combined
// document {"BackupPlan": ..., "BackupSelections": [...]} (see Parse).
//
// The API:
//
//   - Load(file) and Parse(data) give a *Plan and []Selection; Load also
//     validates. Problems come back as Errors, one *FieldError per problem,
//     each naming its field (Rules[1].Lifecycle.DeleteAfterDays).
//   - Plan.Validate(knownVault) checks AWS Backup's documented limits
//     (names, windows, lifecycles, continuous retention, hourly minimum,
//     at most MaxRules rules) and what makes no sense (a schedule that never
//     fires, an unknown vault); Selection.Validate likewise.
//   - Rule.Schedule, Rule.StartWindow, Rule.CompletionWindow and
//     Lifecycle.CalculatedLifecycle give what the snapshot engine and the
//     CDK app need, AWS Backup's defaults applied.
//   - ParseSchedule and Schedule.Next evaluate cron(...) and rate(...) in a
//     time zone, with EventBridge Scheduler's daylight-saving rules.
//   - Resolve(ctx, client, selection) lists the buckets a selection takes,
//     and separately those it takes whose versioning is not Enabled, that
//     cannot be read, or that are vaults (never backed up: a selection of
//     every bucket leaves every vault out). ResolveBackups merges a rule's
//     selections: the one resolver of the dispatch function and the local
//     scheduler.
//
// docs/plans.md describes the accepted forms, every validation rule with
// its source, the cron translation and the selection semantics.
package plan
