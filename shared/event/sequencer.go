package event

import "strings"

// CompareSequencer orders the sequencers of two events on the same key and
// returns -1, 0 or +1. The event with the greater sequencer happened later.
// An empty sequencer sorts before any non-empty one.
//
// Sequencers are hexadecimal strings of varying length and case (classic
// records send upper case, EventBridge lower case). They are compared as
// Amazon S3 documents: upper-case both, pad the shorter on the right with
// '0', and compare the strings; see the sequencer note in
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html.
func CompareSequencer(a, b string) int {
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	case b == "":
		return 1
	}
	a, b = strings.ToUpper(a), strings.ToUpper(b)
	if n := len(b) - len(a); n > 0 {
		a += strings.Repeat("0", n)
	} else if n < 0 {
		b += strings.Repeat("0", -n)
	}
	return strings.Compare(a, b)
}
