package s3x_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// TestNewClientKeepsConnections: a client keeps MaxIdleConnsPerHost idle
// connections per host, not the SDK's 10, whether the configuration brings
// the SDK's HTTP client or none; an HTTP client of the caller's is kept.
func TestNewClientKeepsConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   aws.HTTPClient
	}{{"none", nil}, {"sdk default", awshttp.NewBuildableClient()}} {
		c, err := s3x.NewClient(aws.Config{Region: "us-east-1", HTTPClient: tc.hc}, "http://127.0.0.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		bc, ok := c.Options().HTTPClient.(*awshttp.BuildableClient)
		if !ok {
			t.Fatalf("%s: HTTP client %T, want the SDK's buildable client", tc.name, c.Options().HTTPClient)
		}
		if got := bc.GetTransport().MaxIdleConnsPerHost; got != s3x.MaxIdleConnsPerHost {
			t.Errorf("%s: %d idle connections per host, want %d", tc.name, got, s3x.MaxIdleConnsPerHost)
		}
	}
	own := &http.Client{}
	c, err := s3x.NewClient(aws.Config{Region: "us-east-1", HTTPClient: own}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Options().HTTPClient != own {
		t.Errorf("the caller's HTTP client was replaced by %T", c.Options().HTTPClient)
	}
}
