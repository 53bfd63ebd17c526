package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// The forms of file Parse accepts, told apart by their top-level keys:
//
//  1. a bare plan, BackupPlanInput: {"BackupPlanName": ..., "Rules": [...]},
//     what `aws backup create-backup-plan --backup-plan file://plan.json`
//     reads;
//  2. a plan wrapper: {"BackupPlan": {...}, "BackupPlanTags": {...},
//     "CreatorRequestId": ...}, create-backup-plan's --cli-input-json, or
//     the output of `aws backup get-backup-plan` (its metadata, such as
//     BackupPlanId, VersionId and CreationDate, is accepted and ignored);
//  3. a bare selection, BackupSelection: {"SelectionName": ...,
//     "IamRoleArn": ..., "Resources": [...], ...};
//  4. a selection wrapper: {"BackupSelection": {...}, "BackupPlanId": ...},
//     create-backup-selection's --cli-input-json or get-backup-selection's
//     output;
//  5. bucketvault's document with both: {"BackupPlan": {...},
//     "BackupSelections": [{...}, ...]}, each selection bare.
//
// Keys are matched exactly, as AWS does: an unknown or misspelt key is an
// error naming its path, not a field silently left unset.

// planDoc is forms 2 and 5.
type planDoc struct {
	BackupPlan       *Plan             `json:"BackupPlan"`
	BackupSelections []Selection       `json:"BackupSelections"`
	BackupPlanTags   map[string]string `json:"BackupPlanTags"`
	CreatorRequestId string            `json:"CreatorRequestId"`
	// get-backup-plan output.
	BackupPlanArn          string                  `json:"BackupPlanArn"`
	BackupPlanId           string                  `json:"BackupPlanId"`
	VersionId              string                  `json:"VersionId"`
	CreationDate           rawJSON                 `json:"CreationDate"`
	DeletionDate           rawJSON                 `json:"DeletionDate"`
	LastExecutionDate      rawJSON                 `json:"LastExecutionDate"`
	AdvancedBackupSettings []AdvancedBackupSetting `json:"AdvancedBackupSettings"`
	ScheduledRunsPreview   rawJSON                 `json:"ScheduledRunsPreview"`
}

// selectionDoc is form 4.
type selectionDoc struct {
	BackupSelection  *Selection `json:"BackupSelection"`
	BackupPlanId     string     `json:"BackupPlanId"`
	CreatorRequestId string     `json:"CreatorRequestId"`
	SelectionId      string     `json:"SelectionId"`
	CreationDate     rawJSON    `json:"CreationDate"`
}

// Load reads file (any form Parse accepts) and validates what
// it holds: the plan with Validate(nil), so vault names are not checked,
// and each selection with Validate. The error lists every problem, each
// naming its field; problems in selections of a combined document are
// prefixed with BackupSelections[i].
func Load(file string) (*Plan, []Selection, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	p, sels, err := Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	var errs Errors
	if p != nil {
		var ve Errors
		if errors.As(p.Validate(nil), &ve) {
			errs = append(errs, ve...)
		}
	}
	for i := range sels {
		var ve Errors
		if errors.As(sels[i].Validate(), &ve) {
			if p != nil || len(sels) > 1 {
				ve = ve.prefixed(path("BackupSelections", i))
			}
			errs = append(errs, ve...)
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s: %w", file, errs)
	}
	return p, sels, nil
}

// Parse decodes a plan file in any of the forms above and returns the plan
// (nil if the file holds only selections) and the selections (none if it
// holds only a plan). It does not validate; Load does. Errors are Errors,
// with field paths from the top of the file.
func Parse(data []byte) (*Plan, []Selection, error) {
	top, err := members(data)
	if err != nil {
		return nil, nil, Errors{{Problem: syntaxProblem(data, err)}}
	}
	has := func(keys ...string) bool {
		for _, m := range top {
			for _, k := range keys {
				if m.key == k {
					return true
				}
			}
		}
		return false
	}
	switch {
	case has("BackupPlan", "BackupSelections"):
		var d planDoc
		if err := decodeStrict(data, &d); err != nil {
			return nil, nil, err
		}
		if d.BackupPlan == nil && len(d.BackupSelections) == 0 {
			return nil, nil, Errors{{Field: "BackupPlan", Problem: "missing: the wrapper holds no plan and no selections"}}
		}
		if d.BackupPlan != nil && len(d.AdvancedBackupSettings) > 0 && len(d.BackupPlan.AdvancedBackupSettings) == 0 {
			d.BackupPlan.AdvancedBackupSettings = d.AdvancedBackupSettings
		}
		return d.BackupPlan, d.BackupSelections, nil
	case has("BackupSelection"):
		var d selectionDoc
		if err := decodeStrict(data, &d); err != nil {
			return nil, nil, err
		}
		if d.BackupSelection == nil {
			return nil, nil, Errors{{Field: "BackupSelection", Problem: "missing: want the selection object"}}
		}
		return nil, []Selection{*d.BackupSelection}, nil
	case has("BackupPlanName", "Rules"):
		var p Plan
		if err := decodeStrict(data, &p); err != nil {
			return nil, nil, err
		}
		return &p, nil, nil
	case has("SelectionName", "IamRoleArn", "Resources", "NotResources", "ListOfTags", "Conditions"):
		var s Selection
		if err := decodeStrict(data, &s); err != nil {
			return nil, nil, err
		}
		return nil, []Selection{s}, nil
	}
	return nil, nil, Errors{{Problem: "neither a backup plan nor a backup selection: want BackupPlanName and Rules (a plan), " +
		"SelectionName and IamRoleArn (a selection), or a BackupPlan or BackupSelection wrapper"}}
}

// DecodeStrict checks data against v's type (exact keys, each once, JSON
// types), every problem an Errors entry at its field path, then
// unmarshals it into v: how every AWS Backup document bucketvault reads
// is decoded (backup plans and selections here, restore testing plans and
// selections in shared/restoretest).
func DecodeStrict(data []byte, v any) error { return decodeStrict(data, v) }

// TopKeys returns the keys of a JSON object document in order, or Errors
// saying where its syntax fails: how a reader tells one document kind
// from another before decoding it.
func TopKeys(data []byte) ([]string, error) {
	ms, err := members(data)
	if err != nil {
		return nil, Errors{{Problem: syntaxProblem(data, err)}}
	}
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = m.key
	}
	return keys, nil
}

