package plan

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits AWS Backup documents for plans and selections (API reference:
// BackupPlan, BackupRuleInput, Lifecycle, BackupSelection, Condition; the
// developer guide's backup-plan options and continuous-backup pages).
var (
	// BackupPlan.BackupPlanName: alphanumeric and -_. ; 1-50 characters in
	// the console, 1-200 through the CLI or API.
	planNamePattern = regexp.MustCompile(`^[a-zA-Z0-9\-_.]{1,200}$`)
	// BackupRuleInput.RuleName and BackupSelection.SelectionName.
	ruleNamePattern = regexp.MustCompile(`^[a-zA-Z0-9\-_.]{1,50}$`)
	// BackupRuleInput.TargetBackupVaultName.
	vaultNamePattern = regexp.MustCompile(`^[a-zA-Z0-9\-_]{2,50}$`)
	// CopyAction.DestinationBackupVaultArn.
	vaultARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:backup:[a-z0-9-]+:[0-9]{12}:backup-vault:([a-zA-Z0-9\-_]{2,50})$`)
	// BackupSelection.IamRoleArn.
	roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$`)
)

const (
	// MaxRules is the most rules a plan may have.
	MaxRules = 10
	// maxWindowMinutes: StartWindowMinutes and CompletionWindowMinutes are
	// at most 100 years.
	maxWindowMinutes = 52_560_000
	// minStartWindowMinutes: "If this value is included, it must be at
	// least 60 minutes to avoid errors."
	minStartWindowMinutes = 60
	// maxLifecycleDays: DeleteAfterDays "cannot be less than 1 or more
	// than 36500 days" (AWS Backup's error), 100 years.
	maxLifecycleDays = 36_500
	// minColdDays: "Backups transitioned to cold storage must be stored in
	// cold storage for a minimum of 90 days."
	minColdDays = 90
	// Continuous backups keep 1 to 3,650 days: AWS Backup's limit is 35
	// ("Changing your retention period"); bucketvault's journal folds as
	// it ages (docs/vault-format.md), so it keeps up to ten years, its
	// vault.MaxWindowDays.
	maxContinuousDays = 3650
	// minInterval: "You can also create a cron expression that creates
	// snapshot backups as frequently as hourly."
	minInterval = time.Hour
	// A selection lists at most 500 ARNs, or 30 when any has a wildcard.
	maxARNs, maxWildcardARNs = 500, 30
)

// Validate checks the plan against AWS Backup's limits and against what
// makes no sense (a schedule that never fires, an unknown vault) and
// returns every problem as Errors, each naming its field relative to the
// plan (Rules[1].Lifecycle.DeleteAfterDays). knownVault, when not nil,
// reports whether a vault named in TargetBackupVaultName exists; nil skips
// that check. Schedules are checked against the current time.
func (p *Plan) Validate(knownVault func(name string) bool) error {
	var es Errors
	if p.BackupPlanName == "" {
		es.add("BackupPlanName", "required")
	} else if !planNamePattern.MatchString(p.BackupPlanName) {
		es.add("BackupPlanName", "%q: want 1 to 200 letters, digits, '-', '_' or '.'", p.BackupPlanName)
	}
	switch {
	case len(p.Rules) == 0:
		es.add("Rules", "a plan needs at least one rule")
	case len(p.Rules) > MaxRules:
		es.add("Rules", "%d rules: at most %d", len(p.Rules), MaxRules)
	}
	names := map[string]int{}
	for i := range p.Rules {
		at := path("Rules", i)
		r := &p.Rules[i]
		if j, dup := names[r.RuleName]; dup && r.RuleName != "" {
			es.add(at+".RuleName", "%q is also the name of Rules[%d]: rule names must be unique in a plan", r.RuleName, j)
		} else {
			names[r.RuleName] = i
		}
		r.validate(at, knownVault, time.Now(), &es)
	}
	return es.err()
}

