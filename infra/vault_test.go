package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/vault"
	"github.com/google/go-cmp/cmp"
)

// Principals of the test stacks (testdata/config*.json).
const (
	cfnExecRole = "arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-us-east-1"
	breakGlass  = "arn:aws:iam::123456789012:role/vault-break-glass"
	expireRole  = "arn:aws:iam::123456789012:role/BucketVault-expire-us-east-1"
	adminRole   = "arn:aws:iam::123456789012:role/Admin"
	rootUser    = "arn:aws:iam::123456789012:root"
	noPrincipal = "" // a request of an AWS service: no aws:PrincipalArn
)

// request is what a Deny statement is evaluated against: the principal's
// IAM ARN (aws:PrincipalArn), the action, the resource's ARN, the time,
// and s3:object-lock-remaining-retention-days (-1: not in the request).
// Requests use TLS.
type request struct {
	principal, action, resource string
	at                          time.Time
	retentionDays               int
}

// deniedBy returns the Sid of the first Deny statement of a policy
// document that applies to r ("-" for one without a Sid), or "". It knows
// the condition operators and keys the stack's policies use and fails the
// test on any other, so a new condition cannot be evaluated wrongly in
// silence. tokens maps rendered template values (GetAtt:VaultBucket.Arn)
// to ARNs.
func deniedBy(t *testing.T, doc any, r request, tokens map[string]string) string {
	t.Helper()
	for _, raw := range list0(doc.(map[string]any)["Statement"]) {
		s := raw.(map[string]any)
		if s["Effect"] != "Deny" {
			continue
		}
		if p := render(s["Principal"]); p != `{"AWS":"*"}` && p != "*" {
			t.Fatalf("deny statement %v names principals %s: the evaluator knows only every principal", s["Sid"], p)
		}
		if !slices.ContainsFunc(list(s["Action"]), func(a string) bool { return patternMatches(a, r.action) }) {
			continue
		}
		matches := func(res string) bool {
			for tok, arn := range tokens {
				res = strings.ReplaceAll(res, tok, arn)
			}
			return patternMatches(res, r.resource)
		}
		if _, not := s["NotResource"]; not {
			if _, both := s["Resource"]; both {
				t.Fatalf("deny statement %v has Resource and NotResource", s["Sid"])
			}
			if slices.ContainsFunc(list(s["NotResource"]), matches) {
				continue
			}
		} else if !slices.ContainsFunc(list(s["Resource"]), matches) {
			continue
		}
		if conditionsHold(t, s["Condition"], r) {
			if sid, ok := s["Sid"].(string); ok {
				return sid
			}
			return "-"
		}
	}
	return ""
}

func conditionsHold(t *testing.T, cond any, r request) bool {
	t.Helper()
	m, _ := cond.(map[string]any)
	for op, kv := range m {
		for key, want := range kv.(map[string]any) {
			values := list(want)
			var holds bool
			switch op + " " + key {
			case "Bool aws:SecureTransport":
				holds = slices.Contains(values, "true")
			case "ArnNotLike aws:PrincipalArn":
				// A negated operator holds when the key is absent.
				holds = !slices.ContainsFunc(values, func(p string) bool { return r.principal != "" && patternMatches(p, r.principal) })
			case "DateGreaterThan aws:CurrentTime":
				at, err := time.Parse(time.RFC3339, values[0])
				if err != nil {
					t.Fatal(err)
				}
				holds = r.at.After(at)
			case "NumericLessThan s3:object-lock-remaining-retention-days", "NumericGreaterThan s3:object-lock-remaining-retention-days":
				n, _ := strconv.Atoi(values[0])
				holds = r.retentionDays >= 0 && ((op == "NumericLessThan" && r.retentionDays < n) || (op == "NumericGreaterThan" && r.retentionDays > n))
			default:
				t.Fatalf("the evaluator does not know the condition %s %s", op, key)
			}
			if !holds {
				return false
			}
		}
	}
	return true
}

// exemptions are the principals a deny statement exempts (ArnNotLike
// aws:PrincipalArn), by Sid; a statement without that condition exempts
// nobody.
func exemptions(doc any) map[string][]string {
	out := map[string][]string{}
	for _, raw := range list0(doc.(map[string]any)["Statement"]) {
		s := raw.(map[string]any)
		if s["Effect"] != "Deny" {
			continue
		}
		sid, _ := s["Sid"].(string)
		c, _ := s["Condition"].(map[string]any)
		a, _ := c["ArnNotLike"].(map[string]any)
		out[sid] = list(a["aws:PrincipalArn"])
	}
	return out
}

