package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DecodeStream reads from r either one JSON document (an object, or an array
// of documents) or JSON lines (one document per line, blank lines ignored)
// and returns the changes of all documents, in order. A failing document is
// reported as a *DecodeError whose Line is its line number in JSON lines
// input and whose Path starts with its index in an array.
func DecodeStream(r io.Reader) ([]Change, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &DecodeError{Reason: "read input", Err: err}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &DecodeError{Reason: "no documents in input"}
	}
	if json.Valid(data) {
		return Decode(data)
	}

	lines := bytes.Split(data, []byte("\n"))
	first := true
	var changes []Change
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if first && !json.Valid(line) {
			// Not JSON lines: a single document, broken somewhere.
			return nil, brokenDocument(data)
		}
		first = false
		c, err := Decode(line)
		if err != nil {
			return nil, atLine(i+1, err)
		}
		changes = append(changes, c...)
	}
	return changes, nil
}

// brokenDocument reports the syntax error in data, an invalid document, at
// its line.
func brokenDocument(data []byte) error {
	err := syntaxError(data)
	de := &DecodeError{Reason: "invalid json", Err: err}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		de.Line = 1 + bytes.Count(data[:min(se.Offset, int64(len(data)))], []byte("\n"))
	}
	return de
}

// atLine sets the line of a *DecodeError.
func atLine(line int, err error) error {
	de, ok := errors.AsType[*DecodeError](err)
	if !ok {
		return &DecodeError{Line: line, Reason: "decode", Err: err}
	}
	e := *de
	e.Line = line
	return &e
}
