// Package restoretest reads AWS Backup's restore testing plans and
// restore testing selections unchanged, validates them, resolves which
// protected buckets a selection takes, and picks what a restore test
// restores: a snapshot recovery point, or a second of the continuous
// window.
//
// The accepted forms (see Parse):
//
//   - a bare plan, RestoreTestingPlanForCreate: what
//     `aws backup create-restore-testing-plan --restore-testing-plan
//     file://plan.json` reads;
//   - {"RestoreTestingPlan": {...}, "Tags": {...}, "CreatorRequestId": ...}:
//     create-restore-testing-plan's --cli-input-json, and the output of
//     get-restore-testing-plan (RestoreTestingPlanForGet, whose
//     RestoreTestingPlanArn, CreationTime, LastExecutionTime and
//     LastUpdateTime are read and kept);
//   - a bare selection, RestoreTestingSelectionForCreate: what
//     create-restore-testing-selection --restore-testing-selection reads;
//   - {"RestoreTestingSelection": {...}, "RestoreTestingPlanName": ...,
//     "CreatorRequestId": ...}: create-restore-testing-selection's
//     --cli-input-json, and the output of get-restore-testing-selection.
//
// Keys are matched exactly, as AWS does: an unknown or misspelt key is an
// error naming its path. Problems are shared/plan's Errors, one
// *FieldError per problem, each naming its field from the top of the file
// (RecoveryPointSelection.SelectionWindowDays for a bare plan,
// RestoreTestingPlan.RecoveryPointSelection.SelectionWindowDays inside the
// wrapper); Plan.Validate and Selection.Validate name fields relative to
// the object.
//
// Where AWS's documentation leaves a choice, the rule and its source are
// written next to the check below. bucketvault restore-tests S3 only:
// a selection of any other ProtectedResourceType is refused.
package restoretest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/s3x"
)

// FieldError and Errors are shared/plan's: one field-error type for every
// AWS Backup document bucketvault reads, so that callers (the CLI's
// validate commands) report them alike.
type (
	FieldError = plan.FieldError
	Errors     = plan.Errors
)

// Algorithm is how a restore test picks among what its window holds.
type Algorithm string

const (
	// LatestWithinWindow picks the newest recovery point, or for a
	// continuous recovery point the newest whole second.
	LatestWithinWindow Algorithm = "LATEST_WITHIN_WINDOW"
	// RandomWithinWindow picks uniformly at random.
	RandomWithinWindow Algorithm = "RANDOM_WITHIN_WINDOW"
)

// RecoveryPointType is a kind of recovery point a plan may restore.
type RecoveryPointType string

const (
	// Snapshot recovery points: a manifest of a bucket at one scan.
	Snapshot RecoveryPointType = "SNAPSHOT"
	// Continuous recovery points: any second inside the journal's window
	// (point-in-time restore).
	Continuous RecoveryPointType = "CONTINUOUS"
)

// Defaults AWS Backup applies to what a plan or selection leaves unset
// (RestoreTestingPlanForCreate, RestoreTestingRecoveryPointSelection,
// RestoreTestingSelectionForCreate).
const (
	DefaultScheduleExpressionTimezone = "Etc/UTC"
	DefaultStartWindowHours           = 24
	DefaultSelectionWindowDays        = 30
	DefaultValidationWindowHours      = 0
)

// Plan is AWS Backup's RestoreTestingPlanForCreate, with the members
// RestoreTestingPlanForGet adds, so that get-restore-testing-plan's output
// reads as it is.
type Plan struct {
	RestoreTestingPlanName string `json:"RestoreTestingPlanName"`
	// ScheduleExpression is cron(...) in ScheduleExpressionTimezone.
	ScheduleExpression string `json:"ScheduleExpression"`
	// ScheduleExpressionTimezone is an IANA time zone name; empty means
	// DefaultScheduleExpressionTimezone.
	ScheduleExpressionTimezone string `json:"ScheduleExpressionTimezone,omitempty"`
	// StartWindowHours: a restore test not started this long after its
	// scheduled time is cancelled. Unset means DefaultStartWindowHours.
	StartWindowHours       *int64                  `json:"StartWindowHours,omitempty"`
	RecoveryPointSelection *RecoveryPointSelection `json:"RecoveryPointSelection"`

	// Set by AWS Backup in get-restore-testing-plan's output: read, kept,
	// not interpreted.
	RestoreTestingPlanArn string          `json:"RestoreTestingPlanArn,omitempty"`
	CreatorRequestId      string          `json:"CreatorRequestId,omitempty"`
	CreationTime          json.RawMessage `json:"CreationTime,omitempty"`
	LastExecutionTime     json.RawMessage `json:"LastExecutionTime,omitempty"`
	LastUpdateTime        json.RawMessage `json:"LastUpdateTime,omitempty"`
}

// RecoveryPointSelection is AWS Backup's RestoreTestingRecoveryPointSelection:
// which recovery points a plan's restore tests choose from.
type RecoveryPointSelection struct {
	Algorithm          Algorithm           `json:"Algorithm"`
	RecoveryPointTypes []RecoveryPointType `json:"RecoveryPointTypes"`
	// IncludeVaults is ["*"] or backup vault ARNs
	// (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME, * allowed in each
	// part); bucketvault matches the NAME against its vaults (see
	// TakesVault).
	IncludeVaults []string `json:"IncludeVaults"`
	// ExcludeVaults are vault ARNs (with *) taken out of IncludeVaults.
	ExcludeVaults []string `json:"ExcludeVaults,omitempty"`
	// SelectionWindowDays: recovery points (and continuous seconds) of the
	// last this many days are candidates. Unset means
	// DefaultSelectionWindowDays.
	SelectionWindowDays *int64 `json:"SelectionWindowDays,omitempty"`
}

