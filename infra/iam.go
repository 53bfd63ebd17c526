package main

import (
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/regioninfo"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// policy is a role's statements and, beside them, why the wildcards they
// need are needed: cdk-nag AwsSolutions-IAM5 suppressions that cover
// exactly those wildcard resources, each with its reason.
type policy struct {
	statements []awsiam.PolicyStatement
	findings   []string            // IAM5 findings with a reason, in order
	reasons    map[string][]string // finding -> why
}

// add appends statements.
func (p *policy) add(s ...awsiam.PolicyStatement) { p.statements = append(p.statements, s...) }

// because records why the wildcards among resources are needed (the others
// need no reason).
func (p *policy) because(reason string, resources ...*string) {
	var rs []string
	for _, r := range resources {
		rs = append(rs, *r)
	}
	for _, f := range wildcardFindings(rs...) {
		if p.reasons == nil {
			p.reasons = map[string][]string{}
		}
		if _, seen := p.reasons[f]; !seen {
			p.findings = append(p.findings, f)
		}
		if !slices.Contains(p.reasons[f], reason) {
			p.reasons[f] = append(p.reasons[f], reason)
		}
	}
}

// suppress attaches the role's suppressions to it (and its policies): one
// per reason, covering the findings it explains.
func (p *policy) suppress(role constructs.IConstruct) {
	var reasons []string
	findings := map[string][]string{}
	for _, f := range p.findings {
		why := strings.Join(p.reasons[f], " ")
		if _, seen := findings[why]; !seen {
			reasons = append(reasons, why)
		}
		findings[why] = append(findings[why], f)
	}
	for _, why := range reasons {
		suppress(role, nagWildcard, why, findings[why]...)
	}
}

// attach adds the statements to role and attaches its suppressions.
func (p *policy) attach(role awsiam.Role) {
	for _, s := range p.statements {
		role.AddToPolicy(s)
	}
	p.suppress(role)
}

// conditions is a policy statement's Condition: operator -> key -> value.
type conditions map[string]map[string]any

// grant is an Allow statement with conditions (nil: none).
func grant(sid string, actions []string, resources []*string, c conditions) awsiam.PolicyStatement {
	acts := strs(actions...)
	props := &awsiam.PolicyStatementProps{Sid: jsii.String(sid), Effect: awsiam.Effect_ALLOW, Actions: &acts, Resources: &resources}
	if len(c) > 0 {
		m := map[string]any{}
		for op, kv := range c {
			m[op] = kv
		}
		props.Conditions = &m
	}
	return awsiam.NewPolicyStatement(props)
}

// s3Grant is an Allow statement on S3 buckets or objects of account only.
// A bucket's ARN names no account, and bucket names are global: without
// aws:ResourceAccount a name (or a pattern, such as a restore target's)
// would also match a bucket of that name in another account, and a role
// could read from or write into it. c adds conditions.
func s3Grant(account, sid string, actions []string, resources []*string, c conditions) awsiam.PolicyStatement {
	all := conditions{"StringEquals": {"aws:ResourceAccount": account}}
	for op, kv := range c {
		if all[op] == nil {
			all[op] = map[string]any{}
		}
		for k, v := range kv {
			all[op][k] = v
		}
	}
	return grant(sid, actions, resources, all)
}

// kmsViaS3 is an Allow statement to use keys only through S3 in region
// (kms:ViaService), and only for objects of the buckets named (the
// encryption context aws:s3:arn S3 sends: the bucket's ARN when the bucket
// uses S3 Bucket Keys, the object's otherwise; bucket ARNs may be IAM
// patterns). A role's key permissions are then no use outside S3 (a direct
// kms:Decrypt of a ciphertext, or another service), nor for other buckets.
func kmsViaS3(region, sid string, actions []string, keys []*string, bucketARNs []string) awsiam.PolicyStatement {
	var contexts []string
	for _, b := range bucketARNs {
		contexts = append(contexts, b, b+"/*")
	}
	return grant(sid, actions, keys, conditions{
		"StringEquals": {"kms:ViaService": s3Service(region)},
		"StringLike":   {"kms:EncryptionContext:aws:s3:arn": contexts},
	})
}

// s3Service is S3's service name in region, as kms:ViaService spells it.
func s3Service(region string) string {
	return "s3." + region + "." + *regioninfo.RegionInfo_Get(jsii.String(region)).DomainSuffix()
}
