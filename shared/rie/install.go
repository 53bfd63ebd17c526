package rie

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

// The emulator's pinned module, package and version: the Runtime
// Interface Emulator SAM CLI runs inside its containers.
const (
	Module  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	Package = Module + "/cmd/aws-lambda-rie"
	Version = "v0.0.0-20261030222936-bef5c4ba774d"
	// Binary is its file name in the cache's bin directory.
	Binary = "aws-lambda-rie"
)

// Install makes sure the pinned emulator is in binDir (the callers' is
// the local S3 server's, locals3.BinDir: $BUCKETVAULT_CACHE/bin,
// ~/.cache/bucketvault/bin by default) and returns its path. A binary
// whose Go build info names the pinned module version is used as it is;
// otherwise Install runs `go install Package@Version` (half a minute on 2
// cores), under an exclusive lock in binDir's parent so concurrent callers
// (go test's package processes) install once.
func Install(ctx context.Context, binDir string) (string, error) {
	if binDir == "" {
		return "", errors.New("install the Lambda Runtime Interface Emulator: no bin directory")
	}
	bin := filepath.Join(binDir, Binary)
	if installed(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("install %s: %w", Binary, err)
	}
	unlock, err := locals3.LockFile(ctx, filepath.Join(filepath.Dir(binDir), "install-"+Binary+".lock"))
	if err != nil {
		return "", fmt.Errorf("install %s: %w", Binary, err)
	}
	defer unlock()
	if installed(bin) {
		return bin, nil
	}
	cmdline := "go install " + Package + "@" + Version
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%s: no Go toolchain in PATH (%w); install Go, or put %s built from %s@%s at %s",
			cmdline, err, Binary, Package, Version, bin)
	}
	cmd := exec.CommandContext(ctx, goBin, "install", Package+"@"+Version)
	// Outside any module, so that a surrounding go.mod or go.work does not
	// affect the build.
	cmd.Dir = filepath.Dir(binDir)
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return "", fmt.Errorf("install the Lambda Runtime Interface Emulator: %s (GOBIN=%s) failed after %s: %w\n%s",
			cmdline, binDir, time.Since(start).Round(time.Second), err, strings.TrimSpace(out.String()))
	}
	if !installed(bin) {
		return "", fmt.Errorf("install the Lambda Runtime Interface Emulator: %s succeeded but %s does not hold %s %s", cmdline, bin, Module, Version)
	}
	return bin, nil
}

// installed reads the Go build info embedded in bin (no command is run).
func installed(bin string) bool {
	info, err := buildinfo.ReadFile(bin)
	return err == nil && info.Main.Path == Module && info.Main.Version == Version
}