func (r *Rule) validate(at string, knownVault func(string) bool, now time.Time, es *Errors) {
	switch {
	case r.RuleName == "":
		es.add(at+".RuleName", "required")
	case !ruleNamePattern.MatchString(r.RuleName):
		es.add(at+".RuleName", "%q: want 1 to 50 letters, digits, '-', '_' or '.'", r.RuleName)
	}
	switch {
	case r.TargetBackupVaultName == "":
		es.add(at+".TargetBackupVaultName", "required")
	case !vaultNamePattern.MatchString(r.TargetBackupVaultName):
		es.add(at+".TargetBackupVaultName", "%q: want 2 to 50 letters, digits, '-' or '_'", r.TargetBackupVaultName)
	case knownVault != nil && !knownVault(r.TargetBackupVaultName):
		es.add(at+".TargetBackupVaultName", "no vault named %q: create it with `bucketvault vault create --vault %s`", r.TargetBackupVaultName, r.TargetBackupVaultName)
	}
	r.validateSchedule(at, now, es)
	if w := r.StartWindowMinutes; w != nil && (*w < minStartWindowMinutes || *w > maxWindowMinutes) {
		es.add(at+".StartWindowMinutes", "%d: want %d (an hour) to %d (100 years)", *w, minStartWindowMinutes, maxWindowMinutes)
	}
	if w := r.CompletionWindowMinutes; w != nil && (*w < 1 || *w > maxWindowMinutes) {
		es.add(at+".CompletionWindowMinutes", "%d: want 1 to %d (100 years)", *w, maxWindowMinutes)
	} else if r.CompletionWindow() <= r.StartWindow() && validWindow(r.StartWindowMinutes) {
		// Both windows count from the scheduled time (AWS Backup's
		// StartBackupJob: the completion window "does not add additional
		// time for StartWindowMinutes"), so a job that starts late in its
		// start window would have no time left to run.
		es.add(at+".CompletionWindowMinutes", "%d minutes must be longer than the start window (%d minutes%s): both count from the scheduled time",
			int64(r.CompletionWindow()/time.Minute), int64(r.StartWindow()/time.Minute), defaultNote(r.StartWindowMinutes))
	}
	if r.Continuous() {
		l := r.Lifecycle
		switch {
		case l == nil || l.DeleteAfterDays == nil || *l.DeleteAfterDays == -1:
			es.add(at+".Lifecycle.DeleteAfterDays", "required with EnableContinuousBackup: continuous backups are kept 1 to %d days", maxContinuousDays)
		case *l.DeleteAfterDays < 1 || *l.DeleteAfterDays > maxContinuousDays:
			es.add(at+".Lifecycle.DeleteAfterDays", "%d: continuous backups are kept 1 to %d days", *l.DeleteAfterDays, maxContinuousDays)
		}
		if l != nil && l.MoveToColdStorageAfterDays != nil && *l.MoveToColdStorageAfterDays != -1 {
			es.add(at+".Lifecycle.MoveToColdStorageAfterDays", "continuous backups do not move to cold storage: remove it, or add a snapshot rule with a cold transition")
		}
		if l != nil {
			l.validate(at+".Lifecycle", false, es)
		}
	} else if r.Lifecycle != nil {
		r.Lifecycle.validate(at+".Lifecycle", true, es)
	}
	for j, c := range r.CopyActions {
		cat := path(at+".CopyActions", j)
		if c.DestinationBackupVaultArn == "" {
			es.add(cat+".DestinationBackupVaultArn", "required")
		} else if !vaultARNPattern.MatchString(c.DestinationBackupVaultArn) {
			es.add(cat+".DestinationBackupVaultArn", "%q: want arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME", c.DestinationBackupVaultArn)
		}
		if c.Lifecycle != nil {
			c.Lifecycle.validate(cat+".Lifecycle", true, es)
		}
	}
	for _, k := range sortedKeys(r.RecoveryPointTags) {
		validateTag(at+".RecoveryPointTags", k, r.RecoveryPointTags[k], es)
	}
	if len(r.IndexActions) > 1 {
		es.add(at+".IndexActions", "at most one index action per rule")
	}
	for j, ia := range r.IndexActions {
		if len(ia.ResourceTypes) != 1 || ia.ResourceTypes[0] != "EBS" && ia.ResourceTypes[0] != "S3" {
			es.add(path(at+".IndexActions", j)+".ResourceTypes", "want exactly one of EBS or S3")
		}
	}
}

func validWindow(w *int64) bool {
	return w == nil || *w >= minStartWindowMinutes && *w <= maxWindowMinutes
}

func defaultNote(w *int64) string {
	if w == nil {
		return ", the default"
	}
	return ""
}

func (r *Rule) validateSchedule(at string, now time.Time, es *Errors) {
	field := at + ".ScheduleExpression"
	if _, err := loadZone(r.ScheduleExpressionTimezone); err != nil {
		es.add(at+".ScheduleExpressionTimezone", "%v", err)
		return
	}
	s, err := r.Schedule()
	if err != nil {
		es.add(field, "%v", err)
		return
	}
	switch {
	case s.every > 0 && s.every < minInterval:
		es.add(field, "%s runs every %s: AWS Backup's shortest interval is an hour", s, s.every)
	case s.cron != "" && s.perHour > 1:
		es.add(field, "%s fires %d times an hour: AWS Backup's shortest interval is an hour, so give one value in the minutes field", s, s.perHour)
	}
	if s.cron != "" && s.Next(now).IsZero() {
		es.add(field, "%s never fires after %s: check the day of month against the month, and the year", s, now.UTC().Format(time.RFC3339))
	}
}

