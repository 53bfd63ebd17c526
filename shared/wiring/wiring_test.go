package wiring

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/bucketvault/bucketvault/shared/config"
	"github.com/bucketvault/bucketvault/shared/notify"
)

// clearEnv unsets what configures AWS and bucketvault, for this test.
func clearEnv(t *testing.T) {
	for _, k := range []string{
		config.EnvVault, config.EnvEndpointURL, config.EnvConcurrency, config.EnvBuckets, config.EnvRestoreTargets,
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
		"AWS_REQUEST_CHECKSUM_CALCULATION",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// On AWS (no endpoint configured) the S3 client sends checksums with
// every request that can carry one: the vault's Object Lock default
// retention makes S3 refuse uploads without. Against an S3-compatible
// endpoint it keeps s3x's setting.
func TestSetupChecksums(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want aws.RequestChecksumCalculation
	}{
		{"aws", map[string]string{config.EnvVault: "v"}, aws.RequestChecksumCalculationWhenSupported},
		{"bucketvault endpoint", map[string]string{config.EnvVault: "v", config.EnvEndpointURL: "http://127.0.0.1:9000"}, aws.RequestChecksumCalculationWhenRequired},
		{"sdk endpoint", map[string]string{config.EnvVault: "v", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, aws.RequestChecksumCalculationWhenRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f, err := Setup(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := f.S3.Options().RequestChecksumCalculation; got != tc.want {
				t.Errorf("request checksums %v, want %v", got, tc.want)
			}
			if f.AWS.Region != "eu-west-1" || f.Config.Vault != "v" {
				t.Errorf("region %q vault %q", f.AWS.Region, f.Config.Vault)
			}
		})
	}
}

func TestSetupConfigError(t *testing.T) {
	clearEnv(t)
	_, err := Setup(context.Background())
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != config.EnvVault {
		t.Errorf("Setup() = %v, want a configuration error naming %s", err, config.EnvVault)
	}
}

// New is Setup's second half for a configuration parsed elsewhere (the
// CLI's in-process invoke): the client goes to the configured endpoint,
// and job events are logged until the caller says otherwise.
func TestNew(t *testing.T) {
	clearEnv(t)
	cfg := config.Config{Vault: "v", EndpointURL: "http://127.0.0.1:9000", Concurrency: 16}
	f, err := New(cfg, aws.Config{Region: "eu-west-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.S3.Options().BaseEndpoint); got != cfg.EndpointURL {
		t.Errorf("S3 endpoint %q, want %q", got, cfg.EndpointURL)
	}
	if _, ok := f.Events.(notify.Log); !ok || f.Log == nil || f.Config.Vault != "v" {
		t.Errorf("events %T, log %v, config %+v", f.Events, f.Log, f.Config)
	}
	if _, err := New(config.Config{Vault: "v", EndpointURL: "not a url"}, aws.Config{}, nil); err == nil {
		t.Error("New with a bad endpoint: no error")
	}
}
