package handler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/config"
)

// Names are the directories under functions/ that hold a main package.
func TestNamesAreTheFunctions(t *testing.T) {
	mains, err := filepath.Glob("../../functions/*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mains {
		got = append(got, filepath.Base(filepath.Dir(m)))
	}
	if diff := cmp.Diff(Names, got); diff != "" {
		t.Errorf("Names (-want +got functions/*/main.go):\n%s", diff)
	}
}

// StackEnv names the variables the stack sets for each function: those of
// the golden template's functions (infra/testdata, <Name>Function).
func TestStackEnvIsTheTemplates(t *testing.T) {
	b, err := os.ReadFile("../../infra/testdata/template.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				Environment struct {
					Variables map[string]json.RawMessage
				}
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	for _, name := range Names {
		id := strings.ToUpper(name[:1]) + name[1:] + "Function"
		r, ok := tmpl.Resources[id]
		if !ok || r.Type != "AWS::Lambda::Function" {
			t.Errorf("the template has no function %s", id)
			continue
		}
		var want []string
		for k := range r.Properties.Environment.Variables {
			want = append(want, k)
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, StackEnv(name)); diff != "" {
			t.Errorf("%s: StackEnv (-template +stackEnv):\n%s", name, diff)
		}
	}
}

func TestLocalEnv(t *testing.T) {
	s := Settings{Vault: "v", Concurrency: 4, Buckets: []string{"a", "b"}, RestoreTargets: []string{"r-*"}, EndpointURL: "http://127.0.0.1:9000"}
	tests := []struct {
		name string
		want map[string]string
	}{
		{"journal", map[string]string{config.EnvVault: "v", config.EnvConcurrency: "4", config.EnvEndpointURL: "http://127.0.0.1:9000"}},
		{"protect", map[string]string{config.EnvVault: "v", config.EnvBuckets: "a,b", config.EnvEndpointURL: "http://127.0.0.1:9000"}},
		// The events topic and bus are AWS resources: left out, events are logged.
		{"restore", map[string]string{config.EnvVault: "v", config.EnvConcurrency: "4", config.EnvRestoreTargets: "r-*", config.EnvEndpointURL: "http://127.0.0.1:9000"}},
		{"dispatch", map[string]string{config.EnvVault: "v", config.EnvEndpointURL: "http://127.0.0.1:9000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LocalEnv(tc.name, s)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			cfg, err := config.FromEnv(func(k string) string { return got[k] })
			if err != nil || cfg.Vault != "v" || cfg.EndpointURL != s.EndpointURL {
				t.Errorf("config.FromEnv = %+v, %v", cfg, err)
			}
		})
	}
	if _, err := LocalEnv("backup", s); err == nil {
		t.Error("LocalEnv of no function: no error")
	}
	for _, name := range Names {
		if _, err := LocalEnv(name, s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
