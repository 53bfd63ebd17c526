package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// Job states, the vault's (vault.JobRunning...): a restore job's record
// holds RUNNING, then COMPLETED, PARTIAL, FAILED or ABORTED (jobs.go).
const (
	StateRunning   = vault.JobRunning
	StateCompleted = vault.JobCompleted
	StatePartial   = vault.JobPartial
	StateFailed    = vault.JobFailed
)

// MaxReportedFailures bounds the failures a report lists inline; every
// failure is in the mapping parts too.
const MaxReportedFailures = 1000

// Report is a restore job's record, kept at jobs/<id>.json in the vault.
type Report struct {
	JobID         string    `json:"jobId"`
	Type          string    `json:"type"` // vault.JobTypeRestore
	State         string    `json:"state"`
	StatusMessage string    `json:"statusMessage,omitempty"`
	Request       Request   `json:"request"`
	StartedAt     time.Time `json:"startedAt"`
	CompletedAt   time.Time `json:"completedAt,omitzero"`
	// UpdatedAt is the running job's heartbeat (see HeartbeatEvery), and
	// Deadline its process's deadline where it has one (a Lambda's): a
	// RUNNING record past either reads as interrupted.
	UpdatedAt time.Time  `json:"updatedAt,omitzero"`
	Deadline  *time.Time `json:"deadline,omitempty"`
	// Runner is the process running the job.
	Runner *Runner `json:"runner,omitempty"`
	// Stopped says the job FAILED only because it was stopped (its
	// deadline came, it was cancelled): running it again with its job id
	// (as Lambda's retry of the function does) finishes it.
	Stopped         bool    `json:"stopped,omitempty"`
	DurationSeconds float64 `json:"durationSeconds"`

	Restored      int64 `json:"restored"`
	Identical     int64 `json:"identical"` // already equal in the target: skipped
	DeleteMarkers int64 `json:"deleteMarkers"`
	Absent        int64 `json:"absentAtTime"` // selected keys the journal knows that did not exist at T
	// Unknown lists requested keys (--key) the journal has never seen.
	Unknown []string `json:"unknownKeys,omitempty"`
	// Warnings say what limits the result (a time before the first full
	// backup finished, say).
	Warnings []string `json:"warnings,omitempty"`
	Failed   int64    `json:"failed"`
	// ACLsNotRestored counts restored objects whose ACL the target
	// refused (ACLs disabled there).
	ACLsNotRestored int64 `json:"aclsNotRestored,omitempty"`
	// VaultDamaged counts objects restored from an older version of a
	// damaged vault data object (see Mapping.VaultDamage).
	VaultDamaged int64     `json:"vaultDamaged,omitempty"`
	Bytes        int64     `json:"bytes"`
	Failures     []Mapping `json:"failures,omitempty"`
	// VerifiedBy counts the objects restored or found identical by how
	// they were checked: etag, checksum, size-only (see Mapping.Verified).
	VerifiedBy map[string]int64 `json:"verifiedBy,omitempty"`
	// FieldsChecked counts the objects restored or found identical whose
	// metadata, tags and storage class (and ACL where restored) were read
	// back and matched (see Mapping.Checked).
	FieldsChecked int64 `json:"fieldsChecked,omitempty"`
	// Archived says what the restore found in an archive storage class
	// and requested back (archive.go).
	Archived *ArchiveReport `json:"archived,omitempty"`
	// Unvouched are the journal objects (or, restoring a snapshot, its
	// manifest shards) lost from the vault (no good version) and the key
	// ranges whose records they held: every key in them the rest of the
	// vault knows is restored as it knows it, or left alone, and named in
	// UncertainKeys (keys the rest of the vault never saw cannot be named:
	// the ranges are what can be said of them; a snapshot's restore reads
	// only its manifest, so it names none).
	Unvouched []vault.Damage `json:"unvouched,omitempty"`
	// Uncertain counts keys whose state at T the restore cannot vouch
	// for; UncertainKeys lists them (the first MaxReportedFailures; the
	// mapping has every restored one).
	Uncertain     int64     `json:"uncertain,omitempty"`
	UncertainKeys []Mapping `json:"uncertainKeys,omitempty"`
	// Plan is how far a state machine's restore has planned, and Merged
	// how many of its items' results its report has merged (workflow.go);
	// nil for an in-process restore.
	Plan   *PlanState `json:"plan,omitempty"`
	Merged int        `json:"merged,omitempty"`
	// Incomplete says the time is after the journal's completeness
	// watermark and the request did not accept that (see
	// Request.AllowIncomplete): the job is PARTIAL, its warning says why.
	Incomplete bool `json:"incomplete,omitempty"`
	// MappingParts is how many jobs/<id>/mapping-NNNNN.jsonl.zst parts hold
	// the full key -> source version -> restored version mapping.
	MappingParts int `json:"mappingParts"`
	// Mapping holds the mapping inline when it is short (at most
	// InlineMapping entries), so small restores print it directly.
	Mapping []Mapping `json:"mapping,omitempty"`

	mu *sync.Mutex // guards the counters while the job runs
}

