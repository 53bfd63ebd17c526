package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// validConfig is a minimal valid configuration as JSON fields.
func validConfig() map[string]any {
	return map[string]any{
		"account":          "123456789012",
		"region":           "eu-west-1",
		"vault":            map[string]any{"bucketName": "my-vault"},
		"protectedBuckets": []any{"photos"},
		"restoreTargets":   []any{"photos-restored-*"},
	}
}

// set sets a dotted field of a JSON object (creating objects on the way).
func set(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func TestConfigDefaults(t *testing.T) {
	data, _ := json.Marshal(validConfig())
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate("."); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]any{
		"stackName": c.StackName, "assetDir": c.AssetDir, "logLevel": c.LogLevel, "logRetentionDays": c.LogRetentionDays,
		"concurrency": c.Concurrency, "lock.mode": c.Vault.Lock.Mode, "lock.minRetentionDays": c.Vault.Lock.MinRetentionDays,
		"journal.batchSize": c.Journal.BatchSize, "journal.maxBatchingWindowSeconds": c.Journal.MaxBatchingWindowSeconds,
		"journal.timeoutSeconds": c.Journal.TimeoutSeconds, "reconcile.schedule": c.Reconcile.Schedule, "protect.schedule": c.Protect.Schedule,
		"protect.onDeploy": c.Protect.OnDeploy, "restore.ephemeralStorageMB": c.Restore.EphemeralStorageMB,
		"vault.retentionDays": c.Vault.RetentionDays, "expire.schedule": c.Expire.Schedule, "expire.timezone": c.Expire.Timezone,
		"expire.memoryMB": c.Expire.MemoryMB, "vault.coldStorageClass": c.Vault.ColdStorageClass,
		"restore.maxConcurrency": c.Restore.MaxConcurrency, "restore.itemsPerBatch": c.Restore.ItemsPerBatch,
		"restore.toleratedFailurePercentage": *c.Restore.ToleratedFailurePercentage, "restore.timeoutHours": c.Restore.TimeoutHours,
		"reconcile.tagsEveryHours": c.Reconcile.TagsEveryHours, "expire.collectEveryHours": c.Expire.CollectEveryHours,
	} {
		want := map[string]any{
			"stackName": "BucketVault", "assetDir": "dist/lambda", "logLevel": "INFO", "logRetentionDays": 90, "concurrency": 16,
			"lock.mode": "GOVERNANCE", "lock.minRetentionDays": 35, "journal.batchSize": 500, "journal.maxBatchingWindowSeconds": 10,
			"journal.timeoutSeconds": 300, "reconcile.schedule": "rate(6 hours)", "protect.schedule": "rate(1 hour)",
			"protect.onDeploy": false, "restore.ephemeralStorageMB": 10240, "vault.retentionDays": 35,
			"expire.schedule": "rate(1 hour)", "expire.timezone": "UTC", "expire.memoryMB": 1024, "expire.collectEveryHours": 24,
			"vault.coldStorageClass": "GLACIER_IR",
			"restore.maxConcurrency": 100, "restore.itemsPerBatch": 1, "restore.toleratedFailurePercentage": 0, "restore.timeoutHours": 168,
			"reconcile.tagsEveryHours": 168,
		}[name]
		if got != want {
			t.Errorf("default %s = %v, want %v", name, got, want)
		}
	}
}

