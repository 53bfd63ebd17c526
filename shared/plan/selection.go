package plan

import (
	"strings"
)

// Selection is AWS Backup's BackupSelection: which resources a plan backs
// up. bucketvault resolves it against the account's S3 buckets (Resolve).
//
// How the parts combine, as AWS Backup documents them (BackupSelection,
// "Assign resources with AWS CLI"):
//
//   - Resources: bucket ARNs, with * matching any run of characters
//     ("arn:aws:s3:::prod-*", or "*" for everything); a bucket matching any
//     entry is in (OR).
//   - ListOfTags: tags a bucket may carry (ConditionType STRINGEQUALS); a
//     bucket carrying any of them is in (OR), and Resources and ListOfTags
//     are ORed with each other.
//   - With neither Resources nor ListOfTags, every bucket is a candidate.
//   - Conditions: every condition must hold (AND), and they are ANDed with
//     the above. StringEquals and StringLike need the tag present with a
//     matching value; StringNotEquals and StringNotLike hold when the tag is
//     absent or its value does not match (IAM's semantics for negated
//     operators). Matching is case-sensitive; StringLike's * matches any run
//     of characters and ? one character.
//   - NotResources: ARNs (with *) taken out of whatever the rest selects.
type Selection struct {
	SelectionName string `json:"SelectionName"`
	// IamRoleArn is required by AWS Backup; bucketvault's functions run with
	// their own roles and do not assume it.
	IamRoleArn   string      `json:"IamRoleArn"`
	Resources    []string    `json:"Resources,omitempty"`
	NotResources []string    `json:"NotResources,omitempty"`
	ListOfTags   []Condition `json:"ListOfTags,omitempty"`
	Conditions   *Conditions `json:"Conditions,omitempty"`
}

// Condition is one ListOfTags entry: ConditionType STRINGEQUALS, the tag key
// (plain, or as aws:ResourceTag/KEY) and its value.
type Condition struct {
	ConditionType  string `json:"ConditionType"`
	ConditionKey   string `json:"ConditionKey"`
	ConditionValue string `json:"ConditionValue"`
}

// Conditions are tag conditions that must all hold. ConditionKey is
// aws:ResourceTag/KEY.
type Conditions struct {
	StringEquals    []ConditionParameter `json:"StringEquals,omitempty"`
	StringNotEquals []ConditionParameter `json:"StringNotEquals,omitempty"`
	StringLike      []ConditionParameter `json:"StringLike,omitempty"`
	StringNotLike   []ConditionParameter `json:"StringNotLike,omitempty"`
}

// ConditionParameter is one tag condition.
type ConditionParameter struct {
	ConditionKey   string `json:"ConditionKey"`
	ConditionValue string `json:"ConditionValue"`
}

// resourceTagPrefix starts a ConditionKey that names a tag.
const resourceTagPrefix = "aws:ResourceTag/"

// Matches reports whether the selection takes the bucket with ARN arn
// (arn:aws:s3:::NAME) and tags.
func (s *Selection) Matches(arn string, tags map[string]string) bool {
	in := len(s.Resources) == 0 && len(s.ListOfTags) == 0
	for _, p := range s.Resources {
		in = in || glob(p, arn, false)
	}
	for _, c := range s.ListOfTags {
		v, ok := tags[strings.TrimPrefix(c.ConditionKey, resourceTagPrefix)]
		in = in || ok && v == c.ConditionValue
	}
	if !in || !s.Conditions.hold(tags) {
		return false
	}
	for _, p := range s.NotResources {
		if glob(p, arn, false) {
			return false
		}
	}
	return true
}

// needsTags reports whether matching depends on the bucket's tags.
func (s *Selection) needsTags() bool {
	c := s.Conditions
	return len(s.ListOfTags) > 0 || c != nil && len(c.StringEquals)+len(c.StringNotEquals)+len(c.StringLike)+len(c.StringNotLike) > 0
}

func (c *Conditions) hold(tags map[string]string) bool {
	if c == nil {
		return true
	}
	value := func(p ConditionParameter) (string, bool) {
		v, ok := tags[strings.TrimPrefix(p.ConditionKey, resourceTagPrefix)]
		return v, ok
	}
	for _, p := range c.StringEquals {
		if v, ok := value(p); !ok || v != p.ConditionValue {
			return false
		}
	}
	for _, p := range c.StringLike {
		if v, ok := value(p); !ok || !glob(p.ConditionValue, v, true) {
			return false
		}
	}
	for _, p := range c.StringNotEquals {
		if v, ok := value(p); ok && v == p.ConditionValue {
			return false
		}
	}
	for _, p := range c.StringNotLike {
		if v, ok := value(p); ok && glob(p.ConditionValue, v, true) {
			return false
		}
	}
	return true
}

// glob reports whether s matches pattern, where * matches any run of
// characters and, with question, ? matches one character. Case-sensitive.
func glob(pattern, s string, question bool) bool {
	p, t := []rune(pattern), []rune(s)
	// Iterative wildcard matching with backtracking to the last star.
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == t[ti] && p[pi] != '*' || question && p[pi] == '?'):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