func TestVaultBucketPolicy(t *testing.T) {
	s := synth(t).main
	got := statements(s.props(t, "VaultBucketPolicy")["PolicyDocument"])
	bucket, objects, scratch := vaultARN, vaultARN+"/*", vaultARN+"/scratch/*"
	except := func(arns ...string) string {
		return `{"ArnNotLike":{"aws:PrincipalArn":["` + strings.Join(arns, `","`) + `"]}}`
	}
	want := []stmt{
		{Effect: "Deny", Actions: []string{"s3:*"}, Resources: []string{"GetAtt:VaultBucket.Arn", "GetAtt:VaultBucket.Arn/*"}, Condition: `{"Bool":{"aws:SecureTransport":"false"}}`},
		// Only the expire function's role may delete.
		{Sid: "DenyDeletes", Effect: "Deny", Actions: []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}, Resources: []string{objects}, Condition: except(expireRole)},
		// Only the expire function's role may tag a version (the cold
		// tier) or remove tags.
		{Sid: "DenyTierChanges", Effect: "Deny", Actions: []string{"s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", "s3:PutObjectVersionTagging"},
			Resources: []string{objects}, Condition: except(expireRole)},
		// Retention below the minimum anywhere but scratch/ (scratch files
		// carry their own, of a day); there, at most a week.
		{Sid: "DenyRetentionBelowMinimum", Effect: "Deny", Actions: []string{"s3:PutObjectRetention"}, NotResources: []string{scratch},
			Condition: `{"NumericLessThan":{"s3:object-lock-remaining-retention-days":"35"}}`},
		{Sid: "DenyScratchRetentionAboveAWeek", Effect: "Deny", Actions: []string{"s3:PutObjectRetention"}, Resources: []string{scratch},
			Condition: `{"NumericGreaterThan":{"s3:object-lock-remaining-retention-days":"7"}}`},
		{Sid: "DenyRetentionAboveMaximum", Effect: "Deny", Actions: []string{"s3:PutObjectRetention"}, Resources: []string{objects},
			Condition: `{"NumericGreaterThan":{"s3:object-lock-remaining-retention-days":"400"}}`},
		{Sid: "DenyLockChangesAfterGraceTime", Effect: "Deny", Actions: []string{"s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration"},
			Resources: []string{bucket, objects}, Condition: `{"DateGreaterThan":{"aws:CurrentTime":"2026-12-08T00:00:00Z"}}`},
		{Sid: "DenyLockRemoval", Effect: "Deny", Actions: []string{"s3:BypassGovernanceRetention", "s3:DeleteBucket", "s3:DeleteBucketPolicy"},
			Resources: []string{bucket, objects}, Condition: except(breakGlass)},
		{Sid: "DenyLockChanges", Effect: "Deny",
			Actions:   []string{"s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"},
			Resources: []string{bucket}, Condition: except(cfnExecRole, breakGlass)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("vault bucket policy (-want +got):\n%s", diff)
	}
	for name, st := range synth(t).stacks() {
		for _, raw := range list0(st.props(t, "VaultBucketPolicy")["PolicyDocument"].(map[string]any)["Statement"]) {
			if p := render(raw.(map[string]any)["Principal"]); p != `{"AWS":"*"}` {
				t.Errorf("%s: bucket policy statement principal %s, want every principal", name, p)
			}
		}
		// The policy outlives the stack, and a replaced policy resource is
		// not deleted (DeleteBucketPolicy is denied to the deploy roles).
		r := st.resource(t, "VaultBucketPolicy")
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("%s: VaultBucketPolicy DeletionPolicy %v, UpdateReplacePolicy %v: want Retain", name, r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
	}
}

// TestVaultLockExemptions: every stack's bucket policy (and key policy,
// where the stack creates the key) exempts exactly the principals its
// configuration names: the expire role from the delete deny, the
// break-glass role (or nobody) from everything else, the deploy roles
// (configured, or the CDK bootstrap's CloudFormation execution role) from
// what a stack update does.
func TestVaultLockExemptions(t *testing.T) {
	s := synth(t)
	for _, tc := range []struct {
		name       string
		st         *stackUnderTest
		bucket     map[string][]string
		key        map[string][]string // nil: the key is imported
		deployRole []string
	}{
		{"main", s.main, map[string][]string{
			"": nil, "DenyDeletes": {expireRole}, "DenyTierChanges": {expireRole}, "DenyRetentionBelowMinimum": nil, "DenyScratchRetentionAboveAWeek": nil, "DenyRetentionAboveMaximum": nil,
			"DenyLockChangesAfterGraceTime": nil, "DenyLockRemoval": {breakGlass}, "DenyLockChanges": {cfnExecRole, breakGlass},
		}, map[string][]string{"DenyKeyDisableAndDeletion": {breakGlass}, "DenyKeyPolicyChanges": {cfnExecRole, breakGlass}}, []string{cfnExecRole}},
		// No break-glass role: nobody is exempt.
		{"variant", s.variant, map[string][]string{
			"": nil, "DenyDeletes": {"arn:aws:iam::123456789012:role/BucketVaultVariant-expire-us-east-1"},
			"DenyTierChanges": {"arn:aws:iam::123456789012:role/BucketVaultVariant-expire-us-east-1"}, "DenyRetentionBelowMinimum": nil, "DenyScratchRetentionAboveAWeek": nil,
			"DenyLockRemoval": nil, "DenyLockChanges": {cfnExecRole},
		}, nil, []string{cfnExecRole}},
		// Deploy roles configured: they replace the bootstrap's.
		{"noPlan", s.noPlan, map[string][]string{
			"": nil, "DenyDeletes": {"arn:aws:iam::123456789012:role/BucketVaultNoPlan-expire-us-east-1"},
			"DenyTierChanges": {"arn:aws:iam::123456789012:role/BucketVaultNoPlan-expire-us-east-1"}, "DenyRetentionBelowMinimum": nil, "DenyScratchRetentionAboveAWeek": nil,
			"DenyLockRemoval": nil, "DenyLockChanges": {"arn:aws:iam::123456789012:role/ci/deployer", "arn:aws:iam::123456789012:role/ci/deployer-next"},
		}, map[string][]string{
			"DenyKeyDisableAndDeletion": nil,
			"DenyKeyPolicyChanges":      {"arn:aws:iam::123456789012:role/ci/deployer", "arn:aws:iam::123456789012:role/ci/deployer-next"},
		}, []string{"arn:aws:iam::123456789012:role/ci/deployer", "arn:aws:iam::123456789012:role/ci/deployer-next"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.bucket, exemptions(tc.st.props(t, "VaultBucketPolicy")["PolicyDocument"])); diff != "" {
				t.Errorf("bucket policy exemptions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.deployRole, tc.st.stack.Vault.DeployRoleARNs); diff != "" {
				t.Errorf("deploy roles (-want +got):\n%s", diff)
			}
			keys := tc.st.ofType("AWS::KMS::Key")
			if tc.key == nil {
				if len(keys) != 0 {
					t.Fatalf("keys %v: the configured key is imported, its policy is not the stack's", keys)
				}
				return
			}
			got := exemptions(tc.st.props(t, "VaultKey")["KeyPolicy"])
			if diff := cmp.Diff(tc.key, got); diff != "" {
				t.Errorf("key policy exemptions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVaultLockDecisions evaluates the main stack's bucket and key
// policies: who the vault lock refuses what.
func TestVaultLockDecisions(t *testing.T) {
	s := synth(t).main
	bucketPolicy := s.props(t, "VaultBucketPolicy")["PolicyDocument"]
	keyPolicy := s.props(t, "VaultKey")["KeyPolicy"]
	tokens := map[string]string{"GetAtt:VaultBucket.Arn": vaultARN}
	key := "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	object := vaultARN + "/data/ab/cd"
	before := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // inside the lock's grace time
	after := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		principal, action, resource string
		at                          time.Time
		want                        string // the Sid that denies, "" for none
	}{
		// Deletes: the expire role only.
		{expireRole, "s3:DeleteObjectVersion", object, before, ""},
		{expireRole, "s3:DeleteObject", object, before, ""},
		{adminRole, "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		{breakGlass, "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		{cfnExecRole, "s3:DeleteObject", object, before, "DenyDeletes"},
		{rootUser, "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		{"arn:aws:iam::123456789012:role/BucketVault-expire-eu-west-1", "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		{"arn:aws:iam::123456789012:role/BucketVault-expire-us-east-1-x", "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		{noPrincipal, "s3:DeleteObjectVersion", object, before, "DenyDeletes"},
		// Moving data to the cold tier (tagging a version) or out of it
		// (removing tags): the expire role only. Tagging the current
		// version (no version id) stays: a snapshot's CopyObject with the
		// source's tags needs s3:PutObjectTagging.
		{expireRole, "s3:PutObjectVersionTagging", object, before, ""},
		{adminRole, "s3:PutObjectVersionTagging", object, before, "DenyTierChanges"},
		{breakGlass, "s3:PutObjectVersionTagging", object, after, "DenyTierChanges"},
		{rootUser, "s3:DeleteObjectTagging", object, before, "DenyTierChanges"},
		{cfnExecRole, "s3:DeleteObjectVersionTagging", object, before, "DenyTierChanges"},
		{noPrincipal, "s3:PutObjectVersionTagging", object, before, "DenyTierChanges"},
		{adminRole, "s3:PutObjectTagging", object, before, ""},
		// Removing the lock: the break-glass role only.
		{adminRole, "s3:DeleteBucketPolicy", vaultARN, before, "DenyLockRemoval"},
		{cfnExecRole, "s3:DeleteBucketPolicy", vaultARN, before, "DenyLockRemoval"},
		{rootUser, "s3:DeleteBucketPolicy", vaultARN, before, "DenyLockRemoval"}, // S3 lets the root user anyway (docs/deploy.md)
		{breakGlass, "s3:DeleteBucketPolicy", vaultARN, before, ""},
		{cfnExecRole, "s3:DeleteBucket", vaultARN, before, "DenyLockRemoval"},
		{breakGlass, "s3:DeleteBucket", vaultARN, before, ""},
		{adminRole, "s3:BypassGovernanceRetention", object, before, "DenyLockRemoval"},
		{expireRole, "s3:BypassGovernanceRetention", object, before, "DenyLockRemoval"},
		{breakGlass, "s3:BypassGovernanceRetention", object, before, ""},
		// After the grace time, nobody bypasses or changes the lock.
		{breakGlass, "s3:BypassGovernanceRetention", object, after, "DenyLockChangesAfterGraceTime"},
		{breakGlass, "s3:PutBucketObjectLockConfiguration", vaultARN, after, "DenyLockChangesAfterGraceTime"},
		{cfnExecRole, "s3:PutBucketObjectLockConfiguration", vaultARN, after, "DenyLockChangesAfterGraceTime"},
		// What a stack update does: the deploy role and the break-glass role.
		{cfnExecRole, "s3:PutBucketPolicy", vaultARN, after, ""},
		{cfnExecRole, "s3:PutLifecycleConfiguration", vaultARN, after, ""},
		{cfnExecRole, "s3:PutBucketVersioning", vaultARN, after, ""},
		{cfnExecRole, "s3:PutBucketObjectLockConfiguration", vaultARN, before, ""},
		{breakGlass, "s3:PutBucketPolicy", vaultARN, before, ""},
		{adminRole, "s3:PutBucketPolicy", vaultARN, before, "DenyLockChanges"},
		{adminRole, "s3:PutLifecycleConfiguration", vaultARN, before, "DenyLockChanges"},
		{adminRole, "s3:PutBucketVersioning", vaultARN, before, "DenyLockChanges"},
		{adminRole, "s3:PutBucketObjectLockConfiguration", vaultARN, before, "DenyLockChanges"},
		{rootUser, "s3:PutLifecycleConfiguration", vaultARN, before, "DenyLockChanges"},
		{expireRole, "s3:PutLifecycleConfiguration", vaultARN, before, "DenyLockChanges"},
		// The functions' own work is not in the way.
		{adminRole, "s3:PutObject", object, after, ""},
		{adminRole, "s3:GetObjectVersion", object, after, ""},
		{adminRole, "s3:PutBucketNotification", vaultARN, after, ""},
	} {
		r := request{principal: tc.principal, action: tc.action, resource: tc.resource, at: tc.at, retentionDays: -1}
		if got := deniedBy(t, bucketPolicy, r, tokens); got != tc.want {
			t.Errorf("bucket policy: %s %s on %s at %s: denied by %q, want %q", tc.principal, tc.action, tc.resource, tc.at.Format(time.DateOnly), got, tc.want)
		}
	}
	// Explicit retention stays within [min, max] for everyone, but
	// scratch files' (their own, of a day), which stays within a week.
	scratch := vaultARN + "/scratch/compact/photos.json"
	for _, tc := range []struct {
		resource string
		days     int
		want     string
	}{
		{object, 1, "DenyRetentionBelowMinimum"},
		{object, 34, "DenyRetentionBelowMinimum"},
		{object, 35, ""},
		{object, 400, ""},
		{object, 401, "DenyRetentionAboveMaximum"},
		{scratch, 1, ""},
		{scratch, 7, ""},
		{scratch, 8, "DenyScratchRetentionAboveAWeek"},
		{scratch, 35, "DenyScratchRetentionAboveAWeek"},
		{scratch, 401, "DenyScratchRetentionAboveAWeek"},
	} {
		r := request{principal: breakGlass, action: "s3:PutObjectRetention", resource: tc.resource, at: before, retentionDays: tc.days}
		if got := deniedBy(t, bucketPolicy, r, tokens); got != tc.want {
			t.Errorf("retention of %d days on %s: denied by %q, want %q", tc.days, tc.resource, got, tc.want)
		}
	}
	for _, tc := range []struct {
		principal, action string
		want              string
	}{
		{adminRole, "kms:DisableKey", "DenyKeyDisableAndDeletion"},
		{rootUser, "kms:ScheduleKeyDeletion", "DenyKeyDisableAndDeletion"},
		{cfnExecRole, "kms:ScheduleKeyDeletion", "DenyKeyDisableAndDeletion"},
		{breakGlass, "kms:DisableKey", ""},
		{breakGlass, "kms:ScheduleKeyDeletion", ""},
		// CloudFormation creates the key and updates its policy as the
		// deploy role: KMS refuses a key policy that would stop the caller
		// from putting the next one, so the deploy role must stay exempt.
		{cfnExecRole, "kms:PutKeyPolicy", ""},
		{breakGlass, "kms:PutKeyPolicy", ""},
		{adminRole, "kms:PutKeyPolicy", "DenyKeyPolicyChanges"},
		{rootUser, "kms:PutKeyPolicy", "DenyKeyPolicyChanges"},
		// Using and administering the key otherwise is left to IAM.
		{adminRole, "kms:Decrypt", ""},
		{adminRole, "kms:CancelKeyDeletion", ""},
		{cfnExecRole, "kms:EnableKeyRotation", ""},
		{cfnExecRole, "kms:DeleteAlias", ""},
	} {
		r := request{principal: tc.principal, action: tc.action, resource: key, at: before, retentionDays: -1}
		if got := deniedBy(t, keyPolicy, r, nil); got != tc.want {
			t.Errorf("key policy: %s %s: denied by %q, want %q", tc.principal, tc.action, got, tc.want)
		}
	}
	// The account keeps its administration of the key through IAM (CDK's
	// default statement).
	if st := statements(keyPolicy)[0]; st.Effect != "Allow" || !slices.Equal(st.Actions, []string{"kms:*"}) || render(list0(keyPolicy.(map[string]any)["Statement"])[0].(map[string]any)["Principal"]) != `{"AWS":"`+rootUser+`"}` {
		t.Errorf("key policy's first statement %+v: want the account's kms:*", st)
	}
}

// TestVaultTierChangesDenied: in every stack, the bucket policy lets only
// that stack's expire role tag a vault object's version (which moves it
// to the cold tier) or remove an object's tags (which would keep it from
// moving, or bring it back), on any key; tagging the current version
// stays allowed (a snapshot's CopyObject with the source's tags).
func TestVaultTierChangesDenied(t *testing.T) {
	for name, st := range synth(t).stacks() {
		c := st.config
		bucket := "arn:aws:s3:::" + c.Vault.BucketName
		policy := st.props(t, "VaultBucketPolicy")["PolicyDocument"]
		tokens := map[string]string{"GetAtt:VaultBucket.Arn": bucket}
		expire := fmt.Sprintf("arn:aws:iam::%s:role/%s", c.Account, ExpireRoleName(c.StackName, c.Region))
		others := []string{adminRole, breakGlass, cfnExecRole, rootUser, noPrincipal, expireRole + "-x",
			fmt.Sprintf("arn:aws:iam::%s:role/%s-SnapshotRole", c.Account, c.StackName)}
		for _, key := range []string{"data/ab/cd", "snapshots/photos/rp-1.json", "bucketvault.json"} {
			for _, action := range []string{"s3:PutObjectVersionTagging", "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", "s3:PutObjectTagging"} {
				for _, p := range append(others, expire) {
					want := "DenyTierChanges"
					if p == expire || action == "s3:PutObjectTagging" {
						want = ""
					}
					r := request{principal: p, action: action, resource: bucket + "/" + key, at: time.Now(), retentionDays: -1}
					if got := deniedBy(t, policy, r, tokens); got != want {
						t.Errorf("%s: %q %s on %s: denied by %q, want %q", name, p, action, key, got, want)
					}
				}
			}
		}
	}
}

// TestVaultRetentionDecisions: in every stack, for every principal and
// every kind of vault key, the bucket policy refuses explicit retention
// below the lock's minimum outside scratch/ (an area the vault adds
// later included) and above its maximum anywhere; under scratch/ it
// allows the scratch files' own retention of a day (vault.ScratchRetention)
// and refuses more than a week. And the roles that write scratch files
// may set that retention on them: their policies allow it and the vault
// lock does not refuse it.
func TestVaultRetentionDecisions(t *testing.T) {
	for name, st := range synth(t).stacks() {
		c := st.config
		lock := c.Vault.Lock
		bucket := "arn:aws:s3:::" + c.Vault.BucketName
		policy := st.props(t, "VaultBucketPolicy")["PolicyDocument"]
		tokens := map[string]string{"GetAtt:VaultBucket.Arn": bucket}
		expire := fmt.Sprintf("arn:aws:iam::%s:role/%s", c.Account, ExpireRoleName(c.StackName, c.Region))
		principals := []string{expire, adminRole, breakGlass, cfnExecRole, rootUser, noPrincipal}
		days := []int{0, 1, 7, 8, lock.MinRetentionDays - 1, lock.MinRetentionDays, lock.MinRetentionDays + 1}
		if m := lock.MaxRetentionDays; m > 0 {
			days = append(days, m, m+1)
		}
		for _, key := range append(slices.Clone(vaultKinds), "future/area.json") {
			isScratch := strings.HasPrefix(key, "scratch/")
			for _, d := range days {
				var want string
				switch {
				case isScratch && d > scratchMaxRetentionDays:
					want = "DenyScratchRetentionAboveAWeek"
				case !isScratch && d < lock.MinRetentionDays:
					want = "DenyRetentionBelowMinimum"
				case lock.MaxRetentionDays > 0 && d > lock.MaxRetentionDays:
					want = "DenyRetentionAboveMaximum"
				}
				for _, p := range principals {
					r := request{principal: p, action: "s3:PutObjectRetention", resource: bucket + "/" + key, at: time.Now(), retentionDays: d}
					if got := deniedBy(t, policy, r, tokens); got != want {
						t.Errorf("%s: %q retention of %d days on %s: denied by %q, want %q", name, p, d, key, got, want)
					}
				}
			}
		}
		// The scratch writers set the day's retention on what they write.
		roles := roleStatements(t, st)
		for role, key := range map[string]string{
			"ReconcileRole": "scratch/compact/photos.json",
			"ExpireRole":    "scratch/compact/photos.json",
			"SnapshotRole":  "scratch/jobs/backup-1/fragments/000001.jsonl.zst",
		} {
			arn := bucket + "/" + key
			allowed := func(action string) bool {
				return slices.ContainsFunc(roles[role], func(x stmt) bool {
					return x.Effect == "Allow" && slices.Contains(x.Actions, action) &&
						slices.ContainsFunc(x.Resources, func(r string) bool { return patternMatches(r, arn) })
				})
			}
			if !allowed("s3:PutObject") || !allowed("s3:PutObjectRetention") {
				t.Errorf("%s: %s may not write %s with its retention (s3:PutObject %v, s3:PutObjectRetention %v)",
					name, role, key, allowed("s3:PutObject"), allowed("s3:PutObjectRetention"))
			}
			principal := fmt.Sprintf("arn:aws:iam::%s:role/%s-%s", c.Account, c.StackName, role)
			if role == "ExpireRole" {
				principal = expire
			}
			r := request{principal: principal, action: "s3:PutObjectRetention", resource: arn, at: time.Now(), retentionDays: 1}
			if got := deniedBy(t, policy, r, tokens); got != "" {
				t.Errorf("%s: %s's retention of a day on %s: denied by %q", name, role, key, got)
			}
		}
	}
}

// TestExpireRoleName: the one principal the vault lets delete is the
// expire function's role, named after the stack and region, within IAM's
// limit for every test configuration; the stack creates that role with
// that fixed name (CloudFormation's RoleName, no path) for the expire
// function, and names no other role.
func TestExpireRoleName(t *testing.T) {
	if got := ExpireRoleName("BucketVault", "us-east-1"); got != "BucketVault-expire-us-east-1" {
		t.Errorf("ExpireRoleName = %q", got)
	}
	for name, st := range synth(t).stacks() {
		c := st.config
		roleName := ExpireRoleName(c.StackName, c.Region)
		want := fmt.Sprintf("arn:aws:iam::%s:role/%s", c.Account, roleName)
		if st.stack.Vault.ExpireRoleARN != want {
			t.Errorf("%s: expire role %s, want %s", name, st.stack.Vault.ExpireRoleARN, want)
		}
		if got := exemptions(st.props(t, "VaultBucketPolicy")["PolicyDocument"])["DenyDeletes"]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s: DenyDeletes exempts %v, want %s", name, got, want)
		}
		cdkAssert(t, func() {
			st.assertion.HasResourceProperties(jsii.String("AWS::IAM::Role"), &map[string]any{
				"RoleName": roleName,
				"Path":     assertions.Match_Absent(),
				"AssumeRolePolicyDocument": map[string]any{"Statement": []any{map[string]any{
					"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": map[string]any{"Service": "lambda.amazonaws.com"},
				}}},
			})
		})
		cdkAssert(t, func() {
			st.assertion.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
				"Role": map[string]any{"Fn::GetAtt": []any{"ExpireRole", "Arn"}},
			})
		})
		for _, role := range st.ofType("AWS::IAM::Role") {
			got, named := st.props(t, role)["RoleName"]
			switch {
			case role == "ExpireRole" && got != roleName:
				t.Errorf("%s: ExpireRole's RoleName %v, want %s", name, got, roleName)
			case role != "ExpireRole" && named:
				t.Errorf("%s: %s has the fixed name %v: only the expire role is named", name, role, got)
			}
		}
	}
}

// TestVaultLifecycle: the vault's lifecycle aborts incomplete multipart
// uploads, expires scratch/ (7 days, then noncurrent versions 1 day
// later) and moves the cold tier's data (versions under data/ tagged
// bucketvault:tier=cold, current and noncurrent) to the cold storage
// class at once; no rule but expire-scratch removes anything, and it only
// under scratch/; no rule but cold-tier moves anything, and it only
// tagged data/, in any stack.
func TestVaultLifecycle(t *testing.T) {
	s := synth(t)
	coldRule := func(class string) map[string]any {
		return map[string]any{"Id": "cold-tier", "Status": "Enabled", "Prefix": "data/",
			"TagFilters":                   []any{map[string]any{"Key": vault.TierTag, "Value": vault.TierCold}},
			"Transitions":                  []any{map[string]any{"StorageClass": class, "TransitionInDays": float64(0)}},
			"NoncurrentVersionTransitions": []any{map[string]any{"StorageClass": class, "TransitionInDays": float64(0)}},
		}
	}
	cdkAssert(t, func() {
		s.main.assertion.HasResourceProperties(jsii.String("AWS::S3::Bucket"), &map[string]any{
			"LifecycleConfiguration": map[string]any{
				"Rules": []any{
					map[string]any{"Id": "abort-incomplete-multipart-uploads", "Status": "Enabled",
						"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 7}},
					map[string]any{"Id": "expire-scratch", "Status": "Enabled", "Prefix": "scratch/",
						"ExpirationInDays": 7, "NoncurrentVersionExpiration": map[string]any{"NoncurrentDays": 1}},
					coldRule("GLACIER_IR"),
				},
				"TransitionDefaultMinimumObjectSize": "all_storage_classes_128K",
			},
		})
	})
	for name, st := range s.stacks() {
		lc := st.props(t, "VaultBucket")["LifecycleConfiguration"].(map[string]any)
		rules := list0(lc["Rules"])
		var ids []string
		for _, r := range rules {
			rule := r.(map[string]any)
			ids = append(ids, fmt.Sprint(rule["Id"]))
			for k := range rule {
				switch k {
				case "Id", "Status", "Prefix", "AbortIncompleteMultipartUpload":
				case "ExpirationInDays", "NoncurrentVersionExpiration":
					if rule["Id"] != "expire-scratch" || rule["Prefix"] != "scratch/" {
						t.Errorf("%s: lifecycle rule %v removes versions outside scratch/: %s", name, rule["Id"], render(rule))
					}
				case "TagFilters", "Transitions", "NoncurrentVersionTransitions":
					if rule["Id"] != "cold-tier" {
						t.Errorf("%s: lifecycle rule %v moves versions: %s", name, rule["Id"], render(rule))
					}
				default:
					t.Errorf("%s: lifecycle rule %v has %s: %s", name, rule["Id"], k, render(rule))
				}
			}
			if rule["Id"] == "cold-tier" {
				want := coldRule(st.config.Vault.ColdStorageClass)
				if diff := cmp.Diff(want, rule); diff != "" {
					t.Errorf("%s: cold-tier rule (-want +got):\n%s", name, diff)
				}
			}
		}
		if want := []string{"abort-incomplete-multipart-uploads", "expire-scratch", "cold-tier"}; !slices.Equal(ids, want) {
			t.Errorf("%s: lifecycle rules %v, want %v", name, ids, want)
		}
		if got := lc["TransitionDefaultMinimumObjectSize"]; got != "all_storage_classes_128K" {
			t.Errorf("%s: TransitionDefaultMinimumObjectSize %v, want all_storage_classes_128K (objects under 128 KB stay warm)", name, got)
		}
	}
	// The variant configures Deep Archive (testdata/config.variant.json).
	if got := s.variant.config.Vault.ColdStorageClass; got != ColdDeepArchive {
		t.Errorf("variant coldStorageClass %s, want %s", got, ColdDeepArchive)
	}
}

// TestColdStorageClass: vault.coldStorageClass (any case) is the storage
// class of the cold-tier rule, for current and noncurrent versions;
// GLACIER_IR by default; any other class is refused, naming the field.
func TestColdStorageClass(t *testing.T) {
	synth(t) // the jsii kernel
	flags, err := featureFlags()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value any // nil: unset
		want  string
	}{
		{nil, "GLACIER_IR"},
		{"GLACIER_IR", "GLACIER_IR"},
		{"DEEP_ARCHIVE", "DEEP_ARCHIVE"},
		{"deep_archive", "DEEP_ARCHIVE"},
		{"GLACIER", "GLACIER"},
		{"STANDARD_IA", ""},
		{"ONEZONE_IA", ""},
		{"DeepArchive", ""},
		{"", "GLACIER_IR"},
	} {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			m := validConfig()
			if tc.value != nil {
				set(m, "vault.coldStorageClass", tc.value)
			}
			data, _ := json.Marshal(m)
			c, err := ParseConfig(data)
			if err == nil {
				err = c.Validate(".")
			}
			if tc.want == "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != "vault.coldStorageClass" {
					t.Fatalf("error %v, want a ConfigError naming vault.coldStorageClass", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			app := awscdk.NewApp(&awscdk.AppProps{Context: &flags, Outdir: jsii.String(t.TempDir())})
			stack := awscdk.NewStack(app, jsii.String("Cold"), &awscdk.StackProps{
				Env: &awscdk.Environment{Account: jsii.String(c.Account), Region: jsii.String(c.Region)},
			})
			NewVault(stack, "Vault", &VaultProps{Config: c})
			tmpl := assertions.Template_FromStack(stack, nil)
			transition := []any{map[string]any{"StorageClass": tc.want, "TransitionInDays": 0}}
			cdkAssert(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), &map[string]any{
					"LifecycleConfiguration": map[string]any{"Rules": assertions.Match_ArrayWith(&[]any{
						map[string]any{"Id": "cold-tier", "Status": "Enabled", "Prefix": "data/",
							"TagFilters":  []any{map[string]any{"Key": "bucketvault:tier", "Value": "cold"}},
							"Transitions": transition, "NoncurrentVersionTransitions": transition},
					})},
				})
			})
		})
	}
}

// TestDeployRoles: the default deploy role is the CloudFormation
// execution role of the stack's synthesizer, its bootstrap qualifier
// included; configured roles replace it; a synthesizer without one needs
// them.
func TestDeployRoles(t *testing.T) {
	synth(t) // the jsii kernel, and a synthesis the others share
	flags, err := featureFlags()
	if err != nil {
		t.Fatal(err)
	}
	// A bootstrap with its own qualifier, as cdk.json's context sets it.
	// (The synthesizer is the app's default one: a DefaultStackSynthesizer
	// made in Go and passed in is bound as a copy, which jsii hands back to
	// Go as the unbound original.)
	flags["@aws-cdk/core:bootstrapQualifier"] = "acme1"
	app := awscdk.NewApp(&awscdk.AppProps{Context: &flags, Outdir: jsii.String(t.TempDir())})
	stack := func(id, region string, syn awscdk.IStackSynthesizer) awscdk.Stack {
		return awscdk.NewStack(app, jsii.String(id), &awscdk.StackProps{
			Env:         &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String(region)},
			Synthesizer: syn,
		})
	}
	c := &Config{StackName: "BucketVault"}
	qualified := stack("Qualified", "eu-west-1", nil)
	if got, want := deployRoles(qualified, c), []string{"arn:aws:iam::123456789012:role/cdk-acme1-cfn-exec-role-123456789012-eu-west-1"}; !slices.Equal(got, want) {
		t.Errorf("qualified bootstrap: %v, want %v", got, want)
	}
	china := stack("China", "cn-north-1", nil)
	if got, want := deployRoles(china, c), []string{"arn:aws-cn:iam::123456789012:role/cdk-acme1-cfn-exec-role-123456789012-cn-north-1"}; !slices.Equal(got, want) {
		t.Errorf("aws-cn partition: %v, want %v", got, want)
	}
	configured := &Config{StackName: "BucketVault", Vault: VaultConfig{DeployRoleARNs: []string{"arn:aws:iam::123456789012:role/deployer"}}}
	if got := deployRoles(china, configured); !slices.Equal(got, configured.Vault.DeployRoleARNs) {
		t.Errorf("configured: %v", got)
	}
	legacy := stack("Legacy", "eu-west-1", awscdk.NewLegacyStackSynthesizer())
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "vault.deployRoleArns") {
				t.Errorf("a synthesizer without an execution role: %v, want a panic naming vault.deployRoleArns", r)
			}
		}()
		deployRoles(legacy, c)
	}()
	if got := deployRoles(legacy, configured); !slices.Equal(got, configured.Vault.DeployRoleARNs) {
		t.Errorf("configured, legacy synthesizer: %v", got)
	}
}

