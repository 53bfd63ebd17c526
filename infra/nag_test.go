package main

import (
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
)

// TestAwsSolutions: the stacks, synthesized with cdk-nag's AwsSolutions
// rules applied as make synth applies them, carry no error or warning
// annotation (cdk-nag reports each finding it is not told to suppress as
// one on the construct; CDK's own warnings count too).
func TestAwsSolutions(t *testing.T) {
	for name, st := range synth(t).stacks() {
		a := assertions.Annotations_FromStack(st.stack.Stack)
		var found []string
		for level, msgs := range map[string]*[]*cxapi.SynthesisMessage{
			"error":   a.FindError(jsii.String("*"), assertions.Match_AnyValue()),
			"warning": a.FindWarning(jsii.String("*"), assertions.Match_AnyValue()),
		} {
			for _, m := range *msgs {
				data := render(m.Entry.Data)
				found = append(found, level+" "+*m.Id+": "+strings.SplitN(data, "\n", 2)[0])
			}
		}
		sort.Strings(found)
		for _, f := range found {
			t.Errorf("%s: %s", name, f)
		}
	}
}

// TestNagSuppressions: every cdk-nag suppression in the templates gives a
// reason, and every suppression of wildcard permissions (AwsSolutions-IAM5)
// names the findings it covers: none silences the rule for a whole role.
func TestNagSuppressions(t *testing.T) {
	seen := 0
	for name, st := range synth(t).stacks() {
		for id, r := range st.resources() {
			meta, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := meta["cdk_nag"].(map[string]any)
			for _, s := range list0(nag["rules_to_suppress"]) {
				seen++
				sup := s.(map[string]any)
				rule, reason := render(sup["id"]), render(sup["reason"])
				if len(strings.TrimSpace(reason)) < 40 {
					t.Errorf("%s %s: suppression of %s gives the reason %q", name, id, rule, reason)
				}
				if rule == nagWildcard && len(list0(sup["applies_to"])) == 0 {
					t.Errorf("%s %s: suppression of %s names no finding (it would hide any wildcard the role gets later)", name, id, rule)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no cdk-nag suppressions in the templates: are they still written as resource metadata?")
	}
}

// TestTemplateLint runs cfn-lint (as make lint-template does) on every
// synthesized template: no finding but those infra/cfn-lint.yaml ignores,
// with its reason. cfn-lint is a Python tool the test does not install
// (pip install cfn-lint): without it the test says so and skips.
func TestTemplateLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint is not installed (pip install cfn-lint): the synthesized templates are not linted; make lint-template lints make synth's")
	}
	s := synth(t)
	args := []string{"--config-file", "cfn-lint.yaml", "--"}
	for _, st := range s.stacks() {
		args = append(args, filepath.Join(s.outDir, *st.stack.Stack.TemplateFile()))
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}
