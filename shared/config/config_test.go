package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantVar string // the variable a failure names
	}{
		{"minimal", map[string]string{EnvVault: "v"}, Config{Vault: "v", Concurrency: 16}, ""},
		{"full", map[string]string{EnvVault: " v ", EnvConcurrency: "64", EnvRestoreTargets: "a-*, b ,", EnvBuckets: "x,y", EnvEndpointURL: "http://127.0.0.1:9000"},
			Config{Vault: "v", Concurrency: 64, RestoreTargets: []string{"a-*", "b"}, Buckets: []string{"x", "y"}, EndpointURL: "http://127.0.0.1:9000"}, ""},
		{"no vault", map[string]string{}, Config{}, EnvVault},
		{"bad concurrency", map[string]string{EnvVault: "v", EnvConcurrency: "many"}, Config{}, EnvConcurrency},
		{"zero concurrency", map[string]string{EnvVault: "v", EnvConcurrency: "0"}, Config{}, EnvConcurrency},
		{"pack max", map[string]string{EnvVault: "v", EnvPackMax: "65536"}, Config{Vault: "v", Concurrency: 16, PackMax: 65536}, ""},
		{"no packs", map[string]string{EnvVault: "v", EnvPackMax: "0"}, Config{Vault: "v", Concurrency: 16, PackMax: -1}, ""},
		{"pack max too large", map[string]string{EnvVault: "v", EnvPackMax: "1073741824"}, Config{}, EnvPackMax},
		{"bad pack max", map[string]string{EnvVault: "v", EnvPackMax: "256k"}, Config{}, EnvPackMax},
		{"relay max", map[string]string{EnvVault: "v", EnvRelayMax: "1048576"}, Config{Vault: "v", Concurrency: 16, RelayMax: 1 << 20}, ""},
		{"no relay", map[string]string{EnvVault: "v", EnvRelayMax: "0"}, Config{Vault: "v", Concurrency: 16, RelayMax: -1}, ""},
		{"bad relay max", map[string]string{EnvVault: "v", EnvRelayMax: "-5"}, Config{}, EnvRelayMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(func(k string) string { return tc.env[k] })
			if tc.wantVar != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Var != tc.wantVar {
					t.Fatalf("FromEnv() error %v, want one naming %s", err, tc.wantVar)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FromEnv() (-want +got):\n%s", diff)
			}
		})
	}
}
