package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// An EMF line carries the values at the top level and declares them, with
// their units and dimensions, under _aws.CloudWatchMetrics.
func TestMetricsEMF(t *testing.T) {
	var buf bytes.Buffer
	Metrics{W: &buf, Vault: "acme-vault"}.Put(context.Background(), map[string]string{"Function": "journal"},
		map[string]Value{"Records": {V: 3, Unit: Count}, "LagSeconds": {V: 1.5, Unit: Seconds}})
	var got struct {
		Function   string
		Vault      string
		Records    float64
		LagSeconds float64
		AWS        struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.String())
	}
	if got.Function != "journal" || got.Vault != "acme-vault" || got.Records != 3 || got.LagSeconds != 1.5 || got.AWS.Timestamp == 0 {
		t.Errorf("values: %+v", got)
	}
	cw := got.AWS.CloudWatchMetrics
	if len(cw) != 1 || cw[0].Namespace != Namespace {
		t.Fatalf("CloudWatchMetrics: %+v", cw)
	}
	if diff := cmp.Diff([][]string{{"Function", "Vault"}}, cw[0].Dimensions); diff != "" {
		t.Errorf("dimensions (-want +got):\n%s", diff)
	}
	want := []struct{ Name, Unit string }{{"LagSeconds", Seconds}, {"Records", Count}}
	if diff := cmp.Diff(want, cw[0].Metrics); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// emfDims decodes one EMF line's dimension set and dimension values.
func emfDims(t *testing.T, line []byte) ([]string, map[string]any) {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	var names []string
	cw := rec["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	for _, n := range cw["Dimensions"].([]any)[0].([]any) {
		names = append(names, n.(string))
	}
	return names, rec
}

// Every metric carries the Vault dimension: the one set for the process
// (wiring.Setup), unless the Metrics or the dimensions name another; with
// no vault known there is none. Metric names do not change.
func TestMetricsVaultDimension(t *testing.T) {
	defer SetVault("")
	put := func(m Metrics, dims map[string]string) []byte {
		var buf bytes.Buffer
		m.W = &buf
		m.Put(context.Background(), dims, map[string]Value{"LagSeconds": {V: 2, Unit: Seconds}})
		return buf.Bytes()
	}
	tests := []struct {
		name      string
		process   string
		m         Metrics
		dims      map[string]string
		wantNames []string
		wantVault any
	}{
		{"none known", "", Metrics{}, map[string]string{"Function": "journal"}, []string{"Function"}, nil},
		{"process", "v1", Metrics{}, map[string]string{"Function": "journal"}, []string{"Function", "Vault"}, "v1"},
		{"metrics overrides process", "v1", Metrics{Vault: "v2"}, map[string]string{"Function": "reconcile", "Bucket": "b"}, []string{"Bucket", "Function", "Vault"}, "v2"},
		{"dims override both", "v1", Metrics{Vault: "v2"}, map[string]string{"Function": "journal", "Vault": "v3"}, []string{"Function", "Vault"}, "v3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			SetVault(tc.process)
			dims := map[string]string{}
			for k, v := range tc.dims {
				dims[k] = v
			}
			line := put(tc.m, dims)
			names, rec := emfDims(t, line)
			if diff := cmp.Diff(tc.wantNames, names); diff != "" {
				t.Errorf("dimensions (-want +got):\n%s", diff)
			}
			if rec["Vault"] != tc.wantVault {
				t.Errorf("Vault = %v, want %v", rec["Vault"], tc.wantVault)
			}
			if rec["LagSeconds"] != 2.0 {
				t.Errorf("LagSeconds = %v: the metric name must not change", rec["LagSeconds"])
			}
			if diff := cmp.Diff(tc.dims, dims); diff != "" {
				t.Errorf("Put changed the caller's dimensions (-want +got):\n%s", diff)
			}
		})
	}
}

// An EMF line has no "level" field: Lambda's log-level filtering counts it
// as INFO, which is why infra accepts only the DEBUG and INFO levels
// (docs/deploy.md). A "level" appearing here must come with a change there.
func TestMetricsLineHasNoLevel(t *testing.T) {
	var buf bytes.Buffer
	Metrics{W: &buf, Vault: "v"}.Put(context.Background(), map[string]string{"Function": "journal"}, map[string]Value{"Records": {V: 1, Unit: Count}})
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("want exactly one line: %q", buf.String())
	}
	_, rec := emfDims(t, buf.Bytes())
	for _, k := range []string{"level", "Level"} {
		if _, ok := rec[k]; ok {
			t.Errorf("EMF line has a %q field: %s", k, buf.String())
		}
	}
}
