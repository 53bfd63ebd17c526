package snapshot

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// A fragment's summary travels in its object metadata, written by the
// PutObject that writes the fragment (the scan's or the copy step's), so
// it always describes the fragment it is on, costs the scan no call, and
// the seal learns it with one HEAD. A fragment whose summary says it has
// no skip records is adopted as a manifest shard by one server-side copy,
// without being read (see Seal).
const (
	metaRecords     = "bv-records"      // records in the fragment
	metaBytes       = "bv-bytes"        // their sizes' sum, skip records left out
	metaSkips       = "bv-skips"        // skip records (objects not backed up)
	metaFirstKey    = "bv-first-key"    // the first key, url.PathEscape'd
	metaLastKey     = "bv-last-key"     // the last key, likewise
	metaCopied      = "bv-copied"       // the copy step's CopyResult.Copied
	metaCopiedBytes = "bv-copied-bytes" // and CopiedBytes
	metaStep        = "bv-step"         // the step that wrote it: stepScan or stepCopy
)

// maxMetaKeys bounds the escaped first and last keys together. S3 allows
// 2 KB of user metadata (names and values); keys are up to 1,024 bytes and
// escaping non-ASCII bytes triples them, so two long keys do not fit. A
// summary without its keys is still read for its counts, and the seal
// decodes that fragment instead of adopting it.
const maxMetaKeys = 1600

// fragSummary is what the seal needs of a fragment to adopt it.
type fragSummary struct {
	Records, Skips      int
	Bytes               int64
	FirstKey, LastKey   string
	HasKeys             bool // FirstKey and LastKey fitted in the metadata
	Copied, CopiedBytes int64
	Step                string // stepScan or stepCopy
}

// Who wrote a fragment. A work-item chunk's fragment counts only if the
// copy step wrote it: one the scan wrote for the same chunk number is
// left by an attempt of the scan that crashed before saving its progress,
// when the chunk held versions all in the vault; the bucket has changed
// since, and its records are not the chunk's.
const (
	stepScan = "scan"
	stepCopy = "copy"
)

// staleFor reports whether a fragment's metadata says it is not the
// fragment of a work-item chunk (one the scan wrote).
func staleFor(m map[string]string) bool { return m[metaStep] == stepScan }

// summarize sums up a fragment's records (in any order: the file is
// written sorted).
func summarize(recs []vault.Record, copied CopyResult, step string) fragSummary {
	s := fragSummary{Records: len(recs), Copied: copied.Copied, CopiedBytes: copied.CopiedBytes, Step: step}
	for i, r := range recs {
		if r.Op == vault.OpSkip {
			s.Skips++
		} else {
			s.Bytes += r.Size
		}
		if i == 0 || r.Key < s.FirstKey {
			s.FirstKey = r.Key
		}
		if i == 0 || r.Key > s.LastKey {
			s.LastKey = r.Key
		}
	}
	return s
}

// meta renders the summary as user metadata.
func (s fragSummary) meta() map[string]string {
	m := map[string]string{
		metaRecords: strconv.Itoa(s.Records),
		metaBytes:   strconv.FormatInt(s.Bytes, 10),
		metaSkips:   strconv.Itoa(s.Skips),
		metaStep:    s.Step,
	}
	if s.Copied > 0 || s.CopiedBytes > 0 {
		m[metaCopied] = strconv.FormatInt(s.Copied, 10)
		m[metaCopiedBytes] = strconv.FormatInt(s.CopiedBytes, 10)
	}
	first, last := url.PathEscape(s.FirstKey), url.PathEscape(s.LastKey)
	if s.Records > 0 && len(first)+len(last) <= maxMetaKeys {
		m[metaFirstKey], m[metaLastKey] = first, last
	}
	return m
}

// parseSummary reads a summary from a fragment's metadata; ok is false
// when the metadata holds none (the seal then reads the fragment instead
// of adopting it, and counts none of its copies).
func parseSummary(m map[string]string) (s fragSummary, ok bool, err error) {
	rs, ok := m[metaRecords]
	if !ok {
		return s, false, nil
	}
	bad := func(name string, err error) (fragSummary, bool, error) {
		return fragSummary{}, false, fmt.Errorf("fragment summary %s: %w", name, err)
	}
	if s.Records, err = strconv.Atoi(rs); err != nil {
		return bad(metaRecords, err)
	}
	if s.Bytes, err = strconv.ParseInt(m[metaBytes], 10, 64); err != nil {
		return bad(metaBytes, err)
	}
	if s.Skips, err = strconv.Atoi(m[metaSkips]); err != nil {
		return bad(metaSkips, err)
	}
	if v, ok := m[metaCopied]; ok {
		if s.Copied, err = strconv.ParseInt(v, 10, 64); err != nil {
			return bad(metaCopied, err)
		}
		if s.CopiedBytes, err = strconv.ParseInt(m[metaCopiedBytes], 10, 64); err != nil {
			return bad(metaCopiedBytes, err)
		}
	}
	s.Step = m[metaStep]
	f, okf := m[metaFirstKey]
	l, okl := m[metaLastKey]
	if okf && okl {
		if s.FirstKey, err = url.PathUnescape(f); err != nil {
			return bad(metaFirstKey, err)
		}
		if s.LastKey, err = url.PathUnescape(l); err != nil {
			return bad(metaLastKey, err)
		}
		s.HasKeys = true
	}
	return s, true, nil
}

