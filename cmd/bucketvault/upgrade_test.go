package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
	"github.com/bucketvault/bucketvault/shared/vault/vaultfixture"
)

// TestCLIUpgradeRestoresExactly: the format 1 fixture restores exactly
// at every recorded time and from its snapshot, before `vault upgrade`
// and after it; `vault show` says the format version either side; a
// second upgrade changes nothing.
func TestCLIUpgradeRestoresExactly(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	f, err := vaultfixture.Load(ctx, c, srv.BucketName(t), "")
	if err != nil {
		t.Fatal(err)
	}
	show := func() (v vaultShow) {
		t.Helper()
		code, out, e := cli(t, srv, "--json", "vault", "show", "--vault", f.VaultBucket)
		if code != 0 {
			t.Fatalf("vault show: %d %s", code, e)
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("vault show --json: %v\n%s", err, out)
		}
		return v
	}
	restores := func(when string) {
		t.Helper()
		for _, at := range f.Times {
			target := srv.BucketName(t)
			if code, out, e := cli(t, srv, "restore", "--vault", f.VaultBucket, "--bucket", f.SourceName, "--at", at.Format(time.RFC3339),
				"--target-bucket", target, "--create-bucket", "--allow-incomplete"); code != 0 {
				t.Fatalf("%s: restore as of %s: %d\n%s%s", when, at.Format(time.RFC3339), code, out, e)
			}
			diffs, err := f.Diff(ctx, c, target, at)
			if err != nil || len(diffs) > 0 {
				t.Fatalf("%s: restore as of %s differs: %v\n%s", when, at.Format(time.RFC3339), err, strings.Join(diffs, "\n"))
			}
		}
		for _, sp := range f.Snapshots {
			target := srv.BucketName(t)
			if code, out, e := cli(t, srv, "restore", "--vault", f.VaultBucket, "--bucket", f.SourceName, "--recovery-point", sp.RecoveryPointID,
				"--target-bucket", target, "--create-bucket"); code != 0 {
				t.Fatalf("%s: restore of snapshot %s: %d\n%s%s", when, sp.RecoveryPointID, code, out, e)
			}
			diffs, err := f.Diff(ctx, c, target, sp.At)
			if err != nil || len(diffs) > 0 {
				t.Fatalf("%s: restore of snapshot %s differs: %v\n%s", when, sp.RecoveryPointID, err, strings.Join(diffs, "\n"))
			}
		}
	}
	if s := show(); s.FormatVersion != 1 {
		t.Fatalf("the fixture shows format %d", s.FormatVersion)
	}
	restores("format 1")
	code, out, e := cli(t, srv, "vault", "upgrade", "--vault", f.VaultBucket)
	if code != 0 || !strings.Contains(out, "upgraded from format version 1 to 2") {
		t.Fatalf("vault upgrade: %d %s %s", code, out, e)
	}
	if code, out, _ := cli(t, srv, "vault", "upgrade", "--vault", f.VaultBucket); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("a second vault upgrade: %d %s", code, out)
	}
	if s := show(); s.FormatVersion != vault.FormatVersion || len(s.Buckets) != 1 || s.Buckets[0].Journal.Runs != 1 {
		t.Fatalf("after the upgrade: %+v", s)
	}
	restores("format 2")
}
