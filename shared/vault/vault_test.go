package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/vault"
)

func TestMain(m *testing.M) { locals3.Main(m) }

func TestCreateOpenAndUnknownFormat(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	name := srv.BucketName(t)
	v, err := vault.Create(ctx, c, name, vault.CreateOptions{RetentionDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	again, err := vault.Create(ctx, c, name, vault.CreateOptions{RetentionDays: 99})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v.Descriptor, again.Descriptor); diff != "" {
		t.Errorf("second create changed the vault (-want +got):\n%s", diff)
	}
	opened, err := vault.Open(ctx, c, name)
	if err != nil || opened.Descriptor.RetentionDays != 7 {
		t.Fatalf("Open = %+v, %v", opened, err)
	}

	plain := srv.NewBucket(t, true)
	var notVault *vault.NotAVaultError
	if _, err := vault.Open(ctx, c, plain); !errors.As(err, &notVault) {
		t.Errorf("Open(plain bucket) = %v, want NotAVaultError", err)
	}

	future := srv.NewBucket(t, true)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(future), Key: aws.String(vault.DescriptorKey),
		Body: strings.NewReader(`{"format":"bucketvault","formatVersion":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	var unknown *vault.UnknownFormatError
	if _, err := vault.Open(ctx, c, future); !errors.As(err, &unknown) || unknown.Version != 2 {
		t.Errorf("Open(format 2) = %v, want UnknownFormatError for version 2", err)
	}
}

func recs(keys ...string) []vault.Record {
	var out []vault.Record
	for i, k := range keys {
		out = append(out, vault.Record{Op: vault.OpVersion, Key: k, VersionID: fmt.Sprint("v", i), Time: time.Unix(int64(1700000000+i), 0).UTC()})
	}
	return out
}

func TestSegmentRoundTrip(t *testing.T) {
	in := recs("b", "a", "c", "a")
	body, err := vault.EncodeSegment("bkt", "0000000000001-00", append([]vault.Record(nil), in...), time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	r, err := vault.NewSegmentReader(vault.SegmentRef{ID: "0000000000001-00"}, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Key+"/"+rec.VersionID)
	}
	want := []string{"a/v1", "a/v3", "b/v0", "c/v2"} // sorted by key, stable
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// A truncated segment is an error, never a silent loss.
	cut := body[:len(body)/2]
	if r, err := vault.NewSegmentReader(vault.SegmentRef{ID: "x"}, io.NopCloser(bytes.NewReader(cut))); err == nil {
		for {
			if _, err = r.Next(); err != nil {
				break
			}
		}
		if err == io.EOF {
			t.Error("a truncated segment read to the end without error")
		}
	}
}

// TestJournalMerge writes more segments than are held open at once, so the
// merge goes through spilled runs, and checks every key comes back once, in
// order, with all its records.
func TestJournalMerge(t *testing.T) {
	srv := locals3.ForTest(t)
	ctx := context.Background()
	c := srv.Client(ctx)
	v, err := vault.Create(ctx, c, srv.BucketName(t), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := vault.MaxOpenSegments
	vault.MaxOpenSegments = 4
	defer func() { vault.MaxOpenSegments = old }()
	want := map[string]int{}
	for s := 0; s < 11; s++ {
		var batch []vault.Record
		for k := 0; k < 20; k++ {
			key := fmt.Sprintf("k%03d", (s*7+k*13)%50)
			want[key]++
			batch = append(batch, vault.Record{Op: vault.OpVersion, Key: key, VersionID: fmt.Sprint(s, "-", k), Time: time.Unix(1700000000, 0)})
		}
		if _, err := v.WriteSegment(ctx, "src", batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefixes := range [][]string{nil, {"k01", "k04"}} {
		m, err := v.OpenJournal(ctx, "src", prefixes)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		last := ""
		for {
			k, rs, err := m.NextKey()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if k <= last {
				t.Fatalf("key %q after %q", k, last)
			}
			last = k
			got[k] = len(rs)
		}
		m.Close()
		if prefixes == nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records per key (-want +got):\n%s", diff)
			}
			continue
		}
		for k, n := range got {
			if !strings.HasPrefix(k, "k01") && !strings.HasPrefix(k, "k04") {
				continue // segments overlapping the prefixes bring other keys too
			}
			if want[k] != n {
				t.Errorf("%s: %d records, want %d", k, n, want[k])
			}
		}
	}
}