// validate checks a lifecycle; cold says whether cold storage is allowed.
func (l *Lifecycle) validate(at string, cold bool, es *Errors) {
	del, move := l.DeleteAfterDays, l.MoveToColdStorageAfterDays
	// -1 for both is AWS's way to keep recovery points forever.
	if del != nil && *del != -1 && (*del < 1 || *del > maxLifecycleDays) {
		es.add(at+".DeleteAfterDays", "%d: want 1 to %d days (or -1, never)", *del, maxLifecycleDays)
		del = nil
	}
	if move != nil && *move != -1 && (*move < 1 || *move > maxLifecycleDays) {
		es.add(at+".MoveToColdStorageAfterDays", "%d: want 1 to %d days (or -1, never)", *move, maxLifecycleDays)
		move = nil
	}
	if cold && del != nil && move != nil && *del != -1 && *move != -1 && *del < *move+minColdDays {
		es.add(at+".DeleteAfterDays", "%d must be at least %d days after MoveToColdStorageAfterDays (%d): cold storage keeps a backup at least %d days, so delete at %d or later",
			*del, minColdDays, *move, minColdDays, *move+minColdDays)
	}
	if l.DeleteAfterEvent != "" && l.DeleteAfterEvent != "DELETE_AFTER_COPY" {
		es.add(at+".DeleteAfterEvent", "%q: the only value is DELETE_AFTER_COPY", l.DeleteAfterEvent)
	}
}

// validateTag checks a tag against AWS's tag limits: keys 1-128
// characters, values up to 256, no aws: prefix on keys.
func validateTag(at, k, v string, es *Errors) {
	switch {
	case k == "" || utf8.RuneCountInString(k) > 128:
		es.add(join(at, k), "tag keys are 1 to 128 characters")
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		es.add(join(at, k), "tag keys starting with aws: are reserved for AWS")
	}
	if utf8.RuneCountInString(v) > 256 {
		es.add(join(at, k), "tag values are at most 256 characters")
	}
}

// Validate checks the selection against AWS Backup's rules and returns
// every problem as Errors, each naming its field (Conditions.StringLike[0].ConditionKey).
func (s *Selection) Validate() error {
	var es Errors
	switch {
	case s.SelectionName == "":
		es.add("SelectionName", "required")
	case !ruleNamePattern.MatchString(s.SelectionName):
		es.add("SelectionName", "%q: want 1 to 50 letters, digits, '-', '_' or '.'", s.SelectionName)
	}
	switch {
	case s.IamRoleArn == "":
		es.add("IamRoleArn", "required by AWS Backup (for example arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole)")
	case !roleARNPattern.MatchString(s.IamRoleArn):
		es.add("IamRoleArn", "%q: want arn:aws:iam::ACCOUNT:role/NAME", s.IamRoleArn)
	}
	validateARNs("Resources", s.Resources, &es)
	validateARNs("NotResources", s.NotResources, &es)
	for i, c := range s.ListOfTags {
		at := path("ListOfTags", i)
		if c.ConditionType != "STRINGEQUALS" {
			es.add(at+".ConditionType", "%q: ListOfTags only supports STRINGEQUALS; use Conditions for StringLike and negations", c.ConditionType)
		}
		if strings.TrimPrefix(c.ConditionKey, resourceTagPrefix) == "" {
			es.add(at+".ConditionKey", "required: the tag key")
		}
	}
	if c := s.Conditions; c != nil {
		for _, op := range []struct {
			name string
			ps   []ConditionParameter
		}{{"StringEquals", c.StringEquals}, {"StringNotEquals", c.StringNotEquals}, {"StringLike", c.StringLike}, {"StringNotLike", c.StringNotLike}} {
			for i, p := range op.ps {
				at := path("Conditions."+op.name, i) + ".ConditionKey"
				if !strings.HasPrefix(p.ConditionKey, resourceTagPrefix) || len(p.ConditionKey) == len(resourceTagPrefix) {
					es.add(at, "%q: want %sKEY, naming a tag", p.ConditionKey, resourceTagPrefix)
				}
			}
		}
	}
	return es.err()
}

func validateARNs(field string, arns []string, es *Errors) {
	wild := 0
	for i, a := range arns {
		if strings.Contains(a, "*") {
			wild++
		}
		if a != "*" && !strings.HasPrefix(a, "arn:") {
			es.add(path(field, i), "%q: want an ARN (arn:aws:s3:::BUCKET, * allowed) or *", a)
		} else if strings.HasPrefix(a, "arn:aws") && strings.Contains(a, ":s3:::") && strings.Contains(a[strings.Index(a, ":s3:::")+6:], "/") {
			es.add(path(field, i), "%q names objects: a selection takes whole buckets (arn:aws:s3:::BUCKET)", a)
		}
	}
	switch {
	case wild > 0 && len(arns) > maxWildcardARNs:
		es.add(field, "%d ARNs: at most %d when any has a wildcard", len(arns), maxWildcardARNs)
	case len(arns) > maxARNs:
		es.add(field, "%d ARNs: at most %d", len(arns), maxARNs)
	}
}