// decodeStrict checks data against v's type (exact keys, each once, JSON
// types) with field paths, then unmarshals it into v.
func decodeStrict(data []byte, v any) error {
	var errs Errors
	check(data, reflect.TypeOf(v).Elem(), "", &errs)
	if len(errs) > 0 {
		return errs
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errors{{Problem: err.Error()}}
	}
	return nil
}

var rawType = reflect.TypeOf(json.RawMessage(nil))

// check walks raw against t and records unknown keys and values of the
// wrong JSON type, each at its path.
func check(raw []byte, t reflect.Type, at string, errs *Errors) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" || t == rawType {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		ms, err := members(raw)
		if err != nil {
			errs.add(at, "want an object, got %s", kind(raw))
			return
		}
		fields := jsonFields(t)
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[m.key] {
				errs.add(join(at, m.key), "given twice")
				continue
			}
			seen[m.key] = true
			f, ok := fields[m.key]
			if !ok {
				errs.add(join(at, m.key), "unknown field%s", suggest(m.key, fields))
				continue
			}
			check(m.value, f.Type, join(at, m.key), errs)
		}
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			errs.add(at, "want an array, got %s", kind(raw))
			return
		}
		for i, it := range items {
			check(it, t.Elem(), fmt.Sprintf("%s[%d]", at, i), errs)
		}
	case reflect.Map:
		ms, err := members(raw)
		if err != nil {
			errs.add(at, "want an object, got %s", kind(raw))
			return
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[m.key] {
				errs.add(join(at, m.key), "given twice")
				continue
			}
			seen[m.key] = true
			check(m.value, t.Elem(), join(at, m.key), errs)
		}
	default:
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			errs.add(at, "want %s, got %s", want(t), kind(raw))
		}
	}
}

type member struct {
	key   string
	value json.RawMessage
}

// members returns the members of a JSON object in document order.
func members(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not an object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key: tok.(string), value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the top-level object")
	}
	return out, nil
}

// syntaxProblem describes why data is not a JSON object, with a line and
// column when the JSON is malformed.
func syntaxProblem(data []byte, err error) string {
	var se *json.SyntaxError
	if jerr := json.Unmarshal(data, new(any)); errors.As(jerr, &se) {
		line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
		col := int(se.Offset) - bytes.LastIndexByte(data[:se.Offset], '\n') - 1
		return fmt.Sprintf("not valid JSON: line %d, column %d: %v", line, col, se)
	} else if jerr != nil {
		return "not valid JSON: " + jerr.Error()
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return err.Error()
	}
	return fmt.Sprintf("want a JSON object at the top, got %s", kind(data))
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// suggest names the field the user probably meant, or lists the valid ones.
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf(" (did you mean %s? keys are case-sensitive)", name)
		}
		if d := distance(strings.ToLower(key), strings.ToLower(name)); d < bestD {
			best, bestD = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return "; want one of " + strings.Join(sortedKeys(fields), ", ")
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string " + truncate(string(raw))
	case 't', 'f':
		return "a boolean " + string(raw)
	case 'n':
		return "null"
	}
	return "the number " + truncate(string(raw))
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	}
	return t.String()
}