// TestVaultAlarms: calls that would weaken the vault, in CloudTrail's
// management events, reach the alarm topic by two rules (who did what)
// and two CloudWatch alarms (TestAlarms); the topic admits these rules
// only.
func TestVaultAlarms(t *testing.T) {
	s := synth(t)
	for _, tc := range []struct {
		name                     string
		st                       *stackUnderTest
		bucket, keyID, keyARN    any
		topic                    string
		topicPolicyAdmitsTheRule bool
	}{
		{"main", s.main, "bucketvault-vault-123456789012-us-east-1", map[string]any{"Ref": "VaultKey"},
			map[string]any{"Fn::GetAtt": []any{"VaultKey", "Arn"}}, "Ref:AlarmTopic", true},
		// The imported key is matched by its id and ARN; the existing topic
		// keeps its own policy (docs/deploy.md).
		{"variant", s.variant, "variant-vault", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
			"arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "arn:aws:sns:us-east-1:123456789012:ops-alarms", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := map[string]map[string]any{
				"VaultBucketChangeRule": {"source": []any{"aws.s3"}, "detail-type": []any{"AWS API Call via CloudTrail"}, "detail": map[string]any{
					"eventSource": []any{"s3.amazonaws.com"},
					"eventName": []any{"PutBucketPolicy", "DeleteBucketPolicy", "PutBucketLifecycle", "PutBucketLifecycleConfiguration",
						"PutObjectLockConfiguration", "PutBucketObjectLockConfiguration", "PutBucketVersioning", "DeleteBucket"},
					"requestParameters": map[string]any{"bucketName": []any{tc.bucket}},
				}},
				"VaultKeyChangeRule": {"source": []any{"aws.kms"}, "detail-type": []any{"AWS API Call via CloudTrail"}, "detail": map[string]any{
					"eventSource":       []any{"kms.amazonaws.com"},
					"eventName":         []any{"DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"},
					"requestParameters": map[string]any{"keyId": []any{tc.keyID, tc.keyARN}},
				}},
			}
			for id, pattern := range rules {
				p := tc.st.props(t, id)
				if diff := cmp.Diff(pattern, p["EventPattern"]); diff != "" {
					t.Errorf("%s pattern (-want +got):\n%s", id, diff)
				}
				if p["EventBusName"] != nil || p["State"] != "ENABLED" {
					t.Errorf("%s: bus %v, state %v: want the default bus, enabled", id, p["EventBusName"], p["State"])
				}
				targets := list0(p["Targets"])
				if len(targets) != 1 {
					t.Fatalf("%s targets %v", id, targets)
				}
				tg := targets[0].(map[string]any)
				if got := render(tg["Arn"]); got != tc.topic {
					t.Errorf("%s target %s, want the alarm topic %s", id, got, tc.topic)
				}
				// The message is the whole CloudTrail record (who, what,
				// when, refused or not) under the alarm's sentence.
				in, _ := tg["InputTransformer"].(map[string]any)
				if got := render(in["InputPathsMap"]); got != `{"detail":"$.detail"}` {
					t.Errorf("%s input paths %s", id, got)
				}
				tmpl, _ := in["InputTemplate"].(string)
				if !strings.Contains(tmpl, `"event":<detail>`) || !strings.Contains(tmpl, "would weaken the vault") {
					t.Errorf("%s input template %s", id, tmpl)
				}
			}
			admits := false
			for _, id := range tc.st.ofType("AWS::SNS::TopicPolicy") {
				for _, st := range statements(tc.st.props(t, id)["PolicyDocument"]) {
					if st.Sid == "VaultChangeRulesPublish" {
						admits = true
					}
				}
			}
			if admits != tc.topicPolicyAdmitsTheRule {
				t.Errorf("a topic policy admits the rules: %v, want %v", admits, tc.topicPolicyAdmitsTheRule)
			}
		})
	}
}

