package restore

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Validation of a restored bucket (restore testing): what the bucket
// holds is compared with what the vault recorded for the same restore,
// read back independently of the restore's own checks. Every key is
// compared from a listing of the bucket (present, size, ETag where it is
// an MD5, storage class) against the plan of the restore (the selection
// as of T, streamed in key order, merged with the listing); a uniform
// random sample of the objects (all of them when the point is small
// enough) is read whole: its bytes hashed and checked against the record
// (vault.CheckData: the MD5 where the ETag is one, and the recorded
// checksum), its metadata and tags compared.

// ValidateRequest asks for a restored bucket's validation.
type ValidateRequest struct {
	// Restore is the restore whose result is checked (its vault, bucket,
	// time or recovery point, and selection).
	Restore Request `json:"restore"`
	// Target is the restored bucket.
	Target string `json:"target"`
	// Fraction and Confidence size the sample read whole: enough objects
	// to find at least one corrupt object with probability Confidence
	// when a Fraction of them are corrupt. Zero: every object is read.
	Fraction   float64 `json:"fraction,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	// Seed seeds the sample (0: a random one, reported).
	Seed        uint64 `json:"seed,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
}

// Validation is what a validation found. Verdict is SUCCESSFUL when every
// key is in place and every sampled object is as recorded, FAILED
// otherwise (AWS Backup's validation statuses).
type Validation struct {
	Verdict string `json:"verdict"`
	// Expected keys (the restore's plan), Listed keys (the bucket).
	Expected int64 `json:"expected"`
	Listed   int64 `json:"listed"`
	// From the listing: keys missing, keys the restore should not have
	// written, sizes, ETags and storage classes that differ.
	Missing, Unexpected, SizeDiffers, ETagDiffers, StorageClassDiffers int64
	// The sample read whole, drawn uniformly (seeded) from the objects
	// the listing found as recorded (those it failed are not read again):
	// its size, how it was drawn, what it found.
	SampleSize int     `json:"sampleSize"`
	Whole      bool    `json:"whole"` // every object was read
	Fraction   float64 `json:"fraction,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	Seed       uint64  `json:"seed"`
	// BytesChecked counts sampled objects whose bytes a digest proved;
	// BytesSizeOnly those no digest could check (a multipart upload
	// without a full-object checksum, an SSE-KMS ETag): only their size.
	BytesChecked  int64 `json:"bytesChecked"`
	BytesSizeOnly int64 `json:"bytesSizeOnly"`
	FieldsChecked int64 `json:"fieldsChecked"`
	// Failures lists each key that failed and why (the first
	// MaxReportedFailures); Failed counts them all.
	Failed   int64               `json:"failed"`
	Failures []ValidationFailure `json:"failures,omitempty"`
}

// ValidationFailure is one key that failed its validation.
type ValidationFailure struct {
	Key string `json:"key"`
	Why string `json:"why"`
}

// Validation verdicts, as AWS Backup's PutRestoreValidationResult.
const (
	ValidationSuccessful = "SUCCESSFUL"
	ValidationFailed     = "FAILED"
)

// SampleSize is how many objects of n must be read to find at least one
// corrupt object with probability confidence when a fraction of them are
// corrupt: the smallest k with (1-fraction)^k <= 1-confidence (sampling
// with replacement bounds sampling without), at most n. For 0.1% at 99%:
// 4,603.
func SampleSize(n int64, fraction, confidence float64) int64 {
	if fraction <= 0 || fraction >= 1 || confidence <= 0 || confidence >= 1 {
		return n
	}
	k := int64(math.Ceil(math.Log(1-confidence) / math.Log(1-fraction)))
	return min(k, n)
}

func (v *Validation) fail(key, why string) {
	v.Failed++
	if len(v.Failures) < MaxReportedFailures {
		v.Failures = append(v.Failures, ValidationFailure{Key: key, Why: why})
	}
}

// Validate checks the restored bucket against the vault's records.
func (r *Restorer) Validate(ctx context.Context, req ValidateRequest) (*Validation, error) {
	v, err := vault.Open(ctx, r.S3, req.Restore.Vault)
	if err != nil {
		return nil, err
	}
	rq := req.Restore
	base, err := planBase(ctx, v, rq)
	if err != nil {
		return nil, err
	}
	if rq.RecoveryPointID != "" {
		rq.At = base.ScanCompletionDate.UTC()
	}
	if rq.Mode == "" {
		rq.Mode = NonDestructive
	}
	kms, err := targetKMS(ctx, r.S3, req.Target)
	if err != nil {
		return nil, err
	}
	out := &Validation{Fraction: req.Fraction, Confidence: req.Confidence, Seed: req.Seed}
	if out.Seed == 0 {
		out.Seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(out.Seed, out.Seed^0x9e3779b97f4a7c15))
	// The plan and the listing, merged in key order; a reservoir of the
	// sample (Algorithm R) as the plan streams.
	var reservoir []task
	limit := int64(-1) // read every object
	if req.Fraction > 0 {
		limit = SampleSize(math.MaxInt64, req.Fraction, req.Confidence)
	}
	tasks := make(chan task, 256)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(tasks)
		part := &Report{mu: &sync.Mutex{}}
		_, err := r.plan(gctx, v, rq, base, part, planRound{
			write: func(t task) error {
				select {
				case tasks <- t:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			},
			mark: func(task) error { return nil },
		})
		return err
	})
	g.Go(func() error {
		lister := &objectLister{sel: newSelection(rq), p: s3.NewListObjectsV2Paginator(r.S3, &s3.ListObjectsV2Input{Bucket: aws.String(req.Target)})}
		seen := int64(0) // objects the listing found as recorded: the sample's population
		for t := range tasks {
			out.Expected++
			if err := lister.beforeObjects(gctx, t.key, func(o types.Object) {
				out.Listed++
				out.Unexpected++
				out.fail(aws.ToString(o.Key), "in the restored bucket, but not in the restore (absent at the time restored)")
			}); err != nil {
				return err
			}
			o, ok := lister.current()
			if !ok {
				out.Missing++
				out.fail(t.key, "missing from the restored bucket")
				continue
			}
			out.Listed++
			if !compareListed(out, t, o, kms) {
				continue // failed already: not read again
			}
			seen++
			if limit < 0 || int64(len(reservoir)) < limit {
				reservoir = append(reservoir, t)
			} else if j := rng.Int64N(seen); j < limit {
				reservoir[j] = t
			}
		}
		return lister.beforeObjects(gctx, "", func(o types.Object) {
			out.Listed++
			out.Unexpected++
			out.fail(aws.ToString(o.Key), "in the restored bucket, but not in the restore (absent at the time restored)")
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out.SampleSize, out.Whole = len(reservoir), limit < 0 || int64(len(reservoir)) == out.Expected
	sort.Slice(reservoir, func(i, j int) bool { return reservoir[i].key < reservoir[j].key })
	if err := r.readSample(ctx, v, req, reservoir, out); err != nil {
		return nil, err
	}
	sort.Slice(out.Failures, func(i, j int) bool { return out.Failures[i].Key < out.Failures[j].Key })
	out.Verdict = ValidationSuccessful
	if out.Failed > 0 {
		out.Verdict = ValidationFailed
	}
	return out, nil
}

// objectLister walks a bucket's current objects in key order, within a
// selection.
type objectLister struct {
	sel    selection
	p      *s3.ListObjectsV2Paginator
	page   []types.Object
	cur    types.Object
	hasCur bool
}

func (l *objectLister) peek(ctx context.Context) (types.Object, bool, error) {
	for len(l.page) == 0 {
		if !l.p.HasMorePages() {
			return types.Object{}, false, nil
		}
		out, err := l.p.NextPage(ctx)
		if err != nil {
			return types.Object{}, false, fmt.Errorf("list the restored bucket: %w", err)
		}
		for _, o := range out.Contents {
			if l.sel.has(aws.ToString(o.Key)) {
				l.page = append(l.page, o)
			}
		}
	}
	return l.page[0], true, nil
}

// beforeObjects calls fn with each object whose key sorts before key and
// takes key's own object as current ("": all that remain).
func (l *objectLister) beforeObjects(ctx context.Context, key string, fn func(types.Object)) error {
	l.hasCur = false
	for {
		o, ok, err := l.peek(ctx)
		if err != nil || !ok {
			return err
		}
		k := aws.ToString(o.Key)
		if key != "" && k > key {
			return nil
		}
		l.page = l.page[1:]
		if k == key {
			l.cur, l.hasCur = o, true
			return nil
		}
		fn(o)
	}
}

// current is the object of the key beforeObjects stopped at.
func (l *objectLister) current() (types.Object, bool) { return l.cur, l.hasCur }

// compareListed compares a key's listing with its record (false: it
// failed, and says why).
func compareListed(out *Validation, t task, o types.Object, kms bool) bool {
	rec := t.obj.Version
	if got := aws.ToInt64(o.Size); got != rec.Size {
		out.SizeDiffers++
		out.fail(t.key, fmt.Sprintf("size %d, recorded %d", got, rec.Size))
		return false
	}
	if etag := s3x.TrimETag(aws.ToString(o.ETag)); !kms && s3x.ETagIsMD5(rec.ETag, rec.SSE) && etag != rec.ETag {
		out.ETagDiffers++
		out.fail(t.key, fmt.Sprintf("ETag %s, recorded %s", etag, rec.ETag))
		return false
	}
	if got, want := storageClass(string(o.StorageClass)), storageClass(t.obj.StorageClass); got != want {
		out.StorageClassDiffers++
		out.fail(t.key, fmt.Sprintf("storage class %s, recorded %s", got, want))
		return false
	}
	return true
}

// readSample reads every sampled object whole and checks it.
func (r *Restorer) readSample(ctx context.Context, v *vault.Vault, req ValidateRequest, sample []task, out *Validation) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(req.Concurrency, 16))
	for _, t := range sample {
		g.Go(func() error {
			why, bytesProved, err := r.readOne(gctx, v, req.Target, t)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case why != "":
				out.fail(t.key, why)
			case bytesProved:
				out.BytesChecked++
				out.FieldsChecked++
			default:
				out.BytesSizeOnly++
				out.FieldsChecked++
			}
			return nil
		})
	}
	return g.Wait()
}

// readOne reads one restored object whole and checks its bytes, its
// metadata and its tags against the record ("" when they match; whether
// a digest proved the bytes). An object gone from the bucket is a
// failure, not an error.
func (r *Restorer) readOne(ctx context.Context, v *vault.Vault, bucket string, t task) (string, bool, error) {
	rec := t.obj.Version
	meta, tags := rec.Meta, t.obj.Tags
	if rec.MetaInData && !rec.Packed && (meta == nil || tags == nil) {
		// The data object's original version: a rewrite with the same
		// bytes and other metadata or tags has the same ETag.
		m, tg, _, err := carriedBy(ctx, r.S3, v, rec, v.HeadOriginalData)
		if err != nil {
			return "", false, err
		}
		if meta == nil {
			meta = m
		}
		if tags == nil {
			tags = tg
		}
	}
	get, err := r.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(t.key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.IsDeleteMarker(err) {
			return "missing when read", false, nil
		}
		return "", false, fmt.Errorf("read s3://%s/%s: %w", bucket, t.key, err)
	}
	defer get.Body.Close()
	// The restored object's bytes against the source's digests: its ETag
	// where that is an MD5, its full-object checksum.
	src := rec
	src.MetaInData, src.Packed = false, false
	proved := s3x.ETagIsMD5(src.ETag, src.SSE) || src.Checksum != nil && src.Checksum.Type != string(types.ChecksumTypeComposite)
	switch err := vault.CheckData(src, get.Body, string(get.ServerSideEncryption)); {
	case vault.IsBytesMismatch(err):
		return "bytes: " + err.Error(), false, nil
	case err != nil:
		return "", false, fmt.Errorf("read s3://%s/%s: %w", bucket, t.key, err)
	}
	head := &s3.HeadObjectOutput{
		ContentType: get.ContentType, ContentEncoding: get.ContentEncoding, ContentDisposition: get.ContentDisposition,
		ContentLanguage: get.ContentLanguage, CacheControl: get.CacheControl, Metadata: get.Metadata,
	}
	if meta != nil {
		if d := metaDiffers(head, meta); d != "" {
			return "metadata: " + d, proved, nil
		}
	}
	if tags != nil {
		got := map[string]string{}
		if aws.ToInt32(get.TagCount) > 0 || len(tags) > 0 {
			out, err := r.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(t.key), VersionId: get.VersionId})
			if err != nil {
				return "", false, fmt.Errorf("tags of s3://%s/%s: %w", bucket, t.key, err)
			}
			for _, tg := range out.TagSet {
				got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
		}
		if !maps.Equal(got, tags) {
			return fmt.Sprintf("tags %v, recorded %v", got, tags), proved, nil
		}
	}
	return "", proved, nil
}

// targetKMS says whether the bucket encrypts with SSE-KMS by default
// (its ETags are then not MD5s).
func targetKMS(ctx context.Context, c s3x.Client, bucket string) (bool, error) {
	out, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(bucket)})
	if err != nil {
		if s3x.IsNotFound(err) || s3x.Code(err) == "ServerSideEncryptionConfigurationNotFoundError" || s3x.IsNotImplemented(err) {
			return false, nil
		}
		return false, fmt.Errorf("encryption of s3://%s: %w", bucket, err)
	}
	if out.ServerSideEncryptionConfiguration == nil {
		return false, nil
	}
	for _, rule := range out.ServerSideEncryptionConfiguration.Rules {
		if d := rule.ApplyServerSideEncryptionByDefault; d != nil && d.SSEAlgorithm != types.ServerSideEncryptionAes256 {
			return true, nil
		}
	}
	return false, nil
}
