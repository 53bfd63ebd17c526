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
	Metrics{W: &buf}.Put(context.Background(), map[string]string{"Function": "journal"},
		map[string]Value{"Records": {V: 3, Unit: Count}, "LagSeconds": {V: 1.5, Unit: Seconds}})
	var got struct {
		Function   string
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
	if got.Function != "journal" || got.Records != 3 || got.LagSeconds != 1.5 || got.AWS.Timestamp == 0 {
		t.Errorf("values: %+v", got)
	}
	cw := got.AWS.CloudWatchMetrics
	if len(cw) != 1 || cw[0].Namespace != Namespace {
		t.Fatalf("CloudWatchMetrics: %+v", cw)
	}
	if diff := cmp.Diff([][]string{{"Function"}}, cw[0].Dimensions); diff != "" {
		t.Errorf("dimensions (-want +got):\n%s", diff)
	}
	want := []struct{ Name, Unit string }{{"LagSeconds", Seconds}, {"Records", Count}}
	if diff := cmp.Diff(want, cw[0].Metrics); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
