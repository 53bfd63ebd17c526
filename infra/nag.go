package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// CheckAwsSolutions applies cdk-nag's AwsSolutions rules to every stack of
// the app when it is synthesized. A finding is an error or warning
// annotation on the construct: `cdk synth` (make synth) fails on it, and
// TestAwsSolutions fails on it. Every finding the stack cannot fix is
// suppressed where the construct is made, with its reason beside it
// (suppress, policy.wildcards); cdk-nag's report (cdk.out/AwsSolutions-
// <stack>-NagReport.csv) lists each rule with its suppression reason.
func CheckAwsSolutions(app awscdk.App) {
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// Rules suppressed somewhere in the stack.
const (
	// nagWildcard is "The IAM entity contains wildcard permissions".
	nagWildcard = "AwsSolutions-IAM5"
	// nagAccessLogs is "The S3 Bucket has server access logs disabled".
	nagAccessLogs = "AwsSolutions-S1"
)

// suppress suppresses rule on c and its children, for the findings named
// (cdk-nag's "appliesTo", such as "Resource::*"; none: every finding of the
// rule), because of reason.
func suppress(c constructs.IConstruct, rule, reason string, findings ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(findings) > 0 {
		applies := make([]any, len(findings))
		for i, f := range findings {
			applies[i] = f
		}
		s.AppliesTo = &applies
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(true))
}

// wildcardFindings are the AwsSolutions-IAM5 findings of the resources
// that hold a wildcard: "Resource::<arn>".
func wildcardFindings(resources ...string) []string {
	var out []string
	for _, r := range resources {
		if strings.Contains(r, "*") {
			out = append(out, "Resource::"+r)
		}
	}
	return out
}

// Reasons shared by several roles.
const (
	// whyStarOnly: X-Ray's actions (and CloudWatch Logs' log delivery
	// actions a state machine's logging needs) accept no resource but "*".
	whyStarOnly = `X-Ray's xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSamplingRules and xray:GetSamplingTargets support no resource-level permissions: Resource "*" is the only form (Service Authorization Reference, AWS X-Ray). Tracing is on for every function and state machine.`
)