// Selection is AWS Backup's RestoreTestingSelectionForCreate, with the
// members RestoreTestingSelectionForGet adds.
type Selection struct {
	RestoreTestingSelectionName string `json:"RestoreTestingSelectionName"`
	// ProtectedResourceType must be S3: bucketvault restore-tests S3
	// buckets only.
	ProtectedResourceType string `json:"ProtectedResourceType"`
	// IamRoleArn is required by AWS Backup (the role its restore jobs
	// assume). bucketvault checks that it is an IAM role ARN and does not
	// use it: its restore tests run with the restore function's own role.
	IamRoleArn string `json:"IamRoleArn"`
	// ProtectedResourceArns is ["*"] (every protected bucket, filtered by
	// ProtectedResourceConditions if given) or up to 30 bucket ARNs.
	ProtectedResourceArns       []string    `json:"ProtectedResourceArns,omitempty"`
	ProtectedResourceConditions *Conditions `json:"ProtectedResourceConditions,omitempty"`
	// RestoreMetadataOverrides takes AWS Backup's overridable S3 restore
	// metadata: encryptionType, kmsKey, restoreACLs (keys case-insensitive).
	RestoreMetadataOverrides map[string]string `json:"RestoreMetadataOverrides,omitempty"`
	// ValidationWindowHours: how long the restored bucket is kept for
	// validation before it is deleted. Unset means
	// DefaultValidationWindowHours.
	ValidationWindowHours *int64 `json:"ValidationWindowHours,omitempty"`

	// RestoreTestingPlanName names the plan the selection belongs to: a
	// member of get-restore-testing-selection's output, or of
	// create-restore-testing-selection's input wrapper (Parse moves it here).
	RestoreTestingPlanName string `json:"RestoreTestingPlanName,omitempty"`
	// Set by AWS Backup in get-restore-testing-selection's output.
	CreatorRequestId string          `json:"CreatorRequestId,omitempty"`
	CreationTime     json.RawMessage `json:"CreationTime,omitempty"`
}

// Conditions is AWS Backup's ProtectedResourceConditions: tag conditions
// that must all hold.
type Conditions struct {
	// StringEquals holds when the bucket has the tag with this value.
	StringEquals []KeyValue `json:"StringEquals,omitempty"`
	// StringNotEquals holds when the bucket lacks the tag or has another
	// value (IAM's semantics for negated operators, as shared/plan applies
	// to backup selections).
	StringNotEquals []KeyValue `json:"StringNotEquals,omitempty"`
}

// KeyValue is one tag condition. Key is the tag key, plain (as AWS's
// KeyValue documents it) or as aws:ResourceTag/KEY (as AWS's examples and
// backup selections write it); both name the same tag.
type KeyValue struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Document is what one file holds: a plan or a selection, and what the
// wrapper around it said.
type Document struct {
	// Exactly one of Plan and Selection is set.
	Plan      *Plan      `json:"RestoreTestingPlan,omitempty"`
	Selection *Selection `json:"RestoreTestingSelection,omitempty"`
	// Tags of create-restore-testing-plan's input.
	Tags map[string]string `json:"Tags,omitempty"`
	// CreatorRequestId of a create input.
	CreatorRequestId string `json:"CreatorRequestId,omitempty"`
	// wrapper is the top-level key the object sat under, "" for a bare one.
	wrapper string
}

// Kind says what the document holds: "restore testing plan" or
// "restore testing selection".
func (d *Document) Kind() string {
	if d.Plan != nil {
		return "restore testing plan"
	}
	return "restore testing selection"
}

