package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Packs. A snapshot stores small versions in packs: one vault object
// holding the bytes of many versions end to end, each version's record
// naming the pack (Data), its offset and its size. Reading a small object
// costs S3 a fraction of what copying it does, and one PUT per pack
// replaces one copy per object, so a snapshot of small objects makes
// about one request per object instead of one copy per object (see
// docs/design.md, "Packs").
//
// Packs are immutable, live under data/ like every other data object, and
// are named by a hash of their members, so a copy step retried after a
// crash that packs the same versions writes the same key (and finds it
// there) instead of a second pack.

// PackKey is the vault key of a pack of a source bucket's versions:
// members lists each member's identity (its DataKey) in pack order.
func PackKey(bucket string, members []string) string {
	h := sha256.New()
	h.Write([]byte("pack\x00"))
	h.Write([]byte(bucket))
	for _, m := range members {
		h.Write([]byte{0})
		h.Write([]byte(m))
	}
	return dataPrefix + hex.EncodeToString(h.Sum(nil)) + packSuffix
}

const packSuffix = ".pack"

// openData opens the bytes of a version record: its whole data object,
// or its range of a pack (an empty member has nothing to read).
func (v *Vault) openData(ctx context.Context, rec Record) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data)}
	if rec.Packed {
		if rec.Size == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		in.Range = aws.String("bytes=" + strconv.FormatInt(rec.DataOffset, 10) + "-" + strconv.FormatInt(rec.DataOffset+rec.Size-1, 10))
	}
	out, err := v.S3.GetObject(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dataRef(rec), err)
	}
	return out.Body, nil
}

// ReadData reads the bytes of a version record from the vault (see
// openData). The length read must be the record's size.
func (v *Vault) ReadData(ctx context.Context, rec Record) ([]byte, error) {
	body, err := v.openData(ctx, rec)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, rec.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dataRef(rec), err)
	}
	if int64(len(b)) != rec.Size {
		return nil, fmt.Errorf("read %s: %d bytes, the record says %d", dataRef(rec), len(b), rec.Size)
	}
	return b, nil
}

// dataRef names a record's data in messages: the data key, and the range
// of a pack.
func dataRef(rec Record) string {
	if rec.Packed {
		return fmt.Sprintf("%s[%d:+%d]", rec.Data, rec.DataOffset, rec.Size)
	}
	return rec.Data
}