// The point-in-time window defaults to 35 days, or the lock's minimum
// retention when that is shorter: every version inside it stays locked.
func TestConfigRetentionDaysDefault(t *testing.T) {
	for minDays, want := range map[int]int{7: 7, 35: 35, 400: 35} {
		m := validConfig()
		set(m, "vault.lock.minRetentionDays", minDays)
		data, _ := json.Marshal(m)
		c, err := ParseConfig(data)
		if err == nil {
			err = c.Validate(".")
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Vault.RetentionDays != want {
			t.Errorf("minRetentionDays %d: retentionDays %d, want %d", minDays, c.Vault.RetentionDays, want)
		}
	}
}

// TestConfigErrorsNameTheField: bad configuration fails with a message
// that names the field.
func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "plan.txt")
	os.WriteFile(notJSON, []byte("rules: daily"), 0o644)
	cases := []struct {
		field string
		value any // nil deletes the field
	}{
		{"account", "12345"},
		{"region", "Europe"},
		{"stackName", "1stack"},
		{"vault.bucketName", "My_Vault"},
		{"vault.bucketName", nil},
		{"vault.bucketName", "192.168.1.1"},
		{"vault.kmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/vault"},
		{"vault.lock.mode", "STRICT"},
		{"reconcile.tagsEveryHours", -2},
		{"expire.collectEveryHours", -1},
		{"expire.collectEveryHours", 8761},
		{"reconcile.tagsEveryHours", 87601},
		{"vault.lock.minRetentionDays", -1},
		{"vault.lock.maxRetentionDays", 10},
		{"vault.lock.changeableForDays", 2},
		{"vault.lock.changeableFrom", "next week"},
		{"vault.lock.maxRetentionDays", 36501},
		{"vault.lock.minRetentionDays", 36501},
		{"vault.breakGlassRoleArn", "arn:aws:iam::123456789012:user/alice"},
		{"vault.breakGlassRoleArn", "arn:aws:iam::210987654321:role/break-glass"},
		{"vault.breakGlassRoleArn", "arn:aws:iam::123456789012:role/break-*"},
		{"vault.breakGlassRoleArn", "break-glass"},
		{"vault.deployRoleArns[0]", []any{"arn:aws:iam::123456789012:role/*"}},
		{"vault.deployRoleArns[0]", []any{"arn:aws:iam::210987654321:role/deployer"}},
		{"vault.deployRoleArns[1]", []any{"arn:aws:iam::123456789012:role/deployer", "arn:aws:iam::123456789012:role/deployer"}},
		{"vault.deployRoleArns[0]", []any{"arn:aws:iam::123456789012:role/break-glass"}},
		{"stackName", strings.Repeat("s", 48)},
		{"vault.retentionDays", 36},
		{"vault.coldStorageClass", "STANDARD_IA"},
		{"vault.coldStorageClass", "GLACIER_INSTANT_RETRIEVAL"},
		{"vault.coldStorageClass", "INTELLIGENT_TIERING"},
		{"vault.retentionDays", -3},
		{"protectedBuckets", []any{}},
		{"protectedBuckets[0]", []any{"my-vault"}},
		{"protectedBuckets[1]", []any{"photos", "photos"}},
		{"sourceKmsKeyArns[0]", []any{"key"}},
		{"restoreTargets", nil},
		{"restoreTargets[0]", []any{"photos-[0-9]"}},
		{"restoreTargets[0]", []any{"my-*"}},
		{"restoreTargetKmsKeyArns[0]", []any{"arn:aws:kms:eu-west-1:123456789012:key/"}},
		{"alarms.email", "ops at example"},
		{"alarms.topicArn", "arn:aws:sqs:eu-west-1:123456789012:q"},
		{"alarms.journalLagSeconds", 10},
		{"logLevel", "WARN"},
		{"logLevel", "LOUD"},
		{"logRetentionDays", 100},
		{"concurrency", 5000},
		{"journal.batchSize", 20000},
		{"journal.timeoutSeconds", 901},
		{"journal.maxConcurrency", 1},
		{"journal.memoryMB", 64},
		{"restore.ephemeralStorageMB", 100},
		{"restore.maxConcurrency", 10001},
		{"restore.maxConcurrency", -1},
		{"restore.itemsPerBatch", 101},
		{"restore.itemsPerBatch", -1},
		{"restore.toleratedFailurePercentage", 101},
		{"restore.toleratedFailurePercentage", -1},
		{"restore.timeoutHours", 8761},
		{"restore.timeoutHours", -1},
		{"reconcile.schedule", "every 6 hours"},
		{"protect.schedule", "rate(0 hours)"},
		{"reconcile.timezone", "Mars/Olympus"},
		{"expire.schedule", "daily"},
		{"expire.timezone", "Mars/Olympus"},
		{"expire.memoryMB", 64},
		{"expire.memoryMB", 10241},
		{"backupPlanFile", filepath.Join(dir, "missing.json")},
		{"backupPlanFile", notJSON},
		{"snapshot.maxConcurrency", 20000},
		{"snapshot.itemsPerBatch", 0 - 1},
		{"snapshot.toleratedFailurePercentage", 101},
		{"snapshot.memoryMB", 64},
		{"stackName", strings.Repeat("s", 72)},
		{"concurrency", "many"},
		{"vault.lockk", map[string]any{}},
	}
	for _, tc := range cases {
		m := validConfig()
		field := tc.field
		switch {
		case strings.HasSuffix(field, "]"):
			field = field[:strings.IndexByte(field, '[')]
			set(m, field, tc.value)
			// A deploy role must not be the break-glass role.
			set(m, "vault.breakGlassRoleArn", "arn:aws:iam::123456789012:role/break-glass")
		case tc.field == "vault.lock.changeableForDays":
			set(m, "vault.lock.changeableFrom", "2026-12-01")
			set(m, field, tc.value)
		case tc.field == "vault.lock.changeableFrom":
			set(m, "vault.lock.changeableForDays", 7)
			set(m, field, tc.value)
		case tc.field == "alarms.topicArn":
			set(m, field, tc.value)
		case tc.value == nil:
			parts := strings.Split(field, ".")
			target := m
			for _, p := range parts[:len(parts)-1] {
				target = target[p].(map[string]any)
			}
			delete(target, parts[len(parts)-1])
		default:
			set(m, field, tc.value)
		}
		data, _ := json.Marshal(m)
		c, err := ParseConfig(data)
		if err == nil {
			err = c.Validate(".")
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s = %v: error %v, want a ConfigError", tc.field, tc.value, err)
			continue
		}
		wantField := tc.field
		if wantField == "vault.lockk" {
			wantField = "lockk"
		}
		if ce.Field != wantField || !strings.Contains(err.Error(), wantField) {
			t.Errorf("%s = %v: error %q names %q", tc.field, tc.value, err, ce.Field)
		}
	}
}

