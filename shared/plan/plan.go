package plan

import (
	"encoding/json"
	"time"
)

// Plan is AWS Backup's BackupPlanInput: the body of create-backup-plan's
// --backup-plan and of the BackupPlan member of get-backup-plan's output.
// Field names and JSON keys are AWS's, so a plan file round-trips.
type Plan struct {
	BackupPlanName string `json:"BackupPlanName"`
	Rules          []Rule `json:"Rules"`
	// AdvancedBackupSettings are per-resource-type options (Windows VSS for
	// EC2); read and kept, but they mean nothing for S3.
	AdvancedBackupSettings []AdvancedBackupSetting `json:"AdvancedBackupSettings,omitempty"`
	// ScanSettings configure malware scanning, which bucketvault does not do.
	ScanSettings []ScanSetting `json:"ScanSettings,omitempty"`
}

// Rule is AWS Backup's BackupRuleInput (BackupRule in get-backup-plan's
// output, which adds RuleId).
type Rule struct {
	RuleName              string `json:"RuleName"`
	TargetBackupVaultName string `json:"TargetBackupVaultName"`
	// ScheduleExpression is cron(...) or rate(...); empty means
	// DefaultScheduleExpression. See Schedule.
	ScheduleExpression string `json:"ScheduleExpression,omitempty"`
	// ScheduleExpressionTimezone is an IANA time zone name; empty means
	// UTC.
	ScheduleExpressionTimezone string `json:"ScheduleExpressionTimezone,omitempty"`
	// StartWindowMinutes: a job not started this long after its scheduled
	// time ends EXPIRED. Unset means 480 (8 hours). See StartWindow.
	StartWindowMinutes *int64 `json:"StartWindowMinutes,omitempty"`
	// CompletionWindowMinutes: a job still running this long after its
	// scheduled time is stopped. Unset means 10080 (7 days). See
	// CompletionWindow.
	CompletionWindowMinutes *int64            `json:"CompletionWindowMinutes,omitempty"`
	Lifecycle               *Lifecycle        `json:"Lifecycle,omitempty"`
	CopyActions             []CopyAction      `json:"CopyActions,omitempty"`
	EnableContinuousBackup  *bool             `json:"EnableContinuousBackup,omitempty"`
	RecoveryPointTags       map[string]string `json:"RecoveryPointTags,omitempty"`
	// TargetLogicallyAirGappedBackupVaultArn, IndexActions and ScanActions
	// are AWS Backup features bucketvault reads but does not act on; see
	// Plan.Ignored.
	TargetLogicallyAirGappedBackupVaultArn string        `json:"TargetLogicallyAirGappedBackupVaultArn,omitempty"`
	IndexActions                           []IndexAction `json:"IndexActions,omitempty"`
	ScanActions                            []ScanAction  `json:"ScanActions,omitempty"`
	// RuleId is set by AWS Backup in get-backup-plan's output.
	RuleId string `json:"RuleId,omitempty"`
}

// Lifecycle says when recovery points move to cold storage and when they
// are deleted, in days after creation. Unset (or AWS's -1) means never.
type Lifecycle struct {
	MoveToColdStorageAfterDays          *int64 `json:"MoveToColdStorageAfterDays,omitempty"`
	DeleteAfterDays                     *int64 `json:"DeleteAfterDays,omitempty"`
	OptInToArchiveForSupportedResources *bool  `json:"OptInToArchiveForSupportedResources,omitempty"`
	// DeleteAfterEvent appears in AWS Backup's output (DELETE_AFTER_COPY);
	// AWS does not accept it as input.
	DeleteAfterEvent string `json:"DeleteAfterEvent,omitempty"`
}

// CopyAction copies each recovery point of the rule to another vault,
// possibly in another region or account.
type CopyAction struct {
	// DestinationBackupVaultArn is arn:PARTITION:backup:REGION:ACCOUNT:backup-vault:NAME.
	DestinationBackupVaultArn string     `json:"DestinationBackupVaultArn"`
	Lifecycle                 *Lifecycle `json:"Lifecycle,omitempty"`
}

// AdvancedBackupSetting is AWS Backup's per-resource-type option set.
type AdvancedBackupSetting struct {
	ResourceType  string            `json:"ResourceType,omitempty"`
	BackupOptions map[string]string `json:"BackupOptions,omitempty"`
}

// IndexAction asks AWS Backup to index recovery points (EBS, S3).
type IndexAction struct {
	ResourceTypes []string `json:"ResourceTypes,omitempty"`
}

// ScanAction asks AWS Backup to scan recovery points for malware.
type ScanAction struct {
	MalwareScanner string `json:"MalwareScanner,omitempty"`
	ScanMode       string `json:"ScanMode,omitempty"`
}