// adoptable says whether the fragment can become a shard as it is: it
// names its keys and holds no skip record (those go to the failure
// shards, so the seal reads such a fragment).
func (s fragSummary) adoptable() bool { return s.HasKeys && s.Skips == 0 && s.Records > 0 }

// fragPlan is what the seal does with chunk n: adopt its fragment, or
// read it (src, opened ahead when a slot was free, or nil).
type fragPlan struct {
	n                   int
	adopt               bool
	sum                 fragSummary
	etag                string
	src                 vault.RecordSource
	batchFailed         bool
	stale               bool // a fragment the scan wrote for a work-item chunk: not its own
	copied, copiedBytes int64
	err                 error
	done                chan struct{}
}

// fragPlanner plans a job's chunks in order, a window ahead of the seal:
// at most planWorkers HEADs at once, planAhead chunks planned before the
// seal takes them, at most fragmentsAhead fragments opened before it reads
// them (each holds a decoder and a connection). Memory stays bounded
// whatever the number of chunks.
type fragPlanner struct {
	ch     chan *fragPlan
	cancel context.CancelFunc
}

const (
	planWorkers = 16
	planAhead   = 64
	// fragmentsAhead is how many fragments to read the seal opens before it
	// reads them.
	fragmentsAhead = 2
)

func (e *Engine) planFragments(ctx context.Context, v *vault.Vault, job Job, items itemRanges) *fragPlanner {
	ctx, cancel := context.WithCancel(ctx)
	p := &fragPlanner{ch: make(chan *fragPlan, planAhead), cancel: cancel}
	workers := make(chan struct{}, planWorkers)
	opened := make(chan struct{}, fragmentsAhead)
	go func() {
		defer close(p.ch)
		for n := 1; n <= job.Scan.Files; n++ {
			fp := &fragPlan{n: n, done: make(chan struct{})}
			select {
			case workers <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case p.ch <- fp:
			case <-ctx.Done():
				<-workers
				return
			}
			go func() {
				defer func() { <-workers; close(fp.done) }()
				e.plan(ctx, v, job, fp, items.has(fp.n), opened)
			}()
		}
	}()
	return p
}

// plan decides what the seal does with one chunk (item: the scan wrote
// it as a work-item file).
func (e *Engine) plan(ctx context.Context, v *vault.Vault, job Job, fp *fragPlan, item bool, opened chan struct{}) {
	key := vault.JobFragmentKey(job.JobID, fp.n)
	head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String(key)})
	hasSum := false
	switch {
	case err == nil && item && staleFor(head.Metadata):
		fp.stale = true // as if absent: its copy batch never finished
	case err == nil:
		fp.sum, hasSum, err = parseSummary(head.Metadata)
		if err != nil {
			fp.err = fmt.Errorf("fragment s3://%s/%s: %w", v.Bucket, key, err)
			return
		}
		fp.etag = aws.ToString(head.ETag)
		fp.adopt = hasSum && fp.sum.adoptable()
	case !s3x.IsNotFound(err):
		fp.err = fmt.Errorf("check fragment %s: %w", key, err)
		return
	}
	if hasSum {
		fp.copied, fp.copiedBytes = fp.sum.Copied, fp.sum.CopiedBytes
	}
	if fp.adopt {
		return
	}
	select {
	case opened <- struct{}{}:
	default:
		return // enough opened ahead: the seal opens this one itself
	}
	src, failed, err := e.openFragment(ctx, v, job, fp.n, fp.stale)
	if err != nil {
		<-opened
		fp.err = err
		return
	}
	fp.src, fp.batchFailed = &slotSource{RecordSource: src, slot: opened}, failed
}

// slotSource frees its slot of the opened-ahead fragments when closed.
type slotSource struct {
	vault.RecordSource
	slot chan struct{}
}

func (s *slotSource) Close() error {
	err := s.RecordSource.Close()
	if s.slot != nil {
		<-s.slot
		s.slot = nil
	}
	return err
}

// next returns the plan of the next chunk.
func (p *fragPlanner) next(ctx context.Context) (*fragPlan, error) {
	select {
	case fp, ok := <-p.ch:
		if !ok {
			return nil, fmt.Errorf("snapshot seal: fewer fragments than the scan wrote")
		}
		select {
		case <-fp.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return fp, fp.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the planning and closes what was opened and not read.
func (p *fragPlanner) close() {
	p.cancel()
	for fp := range p.ch {
		<-fp.done
		if fp.src != nil {
			fp.src.Close()
		}
	}
}
