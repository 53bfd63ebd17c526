package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

var update = flag.Bool("update", false, "rewrite testdata/template.golden.json from the synthesized template")

// The tests synthesize once per test binary (jsii starts a node process
// and loads aws-cdk-lib: seconds on 2 cores) and share the result.
var (
	synthOnce sync.Once
	synthed   *synthesis
	synthErr  error
)

// synthesis is the test stacks, synthesized with the functions built into
// a temporary asset directory (so the tests do not depend on make build).
type synthesis struct {
	assetDir string
	outDir   string
	main     *stackUnderTest // testdata/config.json: every option on
	variant  *stackUnderTest // testdata/config.variant.json: imported key and alarm topic, defaults
	noPlan   *stackUnderTest // testdata/config.noplan.json: no backup plan, defaults
}

// stacks are the synthesized stacks by name.
func (s *synthesis) stacks() map[string]*stackUnderTest {
	return map[string]*stackUnderTest{"main": s.main, "variant": s.variant, "noPlan": s.noPlan}
}

type stackUnderTest struct {
	config    *Config
	stack     *BucketVaultStack
	assertion assertions.Template
	template  map[string]any // the template as plain JSON
}

func (s *stackUnderTest) resources() map[string]any { return s.template["Resources"].(map[string]any) }

func (s *stackUnderTest) resource(t *testing.T, logicalID string) map[string]any {
	t.Helper()
	r, ok := s.resources()[logicalID].(map[string]any)
	if !ok {
		t.Fatalf("no resource %s in the template", logicalID)
	}
	return r
}

func (s *stackUnderTest) props(t *testing.T, logicalID string) map[string]any {
	t.Helper()
	p, _ := s.resource(t, logicalID)["Properties"].(map[string]any)
	return p
}

// ofType lists the logical ids of the resources of one type, sorted.
func (s *stackUnderTest) ofType(typ string) []string {
	var ids []string
	for id, r := range s.resources() {
		if r.(map[string]any)["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// silenceNode is the variable that stops jsii's kernel from printing a
// banner about Node 20's end of life on every start (Node 20 is what this
// project's machines have).
const silenceNode = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(silenceNode) == "" {
		// jsii captures the environment of its node process while the
		// packages initialize, before TestMain: run the tests again in a
		// child that has the variable from the start.
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), silenceNode+"=20")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err := cmd.Run()
		jsii.Close() // removes the kernel's temporary directory, made at init
		var exit *exec.ExitError
		switch {
		case err == nil:
			os.Exit(0)
		case errors.As(err, &exit):
			os.Exit(exit.ExitCode())
		default:
			fmt.Fprintln(os.Stderr, "infra tests:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := locals3.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "locals3:", err)
		if code == 0 {
			code = 1
		}
	}
	if synthed != nil {
		jsii.Close()
		os.RemoveAll(synthed.assetDir)
		os.RemoveAll(synthed.outDir)
	}
	os.Exit(code)
}

// synth returns the shared synthesis, building it on first use.
func synth(t *testing.T) *synthesis {
	t.Helper()
	synthOnce.Do(func() { synthed, synthErr = doSynth() })
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthed
}

func doSynth() (s *synthesis, err error) {
	s = &synthesis{}
	if s.assetDir, err = os.MkdirTemp("", "bucketvault-assets-"); err != nil {
		return s, err
	}
	if s.outDir, err = os.MkdirTemp("", "bucketvault-cdkout-"); err != nil {
		return s, err
	}
	start := time.Now()
	if testing.Short() {
		err = stubFunctions(s.assetDir)
	} else {
		err = buildFunctions(s.assetDir)
	}
	if err != nil {
		return s, err
	}
	built := time.Since(start)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("synth: %v", r)
		}
	}()
	flags, err := featureFlags()
	if err != nil {
		return s, err
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(s.outDir), Context: &flags})
	for _, x := range []struct {
		file string
		dst  **stackUnderTest
	}{{"testdata/config.json", &s.main}, {"testdata/config.variant.json", &s.variant}, {"testdata/config.noplan.json", &s.noPlan}} {
		c, err := loadTestConfig(x.file)
		if err != nil {
			return s, err
		}
		c.AssetDir = s.assetDir
		st := &stackUnderTest{config: c, stack: NewBucketVaultStack(app, c)}
		*x.dst = st
	}
	// As make synth does: cdk-nag's findings are annotations of the
	// assembly (TestAwsSolutions).
	CheckAwsSolutions(app)
	app.Synth(nil)
	for _, st := range s.stacks() {
		st.assertion = assertions.Template_FromStack(st.stack.Stack, nil)
		b, err := json.Marshal(st.assertion.ToJSON())
		if err != nil {
			return s, err
		}
		if err := json.Unmarshal(b, &st.template); err != nil {
			return s, err
		}
	}
	fmt.Fprintf(os.Stderr, "infra tests: functions built in %s, stacks synthesized in %s\n",
		built.Round(100*time.Millisecond), (time.Since(start) - built).Round(100*time.Millisecond))
	return s, nil
}

func loadTestConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return c, c.Validate(".")
}

// featureFlags are cdk.json's context without the bucketvault
// configuration: the tests synthesize with the flags make synth uses.
func featureFlags() (map[string]any, error) {
	var cdk struct {
		Context map[string]any `json:"context"`
	}
	data, err := os.ReadFile("../cdk.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &cdk); err != nil {
		return nil, fmt.Errorf("cdk.json: %w", err)
	}
	delete(cdk.Context, ContextConfig)
	delete(cdk.Context, ContextConfigFile)
	return cdk.Context, nil
}

// buildFunctions builds every function the way `make build` does, each
// into dir/<name>/bootstrap.
func buildFunctions(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, "bin")
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bin + string(filepath.Separator)}
	for _, f := range Functions {
		args = append(args, "../functions/"+f)
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(goBin, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the functions: %v\n%s", err, out)
	}
	for _, f := range Functions {
		if err := os.MkdirAll(filepath.Join(dir, f), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(bin, f), filepath.Join(dir, f, "bootstrap")); err != nil {
			return err
		}
	}
	return os.RemoveAll(bin)
}

// stubFunctions writes placeholder bootstraps (go test -short: the
// template does not depend on the binaries, and cross-compiling the
// functions cold takes minutes on 2 cores).
func stubFunctions(dir string) error {
	for _, f := range Functions {
		if err := os.MkdirAll(filepath.Join(dir, f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f, "bootstrap"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

var assetHash = regexp.MustCompile(`^[0-9a-f]{64}(\.zip)?$`)

// masked replaces what changes without the template changing meaning: the
// asset hashes (they follow the Go toolchain and the code).
func masked(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = masked(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = masked(e)
		}
		return out
	case string:
		if m := assetHash.FindStringSubmatch(x); m != nil {
			return "<asset-hash>" + m[1]
		}
	}
	return v
}

const goldenFile = "testdata/template.golden.json"

// TestGoldenTemplate catches unintended template changes. After an
// intended change: go test ./infra/ -update, and review the diff.
func TestGoldenTemplate(t *testing.T) {
	s := synth(t)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(masked(s.main.template)); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if *update {
		if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", goldenFile)
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./infra/ -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("the template differs from %s from line %d:\n got: %s\nwant: %s\nIf the change is intended: go test ./infra/ -update, and review the diff.", goldenFile, i+1, g, w)
			}
		}
	}
}