// Load reads file (any form Parse accepts) and validates what it holds.
// The error lists every problem, each naming its field from the top of
// the file, prefixed with the file's name.
func Load(file string) (*Document, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	d, err := Parse(data)
	if err == nil {
		err = d.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return d, nil
}

// Top-level keys that tell the forms apart.
var (
	planKeys      = []string{"RestoreTestingPlanName", "ScheduleExpression", "ScheduleExpressionTimezone", "StartWindowHours", "RecoveryPointSelection", "RestoreTestingPlanArn"}
	selectionKeys = []string{"RestoreTestingSelectionName", "ProtectedResourceType", "IamRoleArn", "ProtectedResourceArns", "ProtectedResourceConditions", "RestoreMetadataOverrides", "ValidationWindowHours"}
)

// planDoc is create-restore-testing-plan's --cli-input-json and
// get-restore-testing-plan's output.
type planDoc struct {
	RestoreTestingPlan *Plan             `json:"RestoreTestingPlan"`
	Tags               map[string]string `json:"Tags"`
	CreatorRequestId   string            `json:"CreatorRequestId"`
}

// selectionDoc is create-restore-testing-selection's --cli-input-json and
// get-restore-testing-selection's output.
type selectionDoc struct {
	RestoreTestingSelection *Selection `json:"RestoreTestingSelection"`
	RestoreTestingPlanName  string     `json:"RestoreTestingPlanName"`
	CreatorRequestId        string     `json:"CreatorRequestId"`
}

// Parse decodes a file in any of the package's forms, telling a plan from
// a selection by its keys. It does not validate values (Validate does);
// unknown keys, keys given twice and values of the wrong JSON type are
// errors, each naming its path from the top of the file.
func Parse(data []byte) (*Document, error) {
	top, err := plan.TopKeys(data)
	if err != nil {
		return nil, err
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if contains(top, k) {
				return true
			}
		}
		return false
	}
	switch {
	case has("RestoreTestingPlan"):
		var d planDoc
		if err := plan.DecodeStrict(data, &d); err != nil {
			return nil, err
		}
		if d.RestoreTestingPlan == nil {
			return nil, Errors{{Field: "RestoreTestingPlan", Problem: "missing: want the plan object"}}
		}
		return &Document{Plan: d.RestoreTestingPlan, Tags: d.Tags, CreatorRequestId: d.CreatorRequestId, wrapper: "RestoreTestingPlan"}, nil
	case has("RestoreTestingSelection"):
		var d selectionDoc
		if err := plan.DecodeStrict(data, &d); err != nil {
			return nil, err
		}
		s := d.RestoreTestingSelection
		if s == nil {
			return nil, Errors{{Field: "RestoreTestingSelection", Problem: "missing: want the selection object"}}
		}
		switch {
		case s.RestoreTestingPlanName == "":
			s.RestoreTestingPlanName = d.RestoreTestingPlanName
		case d.RestoreTestingPlanName != "" && d.RestoreTestingPlanName != s.RestoreTestingPlanName:
			return nil, Errors{{Field: "RestoreTestingPlanName", Problem: fmt.Sprintf("%q, but the selection says it belongs to %q", d.RestoreTestingPlanName, s.RestoreTestingPlanName)}}
		}
		return &Document{Selection: s, CreatorRequestId: d.CreatorRequestId, wrapper: "RestoreTestingSelection"}, nil
	case has(selectionKeys...):
		// Before the plan's keys: get-restore-testing-selection's object
		// carries RestoreTestingPlanName too.
		var s Selection
		if err := plan.DecodeStrict(data, &s); err != nil {
			return nil, err
		}
		return &Document{Selection: &s}, nil
	case has(planKeys...):
		var p Plan
		if err := plan.DecodeStrict(data, &p); err != nil {
			return nil, err
		}
		return &Document{Plan: &p}, nil
	case has("BackupPlan", "BackupPlanName", "BackupSelection", "SelectionName", "BackupSelections"):
		return nil, Errors{{Problem: "an AWS Backup backup plan or selection, not a restore testing one: check it with `bucketvault plan validate`"}}
	}
	return nil, Errors{{Problem: "neither a restore testing plan nor a restore testing selection: want RestoreTestingPlanName and RecoveryPointSelection (a plan), " +
		"RestoreTestingSelectionName and ProtectedResourceType (a selection), or a RestoreTestingPlan or RestoreTestingSelection wrapper"}}
}

// Validate checks what the document holds and its wrapper (tags, request
// id), returning every problem as Errors with field paths from the top of
// the file.
func (d *Document) Validate() error {
	return d.validate(time.Now())
}

func (d *Document) validate(now time.Time) error {
	var es Errors
	var inner error
	if d.Plan != nil {
		inner = d.Plan.validate(now)
	} else if d.Selection != nil {
		inner = d.Selection.Validate()
	} else {
		return Errors{{Problem: "holds neither a plan nor a selection"}}
	}
	var ie Errors
	if errors.As(inner, &ie) {
		for _, e := range ie {
			es = append(es, &FieldError{Field: join(d.wrapper, e.Field), Problem: e.Problem})
		}
	}
	for _, k := range sortedKeys(d.Tags) {
		validateTag("Tags", k, d.Tags[k], &es)
	}
	validateRequestID("CreatorRequestId", d.CreatorRequestId, &es)
	return errOf(es)
}

// Limits AWS Backup documents for restore testing (API reference:
// CreateRestoreTestingPlan, RestoreTestingPlanForCreate,
// RestoreTestingRecoveryPointSelection, CreateRestoreTestingSelection,
// RestoreTestingSelectionForCreate, KeyValue).
var (
	// RestoreTestingPlanName and RestoreTestingSelectionName: "only
	// alphanumeric characters and underscores. Maximum length is 50."
	nameRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,50}$`)
	// CreatorRequestId: "1 to 50 alphanumeric or '-_.' characters".
	requestIDRE = regexp.MustCompile(`^[a-zA-Z0-9\-_.]{1,50}$`)
	// A backup vault ARN, * allowed in the region, account and name
	// ("Use the wildcard ["*"] or specific ARNs"; ExcludeVaults "can
	// include a list of selectors"). The name part follows
	// BackupVaultName's pattern.
	vaultARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:backup:([a-z0-9-]+|\*):([0-9]{12}|\*):backup-vault:([a-zA-Z0-9\-_*]{1,50})$`)
	// IamRoleArn, as shared/plan checks BackupSelection.IamRoleArn.
	roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$`)
	// A bucket ARN: arn:PARTITION:s3:::BUCKET.
	bucketARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:s3:::(.*)$`)
	// KeyValue.Key and Value: letters, white space, digits and _.:/=+-@.
	tagKeyRE   = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$`)
	tagValueRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	// kmsKey: a KMS key or alias ARN.
	kmsKeyRE = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$`)
)

