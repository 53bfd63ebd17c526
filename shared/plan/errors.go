package plan

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem with one field of a plan or selection file.
type FieldError struct {
	// Field is the path to the field, as in Rules[1].Lifecycle.DeleteAfterDays
	// (indexes from 0); empty for the document as a whole.
	Field string
	// Problem says what is wrong, lower case, without the field.
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// Errors is every problem found in a plan or selection, in document order.
// Validate, Parse and Load return it (as error) so that a user fixes
// everything in one go; errors.As gets it back.
type Errors []*FieldError

func (es Errors) Error() string {
	l := make([]string, len(es))
	for i, e := range es {
		l[i] = e.Error()
	}
	return strings.Join(l, "\n")
}

// Unwrap lets errors.As find a *FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Fields lists the paths of the fields with problems.
func (es Errors) Fields() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Field
	}
	return out
}

// err returns es as an error, nil when empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add records a problem at field.
func (es *Errors) add(field, format string, a ...any) {
	*es = append(*es, &FieldError{Field: field, Problem: fmt.Sprintf(format, a...)})
}

// prefixed returns es with prefix put before every field path.
func (es Errors) prefixed(prefix string) Errors {
	if prefix == "" {
		return es
	}
	out := make(Errors, len(es))
	for i, e := range es {
		out[i] = &FieldError{Field: join(prefix, e.Field), Problem: e.Problem}
	}
	return out
}

// path returns name[i].
func path(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }

// JoinField joins two field paths with a dot ("Rules[0]" and "Lifecycle"
// make "Rules[0].Lifecycle"; an index joins without one): how every AWS
// Backup document's errors name their fields.
func JoinField(a, b string) string { return join(a, b) }

// join joins two field paths with a dot.
func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
