package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// layer is a set of packages of one level.
type layer struct {
	Name     string
	Why      string
	Packages []string // module-relative paths; PATH/... for PATH and below
}

// allowed is a vault key built outside the vault package, tolerated until
// it moves: the file (module-relative, slash-separated) and the literal.
type allowed struct {
	File    string
	Literal string
}

// config is what check enforces (main passes layers.go's tables; tests
// pass their own).
type config struct {
	Layers       []layer
	VaultPackage string
	KeyPrefixes  []string
	KeyAllowlist []allowed
}

// problem is one violation, printed as file:line: message.
type problem struct {
	Pos string // file:line, module-relative; or the file alone
	Msg string
}

func (p problem) String() string { return p.Pos + ": " + p.Msg }

// pkg is one package directory's non-test files, parsed.
type pkg struct {
	rel   string // module-relative path, "" for the root
	files []*parsedFile
}

type parsedFile struct {
	rel  string // module-relative file name
	fset *token.FileSet
	ast  *ast.File
}

// check walks the module at root and returns every violation, sorted by
// position. An error is for a module it cannot read.
func check(root string, cfg config) ([]problem, error) {
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	pkgs, err := parseModule(root)
	if err != nil {
		return nil, err
	}
	var problems []problem
	problems = append(problems, checkImports(module, pkgs, cfg)...)
	problems = append(problems, checkKeys(pkgs, cfg)...)
	sort.SliceStable(problems, func(i, j int) bool { return lessPos(problems[i].Pos, problems[j].Pos) })
	return problems, nil
}

// modulePath reads the module directive of go.mod.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module directive", gomod)
}