// TestVaultEventsCoverTheLock: every bucket- and key-level call the vault
// lock denies has its CloudTrail management event in an alarm rule.
// s3:BypassGovernanceRetention is not a call but a permission that
// DeleteObject and PutObjectRetention (data events) use; it has none.
func TestVaultEventsCoverTheLock(t *testing.T) {
	cloudTrail := map[string][]string{
		"s3:PutBucketPolicy":                  {"PutBucketPolicy"},
		"s3:DeleteBucketPolicy":               {"DeleteBucketPolicy"},
		"s3:PutLifecycleConfiguration":        {"PutBucketLifecycle", "PutBucketLifecycleConfiguration"},
		"s3:PutBucketObjectLockConfiguration": {"PutObjectLockConfiguration", "PutBucketObjectLockConfiguration"},
		"s3:PutBucketVersioning":              {"PutBucketVersioning"},
		"s3:DeleteBucket":                     {"DeleteBucket"},
		"s3:BypassGovernanceRetention":        nil,
		"kms:DisableKey":                      {"DisableKey"},
		"kms:ScheduleKeyDeletion":             {"ScheduleKeyDeletion"},
		"kms:PutKeyPolicy":                    {"PutKeyPolicy"},
	}
	var bucket, key []string
	for _, a := range slices.Concat(lockDestroyActions, lockConfigActions, keyDestroyActions, keyPolicyActions) {
		names, ok := cloudTrail[a]
		if !ok {
			t.Errorf("the lock denies %s: which CloudTrail event is it?", a)
		}
		if strings.HasPrefix(a, "kms:") {
			key = append(key, names...)
		} else {
			bucket = append(bucket, names...)
		}
	}
	for _, n := range bucket {
		if !slices.Contains(VaultBucketEvents, n) {
			t.Errorf("no alarm on %s", n)
		}
	}
	for _, n := range key {
		if !slices.Contains(VaultKeyEvents, n) {
			t.Errorf("no alarm on %s", n)
		}
	}
}

// TestScratchOutlivesJobs: scratch files live a week, or a day more than
// the longest completion window of the plan's snapshot rules (a job keeps
// its working files until it ends); continuous rules do not count.
func TestScratchOutlivesJobs(t *testing.T) {
	minutes := func(n int64) *int64 { return &n }
	yes := true
	for _, c := range []struct {
		rules []plan.Rule
		want  int
	}{
		{nil, 7},
		{[]plan.Rule{{CompletionWindowMinutes: minutes(720)}}, 7},
		{[]plan.Rule{{CompletionWindowMinutes: minutes(720)}, {CompletionWindowMinutes: minutes(20 * 1440)}}, 21},
		{[]plan.Rule{{CompletionWindowMinutes: minutes(20*1440 + 1)}}, 22},
		{[]plan.Rule{{CompletionWindowMinutes: minutes(40 * 1440), EnableContinuousBackup: &yes}}, 7},
	} {
		cfg := &Config{}
		if c.rules != nil {
			cfg.Plan = &plan.Plan{Rules: c.rules}
		}
		if got := scratchDays(cfg); got != c.want {
			t.Errorf("rules %+v: scratch kept %d days, want %d", c.rules, got, c.want)
		}
	}
}
