package s3x

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ClientOptions shape a client built by NewClient.
type ClientOptions struct {
	// EndpointURL points the client at an S3-compatible server
	// (http://127.0.0.1:9000) and turns on path-style addressing. Empty: the
	// SDK's own resolution (AWS, or AWS_ENDPOINT_URL[_S3] and profiles).
	EndpointURL string
	// Region overrides the SDK's region resolution.
	Region string
	// Profile selects a shared-config profile.
	Profile string
	// MaxAttempts for the SDK's standard retryer; 0 means 8.
	MaxAttempts int
	// APIOptions are added to every call (tracing instruments here).
	APIOptions []func(*aws.Config)
}

// LoadConfig loads the SDK configuration the way the AWS CLI does
// (environment, profiles, AWS_ENDPOINT_URL, IMDS), with our overrides.
func LoadConfig(ctx context.Context, o ClientOptions) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	attempts := o.MaxAttempts
	if attempts == 0 {
		attempts = 8
	}
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = attempts })
	}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	for _, f := range o.APIOptions {
		f(&cfg)
	}
	return cfg, nil
}

// NewClient builds an S3 client from cfg. With an endpoint URL (given, or
// from AWS_ENDPOINT_URL through cfg.BaseEndpoint) it uses path-style
// addressing, which S3-compatible servers on loopback need.
func NewClient(cfg aws.Config, endpointURL string) (*s3.Client, error) {
	if endpointURL != "" {
		u, err := url.Parse(endpointURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("endpoint url %q: want scheme://host[:port]", endpointURL)
		}
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.HTTPClient = pooled(o.HTTPClient)
		if endpointURL != "" {
			o.BaseEndpoint = aws.String(strings.TrimRight(endpointURL, "/"))
		}
		if o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
			o.UsePathStyle = true
		}
		if o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
			// Checksums only where the operation requires them:
			// S3-compatible servers differ in what they accept.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		} else {
			// Amazon S3: a checksum (CRC32) with every request that can
			// carry one. S3 refuses a PutObject or UploadPart without
			// Content-MD5 or a checksum into a bucket with Object Lock
			// default retention, which a deployed vault has.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		}
	}), nil
}

// MaxIdleConnsPerHost is how many idle connections a client keeps to one
// host. The SDK's default keeps 10, so a pool of 16 or 32 workers closes
// and reopens connections all the time: on Amazon S3 each reopening is a
// TLS handshake.
const MaxIdleConnsPerHost = 128

// pooled returns the SDK's buildable HTTP client (the default, or the one
// given) keeping MaxIdleConnsPerHost idle connections per host. Any other
// HTTP client is the caller's and is returned as is.
func pooled(c s3.HTTPClient) s3.HTTPClient {
	var bc *awshttp.BuildableClient
	switch v := c.(type) {
	case nil:
		bc = awshttp.NewBuildableClient()
	case *awshttp.BuildableClient:
		bc = v
	default:
		return c
	}
	return bc.WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = max(t.MaxIdleConns, MaxIdleConnsPerHost)
		t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	})
}

// CopySource encodes bucket, key and version for CopyObject and
// UploadPartCopy's CopySource: the key URL-encoded, '/' kept.
func CopySource(bucket, key, versionID string) string {
	s := bucket + "/" + escapePath(key)
	if versionID != "" {
		s += "?versionId=" + url.QueryEscape(versionID)
	}
	return s
}

// escapePath percent-encodes every byte but RFC 3986's unreserved
// characters and '/', so '+', '%', spaces and non-ASCII survive every
// server's decoding of the copy source.
func escapePath(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