const (
	// StartWindowHours: "a maximum value of 168 hours (one week)"; at least
	// one (a restore test that may never start makes no sense).
	minStartWindowHours, maxStartWindowHours = 1, 168
	// SelectionWindowDays: "an integer (in days) from 1 to 365".
	minSelectionWindowDays, maxSelectionWindowDays = 1, 365
	// ValidationWindowHours: "Accepted value is an integer between 0 and
	// 168" (RestoreTestingSelectionForCreate; ForGet says 1 to 168, but 0,
	// the default, is what create accepts).
	minValidationWindowHours, maxValidationWindowHours = 0, 168
	// "you can include up to 30 specific protected resource ARNs".
	maxProtectedResourceARNs = 30
	// resourceTagPrefix is how backup selections (and AWS's examples of
	// restore testing selections) name a tag in a condition key.
	resourceTagPrefix = "aws:ResourceTag/"
)

// resourceTypes are AWS Backup's restore testing ProtectedResourceType
// values (RestoreTestingSelectionForCreate); only S3 is bucketvault's.
var resourceTypes = []string{"Aurora", "DocumentDB", "DynamoDB", "EBS", "EC2", "EFS", "FSx", "Neptune", "RDS", "S3"}

// Validate checks the plan against AWS Backup's documented limits and
// against what makes no sense (a schedule that never fires), returning
// every problem as Errors, each naming its field relative to the plan
// (RecoveryPointSelection.SelectionWindowDays). Schedules are checked
// against the current time.
func (p *Plan) Validate() error { return p.validate(time.Now()) }

func (p *Plan) validate(now time.Time) error {
	var es Errors
	validateName("RestoreTestingPlanName", p.RestoreTestingPlanName, &es)
	p.validateSchedule(now, &es)
	if w := p.StartWindowHours; w != nil && (*w < minStartWindowHours || *w > maxStartWindowHours) {
		add(&es, "StartWindowHours", "%d: want %d to %d (a week)", *w, minStartWindowHours, maxStartWindowHours)
	}
	if r := p.RecoveryPointSelection; r == nil {
		add(&es, "RecoveryPointSelection", "required: Algorithm, RecoveryPointTypes and IncludeVaults")
	} else {
		r.validate("RecoveryPointSelection", &es)
	}
	if p.RestoreTestingPlanArn != "" && !strings.HasPrefix(p.RestoreTestingPlanArn, "arn:") {
		add(&es, "RestoreTestingPlanArn", "%q: want an ARN", p.RestoreTestingPlanArn)
	}
	validateRequestID("CreatorRequestId", p.CreatorRequestId, &es)
	return errOf(es)
}

func (p *Plan) validateSchedule(now time.Time, es *Errors) {
	const field = "ScheduleExpression"
	_, zoneErr := loadZone(p.ScheduleExpressionTimezone)
	if zoneErr != nil {
		add(es, "ScheduleExpressionTimezone", "%v", zoneErr)
	}
	e := strings.TrimSpace(p.ScheduleExpression)
	switch {
	case e == "":
		// CreateRestoreTestingPlan: a plan "must contain a
		// ScheduleExpression cron" (the prose's default of cron(0 5 ? * *
		// *) applies to updates, which may leave it out).
		add(es, field, "required: a cron(...) expression, for example cron(0 5 ? * * *) (daily at 05:00)")
		return
	case !strings.HasPrefix(e, "cron("):
		// RestoreTestingPlanForCreate.ScheduleExpression: "A CRON
		// expression"; rate() and at() are for backup rules and
		// EventBridge Scheduler, not restore testing plans.
		add(es, field, "%q: a restore testing plan takes a cron(...) expression (AWS Backup's RestoreTestingPlanForCreate), not rate() or at()", p.ScheduleExpression)
		return
	case zoneErr != nil:
		return // the expression cannot be evaluated without its zone
	}
	s, err := p.Schedule()
	if err != nil {
		add(es, field, "%v", err)
		return
	}
	if s.Next(now).IsZero() {
		add(es, field, "%s never fires after %s: check the day of month against the month, and the year", s, now.UTC().Format(time.RFC3339))
	}
}

// Schedule parses ScheduleExpression in ScheduleExpressionTimezone
// (DefaultScheduleExpressionTimezone when empty), with shared/plan's
// reading of AWS cron (day-of-week numbering, L, W, #, daylight saving).
func (p *Plan) Schedule() (plan.Schedule, error) {
	return plan.ParseSchedule(p.ScheduleExpression, p.Timezone())
}

// Timezone is ScheduleExpressionTimezone, or
// DefaultScheduleExpressionTimezone when empty.
func (p *Plan) Timezone() string {
	if p.ScheduleExpressionTimezone == "" {
		return DefaultScheduleExpressionTimezone
	}
	return p.ScheduleExpressionTimezone
}

// StartWindow is how long after its scheduled time a restore test may
// still start: StartWindowHours, or DefaultStartWindowHours.
func (p *Plan) StartWindow() time.Duration {
	return hours(p.StartWindowHours, DefaultStartWindowHours)
}

// WithDefaults returns a copy of the plan with AWS Backup's defaults
// written in (time zone, start window, selection window), as
// get-restore-testing-plan shows a plan.
func (p *Plan) WithDefaults() *Plan {
	c := *p
	c.ScheduleExpressionTimezone = p.Timezone()
	c.StartWindowHours = ptr(int64(p.StartWindow() / time.Hour))
	if p.RecoveryPointSelection != nil {
		r := *p.RecoveryPointSelection
		r.SelectionWindowDays = ptr(int64(r.WindowDays()))
		c.RecoveryPointSelection = &r
	}
	return &c
}

