package locals3

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	// WebhookID is the MinIO notification target id of the webhook.
	WebhookID = "bucketvault"
	// KMSKeyName is the name of the static SSE-KMS key MinIO gets with
	// Options.KMS.
	KMSKeyName = "bucketvault-key"
	// DefaultRegion is the region of every server started here.
	DefaultRegion = "us-east-1"
	// DefaultStartTimeout bounds the wait for a started server to answer.
	DefaultStartTimeout = 60 * time.Second
)

// MinIOWebhookARN is the queue ARN of the MinIO webhook target WebhookID:
// the ARN a bucket notification configuration names to reach the webhook.
// Its region part is empty because MINIO_REGION is not set.
const MinIOWebhookARN = "arn:minio:sqs::" + WebhookID + ":webhook"

// Options configures Start.
type Options struct {
	// Kind is the server to run; zero means $BUCKETVAULT_S3_SERVER, else
	// KindMinIO.
	Kind Kind
	// DataDir is the directory the server owns: objects go to
	// DataDir/storage, MinIO's webhook queue to DataDir/webhook-queue,
	// versitygw's old versions to DataDir/versions (and its metadata to
	// DataDir/sidecar where user xattrs do not work), the server log to
	// DataDir/server.log and, with KMS, the key to DataDir/kms.key (reused
	// on the next start so old SSE-KMS objects stay readable). Zero means
	// a new temporary directory, removed by Stop.
	DataDir string
	// WebhookURL is where the server POSTs bucket event notifications.
	// Zero means none, unless Events is set. versitygw exits at start when
	// the URL does not accept connections.
	WebhookURL string
	// Events, when WebhookURL is empty, starts an in-process Receiver for
	// the server's webhook, so that Server.Subscribe works.
	Events bool
	// KMS configures MinIO with a static KMS key named KMSKeyName so that
	// SSE-KMS requests work. versitygw has no KMS; Start fails if KMS is
	// requested for it.
	KMS bool
	// Stdout and Stderr receive the server's output. A nil one writes to
	// DataDir/server.log. Either way the last lines are quoted in errors.
	Stdout, Stderr io.Writer
	// StartTimeout bounds the wait for the server to answer after its
	// process started (installing is not included); zero means
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is a running S3-compatible server on loopback.
type Server struct {
	Kind     Kind
	Endpoint string // http://127.0.0.1:PORT
	// AccessKey and SecretKey are the root credentials (random per start).
	AccessKey, SecretKey string
	Region               string // DefaultRegion
	// WebhookARN is the queue ARN to put in the QueueConfigurations of
	// PutBucketNotificationConfiguration; "" when the server has no webhook
	// or (versitygw) needs no bucket configuration for it.
	WebhookARN string
	// KMSKeyID is the SSE-KMS key id to use, "" without Options.KMS.
	KMSKeyID string
	// DataDir is the directory the server owns (see Options.DataDir).
	DataDir string
	// LogPath is the server's log file, "" when both Options.Stdout and
	// Options.Stderr were given.
	LogPath string
	// Binary is the path of the server executable.
	Binary string
	// StartupTime is how long the process took to answer after exec.
	StartupTime time.Duration

	tempDir  bool
	sidecar  bool // versitygw: metadata in sidecarDir, not xattrs
	webhook  string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopping atomic.Bool
	logFile  *os.File
	logTail  *tailBuffer
	receiver *Receiver // with Options.Events
	router   *router   // with Options.Events

	stopOnce sync.Once
	stopErr  error
	seq      atomic.Int64 // bucket name counter
}

// Start installs (if needed) and starts a server as opts say, and waits
// until it answers S3 requests. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	kind := opts.Kind
	if kind == "" {
		var err error
		if kind, err = KindFromEnv(); err != nil {
			return nil, err
		}
	}
	if _, ok := pins[kind]; !ok {
		return nil, fmt.Errorf("start: unknown server kind %q", kind)
	}
	if opts.KMS && kind != KindMinIO {
		return nil, fmt.Errorf("start %s: SSE-KMS (Options.KMS) is only available with %s", kind, KindMinIO)
	}
	bin, err := Install(ctx, kind)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Kind:    kind,
		Region:  DefaultRegion,
		Binary:  bin,
		DataDir: opts.DataDir,
		logTail: newTailBuffer(64 << 10),
	}
	ok := false
	defer func() {
		if !ok {
			s.cleanup()
		}
	}()
	if s.DataDir == "" {
		if s.DataDir, err = os.MkdirTemp("", "bucketvault-"+string(kind)+"-"); err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
		s.tempDir = true
	} else if s.DataDir, err = filepath.Abs(s.DataDir); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	dirs := []string{s.storageDir(), s.queueDir()}
	if kind == KindVersityGW {
		dirs = []string{s.storageDir(), s.versionsDir()}
		// Without user xattrs the posix backend needs a sidecar directory
		// for object metadata.
		if s.sidecar = !xattrOK(s.DataDir); s.sidecar {
			dirs = append(dirs, s.sidecarDir())
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
	}
	if opts.Stdout == nil || opts.Stderr == nil {
		s.LogPath = filepath.Join(s.DataDir, "server.log")
		if s.logFile, err = os.OpenFile(s.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
	}
	var stdout, stderr io.Writer
	switch {
	case opts.Stdout == nil && opts.Stderr == nil:
		// One writer for both, so that exec uses one pipe and keeps order.
		stdout = io.MultiWriter(s.logFile, s.logTail)
		stderr = stdout
	default:
		stdout, stderr = opts.Stdout, opts.Stderr
		if stdout == nil {
			stdout = s.logFile
		}
		if stderr == nil {
			stderr = s.logFile
		}
		stdout = io.MultiWriter(stdout, s.logTail)
		stderr = io.MultiWriter(stderr, s.logTail)
	}

	webhook := opts.WebhookURL
	if webhook == "" && opts.Events {
		s.router = newRouter()
		if s.receiver, err = NewReceiverFunc(s.router.deliver); err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
		webhook = s.receiver.URL()
	}
	s.webhook = webhook
	if webhook != "" && kind == KindMinIO {
		s.WebhookARN = MinIOWebhookARN
	}
	if s.AccessKey, err = randomHex("bv", 8); err != nil {
		return nil, err
	}
	if s.SecretKey, err = randomHex("", 20); err != nil {
		return nil, err
	}
	var kmsKey string
	if opts.KMS {
		if kmsKey, err = s.loadKMSKey(); err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
		s.KMSKeyID = KMSKeyName
	}

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	// The ports are picked by binding :0 and closing, so another process may
	// take one before the server binds it: retry a few times.
	for attempt := 1; ; attempt++ {
		err = s.launch(ctx, webhook, kmsKey, stdout, stderr, timeout)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.logTail.String(), "already in use") || ctx.Err() != nil {
			return nil, err
		}
		s.logTail.Reset()
	}
	ok = true
	return s, nil
}

