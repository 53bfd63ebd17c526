package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestCLIProtectAgainKeepsDelivery: protect run again to change a
// bucket's window, without --events or --acls, keeps the event delivery
// and the ACL capture the bucket has (reconcile only stays reconcile
// only: no notification configuration appears on the bucket), while a
// re-run that names them changes them.
func TestCLIProtectAgainKeepsDelivery(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	vaultName := srv.BucketName(t)
	if code, _, e := cli(t, srv, "vault", "create", "--vault", vaultName); code != 0 {
		t.Fatalf("vault create: %s", e)
	}
	type rec struct {
		Events     string `json:"events"`
		ACLs       bool   `json:"acls"`
		WindowDays int    `json:"windowDays"`
	}
	protect := func(bucket string, args ...string) rec {
		t.Helper()
		code, out, e := cli(t, srv, append([]string{"--json", "protect", "--vault", vaultName, "--bucket", bucket, "--skip-initial-backup"}, args...)...)
		if code != 0 {
			t.Fatalf("protect %v: exit %d: %s %s", args, code, out, e)
		}
		var res struct {
			Bucket rec `json:"bucket"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("protect %v: %v in %s", args, err, out)
		}
		v, err := vault.Open(ctx, c, vaultName)
		if err != nil {
			t.Fatal(err)
		}
		var stored rec
		if err := v.GetJSON(ctx, vault.BucketKey(bucket), &stored); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(res.Bucket, stored); d != "" {
			t.Fatalf("protect %v: printed and recorded differ (-printed +recorded):\n%s", args, d)
		}
		return res.Bucket
	}
	ours := func(bucket string) []string {
		t.Helper()
		nc, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var arns []string
		for _, q := range nc.QueueConfigurations {
			if aws.ToString(q.Id) == vault.NotificationID {
				arns = append(arns, aws.ToString(q.QueueArn))
			}
		}
		return arns
	}

	// Reconcile only, with ACLs.
	quiet := srv.NewBucket(t, true)
	if got, want := protect(quiet, "--events", "none", "--acls", "--window-days", "3"), (rec{Events: "none", ACLs: true, WindowDays: 3}); got != want {
		t.Fatalf("first protect: %+v, want %+v", got, want)
	}
	if got, want := protect(quiet, "--window-days", "5"), (rec{Events: "none", ACLs: true, WindowDays: 5}); got != want {
		t.Errorf("protect again with a window only: %+v, want %+v (delivery and ACLs kept)", got, want)
	}
	if arns := ours(quiet); len(arns) != 0 {
		t.Errorf("protect again with a window only turned on event delivery: %v", arns)
	}
	if got, want := protect(quiet, "--acls=false"), (rec{Events: "none", ACLs: false, WindowDays: 5}); got != want {
		t.Errorf("protect --acls=false: %+v, want %+v", got, want)
	}

	// Webhook delivery: kept by a re-run, and still on the bucket.
	if srv.WebhookARN == "" {
		return // the server keeps no per-bucket notification configuration
	}
	hooked := srv.NewBucket(t, true)
	queue := "queue:" + srv.WebhookARN
	if got := protect(hooked, "--events", "webhook", "--queue-arn", srv.WebhookARN); got.Events != queue {
		t.Fatalf("protect --events webhook: %+v, want events %s", got, queue)
	}
	if got := protect(hooked, "--window-days", "9"); got.Events != queue || got.WindowDays != 9 {
		t.Errorf("protect again with a window only: %+v, want events %s, window 9", got, queue)
	}
	if d := cmp.Diff([]string{srv.WebhookARN}, ours(hooked)); d != "" {
		t.Errorf("notification configuration %s (-want +got):\n%s", vault.NotificationID, d)
	}
	// Delivery turned off: the record says none, and bucketvault's queue
	// configuration is gone from the bucket (events would keep coming).
	if got := protect(hooked, "--events", "none"); got.Events != "none" {
		t.Errorf("protect --events none: %+v, want events none", got)
	}
	if arns := ours(hooked); len(arns) != 0 {
		t.Errorf("protect --events none left bucketvault's queue configuration on the bucket: %v", arns)
	}
}
