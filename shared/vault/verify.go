package vault

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Buckets  int      `json:"buckets"`
	Segments int      `json:"segments"`
	Records  int64    `json:"records"`
	Data     int64    `json:"dataObjects"`
	Bytes    int64    `json:"bytes"`
	Problems []string `json:"problems,omitempty"`
	// MoreProblems counts problems beyond the listed ones.
	MoreProblems int `json:"moreProblems,omitempty"`
}

// OK reports whether verification found nothing wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 1000

// Verify checks that every reference in the vault resolves: the
// descriptor, every segment of every protected bucket (it decodes, its
// records are sorted and counted as its header says), and every data object
// a version record names (it exists with the recorded size and ETag).
//
// With deep, it also reads every data object and checks its bytes: the MD5
// against the source ETag where that ETag is an MD5 (single-part, not
// SSE-KMS), and the source's additional checksum (SHA-256, SHA-1, CRC32,
// CRC32C) where one was recorded as a full-object checksum.
func (v *Vault) Verify(ctx context.Context, concurrency int, deep bool, progress func(VerifyReport)) (*VerifyReport, error) {
	if concurrency <= 0 {
		concurrency = 32
	}
	buckets, err := v.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Buckets: len(buckets)}
	var mu sync.Mutex
	problem := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(f, a...))
		} else {
			rep.MoreProblems++
		}
	}
	var records, data, bytes atomic.Int64
	for _, b := range buckets {
		refs, err := v.Segments(ctx, b.Bucket)
		if err != nil {
			return nil, err
		}
		rep.Segments += len(refs)
		m, err := v.OpenJournal(ctx, b.Bucket, nil)
		if err != nil {
			problem("journal of %s: %v", b.Bucket, err)
			continue
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		seen := map[string]bool{}
		for {
			_, recs, err := m.NextKey()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				problem("journal of %s: %v", b.Bucket, err)
				break
			}
			clear(seen)
			for _, o := range recs {
				records.Add(1)
				if o.Op != OpVersion || o.Data == "" || seen[o.Data] {
					continue
				}
				seen[o.Data] = true
				rec := o.Record
				bucket := b.Bucket
				g.Go(func() error {
					head, err := v.S3.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data)})
					switch {
					case err != nil && s3x.IsNotFound(err):
						problem("s3://%s/%s@%s: data %s is missing", bucket, rec.Key, rec.VersionID, rec.Data)
						return nil
					case err != nil:
						return fmt.Errorf("head %s: %w", rec.Data, err)
					}
					if got := aws.ToInt64(head.ContentLength); got != rec.Size {
						problem("s3://%s/%s@%s: data %s has %d bytes, the journal says %d", bucket, rec.Key, rec.VersionID, rec.Data, got, rec.Size)
					}
					if got := s3x.TrimETag(aws.ToString(head.ETag)); rec.DataETag != "" && got != rec.DataETag {
						problem("s3://%s/%s@%s: data %s has ETag %s, the journal says %s", bucket, rec.Key, rec.VersionID, rec.Data, got, rec.DataETag)
					}
					if deep {
						if err := v.checkBytes(gctx, rec); err != nil {
							if !errors.As(err, new(*mismatchError)) {
								return err
							}
							problem("s3://%s/%s@%s: data %s: %v", bucket, rec.Key, rec.VersionID, rec.Data, err)
						}
					}
					data.Add(1)
					bytes.Add(rec.Size)
					if progress != nil {
						progress(VerifyReport{Buckets: rep.Buckets, Records: records.Load(), Data: data.Load(), Bytes: bytes.Load()})
					}
					return nil
				})
			}
		}
		err = g.Wait()
		m.Close()
		if err != nil {
			return nil, err
		}
	}
	rep.Records, rep.Data, rep.Bytes = records.Load(), data.Load(), bytes.Load()
	return rep, nil
}

// mismatchError is a data object whose bytes do not match the record.
type mismatchError struct{ what, got, want string }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("%s is %s, the journal says %s", e.what, e.got, e.want)
}

// checkBytes reads a data object and compares its digests with the record.
func (v *Vault) checkBytes(ctx context.Context, rec Record) error {
	out, err := v.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(rec.Data)})
	if err != nil {
		return fmt.Errorf("read %s: %w", rec.Data, err)
	}
	defer out.Body.Close()
	md := md5.New()
	hashers := []io.Writer{md}
	var sum hash.Hash
	var enc func([]byte) string
	if c := rec.Checksum; c != nil && c.Type != "COMPOSITE" {
		enc = base64.StdEncoding.EncodeToString
		switch c.Algorithm {
		case "SHA256":
			sum = sha256.New()
		case "SHA1":
			sum = sha1.New()
		case "CRC32":
			sum = crc32.NewIEEE()
		case "CRC32C":
			sum = crc32.New(crc32.MakeTable(crc32.Castagnoli))
		}
		if sum != nil {
			hashers = append(hashers, sum)
		}
	}
	if _, err := io.Copy(io.MultiWriter(hashers...), out.Body); err != nil {
		return fmt.Errorf("read %s: %w", rec.Data, err)
	}
	if !strings.Contains(rec.ETag, "-") && rec.SSE != "aws:kms" && len(rec.ETag) == 32 {
		if got := hex.EncodeToString(md.Sum(nil)); got != rec.ETag {
			return &mismatchError{what: "MD5", got: got, want: rec.ETag}
		}
	}
	if sum != nil {
		if got := enc(sum.Sum(nil)); got != rec.Checksum.Value {
			return &mismatchError{what: rec.Checksum.Algorithm, got: got, want: rec.Checksum.Value}
		}
	}
	return nil
}
