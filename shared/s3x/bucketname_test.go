package s3x_test

import (
	"errors"
	"testing"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

func TestValidateBucketName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"photos", true},
		{"my-vault.example-1", true},
		{"abc", true},
		{"v", false},
		{"ab", false},
		{"UPPER", false},
		{"has space", false},
		{"under_score", false},
		{"-leading", false},
		{"trailing-", false},
		{"trailing.", false},
		{"two..dots", false},
		{"192.168.5.4", false},
		{"xn--punycode", false},
		{"sthree-bucket", false},
		{"bucket-s3alias", false},
		{"bucket--ol-s3", false},
		{"a234567890123456789012345678901234567890123456789012345678901234", false}, // 64
		{"café", false},
	} {
		err := s3x.ValidateBucketName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateBucketName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.As(err, new(*s3x.InvalidBucketNameError)) {
			t.Errorf("ValidateBucketName(%q): %T, want *InvalidBucketNameError", tc.name, err)
		}
	}
}