// ScanSetting is a plan's malware-scanning configuration.
type ScanSetting struct {
	MalwareScanner string   `json:"MalwareScanner,omitempty"`
	ResourceTypes  []string `json:"ResourceTypes,omitempty"`
	ScannerRoleArn string   `json:"ScannerRoleArn,omitempty"`
}

// Defaults AWS Backup applies to a rule that leaves the windows unset.
const (
	DefaultStartWindowMinutes      = 480   // 8 hours
	DefaultCompletionWindowMinutes = 10080 // 7 days
)

// Schedule parses the rule's ScheduleExpression (DefaultScheduleExpression
// when empty) in its ScheduleExpressionTimezone.
func (r *Rule) Schedule() (Schedule, error) {
	e := r.ScheduleExpression
	if e == "" {
		e = DefaultScheduleExpression
	}
	return ParseSchedule(e, r.ScheduleExpressionTimezone)
}

// StartWindow is how long after its scheduled time a job may still start:
// StartWindowMinutes, or AWS Backup's default of 8 hours.
func (r *Rule) StartWindow() time.Duration {
	return minutes(r.StartWindowMinutes, DefaultStartWindowMinutes)
}

// CompletionWindow is how long after its scheduled time a job must have
// finished: CompletionWindowMinutes, or AWS Backup's default of 7 days.
func (r *Rule) CompletionWindow() time.Duration {
	return minutes(r.CompletionWindowMinutes, DefaultCompletionWindowMinutes)
}

func minutes(v *int64, def int64) time.Duration {
	if v == nil {
		return time.Duration(def) * time.Minute
	}
	return time.Duration(*v) * time.Minute
}

// Continuous reports whether the rule asks for continuous backup
// (point-in-time restore from the journal) rather than snapshots.
func (r *Rule) Continuous() bool {
	return r.EnableContinuousBackup != nil && *r.EnableContinuousBackup
}

// CalculatedLifecycle returns when a recovery point created at created
// moves to cold storage and when it is deleted, as AWS Backup's
// CalculatedLifecycle does (creation time plus whole days, in UTC). A nil
// result means never; a nil Lifecycle gives two nils.
func (l *Lifecycle) CalculatedLifecycle(created time.Time) (moveToColdAt, deleteAt *time.Time) {
	if l == nil {
		return nil, nil
	}
	at := func(days *int64) *time.Time {
		if days == nil || *days < 0 {
			return nil
		}
		t := created.UTC().AddDate(0, 0, int(*days))
		return &t
	}
	return at(l.MoveToColdStorageAfterDays), at(l.DeleteAfterDays)
}

// Ignored lists, by field path, what the plan sets that bucketvault reads
// but does not act on (malware scans, indexes, logically air-gapped vaults,
// archive tiers, VSS options), so a user is told rather than left to
// assume. Empty when everything is honoured.
func (p *Plan) Ignored() []string {
	var out []string
	if len(p.AdvancedBackupSettings) > 0 {
		out = append(out, "AdvancedBackupSettings: per-resource-type options (Windows VSS) do not apply to S3")
	}
	if len(p.ScanSettings) > 0 {
		out = append(out, "ScanSettings: bucketvault does not scan for malware")
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		at := path("Rules", i)
		if r.TargetLogicallyAirGappedBackupVaultArn != "" {
			out = append(out, at+".TargetLogicallyAirGappedBackupVaultArn: bucketvault has no logically air-gapped vaults; backups go to TargetBackupVaultName only")
		}
		if len(r.IndexActions) > 0 {
			out = append(out, at+".IndexActions: bucketvault does not build backup indexes")
		}
		if len(r.ScanActions) > 0 {
			out = append(out, at+".ScanActions: bucketvault does not scan for malware")
		}
		lifecycles := map[string]*Lifecycle{at + ".Lifecycle": r.Lifecycle}
		for j, c := range r.CopyActions {
			lifecycles[path(at+".CopyActions", j)+".Lifecycle"] = c.Lifecycle
		}
		for _, k := range sortedKeys(lifecycles) {
			l := lifecycles[k]
			if l != nil && l.OptInToArchiveForSupportedResources != nil && *l.OptInToArchiveForSupportedResources {
				out = append(out, k+".OptInToArchiveForSupportedResources: there is no archive tier beyond cold storage")
			}
			if l != nil && l.DeleteAfterEvent != "" {
				out = append(out, k+".DeleteAfterEvent: set by AWS Backup on copies; bucketvault deletes by DeleteAfterDays only")
			}
		}
	}
	return out
}

// rawJSON is any JSON value, accepted and not interpreted (metadata in AWS
// CLI output such as CreationDate).
type rawJSON = json.RawMessage
