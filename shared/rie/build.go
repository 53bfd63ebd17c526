package rie

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// BuildFlags are the go build flags of a function's bootstrap, as the
// Makefile's build target builds the stack's (CGO_ENABLED=0, GOOS=linux):
// no RPC server in the binary, no local paths, no symbol tables.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}

// Build builds the bootstrap of each named function (the main package
// functions/<name> of the module in moduleDir) as outDir/<name>/bootstrap,
// in one go command. It builds for linux and this machine's architecture
// (the emulator runs the bootstrap as a process of its own; the stack's
// are linux/arm64), with BuildFlags.
func Build(ctx context.Context, moduleDir, outDir string, names ...string) error {
	tmp, err := os.MkdirTemp(outDir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	args := append([]string{"build", "-o", tmp + string(filepath.Separator)}, BuildFlags...)
	for _, n := range names {
		args = append(args, "./functions/"+n)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build the bootstraps: no Go toolchain in PATH: %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the bootstraps: go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	for _, n := range names {
		dir := filepath.Join(outDir, n)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, "bootstrap")); err != nil {
			return fmt.Errorf("build the bootstraps: %w", err)
		}
	}
	return nil
}