func (r *RecoveryPointSelection) validate(at string, es *Errors) {
	switch r.Algorithm {
	case LatestWithinWindow, RandomWithinWindow:
	case "":
		add(es, at+".Algorithm", "required: %s or %s", LatestWithinWindow, RandomWithinWindow)
	default:
		add(es, at+".Algorithm", "%q: want %s or %s", r.Algorithm, LatestWithinWindow, RandomWithinWindow)
	}
	if len(r.RecoveryPointTypes) == 0 {
		add(es, at+".RecoveryPointTypes", "required: one or both of %s and %s", Snapshot, Continuous)
	}
	seen := map[RecoveryPointType]bool{}
	for i, t := range r.RecoveryPointTypes {
		switch {
		case t != Snapshot && t != Continuous:
			add(es, index(at+".RecoveryPointTypes", i), "%q: want %s or %s", t, Snapshot, Continuous)
		case seen[t]:
			add(es, index(at+".RecoveryPointTypes", i), "%s is listed twice", t)
		}
		seen[t] = true
	}
	if len(r.IncludeVaults) == 0 {
		add(es, at+".IncludeVaults", `required: ["*"] for every vault, or backup vault ARNs (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME)`)
	}
	validateVaults(at+".IncludeVaults", r.IncludeVaults, es)
	validateVaults(at+".ExcludeVaults", r.ExcludeVaults, es)
	if d := r.SelectionWindowDays; d != nil && (*d < minSelectionWindowDays || *d > maxSelectionWindowDays) {
		add(es, at+".SelectionWindowDays", "%d: want %d to %d", *d, minSelectionWindowDays, maxSelectionWindowDays)
	}
}

func validateVaults(field string, arns []string, es *Errors) {
	for i, a := range arns {
		switch {
		case a == "*":
			if len(arns) > 1 {
				add(es, index(field, i), `"*" stands alone: give ["*"] or vault ARNs, not both`)
			}
		case !vaultARNRE.MatchString(a):
			add(es, index(field, i), "%q: want * or a backup vault ARN, arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME (* allowed in REGION, ACCOUNT and NAME)", a)
		}
	}
}

// WindowDays is SelectionWindowDays, or DefaultSelectionWindowDays.
func (r *RecoveryPointSelection) WindowDays() int {
	if r.SelectionWindowDays == nil {
		return DefaultSelectionWindowDays
	}
	return int(*r.SelectionWindowDays)
}

// Window is the selection window of a restore test run at now: the last
// WindowDays days, [now - WindowDays×24h, now].
func (r *RecoveryPointSelection) Window(now time.Time) (start, end time.Time) {
	return now.Add(-time.Duration(r.WindowDays()) * 24 * time.Hour), now
}

// Takes reports whether the plan restores recovery points of type t.
func (r *RecoveryPointSelection) Takes(t RecoveryPointType) bool {
	for _, x := range r.RecoveryPointTypes {
		if x == t {
			return true
		}
	}
	return false
}

// TakesVault reports whether the plan restores from the vault named name:
// IncludeVaults takes it ("*", or an ARN whose name part matches, * a
// wildcard) and ExcludeVaults does not. A bucketvault vault is an S3
// bucket, whose name is unique across accounts and regions, so the
// region and account of an ARN are not compared: the name alone
// identifies the vault.
func (r *RecoveryPointSelection) TakesVault(name string) bool {
	matches := func(arns []string) bool {
		for _, a := range arns {
			if a == "*" {
				return true
			}
			m := vaultARNRE.FindStringSubmatch(a)
			if m == nil {
				continue
			}
			if ok, _ := path.Match(m[3], name); ok {
				return true
			}
		}
		return false
	}
	return matches(r.IncludeVaults) && !matches(r.ExcludeVaults)
}

// Validate checks the selection against AWS Backup's documented rules and
// what bucketvault supports (S3 only), returning every problem as Errors,
// each naming its field relative to the selection
// (ProtectedResourceConditions.StringEquals[0].Key).
func (s *Selection) Validate() error {
	var es Errors
	validateName("RestoreTestingSelectionName", s.RestoreTestingSelectionName, &es)
	if s.RestoreTestingPlanName != "" {
		validateName("RestoreTestingPlanName", s.RestoreTestingPlanName, &es)
	}
	switch t := s.ProtectedResourceType; {
	case t == "S3":
	case t == "":
		add(&es, "ProtectedResourceType", "required: S3")
	case contains(resourceTypes, t):
		add(&es, "ProtectedResourceType", "%q: bucketvault restore-tests S3 buckets only; test %s resources with AWS Backup's own restore testing", t, t)
	default:
		add(&es, "ProtectedResourceType", "%q is not an AWS Backup resource type: want S3", t)
	}
	switch {
	case s.IamRoleArn == "":
		add(&es, "IamRoleArn", "required by AWS Backup (for example arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole); bucketvault does not use it")
	case !roleARNRE.MatchString(s.IamRoleArn):
		add(&es, "IamRoleArn", "%q: want an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME", s.IamRoleArn)
	}
	s.validateTargets(&es)
	s.validateOverrides(&es)
	if w := s.ValidationWindowHours; w != nil && (*w < minValidationWindowHours || *w > maxValidationWindowHours) {
		add(&es, "ValidationWindowHours", "%d: want %d to %d (a week)", *w, minValidationWindowHours, maxValidationWindowHours)
	}
	validateRequestID("CreatorRequestId", s.CreatorRequestId, &es)
	return errOf(es)
}