// parseModule parses every non-test .go file of the module, skipping what
// the go command skips (directories named testdata or vendor, or starting
// with . or _) and nested modules.
func parseModule(root string) ([]*pkg, error) {
	byDir := map[string]*pkg{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			name := d.Name()
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if dir == "." {
			dir = ""
		}
		p := byDir[dir]
		if p == nil {
			p = &pkg{rel: dir}
			byDir[dir] = p
		}
		p.files = append(p.files, &parsedFile{rel: rel, fset: fset, ast: f})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*pkg
	for _, p := range byDir {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// layerOf returns the index of the layer of a module-relative package path
// (the longest matching pattern's) and the pattern, or -1.
func layerOf(cfg config, rel string) (int, string) {
	best, pattern := -1, ""
	for i, l := range cfg.Layers {
		for _, p := range l.Packages {
			if matches(p, rel) && len(p) > len(pattern) {
				best, pattern = i, p
			}
		}
	}
	return best, pattern
}

func matches(pattern, rel string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func (cfg config) describe(i int) string {
	return fmt.Sprintf("layer %d %q", i, cfg.Layers[i].Name)
}

// checkImports checks that every package has a layer and imports only
// packages of lower layers, and that every layer's exact entries name a
// package that exists.
func checkImports(module string, pkgs []*pkg, cfg config) []problem {
	var problems []problem
	exists := map[string]bool{}
	for _, p := range pkgs {
		exists[p.rel] = true
	}
	for _, l := range cfg.Layers {
		for _, pattern := range l.Packages {
			if !strings.HasSuffix(pattern, "/...") && !exists[pattern] {
				problems = append(problems, problem{Pos: ".ci/layers/layers.go", Msg: fmt.Sprintf(
					"layer %q names %s, which is not a package of the module (a package with non-test files): remove it", l.Name, pattern)})
			}
		}
	}
	for _, p := range pkgs {
		from, _ := layerOf(cfg, p.rel)
		if from < 0 {
			problems = append(problems, problem{Pos: p.files[0].rel, Msg: fmt.Sprintf(
				"package %s belongs to no layer: add it to one in .ci/layers/layers.go (and to docs/design.md's Layers), the lowest whose packages it may import", pathOr(p.rel))})
			continue
		}
		for _, f := range p.files {
			for _, is := range f.ast.Imports {
				path, err := strconv.Unquote(is.Path.Value)
				if err != nil {
					continue // the parser accepted it; cannot happen
				}
				var rel string
				switch {
				case path == module:
					rel = ""
				case strings.HasPrefix(path, module+"/"):
					rel = strings.TrimPrefix(path, module+"/")
				default:
					continue // the standard library or another module
				}
				to, _ := layerOf(cfg, rel)
				pos := fmt.Sprintf("%s:%d", f.rel, f.fset.Position(is.Pos()).Line)
				switch {
				case to < 0:
					// Reported once, as a package without a layer.
				case to == from:
					problems = append(problems, problem{Pos: pos, Msg: fmt.Sprintf(
						"%s (%s) imports %s of its own layer: a package imports only packages of lower layers; place one of them in another layer (.ci/layers/layers.go, docs/design.md \"Layers\") or move the code",
						pathOr(p.rel), cfg.describe(from), rel)})
				case to > from:
					problems = append(problems, problem{Pos: pos, Msg: fmt.Sprintf(
						"%s (%s) imports %s (%s): lower packages never import higher ones; move the code it needs down, or invert the dependency with an interface declared in %s",
						pathOr(p.rel), cfg.describe(from), rel, cfg.describe(to), pathOr(p.rel))})
				}
			}
		}
	}
	return problems
}

func pathOr(rel string) string {
	if rel == "" {
		return "the module's root package"
	}
	return rel
}

// prefixConst is the value of a vault key prefix constant: a lowercase
// name and a slash.
var prefixConst = regexp.MustCompile(`^[a-z][a-z0-9._-]*/$`)

// vaultKeys returns the literals' forbidden prefixes: cfg.KeyPrefixes and
// every string constant of the vault package that is a prefix, and the
// descriptor's key (the constant DescriptorKey), sorted.
func vaultKeys(pkgs []*pkg, cfg config) (prefixes []string, descriptor string) {
	set := map[string]bool{}
	for _, p := range cfg.KeyPrefixes {
		set[p] = true
	}
	for _, p := range pkgs {
		if p.rel != cfg.VaultPackage {
			continue
		}
		for _, f := range p.files {
			for _, d := range f.ast.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, v := range vs.Values {
						lit, ok := v.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING || i >= len(vs.Names) {
							continue
						}
						val, err := strconv.Unquote(lit.Value)
						if err != nil {
							continue
						}
						if vs.Names[i].Name == "DescriptorKey" {
							descriptor = val
						} else if prefixConst.MatchString(val) {
							set[val] = true
						}
					}
				}
			}
		}
	}
	for p := range set {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	return prefixes, descriptor
}

// checkKeys reports string literals outside the vault package that build
// vault keys, except allowlisted ones, and allowlist entries that match no
// literal.
func checkKeys(pkgs []*pkg, cfg config) []problem {
	prefixes, descriptor := vaultKeys(pkgs, cfg)
	allow := map[allowed]bool{}
	for _, a := range cfg.KeyAllowlist {
		allow[a] = false
	}
	var problems []problem
	for _, p := range pkgs {
		if p.rel == cfg.VaultPackage {
			continue
		}
		for _, f := range p.files {
			ast.Inspect(f.ast, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				val, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				what := ""
				for _, pre := range prefixes {
					if strings.HasPrefix(val, pre) {
						what = fmt.Sprintf("starts with the vault key prefix %q", pre)
						break
					}
				}
				if what == "" && descriptor != "" && strings.HasPrefix(val, descriptor) {
					what = fmt.Sprintf("names the vault's descriptor (%s.DescriptorKey)", filepath.Base(cfg.VaultPackage))
				}
				if what == "" {
					return true
				}
				a := allowed{File: f.rel, Literal: val}
				if _, ok := allow[a]; ok {
					allow[a] = true
					return true
				}
				problems = append(problems, problem{
					Pos: fmt.Sprintf("%s:%d", f.rel, f.fset.Position(lit.Pos()).Line),
					Msg: fmt.Sprintf("%s %s: only %s, the one owner of the vault format, builds vault keys; ask it for the key (export a function or constant there)",
						lit.Value, what, cfg.VaultPackage),
				})
				return true
			})
		}
	}
	for _, a := range cfg.KeyAllowlist {
		if !allow[a] {
			problems = append(problems, problem{Pos: ".ci/layers/layers.go", Msg: fmt.Sprintf(
				"keyAllowlist entry {%q, %q} matches no literal: the key moved into %s (or the literal changed), so remove or update the entry", a.File, a.Literal, cfg.VaultPackage)})
		}
	}
	return problems
}

// lessPos orders file:line positions by file, then line as a number.
func lessPos(a, b string) bool {
	fa, la := splitPos(a)
	fb, lb := splitPos(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func splitPos(pos string) (string, int) {
	i := strings.LastIndex(pos, ":")
	if i < 0 {
		return pos, 0
	}
	n, err := strconv.Atoi(pos[i+1:])
	if err != nil {
		return pos, 0
	}
	return pos[:i], n
}
