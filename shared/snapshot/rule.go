package snapshot

import (
	"time"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// JobForRule is the snapshot job a plan's rule starts for one bucket at
// its scheduled time: the rule's windows, lifecycle and recovery point
// tags, and who created it. The vault is the rule's TargetBackupVaultName
// unless vaultName overrides it.
func JobForRule(p *plan.Plan, r *plan.Rule, vaultName, bucket string, scheduledAt time.Time) Job {
	if vaultName == "" {
		vaultName = r.TargetBackupVaultName
	}
	j := Job{
		Vault: vaultName, Bucket: bucket, ScheduledAt: scheduledAt.UTC(),
		StartWindowMinutes:      int64(r.StartWindow() / time.Minute),
		CompletionWindowMinutes: int64(r.CompletionWindow() / time.Minute),
		RecoveryPointTags:       r.RecoveryPointTags,
		CreatedBy: &vault.CreatedBy{
			BackupPlanID: p.BackupPlanName, BackupPlanName: p.BackupPlanName, BackupRuleID: r.RuleId,
			BackupRuleName: r.RuleName, BackupRuleCron: r.ScheduleExpression, BackupRuleTimezone: r.ScheduleExpressionTimezone,
		},
	}
	if r.ScheduleExpression == "" {
		j.CreatedBy.BackupRuleCron = plan.DefaultScheduleExpression
	}
	if l := r.Lifecycle; l != nil {
		j.Lifecycle = &vault.Lifecycle{MoveToColdStorageAfterDays: deref(l.MoveToColdStorageAfterDays), DeleteAfterDays: deref(l.DeleteAfterDays)}
	}
	return j
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
