package plan

import (
	"testing"
)

func TestSelectionMatches(t *testing.T) {
	const arn = "arn:aws:s3:::payments-prod"
	tag := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	eq := func(k, v string) ConditionParameter {
		return ConditionParameter{ConditionKey: "aws:ResourceTag/" + k, ConditionValue: v}
	}
	tests := []struct {
		name string
		sel  Selection
		arn  string
		tags map[string]string
		want bool
	}{
		{"empty selection takes everything", Selection{}, arn, nil, true},
		{"star", Selection{Resources: []string{"*"}}, arn, nil, true},
		{"exact ARN", Selection{Resources: []string{arn}}, arn, nil, true},
		{"other ARN", Selection{Resources: []string{"arn:aws:s3:::payments-dev"}}, arn, nil, false},
		{"ARN wildcard", Selection{Resources: []string{"arn:aws:s3:::payments-*"}}, arn, nil, true},
		{"ARN wildcard in the middle", Selection{Resources: []string{"arn:aws:s3:::pay*prod"}}, arn, nil, true},
		{"ARN is case-sensitive", Selection{Resources: []string{"arn:aws:s3:::Payments-*"}}, arn, nil, false},
		{"ARN ? is literal", Selection{Resources: []string{"arn:aws:s3:::payments-pro?"}}, arn, nil, false},
		{"resources are ORed", Selection{Resources: []string{"arn:aws:s3:::x", "arn:aws:s3:::payments-*"}}, arn, nil, true},
		{"EBS ARN takes no bucket", Selection{Resources: []string{"arn:aws:ec2:*:*:volume/*"}}, arn, nil, false},
		{"NotResources excludes", Selection{Resources: []string{"*"}, NotResources: []string{"arn:aws:s3:::payments-*"}}, arn, nil, false},
		{"NotResources alone excludes from everything", Selection{NotResources: []string{"arn:aws:s3:::other"}}, arn, nil, true},
		{"ListOfTags match", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, arn, tag("backup", "daily"), true},
		{"ListOfTags key with aws:ResourceTag/", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "aws:ResourceTag/backup", "daily"}}}, arn, tag("backup", "daily"), true},
		{"ListOfTags value is case-sensitive", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, arn, tag("backup", "Daily"), false},
		{"ListOfTags are ORed", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}, {"STRINGEQUALS", "env", "prod"}}}, arn, tag("env", "prod"), true},
		{"ListOfTags ORed with Resources", Selection{Resources: []string{"arn:aws:s3:::x"}, ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, arn, tag("backup", "daily"), true},
		{"ListOfTags miss and Resources miss", Selection{Resources: []string{"arn:aws:s3:::x"}, ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, arn, tag("backup", "weekly"), false},
		{"Conditions are ANDed", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{eq("Backup", "daily"), eq("Environment", "production")}}}, arn, tag("Backup", "daily"), false},
		{"Conditions all hold", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{eq("Backup", "daily"), eq("Environment", "production")}}}, arn, tag("Backup", "daily", "Environment", "production"), true},
		{"Conditions ANDed with Resources", Selection{Resources: []string{"arn:aws:s3:::x"}, Conditions: &Conditions{StringEquals: []ConditionParameter{eq("Backup", "daily")}}}, arn, tag("Backup", "daily"), false},
		{"Conditions key is case-sensitive", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{eq("backup", "daily")}}}, arn, tag("Backup", "daily"), false},
		{"StringLike star", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{eq("env", "prod*")}}}, arn, tag("env", "production"), true},
		{"StringLike inner star", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{eq("env", "*rod*")}}}, arn, tag("env", "production"), true},
		{"StringLike question mark", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{eq("env", "pro?")}}}, arn, tag("env", "prod"), true},
		{"StringLike missing tag", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{eq("env", "*")}}}, arn, nil, false},
		{"StringNotEquals differs", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{eq("env", "dev")}}}, arn, tag("env", "prod"), true},
		{"StringNotEquals equal", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{eq("env", "dev")}}}, arn, tag("env", "dev"), false},
		{"StringNotEquals missing tag holds", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{eq("env", "dev")}}}, arn, nil, true},
		{"StringNotLike", Selection{Conditions: &Conditions{StringNotLike: []ConditionParameter{eq("env", "dev*")}}}, arn, tag("env", "development"), false},
		{"StringNotLike missing tag holds", Selection{Conditions: &Conditions{StringNotLike: []ConditionParameter{eq("env", "dev*")}}}, arn, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.Matches(tc.arn, tc.tags); got != tc.want {
				t.Errorf("Matches(%s, %v) = %v, want %v", tc.arn, tc.tags, got, tc.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		question   bool
		want       bool
	}{
		{"", "", false, true},
		{"*", "", false, true},
		{"a*", "a", false, true},
		{"a*c", "abbbc", false, true},
		{"a*c", "abbbd", false, false},
		{"*a*a*", "banana", false, true},
		{"a?c", "abc", true, true},
		{"a?c", "abc", false, false},
		{"a?c", "a?c", false, true},
		{"é*", "été", false, true},
		{"ab", "abc", false, false},
	}
	for _, tc := range tests {
		if got := glob(tc.pattern, tc.s, tc.question); got != tc.want {
			t.Errorf("glob(%q, %q, %v) = %v, want %v", tc.pattern, tc.s, tc.question, got, tc.want)
		}
	}
}

func TestSelectionValidate(t *testing.T) {
	ok := Selection{SelectionName: "s", IamRoleArn: "arn:aws:iam::123456789012:role/backup"}
	tests := []struct {
		name   string
		modify func(*Selection)
		fields []string
	}{
		{"valid", func(*Selection) {}, nil},
		{"no name", func(s *Selection) { s.SelectionName = "" }, []string{"SelectionName"}},
		{"bad name", func(s *Selection) { s.SelectionName = "a b" }, []string{"SelectionName"}},
		{"no role", func(s *Selection) { s.IamRoleArn = "" }, []string{"IamRoleArn"}},
		{"role not an ARN", func(s *Selection) { s.IamRoleArn = "backup-role" }, []string{"IamRoleArn"}},
		{"resource not an ARN", func(s *Selection) { s.Resources = []string{"my-bucket"} }, []string{"Resources[0]"}},
		{"object ARN", func(s *Selection) { s.Resources = []string{"arn:aws:s3:::bucket/prefix/*"} }, []string{"Resources[0]"}},
		{"bad exclusion", func(s *Selection) { s.NotResources = []string{"*", "x"} }, []string{"NotResources[1]"}},
		{"too many wildcards", func(s *Selection) {
			for range 31 {
				s.Resources = append(s.Resources, "arn:aws:s3:::a-*")
			}
		}, []string{"Resources"}},
		{"ListOfTags type", func(s *Selection) { s.ListOfTags = []Condition{{"STRINGLIKE", "k", "v"}} }, []string{"ListOfTags[0].ConditionType"}},
		{"ListOfTags no key", func(s *Selection) { s.ListOfTags = []Condition{{"STRINGEQUALS", "", "v"}} }, []string{"ListOfTags[0].ConditionKey"}},
		{"Conditions key without prefix", func(s *Selection) {
			s.Conditions = &Conditions{StringLike: []ConditionParameter{{"aws:ResourceTag/ok", "*"}, {"backup", "daily"}}}
		}, []string{"Conditions.StringLike[1].ConditionKey"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.modify(&s)
			assertFields(t, s.Validate(), tc.fields)
		})
	}
}