func TestConfigFromContext(t *testing.T) {
	env := map[string]string{"CDK_DEFAULT_ACCOUNT": "210987654321", "CDK_DEFAULT_REGION": "ap-southeast-2"}
	getenv := func(k string) string { return env[k] }
	m := validConfig()
	delete(m, "account")
	delete(m, "region")
	// An object, as cdk.json's context gives it.
	c, err := LoadConfig(func(k string) any {
		if k == ContextConfig {
			return m
		}
		return nil
	}, getenv, ".")
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != "210987654321" || c.Region != "ap-southeast-2" {
		t.Errorf("account and region %s %s: want the CDK_DEFAULT_ values", c.Account, c.Region)
	}
	// A string, as -c bucketvault='{...}' gives it.
	data, _ := json.Marshal(validConfig())
	if _, err := LoadConfig(func(k string) any {
		if k == ContextConfig {
			return string(data)
		}
		return nil
	}, getenv, "."); err != nil {
		t.Error(err)
	}
	// A file, which replaces the inline configuration.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prod.json"), data, 0o644)
	c, err = LoadConfig(func(k string) any {
		switch k {
		case ContextConfigFile:
			return "prod.json"
		case ContextConfig:
			return "not even JSON"
		}
		return nil
	}, getenv, dir)
	if err != nil || c.Region != "eu-west-1" {
		t.Errorf("config file: %v %v", c, err)
	}
	// Nothing: the error says where configuration goes.
	if _, err := LoadConfig(func(string) any { return nil }, getenv, "."); err == nil || !strings.Contains(err.Error(), "cdk.json") {
		t.Errorf("no configuration: %v", err)
	}
	// No account anywhere.
	if _, err := LoadConfig(func(k string) any {
		if k == ContextConfig {
			return m
		}
		return nil
	}, func(string) string { return "" }, "."); err == nil || !strings.Contains(err.Error(), "account") {
		t.Errorf("no account: %v", err)
	}
}

// TestCDKJSONConfig: the configuration shipped in cdk.json is valid.
func TestCDKJSONConfig(t *testing.T) {
	var cdk struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	data, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cdk); err != nil {
		t.Fatal(err)
	}
	if cdk.App != "go run ./infra" {
		t.Errorf("cdk.json app %q", cdk.App)
	}
	if _, err := LoadConfig(func(k string) any { return cdk.Context[k] }, func(string) string { return "" }, ".."); err != nil {
		t.Error(err)
	}
}

func TestPatternMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"photos-*", "photos-restored", true}, {"photos-*", "photos", false}, {"a?c", "abc", true},
		{"a?c", "abbc", false}, {"*", "anything", true}, {"my.vault", "myxvault", false},
	} {
		if got := patternMatches(tc.pattern, tc.name); got != tc.want {
			t.Errorf("patternMatches(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

// TestBackupPlanErrors: a bad plan file fails synth with the file and the
// plan's own field named.
func TestBackupPlanErrors(t *testing.T) {
	dir := t.TempDir()
	rule := `{"RuleName": "daily", "TargetBackupVaultName": "my-vault", "ScheduleExpression": "cron(0 5 ? * * *)"%s}`
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"start window too short", `{"BackupPlanName": "p", "Rules": [` + fmt.Sprintf(rule, `, "StartWindowMinutes": 30`) + `]}`, "Rules[0].StartWindowMinutes"},
		{"unknown field", `{"BackupPlanName": "p", "Rules": [` + fmt.Sprintf(rule, `, "StartWindow": 60`) + `]}`, "Rules[0].StartWindow"},
		{"cold then delete too soon", `{"BackupPlanName": "p", "Rules": [` + fmt.Sprintf(rule, `, "Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 35}`) + `]}`, "Rules[0].Lifecycle.DeleteAfterDays"},
		{"selection without role", `{"BackupPlan": {"BackupPlanName": "p", "Rules": [` + fmt.Sprintf(rule, "") + `]}, "BackupSelections": [{"SelectionName": "s", "Resources": ["arn:aws:s3:::photos"]}]}`, "BackupSelections[0].IamRoleArn"},
		{"selections only", `{"SelectionName": "s", "IamRoleArn": "arn:aws:iam::123456789012:role/r", "Resources": ["*"]}`, "holds selections but no BackupPlan"},
		{"rule names that collide", `{"BackupPlanName": "p", "Rules": [` + fmt.Sprintf(rule, "") + `, {"RuleName": "Daily", "TargetBackupVaultName": "my-vault"}]}`, "Rules[1].RuleName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			m := validConfig()
			m["backupPlanFile"] = file
			data, _ := json.Marshal(m)
			c, err := ParseConfig(data)
			if err == nil {
				err = c.Validate(".")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "backupPlanFile" || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
				t.Errorf("error %v: want a backupPlanFile error naming %s and the file", err, tc.want)
			}
		})
	}
}

// TestBackupPlanLoaded: the plan and its selections are loaded for the
// stack.
func TestBackupPlanLoaded(t *testing.T) {
	c, err := loadTestConfig("testdata/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Plan == nil || len(c.Plan.Rules) != 3 || len(c.Selections) != 1 || c.Selections[0].SelectionName != "media" {
		t.Errorf("plan %+v, selections %+v", c.Plan, c.Selections)
	}
}

// TestConfigVaultLock: the vault lock's settings as AWS Backup Vault Lock
// takes them, and the roles the lock exempts, are accepted and kept.
func TestConfigVaultLock(t *testing.T) {
	m := validConfig()
	set(m, "vault.lock", map[string]any{"mode": "compliance", "minRetentionDays": 30, "maxRetentionDays": 36500, "changeableForDays": 3, "changeableFrom": "2027-02-27"})
	set(m, "vault.breakGlassRoleArn", "arn:aws:iam::123456789012:role/security/vault-break-glass")
	set(m, "vault.deployRoleArns", []any{"arn:aws:iam::123456789012:role/ci/deployer"})
	data, _ := json.Marshal(m)
	c, err := ParseConfig(data)
	if err == nil {
		err = c.Validate(".")
	}
	if err != nil {
		t.Fatal(err)
	}
	l := c.Vault.Lock
	if l.Mode != "COMPLIANCE" || l.MinRetentionDays != 30 || l.MaxRetentionDays != 36500 || c.Vault.RetentionDays != 30 {
		t.Errorf("lock %+v, retentionDays %d", l, c.Vault.RetentionDays)
	}
	// The grace time ends changeableForDays after changeableFrom (UTC
	// midnight): from then on the bucket policy denies lock changes.
	if got, want := l.LockedAfter(), time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("LockedAfter %v, want %v", got, want)
	}
	if (LockConfig{Mode: "GOVERNANCE", MinRetentionDays: 35}).LockedAfter() != (time.Time{}) {
		t.Error("a lock without a grace time is locked after a time")
	}
	if c.Vault.BreakGlassRoleARN != "arn:aws:iam::123456789012:role/security/vault-break-glass" || len(c.Vault.DeployRoleARNs) != 1 {
		t.Errorf("roles %q %q", c.Vault.BreakGlassRoleARN, c.Vault.DeployRoleARNs)
	}
}

