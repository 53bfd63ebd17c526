package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/rie"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestInvokeUnderEmulator: invoke --bootstrap (make invoke) runs the
// function's bootstrap under the Lambda Runtime Interface Emulator with
// the stack's environment for it, from the flags, and prints its
// response; a function error fails the command with the error type Lambda
// gives it. (functions/lambdatest runs every function this way.)
func TestInvokeUnderEmulator(t *testing.T) {
	srv := locals3.ForTest(t)
	vaultName := srv.BucketName(t)
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %d %s", code, e)
	}
	dir := t.TempDir()
	if err := rie.Build(context.Background(), "../..", dir, "expire", "restore"); err != nil {
		t.Fatal(err)
	}
	code, out, e := cli(t, srv, "invoke", "--function", "expire", "--event", "../../events/expire.request.json", "--vault", vaultName,
		"--bootstrap", filepath.Join(dir, "expire", "bootstrap"))
	var rep vault.ExpireReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.DryRun || rep.Vault != vaultName {
		t.Fatalf("invoke expire under the emulator: %d %s %s", code, out, e)
	}
	if !strings.Contains(e, `"message":"expiry"`) || !strings.Contains(e, "REPORT RequestId") {
		t.Errorf("stderr has no function log or emulator report:\n%s", e)
	}
	sample, err := os.ReadFile("../../events/restore.request.json")
	if err != nil {
		t.Fatal(err)
	}
	event := filepath.Join(dir, "restore.json")
	if err := os.WriteFile(event, []byte(strings.ReplaceAll(string(sample), "bucketvault-vault-123456789012-us-east-1", vaultName)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, e = cli(t, srv, "invoke", "--function", "restore", "--event", event, "--vault", vaultName,
		"--restore-target", "allowed-*", "--bootstrap", filepath.Join(dir, "restore", "bootstrap"))
	if code != exitFailed || out != "" || !strings.Contains(e, "bucketvault: function error InvalidRequestError: ") || !strings.Contains(e, "not in the allowed restore targets [allowed-*]") {
		t.Errorf("restore into a target not allowed: %d %q\n%s", code, out, e)
	}
}
