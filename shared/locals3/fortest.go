package locals3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TB is the part of testing.TB that the test helpers use; *testing.T,
// *testing.B and *testing.F satisfy it. It is declared here, rather than
// importing package testing, so that programs using this package (the CLI,
// the demo) do not link the testing package.
type TB interface {
	Helper()
	Name() string
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// RequireExactHistory skips a test that needs the server to date every
// version and delete marker truthfully in its listings. versitygw v1.8.0
// does not: it reports a noncurrent version's LastModified as the time it
// was superseded, and a delete marker's as the time of the version it hid,
// so what a key held at a past second cannot be read back from it.
func (s *Server) RequireExactHistory(tb TB) {
	tb.Helper()
	if s.Kind == KindVersityGW {
		tb.Skipf("%s dates noncurrent versions and delete markers inexactly in its listings; point-in-time checks need a server that does not (see locals3.RequireExactHistory)", s.Kind)
	}
}

// sharedInstallTimeout bounds ForTest's install and start. A cold MinIO
// install compiles for several minutes; pre-install with
// "go run ./shared/locals3/cmd/locals3 install" to keep it out of tests.
const sharedInstallTimeout = 20 * time.Minute

var shared struct {
	mu      sync.Mutex
	started bool
	srv     *Server
	err     error
}

// ForTest returns the server shared by the whole test binary, starting it
// on first use: the kind named by $BUCKETVAULT_S3_SERVER, with a webhook to
// an in-process receiver (see Subscribe and EnableEvents) and, on MinIO,
// SSE-KMS (KMSKeyID). If it cannot start, ForTest fails the test with the
// reason (it does not skip), and so does every later call.
//
// Stop it with Main from TestMain; otherwise it is killed with the test
// binary (Pdeathsig) and its data directory is removed by the next
// ForTest on this machine.
func ForTest(tb TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = startShared()
	}
	if shared.err != nil {
		tb.Fatalf("locals3: shared test server: %v", shared.err)
		return nil
	}
	return shared.srv
}

func startShared() (*Server, error) {
	kind, err := KindFromEnv()
	if err != nil {
		return nil, err
	}
	removeStaleTestDirs()
	dir, err := os.MkdirTemp("", testDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedInstallTimeout)
	defer cancel()
	s, err := Start(ctx, Options{Kind: kind, DataDir: dir, Events: true, KMS: kind == KindMinIO})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.tempDir = true // ours: Stop removes it and kills at once
	return s, nil
}

// testDirPrefix starts the names of ForTest's data directories, followed by
// the test binary's pid.
const testDirPrefix = "bucketvault-test-"

// removeStaleTestDirs removes ForTest data directories left behind by test
// binaries that died without stopping their server.
func removeStaleTestDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), testDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), testDirPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// StopShared stops ForTest's server if it was started. Main calls it.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil {
		return nil
	}
	err := shared.srv.Stop()
	shared.srv, shared.err = nil, errors.New("shared server already stopped")
	return err
}

// M is the part of *testing.M that Main uses.
type M interface{ Run() int }

// Main runs the tests, stops ForTest's server and exits. Use it as
//
//	func TestMain(m *testing.M) { locals3.Main(m) }
func Main(m M) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "locals3:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// BucketName returns a new valid bucket name, unique on this server,
// derived from tb.Name(): "bv-" + the lowercased test name with other
// characters turned into "-", cut to fit, + "-" + a counter and random
// hex. It creates nothing.
func (s *Server) BucketName(tb TB) string {
	tb.Helper()
	var b strings.Builder
	dash := true
	for _, r := range strings.ToLower(tb.Name()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	suffix := "-" + strconv.FormatInt(s.seq.Add(1), 36) + hex.EncodeToString(rnd)
	base := strings.Trim(b.String(), "-")
	if limit := 63 - len("bv-") - len(suffix); len(base) > limit {
		base = strings.TrimRight(base[:limit], "-")
	}
	if base == "" {
		base = "t"
	}
	return "bv-" + base + suffix
}

// NewBucket creates a bucket named by BucketName, with versioning enabled
// if versioned, and returns its name. Failures fail the test. Buckets are
// not removed; the server's data directory goes away with it.
func (s *Server) NewBucket(tb TB, versioned bool) string {
	tb.Helper()
	name := s.BucketName(tb)
	if err := s.CreateBucket(context.Background(), name, BucketOptions{Versioned: versioned}); err != nil {
		tb.Fatalf("locals3: %v", err)
	}
	return name
}

// NewObjectLockBucket creates a bucket with Object Lock enabled (which
// also enables versioning) and returns its name.
func (s *Server) NewObjectLockBucket(tb TB) string {
	tb.Helper()
	name := s.BucketName(tb)
	if err := s.CreateBucket(context.Background(), name, BucketOptions{Versioned: true, ObjectLock: true}); err != nil {
		tb.Fatalf("locals3: %v", err)
	}
	return name
}

// BucketOptions configures CreateBucket.
type BucketOptions struct {
	Versioned  bool // enable versioning
	ObjectLock bool // create with Object Lock enabled (implies versioning)
}

// CreateBucket creates bucket as opts say.
func (s *Server) CreateBucket(ctx context.Context, bucket string, opts BucketOptions) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := s.Client(ctx)
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if opts.ObjectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	if opts.Versioned {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(bucket),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			return fmt.Errorf("enable versioning on %s: %w", bucket, err)
		}
	}
	return nil
}