// validateTargets checks ProtectedResourceArns and
// ProtectedResourceConditions. AWS Backup (CreateRestoreTestingSelection):
// a selection has "one of the following: ProtectedResourceArns,
// ProtectedResourceConditions"; it "can include a wildcard value ("*")
// for ProtectedResourceArns along with ProtectedResourceConditions.
// Alternatively, you can include up to 30 specific protected resource
// ARNs"; "Cannot select by both protected resource types AND specific
// ARNs. Request will fail if both are included." So: ARNs alone, ["*"]
// with or without conditions, or conditions alone; never specific ARNs
// with conditions.
func (s *Selection) validateTargets(es *Errors) {
	const field = "ProtectedResourceArns"
	arns, c := s.ProtectedResourceArns, s.ProtectedResourceConditions
	hasConditions := c != nil && len(c.StringEquals)+len(c.StringNotEquals) > 0
	if len(arns) == 0 && !hasConditions {
		add(es, field, `required: bucket ARNs (arn:aws:s3:::BUCKET), or ["*"] for every protected bucket, optionally with ProtectedResourceConditions to filter by tags`)
	}
	wildcard := contains(arns, "*")
	seen := map[string]int{}
	for i, a := range arns {
		at := index(field, i)
		if a == "*" {
			if len(arns) > 1 {
				add(es, at, `"*" stands alone: give ["*"] or specific ARNs, not both`)
			}
			continue
		}
		m := bucketARNRE.FindStringSubmatch(a)
		switch {
		case m == nil:
			add(es, at, "%q: want an S3 bucket ARN, arn:aws:s3:::BUCKET, or *", a)
		case strings.Contains(m[1], "*"):
			add(es, at, "%q: AWS Backup's restore testing takes specific ARNs or * alone, no wildcard inside an ARN; use [\"*\"] with ProtectedResourceConditions to select by tags", a)
		case strings.Contains(m[1], "/"):
			add(es, at, "%q names objects: a selection takes whole buckets (arn:aws:s3:::BUCKET)", a)
		default:
			if err := s3x.ValidateBucketName(m[1]); err != nil {
				var ie *s3x.InvalidBucketNameError
				if errors.As(err, &ie) {
					add(es, at, "%q: bucket name %s", a, ie.Reason)
				} else {
					add(es, at, "%q: %v", a, err)
				}
			} else if j, dup := seen[m[1]]; dup {
				add(es, at, "%q is also %s", a, index(field, j))
			}
			seen[m[1]] = i
		}
	}
	if !wildcard && len(arns) > maxProtectedResourceARNs {
		add(es, field, "%d ARNs: at most %d specific ARNs; use [\"*\"] with ProtectedResourceConditions for more", len(arns), maxProtectedResourceARNs)
	}
	if hasConditions && len(arns) > 0 && !wildcard {
		add(es, "ProtectedResourceConditions", `only with ProtectedResourceArns ["*"] or without ProtectedResourceArns: AWS Backup refuses specific ARNs together with conditions`)
	}
	if c == nil {
		return
	}
	for _, op := range []struct {
		name string
		kvs  []KeyValue
	}{{"StringEquals", c.StringEquals}, {"StringNotEquals", c.StringNotEquals}} {
		for i, kv := range op.kvs {
			at := index("ProtectedResourceConditions."+op.name, i)
			key := strings.TrimPrefix(kv.Key, resourceTagPrefix)
			switch {
			case key == "":
				add(es, at+".Key", "required: the tag key")
			case utf8.RuneCountInString(key) > 128:
				add(es, at+".Key", "tag keys are 1 to 128 characters")
			case strings.HasPrefix(strings.ToLower(key), "aws:"):
				// KeyValue.Key "can't start with aws:"; aws:ResourceTag/
				// is taken off above, as a prefix naming a tag.
				add(es, at+".Key", "%q: a tag key can't start with aws: (write the tag key, or %sKEY)", kv.Key, resourceTagPrefix)
			case !tagKeyRE.MatchString(key):
				add(es, at+".Key", "%q: letters, digits, white space and _ . : / = + - @ only", kv.Key)
			}
			switch {
			case utf8.RuneCountInString(kv.Value) > 256:
				add(es, at+".Value", "tag values are at most 256 characters")
			case !tagValueRE.MatchString(kv.Value):
				add(es, at+".Value", "%q: letters, digits, white space and _ . : / = + - @ only", kv.Value)
			}
		}
	}
}

// s3Overrides are the RestoreMetadataOverrides keys AWS Backup documents
// for S3 ("Restore testing inferred metadata": Overridable metadata
// encryptionType, kmsKey, restoreACLs), lower-cased: "key values are not
// case sensitive".
var s3Overrides = map[string]string{"encryptiontype": "encryptionType", "kmskey": "kmsKey", "restoreacls": "restoreACLs"}

// s3Inferred are the S3 keys AWS Backup infers and does not let a restore
// test override (destinationBucketName, encrypted, newBucket).
var s3Inferred = map[string]string{"destinationbucketname": "destinationBucketName", "encrypted": "encrypted", "newbucket": "newBucket"}

