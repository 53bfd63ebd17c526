package s3x

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// InvalidBucketNameError says a name cannot be an S3 bucket's, and why.
type InvalidBucketNameError struct {
	Name   string
	Reason string
}

func (e *InvalidBucketNameError) Error() string {
	return fmt.Sprintf("invalid bucket name %q: %s", e.Name, e.Reason)
}

// ValidateBucketName checks name against Amazon S3's rules for general
// purpose bucket names: 3 to 63 characters of lower-case letters, digits,
// dots and hyphens, beginning and ending with a letter or digit, no two
// adjacent dots, not an IP address, and none of the prefixes and suffixes
// S3 reserves. Checking before any request turns a name S3 would refuse
// with a bare 400 (or a signing error) into a message that says why.
func ValidateBucketName(name string) error {
	bad := func(f string, a ...any) error {
		return &InvalidBucketNameError{Name: name, Reason: fmt.Sprintf(f, a...)}
	}
	if n := len(name); n < 3 || n > 63 {
		return bad("%d characters, want 3 to 63", n)
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '.' || r == '-':
			if i == 0 || i == len(name)-1 {
				return bad("must begin and end with a lower-case letter or a digit")
			}
		case r >= 'A' && r <= 'Z':
			return bad("upper-case letters are not allowed")
		default:
			return bad("%q is not allowed: only lower-case letters, digits, '.' and '-'", r)
		}
	}
	if strings.Contains(name, "..") {
		return bad("two adjacent dots")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return bad("formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return bad("the prefix %q is reserved by Amazon S3", p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return bad("the suffix %q is reserved by Amazon S3", s)
		}
	}
	return nil
}

// MaxKeyBytes is the longest object key S3 holds, in UTF-8 bytes.
const MaxKeyBytes = 1024

// ValidateKey says why key cannot be an S3 object key (nil when it can):
// S3 keys are 1 to 1,024 bytes of valid UTF-8.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("an empty key: S3 keys are 1 to %d bytes", MaxKeyBytes)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("key %.40q... is %d bytes: S3 keys are at most 1,024 bytes of UTF-8", key, len(key))
	case !utf8.ValidString(key):
		return fmt.Errorf("key %q is not valid UTF-8: S3 keys are UTF-8", key)
	}
	return nil
}

// ValidatePrefix says why prefix cannot begin an S3 key (nil when it can).
func ValidatePrefix(prefix string) error {
	switch {
	case len(prefix) > MaxKeyBytes:
		return fmt.Errorf("prefix %.40q... is %d bytes: no S3 key (at most 1,024 bytes) starts with it", prefix, len(prefix))
	case !utf8.ValidString(prefix):
		return fmt.Errorf("prefix %q is not valid UTF-8: S3 keys are UTF-8", prefix)
	}
	return nil
}
