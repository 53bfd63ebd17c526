package restore

import (
	"testing"

	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestSameGrants: grant lists compare as multisets, in any order.
func TestSameGrants(t *testing.T) {
	owner := vault.Grant{Type: "CanonicalUser", ID: "o", Permission: "FULL_CONTROL"}
	read := vault.Grant{Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers", Permission: "READ"}
	for _, c := range []struct {
		a, b []vault.Grant
		want bool
	}{
		{[]vault.Grant{owner, read}, []vault.Grant{read, owner}, true},
		{[]vault.Grant{owner}, []vault.Grant{owner, read}, false},
		{[]vault.Grant{owner, owner}, []vault.Grant{owner, read}, false},
		{nil, nil, true},
	} {
		if got := sameGrants(c.a, c.b); got != c.want {
			t.Errorf("sameGrants(%v, %v) = %v", c.a, c.b, got)
		}
	}
}
