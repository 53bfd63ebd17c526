package locals3

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
	"syscall"
	"time"
)

const (
	// EnvServer selects the server: "minio" (the default) or "versitygw".
	EnvServer = "BUCKETVAULT_S3_SERVER"
	// EnvCacheDir overrides the cache directory that holds the installed
	// binaries. The default is $XDG_CACHE_HOME/bucketvault, or
	// ~/.cache/bucketvault when XDG_CACHE_HOME is unset.
	EnvCacheDir = "BUCKETVAULT_CACHE"
)

// Kind names an S3-compatible server implementation.
type Kind string

const (
	// KindMinIO is MinIO, the default server.
	KindMinIO Kind = "minio"
	// KindVersityGW is the Versity S3 gateway with its posix backend.
	KindVersityGW Kind = "versitygw"
)

// pin is the exact Go package and version installed for a Kind.
type pin struct {
	binary  string // file name in the cache bin directory
	module  string // module path, as recorded in the binary's build info
	pkg     string // package path given to go install
	version string // module version
}

func (p pin) installArg() string { return p.pkg + "@" + p.version }

// stamp is the content of the stamp file written next to an installed binary.
func (p pin) stamp() string { return p.module + " " + p.version + "\n" }

var pins = map[Kind]pin{
	KindMinIO: {
		binary:  "minio",
		module:  "github.com/minio/minio",
		pkg:     "github.com/minio/minio",
		version: "v0.0.0-20260212201848-7aac2a2c5b7c",
	},
	KindVersityGW: {
		binary:  "versitygw",
		module:  "github.com/versity/versitygw",
		pkg:     "github.com/versity/versitygw/cmd/versitygw",
		version: "v1.8.0",
	},
}

// Version returns the pinned module version installed for kind.
func Version(kind Kind) string { return pins[kind].version }

// ParseKind validates a server name. The empty string means KindMinIO.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case "":
		return KindMinIO, nil
	case KindMinIO, KindVersityGW:
		return k, nil
	default:
		return "", fmt.Errorf("unknown S3 server %q: want %q or %q", s, KindMinIO, KindVersityGW)
	}
}

// KindFromEnv returns the Kind named by $BUCKETVAULT_S3_SERVER, KindMinIO if
// it is unset.
func KindFromEnv() (Kind, error) {
	k, err := ParseKind(os.Getenv(EnvServer))
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvServer, err)
	}
	return k, nil
}

// CacheDir returns the directory holding bucketvault's cached binaries:
// $BUCKETVAULT_CACHE, else $XDG_CACHE_HOME/bucketvault, else
// ~/.cache/bucketvault.
func CacheDir() (string, error) {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate cache directory (set %s): %w", EnvCacheDir, err)
	}
	return filepath.Join(d, "bucketvault"), nil
}

// BinDir returns the directory binaries are installed into, CacheDir()/bin.
func BinDir() (string, error) {
	d, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "bin"), nil
}

// Install makes sure the pinned version of the server binary for kind is in
// the cache bin directory and returns its path.
//
// When the binary is present and its stamp file (binary + ".version") names
// the pinned version, Install returns at once without running any command.
// A binary without a matching stamp is accepted if its embedded Go build
// info names the pinned module version. Otherwise Install runs
// "go install PKG@VERSION" with GOBIN set to the bin directory. An exclusive
// flock on CacheDir()/install-KIND.lock makes concurrent callers, in this
// process or others (such as the parallel package processes of go test),
// install only once.
func Install(ctx context.Context, kind Kind) (string, error) {
	if kind == "" {
		var err error
		if kind, err = KindFromEnv(); err != nil {
			return "", err
		}
	}
	p, ok := pins[kind]
	if !ok {
		return "", fmt.Errorf("install: unknown server kind %q", kind)
	}
	binDir, err := BinDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, p.binary)
	if installed(bin, p) {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("install %s: %w", kind, err)
	}
	unlock, err := LockFile(ctx, filepath.Join(filepath.Dir(binDir), "install-"+string(kind)+".lock"))
	if err != nil {
		return "", fmt.Errorf("install %s: %w", kind, err)
	}
	defer unlock()
	// Another process may have installed it while we waited for the lock.
	if installed(bin, p) {
		return bin, nil
	}
	if buildInfoMatches(bin, p) {
		return bin, writeStamp(bin, p)
	}
	if err := goInstall(ctx, binDir, p); err != nil {
		return "", err
	}
	if !buildInfoMatches(bin, p) {
		return "", fmt.Errorf("install %s: go install %s succeeded but %s does not hold %s %s", kind, p.installArg(), bin, p.module, p.version)
	}
	return bin, writeStamp(bin, p)
}

// installed reports whether bin exists and its stamp names the pinned version.
func installed(bin string, p pin) bool {
	st, err := os.Stat(bin)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return false
	}
	b, err := os.ReadFile(bin + ".version")
	return err == nil && string(b) == p.stamp()
}

// buildInfoMatches reads the Go build info embedded in bin (no command is run).
func buildInfoMatches(bin string, p pin) bool {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return false
	}
	return info.Main.Path == p.module && info.Main.Version == p.version
}

func writeStamp(bin string, p pin) error {
	tmp := bin + ".version.tmp"
	if err := os.WriteFile(tmp, []byte(p.stamp()), 0o644); err != nil {
		return fmt.Errorf("write install stamp: %w", err)
	}
	if err := os.Rename(tmp, bin+".version"); err != nil {
		return fmt.Errorf("write install stamp: %w", err)
	}
	return nil
}

func goInstall(ctx context.Context, binDir string, p pin) error {
	cmdline := "go install " + p.installArg()
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("%s: no Go toolchain found in PATH (%w); install Go or put a %s binary built from %s at %s with a stamp file %q next to it",
			cmdline, err, p.binary, p.installArg(), filepath.Join(binDir, p.binary), strings.TrimSpace(p.stamp()))
	}
	cmd := exec.CommandContext(ctx, goBin, "install", p.installArg())
	// Run outside any module so that a surrounding go.mod or go.work does
	// not affect the build.
	cmd.Dir = filepath.Dir(binDir)
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("%s (GOBIN=%s) failed after %s: %w\n%s", cmdline, binDir,
			time.Since(start).Round(time.Second), err, tail(out.Bytes(), 40))
	}
	return nil
}

// LockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait (an install shared by processes: the server's, the Lambda
// emulator's).
func LockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s (another process is installing): %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of b, trimmed.
func tail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
