// Command layers checks two rules of the module's architecture, for
// `make lint`:
//
//  1. Lower packages never import higher ones. Every package of the module
//     belongs to one layer (layers.go); a package imports only packages of
//     lower layers. A package without a layer fails the check too, so a new
//     package is placed on purpose.
//  2. Only shared/vault builds vault keys: no string literal outside it
//     starts with a vault key prefix (keyPrefixes, and the prefixes and
//     descriptor key shared/vault itself declares), except the entries of
//     keyAllowlist, which are to go.
//
// It reads the source with go/parser rather than `go list`, so every file
// counts whatever its build constraints (a linux-only or lambda.norpc file
// too). Test files (_test.go) are not checked: a test may drive packages
// above its own, and Go refuses the import cycles that would matter.
//
// Usage, from the module's root: go run ./.ci/layers [-C dir]. It prints
// one line per violation, naming the file, the line and the rule, and exits
// 1 if there is any.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	dir := flag.String("C", ".", "the module's root directory")
	flag.Parse()
	cfg := config{Layers: layers, VaultPackage: vaultPackage, KeyPrefixes: keyPrefixes, KeyAllowlist: keyAllowlist}
	problems, err := check(*dir, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "layers:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "layers: %d problems (the rules: .ci/layers/layers.go, docs/design.md \"Layers\")\n", len(problems))
		os.Exit(1)
	}
}
