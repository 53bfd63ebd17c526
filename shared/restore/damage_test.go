package restore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/journal"
	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// dataKeys reads the journal of bucket and returns each key's data key.
func dataKeys(t *testing.T, ctx context.Context, v *vault.Vault, bucket string) map[string]string {
	t.Helper()
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]string{}
	for {
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range recs {
			if o.Op == vault.OpVersion {
				out[key] = o.Data
			}
		}
	}
}

// TestRestoreNeverWritesDamagedVaultData overwrites data objects in the
// vault with other bytes (the vault owner's raw PutObject; the vault is
// versioned, so the stored bytes stay as an older version), and, for one
// key, also deletes the stored version for good. A restore, into the
// source bucket and into a new bucket, must restore the damaged keys from
// the older version and report the damage, and write nothing for the key
// whose bytes are gone from the vault (FAILED), whether the journal
// relayed the version (a PUT of its bytes) or copied it server-side.
func TestRestoreNeverWritesDamagedVaultData(t *testing.T) {
	for _, path := range []struct {
		name     string
		relayMax int64
	}{{"relayed", 0}, {"copied", -1}} {
		for _, into := range []string{"source", "new-bucket"} {
			t.Run(path.name+"/"+into, func(t *testing.T) {
				srv := locals3.ForTest(t)
				srv.RequireExactHistory(t)
				ctx := context.Background()
				c := srv.Client(ctx)
				bucket := srv.NewBucket(t, true)
				v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				put := func(bkt, k, body string) {
					t.Helper()
					if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bkt), Key: aws.String(k), Body: strings.NewReader(body)}); err != nil {
						t.Fatal(err)
					}
				}
				put(bucket, "damaged", "the good bytes of damaged")
				put(bucket, "lost", "the good bytes of lost")
				put(bucket, "fine", "the good bytes of fine")
				before, err := inspect.Capture(ctx, c, bucket, "")
				if err != nil {
					t.Fatal(err)
				}
				j := &journal.Journal{Vault: v, S3: c, RelayMax: path.relayMax}
				if _, err := j.Reconcile(ctx, bucket, journal.ReconcileOptions{}); err != nil {
					t.Fatal(err)
				}
				at := time.Now().UTC().Truncate(time.Second)
				time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
				// The incident in the source: every key overwritten.
				for _, k := range []string{"damaged", "lost", "fine"} {
					put(bucket, k, "ransomware")
				}
				// The damage in the vault.
				data := dataKeys(t, ctx, v, bucket)
				put(v.Bucket, data["damaged"], "other bytes of the same length!")
				vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(v.Bucket), Prefix: aws.String(data["lost"])})
				if err != nil || len(vs.Versions) != 1 {
					t.Fatalf("versions of %s: %v %v", data["lost"], vs, err)
				}
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(data["lost"]), VersionId: vs.Versions[0].VersionId}); err != nil {
					t.Fatal(err)
				}
				put(v.Bucket, data["lost"], "other bytes")

				req := restore.Request{Vault: v.Bucket, Bucket: bucket, At: at, TargetBucket: bucket}
				if into == "new-bucket" {
					req.TargetBucket, req.CreateBucket = srv.BucketName(t), true
				}
				rep, err := (&restore.Restorer{S3: c}).Run(ctx, req)
				if err != nil {
					t.Fatalf("restore: %v", err)
				}
				if rep.State != restore.StatePartial || rep.Failed != 1 || len(rep.Failures) != 1 || rep.Failures[0].Key != "lost" {
					t.Fatalf("want PARTIAL with one failure (lost):\n%s", rep.Text())
				}
				if f := rep.Failures[0].Error; !strings.Contains(f, "damaged") || !strings.Contains(f, data["lost"]) {
					t.Errorf("failure of lost says %q; want it to name the damaged data object %s", f, data["lost"])
				}
				if rep.Restored != 2 || rep.VaultDamaged != 1 {
					t.Errorf("restored %d, vault damaged %d; want 2 and 1\n%s", rep.Restored, rep.VaultDamaged, rep.Text())
				}
				var damage string
				for _, m := range rep.Mapping {
					if m.Key == "damaged" {
						damage = m.VaultDamage
					}
				}
				if !strings.Contains(damage, data["damaged"]) {
					t.Errorf("the mapping of damaged says vaultDamage %q; want it to name %s", damage, data["damaged"])
				}
				after, err := inspect.Capture(ctx, c, req.TargetBucket, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"damaged", "fine"} {
					if !inspect.Equal(before[k], after[k]) {
						t.Errorf("%s: %+v, want %+v", k, after[k], before[k])
					}
				}
				// Nothing was written for the lost key: in the source it is
				// still the incident's object, in a new bucket absent.
				got, ok := after["lost"]
				switch {
				case into == "source" && (!ok || got.Size != int64(len("ransomware"))):
					t.Errorf("lost in the source bucket: %+v, want the object the incident wrote, untouched", got)
				case into == "new-bucket" && ok:
					t.Errorf("lost in the new bucket: %+v, want no object", got)
				}
				vs, err = c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(req.TargetBucket), Prefix: aws.String("lost")})
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]int{"source": 2, "new-bucket": 0}[into]; len(vs.Versions)+len(vs.DeleteMarkers) != want {
					t.Errorf("lost has %d versions and %d delete markers in the target; want %d versions (the restore writes nothing for it)", len(vs.Versions), len(vs.DeleteMarkers), want)
				}
			})
		}
	}
}