func (s *Server) storageDir() string  { return filepath.Join(s.DataDir, "storage") }
func (s *Server) queueDir() string    { return filepath.Join(s.DataDir, "webhook-queue") }
func (s *Server) versionsDir() string { return filepath.Join(s.DataDir, "versions") }
func (s *Server) sidecarDir() string  { return filepath.Join(s.DataDir, "sidecar") }

// loadKMSKey returns MINIO_KMS_SECRET_KEY's value, kept in DataDir/kms.key.
func (s *Server) loadKMSKey() (string, error) {
	path := filepath.Join(s.DataDir, "kms.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	v := KMSKeyName + ":" + base64.StdEncoding.EncodeToString(key)
	return v, os.WriteFile(path, []byte(v+"\n"), 0o600)
}

// launch starts the process once and waits until it is ready.
func (s *Server) launch(ctx context.Context, webhook, kmsKey string, stdout, stderr io.Writer, timeout time.Duration) error {
	ports, err := pickPorts(2)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.Kind, err)
	}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	args, env := s.command(ports, webhook, kmsKey)
	cmd := exec.Command(s.Binary, args...)
	cmd.Dir = s.DataDir
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	// A server killed by our own Stop, or one we gave up on, is waited for
	// here; the pipes feeding the writers are closed by Wait.
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %s: %w", s.Kind, s.Binary, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.exited)

	cmdline := strings.ReplaceAll(s.Binary+" "+strings.Join(args, " "), s.SecretKey, "REDACTED")
	if err := s.waitReady(ctx, timeout); err != nil {
		s.kill()
		return fmt.Errorf("start %s (%s): %w\n%s", s.Kind, cmdline, err, s.logQuote())
	}
	s.StartupTime = time.Since(started)
	return nil
}