// restoreTestingConfig is validConfig with restore testing: the daily
// plan of testdata with its two selections, as paths from the infra
// directory.
func restoreTestingConfig() map[string]any {
	m := validConfig()
	m["restoreTesting"] = map[string]any{"plans": []any{map[string]any{
		"plan":       "testdata/restore-testing-plan-daily.json",
		"selections": []any{"testdata/restore-testing-selection-tagged.json", "testdata/restore-testing-selection-photos.json"},
	}}}
	return m
}

// TestRestoreTestingConfig: restoreTesting's plans and selections are
// read and validated, relative to the configuration's directory, with the
// defaults: 4 tests at once, a look for a verdict every 5 minutes, and a
// timeout of restore.timeoutHours + the longest validation window + 1
// hour.
func TestRestoreTestingConfig(t *testing.T) {
	parse := func(t *testing.T, m map[string]any, baseDir string) (*Config, error) {
		t.Helper()
		data, _ := json.Marshal(m)
		c, err := ParseConfig(data)
		if err == nil {
			err = c.Validate(baseDir)
		}
		return c, err
	}
	c, err := parse(t, restoreTestingConfig(), ".")
	if err != nil {
		t.Fatal(err)
	}
	rt := c.RestoreTesting
	if rt.MaxConcurrency != 4 || rt.AwaitEverySeconds != 300 || rt.TimeoutHours != 168+24+1 {
		t.Errorf("defaults: %+v; want 4, 300 and 193 hours", rt)
	}
	p := rt.Plans[0]
	if p.Loaded == nil || p.Loaded.RestoreTestingPlanName != "s3_daily" || len(p.LoadedSelections) != 2 ||
		p.LoadedSelections[0].RestoreTestingSelectionName != "s3_tagged" || p.LoadedSelections[1].RestoreTestingSelectionName != "s3_photos" {
		t.Errorf("plan %+v", p)
	}
	sch := p.Scheduled("my-vault")
	if sch.Vault != "my-vault" || sch.PlanName != "s3_daily" || sch.RTOSeconds != 0 || sch.ValidationFunction != "" || sch.RecoveryPointSelection != p.Loaded.RecoveryPointSelection {
		t.Errorf("scheduled %+v", sch)
	}
	if got := restoreTargets(c); !slices.Equal(got, []string{"photos-restored-*", "restore-test-*"}) {
		t.Errorf("restore targets %v", got)
	}
	// From another directory, as cdk runs from the repository root, with
	// an explicit timeout, an RTO and a validation function.
	m := restoreTestingConfig()
	rtm := m["restoreTesting"].(map[string]any)
	plan := rtm["plans"].([]any)[0].(map[string]any)
	plan["plan"], plan["selections"] = "infra/testdata/restore-testing-plan-daily.json", []any{"infra/testdata/restore-testing-selection-photos.json"}
	plan["rtoMinutes"], plan["validationFunctionArn"] = 90, "arn:aws:lambda:eu-west-1:123456789012:function:check:prod"
	rtm["timeoutHours"], rtm["maxConcurrency"] = 30, 40
	if c, err = parse(t, m, ".."); err != nil {
		t.Fatal(err)
	}
	if c.RestoreTesting.TimeoutHours != 30 || c.RestoreTesting.Plans[0].Scheduled("v").RTOSeconds != 5400 {
		t.Errorf("%+v", c.RestoreTesting)
	}
	// Without restoreTesting: no restore test buckets among the targets.
	c, err = parse(t, validConfig(), ".")
	if err != nil || c.RestoreTesting != nil || slices.Contains(restoreTargets(c), "restore-test-*") {
		t.Errorf("no restoreTesting: %+v, %v", c.RestoreTesting, err)
	}
	// The default timeout is at most a year.
	m = restoreTestingConfig()
	set(m, "restore.timeoutHours", 8760)
	if c, err = parse(t, m, "."); err != nil || c.RestoreTesting.TimeoutHours != 8760 {
		t.Errorf("timeout %v, %v: want a year", c.RestoreTesting.TimeoutHours, err)
	}
}