// InlineMapping is the most mapping entries a report carries inline.
const InlineMapping = 1000

func (r *Report) add(m Mapping) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.VaultDamage != "" && m.Action != ActionFailed {
		r.VaultDamaged++
	}
	if m.Uncertain != "" {
		r.uncertain(m)
	}
	if m.Verified != "" && (m.Action == ActionRestored || m.Action == ActionIdentical) {
		if r.VerifiedBy == nil {
			r.VerifiedBy = map[string]int64{}
		}
		r.VerifiedBy[m.Verified]++
		if len(m.Checked) > 0 {
			r.FieldsChecked++
		}
	}
	switch m.Action {
	case ActionRestored, ActionWouldRestore:
		r.Restored++
		r.Bytes += m.Size
		if m.ACL == ACLNotRestored {
			r.ACLsNotRestored++
		}
	case ActionIdentical:
		r.Identical++
	case ActionDeleteMarker, ActionWouldDeleteMarker:
		r.DeleteMarkers++
	case ActionFailed:
		r.Failed++
		if len(r.Failures) < MaxReportedFailures {
			r.Failures = append(r.Failures, m)
		}
	}
	if r.Restored+r.Identical+r.DeleteMarkers+r.Failed <= InlineMapping {
		r.Mapping = append(r.Mapping, m)
	} else {
		r.Mapping = nil
	}
}

// addUncertain names a key the restore did nothing to and cannot vouch
// for.
func (r *Report) addUncertain(m Mapping) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uncertain(m)
}

func (r *Report) uncertain(m Mapping) {
	r.Uncertain++
	if len(r.UncertainKeys) < MaxReportedFailures {
		r.UncertainKeys = append(r.UncertainKeys, m)
	}
}

func (r *Report) addAbsent() {
	r.mu.Lock()
	r.Absent++
	r.mu.Unlock()
}

func (r *Report) progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Progress{
		Examined: r.Restored + r.Identical + r.DeleteMarkers + r.Failed + r.Absent,
		Restored: r.Restored, Identical: r.Identical, DeleteMarkers: r.DeleteMarkers, Failed: r.Failed, Bytes: r.Bytes,
	}
}

// Text renders the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore job %s: %s\n", r.JobID, r.State)
	if r.StatusMessage != "" {
		fmt.Fprintf(&b, "  %s\n", r.StatusMessage)
	}
	fmt.Fprintf(&b, "  s3://%s as of %s -> s3://%s (%s)\n", r.Request.Bucket, r.Request.At.UTC().Format(time.RFC3339), r.Request.TargetBucket, r.Request.Mode)
	if r.Request.DryRun {
		fmt.Fprintf(&b, "  would restore %d objects (%d bytes), identical %d (skipped), would put %d delete markers, absent at that time %d, failed %d\n",
			r.Restored, r.Bytes, r.Identical, r.DeleteMarkers, r.Absent, r.Failed)
	} else {
		fmt.Fprintf(&b, "  restored %d objects (%d bytes), identical %d, delete markers %d, absent at that time %d, failed %d\n",
			r.Restored, r.Bytes, r.Identical, r.DeleteMarkers, r.Absent, r.Failed)
	}
	if len(r.VerifiedBy) > 0 {
		fmt.Fprintf(&b, "  checked after the write: bytes by ETag %d, by checksum %d, size only %d; metadata, tags and storage class read back for %d\n",
			r.VerifiedBy["etag"], r.VerifiedBy["checksum"], r.VerifiedBy[VerifiedSizeOnly], r.FieldsChecked)
	}
	if r.Runner.execution() != "" && r.Plan != nil {
		fmt.Fprintf(&b, "  ran as state machine execution %s: %d objects (%d bytes) planned in %d work items over %d rounds, %d delete markers in %d items\n",
			r.Runner.Execution, r.Plan.Keys, r.Plan.Bytes, r.Plan.Items, r.Plan.Rounds, r.Plan.MarkerKeys, r.Plan.Markers)
	}
	fmt.Fprintf(&b, "  took %.1fs\n", r.DurationSeconds)
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  WARNING %s\n", w)
	}
	if len(r.Unknown) > 0 {
		fmt.Fprintf(&b, "  %d requested keys were never backed up: %s\n", len(r.Unknown), strings.Join(r.Unknown, ", "))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILED %s@%s: %s\n", f.Key, f.SourceVersionID, f.Error)
	}
	for _, u := range r.UncertainKeys {
		fmt.Fprintf(&b, "  UNCERTAIN %s [%s]: %s\n", u.Key, u.Action, u.Uncertain)
	}
	if n := r.Uncertain - int64(len(r.UncertainKeys)); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more uncertain keys (in the mapping)\n", n)
	}
	if len(r.Mapping) > 0 {
		b.WriteString("  key -> source version -> restored version:\n")
		for _, m := range r.Mapping {
			fmt.Fprintf(&b, "    %s  %s -> %s  [%s]\n", m.Key, orDash(m.SourceVersionID), orDash(m.RestoredVersion), m.Action)
		}
	} else if r.MappingParts > 0 {
		fmt.Fprintf(&b, "  mapping: %d parts under jobs/%s/ in the vault\n", r.MappingParts, r.JobID)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mappingWriter streams the mapping into compressed parts in the vault.
type mappingWriter struct {
	// key names part n (vault.JobPartKey by default).
	key   func(n int) string
	ctx   context.Context
	v     *vault.Vault
	job   string
	buf   bytes.Buffer
	n     int
	parts int
	dry   bool // a dry run: nothing written
}

// mappingPartEntries bounds the mapping a restore holds before writing
// a part: about 1 MiB of JSON, whatever the number of keys.
const mappingPartEntries = 5000

var mappingEncoder = vault.NewEncoder()

func newMappingWriter(ctx context.Context, v *vault.Vault, job string) *mappingWriter {
	return &mappingWriter{ctx: ctx, v: v, job: job}
}

func (w *mappingWriter) add(m Mapping) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	w.buf.Write(line)
	w.buf.WriteByte('\n')
	w.n++
	if w.n >= mappingPartEntries {
		return w.flush()
	}
	return nil
}