// command returns the server's arguments and environment.
func (s *Server) command(ports []int, webhook, kmsKey string) (args, env []string) {
	env = cleanEnv()
	switch s.Kind {
	case KindVersityGW:
		args = []string{
			"--access", s.AccessKey,
			"--secret", s.SecretKey,
			"--region", s.Region,
			"--port", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		}
		if webhook != "" {
			args = append(args, "--event-webhook-url", webhook)
		}
		args = append(args, "posix", "--versioning-dir", s.versionsDir())
		if s.sidecar {
			args = append(args, "--sidecar", s.sidecarDir())
		}
		args = append(args, s.storageDir())
	default:
		args = []string{"server", s.storageDir(),
			"--address", fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		}
		env = append(env,
			"MINIO_ROOT_USER="+s.AccessKey,
			"MINIO_ROOT_PASSWORD="+s.SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			// The data scanner (usage, lifecycle, healing: nothing a test
			// or the demo uses) otherwise takes about a tenth of a core
			// on its own once a few dozen buckets exist, which on 2 cores
			// slows the tests and blurs the benchmarks.
			"MINIO_SCANNER_SPEED=slowest",
		)
		if webhook != "" {
			id := WebhookID // MinIO takes the target id, case and all, from the variable names
			env = append(env,
				"MINIO_NOTIFY_WEBHOOK_ENABLE_"+id+"=on",
				"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+id+"="+webhook,
				"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+s.queueDir(),
			)
		}
		if kmsKey != "" {
			env = append(env, "MINIO_KMS_SECRET_KEY="+kmsKey)
		}
	}
	return args, env
}

// cleanEnv is the caller's environment without MINIO_*, VGW_* and AWS_*
// variables, which would otherwise configure the servers.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MINIO_") || strings.HasPrefix(kv, "VGW_") ||
			strings.HasPrefix(kv, "ROOT_ACCESS_KEY") || strings.HasPrefix(kv, "ROOT_SECRET_KEY") ||
			strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls the server until it serves S3 requests, the process exits,
// ctx is done or timeout passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A probe still waiting when the process exits is cut short: its port
	// may belong to another process that never answers.
	probeCtx, cancelProbes := context.WithCancel(ctx)
	defer cancelProbes()
	go func(exited <-chan struct{}) {
		select {
		case <-exited:
			cancelProbes()
		case <-probeCtx.Done():
		}
	}(s.exited)
	client := s.Client(ctx, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	httpClient := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for {
		lastErr = s.probe(probeCtx, httpClient, client)
		if lastErr == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited before it was ready: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (last probe: %v)", timeout, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) probe(ctx context.Context, httpClient *http.Client, client *s3.Client) error {
	if s.Kind == KindMinIO {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /minio/health/live: %s", resp.Status)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.ListBuckets(pctx, &s3.ListBucketsInput{}); err != nil {
		return err
	}
	return s.probeWebhook(pctx, client)
}

// probeWebhook checks that MinIO accepts the webhook target's ARN in a
// notification configuration: it registers the target a little after it
// answers requests, and until then refuses the ARN as "does not exist".
func (s *Server) probeWebhook(ctx context.Context, client *s3.Client) error {
	if s.WebhookARN == "" || s.Kind != KindMinIO {
		return nil
	}
	const probe = "bucketvault-webhook-probe"
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(probe)}); err != nil {
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(probe)}); err != nil {
			return fmt.Errorf("webhook probe bucket: %w", err)
		}
	}
	_, err := client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(probe),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			QueueArn: aws.String(s.WebhookARN), Events: []types.Event{"s3:ObjectCreated:*"},
		}}},
	})
	if err != nil {
		return fmt.Errorf("webhook target not registered yet: %w", err)
	}
	_, _ = client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(probe), NotificationConfiguration: &types.NotificationConfiguration{},
	})
	_, err = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(probe)})
	return err
}