// TestRestoreTestingConfigErrors: each bad restoreTesting names its field
// (and the file's own field, where the file is wrong).
func TestRestoreTestingConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	const sel = `{"RestoreTestingSelectionName": "%s", "ProtectedResourceType": "S3", "IamRoleArn": "arn:aws:iam::123456789012:role/r", "ProtectedResourceArns": ["*"]%s}`
	badPlan := write("bad-plan.json", `{"RestoreTestingPlanName": "bad-name", "ScheduleExpression": "cron(0 5 ? * * *)", "RecoveryPointSelection": {"Algorithm": "LATEST_WITHIN_WINDOW", "RecoveryPointTypes": ["SNAPSHOT"], "IncludeVaults": ["*"]}}`)
	unknownKey := write("unknown-key.json", `{"RestoreTestingPlanName": "p", "ScheduleExpression": "cron(0 5 ? * * *)", "StartWindow": 8, "RecoveryPointSelection": {"Algorithm": "LATEST_WITHIN_WINDOW", "RecoveryPointTypes": ["SNAPSHOT"], "IncludeVaults": ["*"]}}`)
	otherPlan := write("other-plan.json", `{"RestoreTestingPlanName": "other", "RestoreTestingSelection": `+fmt.Sprintf(sel, "s", "")+`}`)
	badSel := write("bad-selection.json", fmt.Sprintf(sel, "s", `, "ValidationWindowHours": 200`))
	sameName := write("same-name.json", fmt.Sprintf(sel, "s3_tagged", ""))
	longWindow := write("long-window.json", fmt.Sprintf(sel, "long", `, "ValidationWindowHours": 168`))
	collides := write("collides.json", strings.Replace(readFile(t, "testdata/restore-testing-plan-daily.json"), `"s3_daily"`, `"s3Daily"`, 1))
	daily := "testdata/restore-testing-plan-daily.json"
	tagged := "testdata/restore-testing-selection-tagged.json"
	cases := []struct {
		name, field, want string
		edit              func(m map[string]any, rt map[string]any, p map[string]any)
	}{
		{"no plans", "restoreTesting.plans", "at least one", func(_, rt, _ map[string]any) { rt["plans"] = []any{} }},
		{"missing file", "restoreTesting.plans[0].plan", "missing.json", func(_, _, p map[string]any) { p["plan"] = filepath.Join(dir, "missing.json") }},
		{"no file", "restoreTesting.plans[0].plan", "is empty", func(_, _, p map[string]any) { delete(p, "plan") }},
		{"invalid plan", "restoreTesting.plans[0].plan", "RestoreTestingPlanName", func(_, _, p map[string]any) { p["plan"] = badPlan }},
		{"unknown key in the plan", "restoreTesting.plans[0].plan", "StartWindow", func(_, _, p map[string]any) { p["plan"] = unknownKey }},
		{"a selection as the plan", "restoreTesting.plans[0].plan", "not a restore testing plan", func(_, _, p map[string]any) { p["plan"] = tagged }},
		{"a plan as a selection", "restoreTesting.plans[0].selections[1]", "not a restore testing selection", func(_, _, p map[string]any) { p["selections"] = []any{tagged, daily} }},
		{"no selections", "restoreTesting.plans[0].selections", "at least one", func(_, _, p map[string]any) { p["selections"] = []any{} }},
		{"invalid selection", "restoreTesting.plans[0].selections[0]", "ValidationWindowHours", func(_, _, p map[string]any) { p["selections"] = []any{badSel} }},
		{"another plan's selection", "restoreTesting.plans[0].selections[0]", `"other"`, func(_, _, p map[string]any) { p["selections"] = []any{otherPlan} }},
		{"selection named twice", "restoreTesting.plans[0].selections[1]", "s3_tagged", func(_, _, p map[string]any) { p["selections"] = []any{tagged, sameName} }},
		{"plan named twice", "restoreTesting.plans[1].plan", "s3_daily", func(_, rt, p map[string]any) { rt["plans"] = []any{p, p} }},
		{"plans with one resource name", "restoreTesting.plans[1].plan", "S3Daily", func(_, rt, p map[string]any) {
			rt["plans"] = []any{p, map[string]any{"plan": collides, "selections": []any{filepath.Join("testdata", "restore-testing-selection-photos.json")}}}
		}},
		{"negative RTO", "restoreTesting.plans[0].rtoMinutes", "-5", func(_, _, p map[string]any) { p["rtoMinutes"] = -5 }},
		{"function not an ARN", "restoreTesting.plans[0].validationFunctionArn", "validate", func(_, _, p map[string]any) { p["validationFunctionArn"] = "validate" }},
		{"function of another service", "restoreTesting.plans[0].validationFunctionArn", "sns", func(_, _, p map[string]any) {
			p["validationFunctionArn"] = "arn:aws:sns:us-east-1:123456789012:topic"
		}},
		{"concurrency", "restoreTesting.maxConcurrency", "41", func(_, rt, _ map[string]any) { rt["maxConcurrency"] = 41 }},
		{"negative concurrency", "restoreTesting.maxConcurrency", "-1", func(_, rt, _ map[string]any) { rt["maxConcurrency"] = -1 }},
		{"await too often", "restoreTesting.awaitEverySeconds", "5", func(_, rt, _ map[string]any) { rt["awaitEverySeconds"] = 5 }},
		{"await every two days", "restoreTesting.awaitEverySeconds", "172800", func(_, rt, _ map[string]any) { rt["awaitEverySeconds"] = 172800 }},
		{"polls overflow the history", "restoreTesting.awaitEverySeconds", "at least 219", func(_, rt, p map[string]any) {
			rt["awaitEverySeconds"] = 60
			p["selections"], p["validationFunctionArn"] = []any{longWindow}, "arn:aws:lambda:us-east-1:123456789012:function:v"
		}},
		{"timeout", "restoreTesting.timeoutHours", "8761", func(_, rt, _ map[string]any) { rt["timeoutHours"] = 8761 }},
		{"negative timeout", "restoreTesting.timeoutHours", "-2", func(_, rt, _ map[string]any) { rt["timeoutHours"] = -2 }},
		{"unknown key", "plan_file", "unknown field", func(_, _, p map[string]any) { p["plan_file"] = daily }},
		{"unknown key of restoreTesting", "maxConcurency", "unknown field", func(_, rt, _ map[string]any) { rt["maxConcurency"] = 3 }},
		{"a protected bucket named like a restore test's", "restoreTesting", "restore-test-", func(m, _, _ map[string]any) {
			m["protectedBuckets"] = []any{"photos", "restore-test-photos"}
		}},
		{"the vault named like a restore test's", "restoreTesting", "restore-test-", func(m, _, _ map[string]any) { set(m, "vault.bucketName", "restore-test-vault") }},
		{"a restore target the sweeper would delete", "restoreTargets[1]", "sweeper", func(m, _, _ map[string]any) {
			m["restoreTargets"] = []any{"photos-restored-*", "restore-test-mine-*"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := restoreTestingConfig()
			rt := m["restoreTesting"].(map[string]any)
			tc.edit(m, rt, rt["plans"].([]any)[0].(map[string]any))
			data, _ := json.Marshal(m)
			c, err := ParseConfig(data)
			if err == nil {
				err = c.Validate(".")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want a ConfigError of %s saying %q", err, tc.field, tc.want)
			}
		})
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The scheduled reconcile's request carries how often it reads tags, and
// none with -1.
func TestReconcileInput(t *testing.T) {
	for hours, want := range map[int]string{168: `{"tagsEveryHours":168}`, 24: `{"tagsEveryHours":24}`, -1: `{}`} {
		if got := reconcileInput(ReconcileConfig{TagsEveryHours: hours}); got != want {
			t.Errorf("tagsEveryHours %d: input %s, want %s", hours, got, want)
		}
	}
}