func (w *mappingWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	if w.dry {
		// A dry run writes nothing: the mapping past the report's inline
		// entries is not kept.
		w.buf.Reset()
		w.n = 0
		return nil
	}
	w.parts++
	key := vault.JobPartKey(w.job, w.parts)
	if w.key != nil {
		key = w.key(w.parts)
	}
	body := mappingEncoder.EncodeAll(w.buf.Bytes(), nil)
	_, err := w.v.S3.PutObject(context.WithoutCancel(w.ctx), &s3.PutObjectInput{Bucket: aws.String(w.v.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		return fmt.Errorf("write restore mapping s3://%s/%s: %w", w.v.Bucket, key, err)
	}
	w.buf.Reset()
	w.n = 0
	return nil
}

func (w *mappingWriter) close() error { return w.flush() }

// targetLister walks the target bucket's current keys in order, for a
// rollback to find keys absent at T.
type targetLister struct {
	c      s3x.Client
	bucket string
	sel    selection
	p      *s3.ListObjectsV2Paginator
	page   []string
	hasCur bool
}

// newTargetLister lists the target's keys after after ("": from the
// first).
func newTargetLister(c s3x.Client, bucket string, sel selection, after string) *targetLister {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if after != "" {
		in.StartAfter = aws.String(after)
	}
	return &targetLister{c: c, bucket: bucket, sel: sel, p: s3.NewListObjectsV2Paginator(c, in)}
}

// next takes the target's next key (false after the last).
func (t *targetLister) next(ctx context.Context) (string, bool, error) {
	k, ok, err := t.peek(ctx)
	if ok {
		t.page = t.page[1:]
	}
	return k, ok, err
}

func (t *targetLister) peek(ctx context.Context) (string, bool, error) {
	for len(t.page) == 0 {
		if !t.p.HasMorePages() {
			return "", false, nil
		}
		out, err := t.p.NextPage(ctx)
		if err != nil {
			return "", false, fmt.Errorf("list target s3://%s: %w", t.bucket, err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); t.sel.has(k) {
				t.page = append(t.page, k)
			}
		}
	}
	return t.page[0], true, nil
}

// before calls fn with each of the target's keys that sort before key
// (keys the journal never saw), and notes whether key itself is in the
// target. An empty key means: all remaining keys.
func (t *targetLister) before(ctx context.Context, key string, fn func(string) error) error {
	t.hasCur = false
	for {
		k, ok, err := t.peek(ctx)
		if err != nil || !ok {
			return err
		}
		if key != "" && k > key {
			return nil
		}
		t.page = t.page[1:]
		if k == key {
			t.hasCur = true
			return nil
		}
		if err := fn(k); err != nil {
			return err
		}
	}
}

func (t *targetLister) has(key string) bool { return t.hasCur }