// logQuote returns the tail of the server's output for an error message.
func (s *Server) logQuote() string {
	where := "server output"
	if s.LogPath != "" {
		where = s.LogPath
	}
	t := strings.TrimSpace(s.logTail.String())
	if t == "" {
		return "(" + where + " is empty)"
	}
	return "last lines of " + where + ":\n" + tail([]byte(t), 30)
}

// kill ends the process group at once and waits for the process.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.stopping.Store(true)
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// Stop ends the server's process group and waits for it, closes the
// in-process receiver, and removes DataDir if Start made it. A server with
// a temporary DataDir is killed at once (SIGKILL); one with a caller's
// DataDir gets SIGTERM and 10 seconds to shut down. Stop reports an error
// if the server had already exited on its own. It is safe to call more
// than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
			errs = append(errs, fmt.Errorf("stop %s: server had exited on its own: %v\n%s", s.Kind, s.waitErr, s.logQuote()))
		default:
			s.stopping.Store(true)
			pgid := -s.cmd.Process.Pid
			if s.tempDir {
				_ = syscall.Kill(pgid, syscall.SIGKILL)
				<-s.exited
			} else {
				_ = syscall.Kill(pgid, syscall.SIGTERM)
				select {
				case <-s.exited:
				case <-time.After(10 * time.Second):
					_ = syscall.Kill(pgid, syscall.SIGKILL)
					<-s.exited
				}
			}
		}
	}
	if err := s.cleanup(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanup releases everything but the process.
func (s *Server) cleanup() error {
	var errs []error
	if s.receiver != nil {
		if err := s.receiver.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.router != nil {
		s.router.close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
	if s.tempDir && s.DataDir != "" {
		if err := os.RemoveAll(s.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: remove data dir: %w", s.Kind, err))
		}
	}
	return errors.Join(errs...)
}

// Exited is closed when the server process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Config returns an AWS SDK configuration for the server: its static root
// credentials, region and endpoint, and a standard retryer (5 attempts,
// backoff at most 2s, no client-side retry quota, which a busy test suite
// would otherwise exhaust). It reads nothing from the environment or
// ~/.aws. ctx is unused; it is there for symmetry with config.LoadDefaultConfig.
func (s *Server) Config(ctx context.Context) aws.Config {
	return aws.Config{
		Region:       s.Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
		BaseEndpoint: aws.String(s.Endpoint),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 5
				o.MaxBackoff = 2 * time.Second
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

// Client returns an S3 client for the server with path-style addressing;
// optFns are applied after that.
func (s *Server) Client(ctx context.Context, optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(s.Config(ctx), append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = true
	}}, optFns...)...)
}

// Env returns environment entries that point an AWS SDK or the aws CLI in a
// child process at the server. Append them to os.Environ(): later entries
// win. AWS_SESSION_TOKEN is set empty to hide one the parent may have.
// Clients must still use path-style addressing (the aws CLI does so by
// itself for an IP endpoint).
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// xattrOK is xattrSupported, replaced by tests.
var xattrOK = xattrSupported

// pickPorts is FreePorts, replaced by tests.
var pickPorts = FreePorts

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random credentials: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (t *tailBuffer) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = t.b[:0]
}

// CopySource returns the x-amz-copy-source value (CopyObjectInput.CopySource)
// for a key and, unless versionID is empty, one of its versions. Every
// character of the key but unreserved ones and "/" is percent-encoded;
// in particular "+" becomes %2B, which versitygw needs (it decodes a bare
// "+" as a space, MinIO as a plus).
func CopySource(bucket, key, versionID string) string {
	k := strings.ReplaceAll(url.QueryEscape(key), "+", "%20")
	k = strings.ReplaceAll(k, "%2F", "/")
	src := bucket + "/" + k
	if versionID != "" {
		src += "?versionId=" + url.QueryEscape(versionID)
	}
	return src
}
