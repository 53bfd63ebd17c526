package vault

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestPackReaderReadsEachWindowOnce: 200 members of a pack read by 16
// readers at once cost one GET per window of the pack, and each member is
// its own bytes; once the pack is overwritten with other bytes, every
// member is still read right, from the pack's older version (ReadData),
// and says so.
func TestPackReaderReadsEachWindowOnce(t *testing.T) {
	ctx, v := compactTestVault(t)
	defer func(w, b int64) { PackWindow, PackReaderBytes = w, b }(PackWindow, PackReaderBytes)
	PackWindow, PackReaderBytes = 4096, 1<<20
	var body []byte
	var recs []Record
	var names []string
	for i := range 200 {
		m := []byte(strings.Repeat(fmt.Sprintf("member %03d;", i), 1+i%9))
		sum := md5.Sum(m)
		recs = append(recs, Record{Op: OpVersion, Key: fmt.Sprintf("k%03d", i), VersionID: "v", Size: int64(len(m)), ETag: hex.EncodeToString(sum[:]),
			Packed: true, DataOffset: int64(len(body))})
		names = append(names, recs[i].Key)
		body = append(body, m...)
	}
	st, err := v.StorePack(ctx, "src", names, body, md5.Sum(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].Data, recs[i].DataETag = st.Key, st.ETag
	}
	readAll := func() (*PackReader, []string) {
		p := v.NewPackReader()
		errs := make([]string, len(recs))
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(recs); i += 16 {
					got, dv, err := p.Read(ctx, recs[i])
					want := body[recs[i].DataOffset : recs[i].DataOffset+recs[i].Size]
					switch {
					case err != nil:
						errs[i] = err.Error()
					case string(got) != string(want):
						errs[i] = "wrong bytes"
					case dv.Damage != "":
						errs[i] = "damage: " + dv.Damage
					}
				}
			}()
		}
		wg.Wait()
		return p, errs
	}
	p, errs := readAll()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("member %d: %s", i, e)
		}
	}
	windows := (int64(len(body)) + PackWindow - 1) / PackWindow
	if p.Fetches() != windows {
		t.Fatalf("%d windows fetched for a pack of %d windows", p.Fetches(), windows)
	}
	// Overwritten: the pack reader's windows fail their condition, and
	// ReadData reads the recorded version (saying so).
	if _, err := v.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(st.Key), Body: strings.NewReader(strings.Repeat("x", len(body)))}); err != nil {
		t.Fatal(err)
	}
	_, errs = readAll()
	for i, e := range errs {
		if !strings.HasPrefix(e, "damage: ") {
			t.Fatalf("member %d of an overwritten pack: %q, want read from the older version with its damage said", i, e)
		}
	}
}