func (s *Selection) validateOverrides(es *Errors) {
	const field = "RestoreMetadataOverrides"
	canonical := map[string]string{} // documented key -> key as written
	for _, k := range sortedKeys(s.RestoreMetadataOverrides) {
		v := s.RestoreMetadataOverrides[k]
		at := join(field, k)
		name, ok := s3Overrides[strings.ToLower(k)]
		if !ok {
			if inferred, ok := s3Inferred[strings.ToLower(k)]; ok {
				add(es, at, "AWS Backup infers %s for an S3 restore test and does not let it be overridden (bucketvault restores into a new restore-test-* bucket)", inferred)
			} else {
				add(es, at, "not an overridable S3 restore metadata key: want encryptionType, kmsKey or restoreACLs")
			}
			continue
		}
		if prev, dup := canonical[name]; dup {
			add(es, at, "is %s again (%s): keys are not case sensitive", name, join(field, prev))
			continue
		}
		canonical[name] = k
		switch name {
		case "encryptionType":
			if !strings.EqualFold(v, "SSE-S3") && !strings.EqualFold(v, "SSE-KMS") {
				add(es, at, "%q: want SSE-S3 or SSE-KMS", v)
			}
		case "kmsKey":
			if !kmsKeyRE.MatchString(v) {
				add(es, at, "%q: want a KMS key ARN, arn:aws:kms:REGION:ACCOUNT:key/ID (or alias/NAME)", v)
			}
		case "restoreACLs":
			if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
				add(es, at, "%q: want true or false", v)
			}
		}
	}
	if k, ok := canonical["kmsKey"]; ok {
		et, set := canonical["encryptionType"]
		if !set || !strings.EqualFold(s.RestoreMetadataOverrides[et], "SSE-KMS") {
			add(es, join(field, k), "a KMS key needs encryptionType SSE-KMS (AWS Backup's inferred encryptionType is SSE-S3)")
		}
	}
}

