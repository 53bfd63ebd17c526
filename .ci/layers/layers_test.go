package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The repository keeps its layers and its vault keys: what `make lint`
// runs, as a test of the tables in layers.go.
func TestRepository(t *testing.T) {
	problems, err := check("../..", config{Layers: layers, VaultPackage: vaultPackage, KeyPrefixes: keyPrefixes, KeyAllowlist: keyAllowlist})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// writeModule writes files (module-relative name: content) under a new
// directory with a go.mod for example.com/m, and returns the directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files["go.mod"] = "module example.com/m\n\ngo 1.26\n"
	for name, body := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// src is a Go file of package name importing the module's packages imps.
func src(name string, imps ...string) string {
	var b strings.Builder
	b.WriteString("package " + name + "\n\n")
	for _, i := range imps {
		b.WriteString("import _ \"example.com/m/" + i + "\"\n")
	}
	return b.String()
}

var fixtureLayers = []layer{
	{Name: "low", Packages: []string{"low/a", "low/b"}},
	{Name: "mid", Packages: []string{"mid"}},
	{Name: "top", Packages: []string{"cmd/...", "low/a/cmd/..."}},
}

func TestImports(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []problem
	}{
		{
			name: "sound",
			files: map[string]string{
				"low/a/a.go":          src("a"),
				"low/b/b.go":          src("b"),
				"mid/mid.go":          src("mid", "low/a", "low/b"),
				"cmd/x/main.go":       src("main", "mid", "low/a"),
				"low/a/cmd/t/main.go": src("main", "low/a", "mid"),
				// Not packages of the module, as for the go command.
				"low/a/testdata/x.go": src("x", "cmd/x"),
				"_tools/t.go":         src("t", "cmd/x"),
				".hidden/h.go":        src("h", "cmd/x"),
			},
		},
		{
			name: "upward import",
			files: map[string]string{
				"low/a/a.go":    src("a"),
				"low/b/b.go":    "package b\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/mid\"\n)\n\nvar _ = fmt.Sprint\nvar _ = mid.X\n",
				"mid/mid.go":    "package mid\n\nconst X = 1\n",
				"cmd/x/main.go": src("main", "mid"),
			},
			want: []problem{{Pos: "low/b/b.go:6", Msg: `low/b (layer 0 "low") imports mid (layer 1 "mid"): lower packages never import higher ones; move the code it needs down, or invert the dependency with an interface declared in low/b`}},
		},
		{
			name: "import of a peer",
			files: map[string]string{
				"low/a/a.go":    src("a", "low/b"),
				"low/b/b.go":    src("b"),
				"mid/mid.go":    src("mid"),
				"cmd/x/main.go": src("main"),
			},
			want: []problem{{Pos: "low/a/a.go:3", Msg: `low/a (layer 0 "low") imports low/b of its own layer: a package imports only packages of lower layers; place one of them in another layer (.ci/layers/layers.go, docs/design.md "Layers") or move the code`}},
		},
		{
			name: "a file of any build constraint counts",
			files: map[string]string{
				"low/a/a.go":         src("a"),
				"low/a/a_windows.go": "//go:build windows\n\n" + src("a", "cmd/x"),
				"low/b/b.go":         src("b"),
				"mid/mid.go":         src("mid"),
				"cmd/x/main.go":      src("main"),
			},
			want: []problem{{Pos: "low/a/a_windows.go:5", Msg: `low/a (layer 0 "low") imports cmd/x (layer 2 "top"): lower packages never import higher ones; move the code it needs down, or invert the dependency with an interface declared in low/a`}},
		},
		{
			name: "tests may import anything",
			files: map[string]string{
				"low/a/a.go":        src("a"),
				"low/a/a_test.go":   src("a", "mid", "cmd/x"),
				"low/a/ext_test.go": src("a_test", "low/a", "mid"),
				"low/b/b.go":        src("b"),
				"mid/mid.go":        src("mid"),
				"cmd/x/main.go":     src("main"),
			},
		},
		{
			name: "a package without a layer, a layer naming no package",
			files: map[string]string{
				"low/a/a.go":      src("a"),
				"mid/mid.go":      src("mid", "low/a", "new"),
				"new/new.go":      src("new"),
				"cmd/x/main.go":   src("main"),
				"low/b/b_test.go": src("b"),
			},
			want: []problem{
				{Pos: ".ci/layers/layers.go", Msg: `layer "low" names low/b, which is not a package of the module (a package with non-test files): remove it`},
				{Pos: "new/new.go", Msg: `package new belongs to no layer: add it to one in .ci/layers/layers.go (and to docs/design.md's Layers), the lowest whose packages it may import`},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeModule(t, tc.files)
			got, err := check(root, config{Layers: fixtureLayers, VaultPackage: "low/a"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	files := map[string]string{
		// The vault package declares its prefixes and descriptor; its own
		// literals are its business.
		"low/a/layout.go": `package a

const (
	DescriptorKey = "manifest.json"
	scratchPrefix = "scratch/"
	contentType   = "application/json"
)

func Key(id string) string { return "data/" + id }
`,
		"low/b/b.go": src("b"),
		"mid/mid.go": `package mid

import "fmt"

func keys(id string) []string {
	return []string{
		"data/" + id,                        // a fixed prefix
		fmt.Sprintf("scratch/%s.json", id), // one the vault package declares
		"manifest.json",                     // its descriptor
		"jobs/%s/allowed",                   // allowlisted
		"the data/ prefix",                  // prose: not a key
		"application/json",                  // not a key prefix
	}
}
`,
		"mid/mid_test.go": "package mid\n\nvar testKey = \"data/x\"\n",
		"cmd/x/main.go":   src("main"),
	}
	root := writeModule(t, files)
	got, err := check(root, config{
		Layers: fixtureLayers, VaultPackage: "low/a", KeyPrefixes: []string{"data/", "jobs/"},
		KeyAllowlist: []allowed{{"mid/mid.go", "jobs/%s/allowed"}, {"mid/mid.go", "data/gone"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []problem{
		{Pos: ".ci/layers/layers.go", Msg: `keyAllowlist entry {"mid/mid.go", "data/gone"} matches no literal: the key moved into low/a (or the literal changed), so remove or update the entry`},
		{Pos: "mid/mid.go:7", Msg: `"data/" starts with the vault key prefix "data/": only low/a, the one owner of the vault format, builds vault keys; ask it for the key (export a function or constant there)`},
		{Pos: "mid/mid.go:8", Msg: `"scratch/%s.json" starts with the vault key prefix "scratch/": only low/a, the one owner of the vault format, builds vault keys; ask it for the key (export a function or constant there)`},
		{Pos: "mid/mid.go:9", Msg: `"manifest.json" names the vault's descriptor (a.DescriptorKey): only low/a, the one owner of the vault format, builds vault keys; ask it for the key (export a function or constant there)`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// modulePath reads go.mod's module directive; without go.mod, check fails.
func TestModulePath(t *testing.T) {
	root := writeModule(t, map[string]string{})
	got, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil || got != "example.com/m" {
		t.Errorf("modulePath = %q, %v; want example.com/m", got, err)
	}
	if _, err := check(t.TempDir(), config{}); err == nil {
		t.Error("check of a directory without go.mod: no error")
	}
}

// The command, as make lint runs it, exits 1 and names the offending
// import, its place and the rule; on a sound module it exits 0, silent.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "layers")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A module with the real layer table's packages, one importing upward.
	bad := writeModule(t, map[string]string{"shared/s3x/s3x.go": src("s3x", "shared/vault"), "shared/vault/vault.go": src("vault")})
	out, err := exec.Command(bin, "-C", bad).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("on a module that breaks the layers: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{
		`shared/s3x/s3x.go:3: shared/s3x (layer 0 "base") imports shared/vault (layer 1 "format"): lower packages never import higher ones`,
		`layers: `,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(bin, "-C", "../..").CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("on the repository: %v\n%s", err, out)
	}
}