// Override returns the RestoreMetadataOverrides value of key (one of
// encryptionType, kmsKey, restoreACLs), matching keys case-insensitively,
// and whether it is set.
func (s *Selection) Override(key string) (string, bool) {
	for k, v := range s.RestoreMetadataOverrides {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// ValidationWindow is how long the restored bucket is kept for validation:
// ValidationWindowHours, or DefaultValidationWindowHours.
func (s *Selection) ValidationWindow() time.Duration {
	return hours(s.ValidationWindowHours, DefaultValidationWindowHours)
}

// WithDefaults returns a copy of the selection with AWS Backup's default
// validation window written in, as get-restore-testing-selection shows it.
func (s *Selection) WithDefaults() *Selection {
	c := *s
	c.ValidationWindowHours = ptr(int64(s.ValidationWindow() / time.Hour))
	return &c
}

// Wildcard reports whether the selection takes every protected bucket
// (ProtectedResourceArns ["*"] or absent), before its conditions.
func (s *Selection) Wildcard() bool {
	return len(s.ProtectedResourceArns) == 0 || contains(s.ProtectedResourceArns, "*")
}

// Bucket is a protected bucket a selection may take: its name and tags.
type Bucket struct {
	Name string            `json:"Name"`
	Tags map[string]string `json:"Tags,omitempty"`
}

// Takes reports whether the selection takes bucket b: ProtectedResourceArns
// names it (or is ["*"] or absent), and every ProtectedResourceConditions
// condition holds for b's tags, with shared/plan's semantics for backup
// selections' conditions (StringEquals needs the tag present with the
// value; StringNotEquals holds when the tag is absent or differs;
// case-sensitive). ARNs are compared by bucket name: a bucket name is
// unique in its partition. A selection of another resource type takes
// nothing.
func (s *Selection) Takes(b Bucket) bool {
	if s.ProtectedResourceType != "S3" {
		return false
	}
	if !s.Wildcard() {
		named := false
		for _, a := range s.ProtectedResourceArns {
			if m := bucketARNRE.FindStringSubmatch(a); m != nil && m[1] == b.Name {
				named = true
				break
			}
		}
		if !named {
			return false
		}
	}
	c := s.ProtectedResourceConditions
	if c == nil {
		return true
	}
	conds := &plan.Conditions{}
	for _, kv := range c.StringEquals {
		conds.StringEquals = append(conds.StringEquals, plan.ConditionParameter{ConditionKey: tagKey(kv.Key), ConditionValue: kv.Value})
	}
	for _, kv := range c.StringNotEquals {
		conds.StringNotEquals = append(conds.StringNotEquals, plan.ConditionParameter{ConditionKey: tagKey(kv.Key), ConditionValue: kv.Value})
	}
	// With no Resources and no ListOfTags a backup selection takes every
	// bucket its Conditions allow: exactly the conditions' verdict.
	return (&plan.Selection{Conditions: conds}).Matches("", b.Tags)
}

// tagKey writes a condition key as shared/plan reads it, aws:ResourceTag/KEY.
func tagKey(k string) string {
	if strings.HasPrefix(k, resourceTagPrefix) {
		return k
	}
	return resourceTagPrefix + k
}

// Resolve returns the names of the buckets the selection takes among
// buckets (the protected buckets: those with recovery points in a vault
// the plan takes), sorted, each once.
func (s *Selection) Resolve(buckets []Bucket) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, b := range buckets {
		if !seen[b.Name] && s.Takes(b) {
			out = append(out, b.Name)
		}
		seen[b.Name] = true
	}
	sort.Strings(out)
	return out
}

// ErrNothingToPick is the error of a pick from a window that holds no
// recovery point, or no whole second.
var ErrNothingToPick = errors.New("nothing to restore inside the selection window")

// PickContinuous picks the second a CONTINUOUS restore test restores to,
// inside the window [start, end]: with RandomWithinWindow a uniformly
// random whole second s with start <= s <= end (both ends included), with
// LatestWithinWindow the newest whole second, end truncated to the
// second. The result is in end's location. rng is the source of
// randomness (nil: math/rand/v2's global source); a seeded rng makes the
// pick reproducible. A window holding no whole second is ErrNothingToPick.
func PickContinuous(start, end time.Time, alg Algorithm, rng *rand.Rand) (time.Time, error) {
	first := start.Truncate(time.Second)
	if first.Before(start) {
		first = first.Add(time.Second)
	}
	last := end.Truncate(time.Second)
	if last.Before(first) {
		return time.Time{}, fmt.Errorf("%w: no whole second in [%s, %s]", ErrNothingToPick, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	switch alg {
	case LatestWithinWindow:
		return last.In(end.Location()), nil
	case RandomWithinWindow:
		n := int64(last.Sub(first)/time.Second) + 1
		return first.Add(time.Duration(int64n(rng, n)) * time.Second).In(end.Location()), nil
	}
	return time.Time{}, fmt.Errorf("algorithm %q: want %s or %s", alg, LatestWithinWindow, RandomWithinWindow)
}

// Candidate is a SNAPSHOT recovery point a restore test may pick.
type Candidate struct {
	ID   string    `json:"ID"`
	Time time.Time `json:"Time"`
}

// PickSnapshot picks the SNAPSHOT recovery point a restore test restores
// among points, considering only those whose Time is inside [start, end]:
// with LatestWithinWindow the newest (the greatest ID among equal times),
// with RandomWithinWindow one uniformly at random. The points are ordered
// by time and ID first, so a seeded rng picks the same point whatever the
// order of points. None inside the window is ErrNothingToPick.
func PickSnapshot(points []Candidate, start, end time.Time, alg Algorithm, rng *rand.Rand) (Candidate, error) {
	var in []Candidate
	for _, p := range points {
		if !p.Time.Before(start) && !p.Time.After(end) {
			in = append(in, p)
		}
	}
	if alg != LatestWithinWindow && alg != RandomWithinWindow {
		return Candidate{}, fmt.Errorf("algorithm %q: want %s or %s", alg, LatestWithinWindow, RandomWithinWindow)
	}
	if len(in) == 0 {
		return Candidate{}, fmt.Errorf("%w: none of %d recovery points is in [%s, %s]", ErrNothingToPick, len(points), start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	sort.Slice(in, func(i, j int) bool {
		if !in[i].Time.Equal(in[j].Time) {
			return in[i].Time.Before(in[j].Time)
		}
		return in[i].ID < in[j].ID
	})
	if alg == LatestWithinWindow {
		return in[len(in)-1], nil
	}
	return in[int64n(rng, int64(len(in)))], nil
}

func int64n(rng *rand.Rand, n int64) int64 {
	if rng == nil {
		return rand.Int64N(n)
	}
	return rng.Int64N(n)
}

func validateName(field, name string, es *Errors) {
	switch {
	case name == "":
		add(es, field, "required")
	case !nameRE.MatchString(name):
		add(es, field, "%q: want 1 to 50 letters, digits or underscores", name)
	}
}

func validateRequestID(field, id string, es *Errors) {
	if id != "" && !requestIDRE.MatchString(id) {
		add(es, field, "%q: want 1 to 50 letters, digits, '-', '_' or '.'", id)
	}
}

// validateTag checks a plan tag against AWS's tag limits: keys 1-128
// characters, values up to 256, no aws: prefix on keys.
func validateTag(at, k, v string, es *Errors) {
	switch {
	case k == "" || utf8.RuneCountInString(k) > 128:
		add(es, join(at, k), "tag keys are 1 to 128 characters")
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		add(es, join(at, k), "tag keys starting with aws: are reserved for AWS")
	}
	if utf8.RuneCountInString(v) > 256 {
		add(es, join(at, k), "tag values are at most 256 characters")
	}
}

// loadZone loads an IANA time zone; "" is DefaultScheduleExpressionTimezone.
func loadZone(tz string) (*time.Location, error) {
	if tz == "" {
		tz = DefaultScheduleExpressionTimezone
	}
	// time.LoadLocation also takes "Local" (the machine's zone), which
	// would make a plan mean different things on different machines.
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name (for example Europe/Paris)", tz)
	}
	return loc, nil
}

func hours(v *int64, def int64) time.Duration {
	if v == nil {
		return time.Duration(def) * time.Hour
	}
	return time.Duration(*v) * time.Hour
}

func ptr[T any](v T) *T { return &v }

func contains[T comparable](l []T, v T) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// errOf returns es as an error, nil when empty.
func errOf(es Errors) error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func add(es *Errors, field, format string, a ...any) {
	*es = append(*es, &FieldError{Field: field, Problem: fmt.Sprintf(format, a...)})
}

func index(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }

// join joins two field paths as shared/plan's errors do.
func join(a, b string) string { return plan.JoinField(a, b) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
