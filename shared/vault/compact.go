package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// CompactRefusedError: a compaction found a journal object with no good
// version; it writes no run (which would hide the loss) until the object
// is repaired (`bucketvault vault repair`).
type CompactRefusedError struct{ Damage Damage }

func (e *CompactRefusedError) Error() string {
	return "compaction refused: " + e.Damage.String() + "; run `bucketvault vault repair`"
}

// UpgradeNeededError says an operation needs a newer vault format than
// the vault has: `bucketvault vault upgrade` makes it.
type UpgradeNeededError struct {
	Bucket    string
	Version   int
	Operation string
}

func (e *UpgradeNeededError) Error() string {
	return fmt.Sprintf("vault s3://%s has format version %d; %s needs version %d: run `bucketvault vault upgrade --vault %s` (idempotent, resumable)",
		e.Bucket, e.Version, e.Operation, FormatVersion, e.Bucket)
}

// CompactStats says what a compaction did.
type CompactStats struct {
	Run      string `json:"run,omitempty"` // the newest run written; "" when there was nothing to do
	Segments int    `json:"segments"`      // segments merged into runs
	Merged   int    `json:"merged"`        // runs merged into bigger ones
	Records  int64  `json:"records"`       // records written
	Shards   int    `json:"shards"`
	Runs     int    `json:"runs"` // runs in the index afterwards
	// Folded is how many records a fold left out (they said nothing about
	// the state at or after the floor); Floor is the floor.
	Folded  int64      `json:"folded,omitempty"`
	Floor   *time.Time `json:"floor,omitempty"`
	Resumed bool       `json:"resumed,omitempty"` // a step went on from an interrupted one
}

// MaxRuns bounds the runs of an index: past it, compaction merges the
// newest two whatever their sizes (the binary counter keeps fewer than
// log2(history/batch) runs, so it is a guard, not the rule).
var MaxRuns = 32

// compactFault, when set (tests), is called at each step of a compaction;
// an error it returns stops the compaction there, as a crash would.
var compactFault func(step string) error

func fault(step string) error {
	if compactFault != nil {
		return compactFault(step)
	}
	return nil
}

// Compact turns the segments of bucket older than CompactionLag (and after
// the index's cut) into a new run, then merges the newest runs while the
// older of the last two is not larger than the newer (see JournalIndex).
// Each step writes new objects only and then changes the index with
// If-Match, so two compactions racing cannot mix their outputs (the loser
// gets a ConflictError and its objects are garbage), and a step interrupted
// by a crash goes on where it stopped (see compactProgress).
func (v *Vault) Compact(ctx context.Context, bucket string, now time.Time) (CompactStats, error) {
	return v.compact(ctx, bucket, now, time.Time{})
}

// Fold compacts bucket's whole journal into one run holding, for every
// key, only what decides its state as of floor or later (see foldKey), and
// records floor in the index: a restore as of an earlier time is refused
// from then on, whatever clock the restoring machine has.
func (v *Vault) Fold(ctx context.Context, bucket string, now, floor time.Time) (CompactStats, error) {
	floor = floor.UTC().Truncate(time.Second)
	if floor.IsZero() {
		return CompactStats{}, errors.New("fold: no floor")
	}
	return v.compact(ctx, bucket, now, floor)
}

func (v *Vault) compact(ctx context.Context, bucket string, now, floor time.Time) (CompactStats, error) {
	var st CompactStats
	if v.Descriptor.FormatVersion < 2 {
		return st, &UpgradeNeededError{Bucket: v.Bucket, Version: v.Descriptor.FormatVersion, Operation: "compaction"}
	}
	idx, err := v.Index(ctx, bucket)
	if err != nil {
		return st, err
	}
	if !floor.IsZero() && !idx.Floor.IsZero() && !floor.After(idx.Floor) {
		st.Runs = len(idx.Runs)
		return st, nil // folded there already
	}
	segs, err := v.segmentsAfter(ctx, bucket, idx.Cut)
	if err != nil {
		return st, err
	}
	limit := fmt.Sprintf("%0*d", segmentIDWidth, now.Add(-CompactionLag).UnixMilli())
	var take []SegmentRef
	for _, r := range segs {
		if r.ID < limit {
			take = append(take, r)
		}
	}
	// Step 1: the new segments (and, folding, every run) into a run.
	if len(take) > 0 || !floor.IsZero() && len(idx.Runs) > 0 {
		merge := 0
		if !floor.IsZero() {
			merge = len(idx.Runs)
		}
		if err := v.compactStep(ctx, idx, merge, take, floor, &st); err != nil {
			return st, err
		}
	}
	// Step 2: merge the newest runs while they grow no faster than a
	// binary counter's.
	for n := len(idx.Runs); n >= 2 && (idx.Runs[n-2].Records <= idx.Runs[n-1].Records || n > MaxRuns); n = len(idx.Runs) {
		if err := v.compactStep(ctx, idx, 2, nil, time.Time{}, &st); err != nil {
			return st, err
		}
	}
	st.Runs = len(idx.Runs)
	return st, nil
}

// compactProgress is the scratch record of one compaction step (see
// ScratchPrefix): what it merges (the index version it started from, the
// runs and the cut), the run it writes, and the shards written so far. A
// step that finds a progress record for the same inputs goes on after its
// last key; any other is stale and ignored.
type compactProgress struct {
	Bucket  string     `json:"bucket"`
	Base    string     `json:"base"` // the index's ETag
	Merge   []string   `json:"merge"`
	Cut     string     `json:"cut"`
	Floor   time.Time  `json:"floor,omitzero"`
	Run     string     `json:"run"`
	Shards  []RunShard `json:"shards"`
	Records int64      `json:"records"`
	Folded  int64      `json:"folded"`
	LastKey string     `json:"lastKey"`
}

func compactProgressKey(bucket string) string { return scratchPrefix + "compact/" + bucket + ".json" }

func randomToken() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// compactStep merges the newest merge runs of idx and the segments take
// into one run (folding at floor unless zero), then swaps them for it in
// the index with If-Match. idx is updated in place on success.
func (v *Vault) compactStep(ctx context.Context, idx *JournalIndex, merge int, take []SegmentRef, floor time.Time, st *CompactStats) error {
	bucket := idx.Bucket
	runs := idx.Runs[len(idx.Runs)-merge:]
	plan := compactProgress{Bucket: bucket, Base: idx.etag, Cut: idx.Cut, Floor: floor}
	for _, r := range runs {
		plan.Merge = append(plan.Merge, r.ID)
	}
	from := idx.Cut
	if len(runs) > 0 {
		from = runs[0].From
	}
	if len(take) > 0 {
		plan.Cut = take[len(take)-1].ID
	}
	to := plan.Cut
	if len(take) == 0 && len(runs) > 0 {
		to = runs[len(runs)-1].To
	}
	var prog compactProgress
	pkey := compactProgressKey(bucket)
	perr := v.GetJSON(ctx, pkey, &prog)
	if perr != nil && !s3x.IsNotFound(perr) {
		return perr
	}
	if perr == nil && prog.Base == plan.Base && prog.Cut == plan.Cut && slices.Equal(prog.Merge, plan.Merge) && prog.Floor.Equal(plan.Floor) && prog.Run != "" {
		plan = prog
		st.Resumed = true
	} else {
		plan.Run = to + "-" + randomToken()
	}
	attempt := randomToken() // shards of this attempt: a crashed one's stay garbage
	jv := &journalView{runs: runs, segs: take}
	// A resumed step opens the runs after its last key: the shards it
	// wrote out before are not read again (a fold of 10⁹ records resumed
	// across invocations reads each shard once), and progress is never
	// saved past a lost object (flush), so none is skipped unseen.
	m, err := v.openView(ctx, bucket, jv, nil, plan.LastKey)
	if err != nil {
		return err
	}
	defer m.Close()
	now := time.Now()
	var shard []Observed
	flush := func() error {
		if len(shard) == 0 {
			return nil
		}
		key := fmt.Sprintf("%s%s/%s/%s-%06d%s", runsPfx, bucket, plan.Run, attempt, len(plan.Shards)+1, segmentSuffix)
		body, err := encodeRunShard(bucket, "run:"+plan.Run, shard, now)
		if err != nil {
			return err
		}
		if err := fault("shard"); err != nil {
			return err
		}
		etag, _, err := v.putOnceETag(ctx, key, body, "application/zstd")
		if err != nil {
			return err
		}
		plan.Shards = append(plan.Shards, RunShard{Key: key, FirstKey: shard[0].Key, LastKey: shard[len(shard)-1].Key, Records: len(shard), ETag: etag})
		plan.Records += int64(len(shard))
		plan.LastKey = shard[len(shard)-1].Key
		shard = shard[:0]
		if err := fault("progress"); err != nil {
			return err
		}
		for _, d := range m.Damage() {
			if d.Lost {
				return &CompactRefusedError{Damage: d}
			}
		}
		return v.PutJSON(ctx, pkey, plan)
	}
	for {
		key, recs, err := m.NextKey()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if plan.LastKey != "" && key <= plan.LastKey {
			continue // written before the interruption
		}
		recs = dedupe(recs)
		if !floor.IsZero() {
			kept := foldKey(recs, floor)
			plan.Folded += int64(len(recs) - len(kept))
			recs = kept
		}
		if len(recs) == 0 {
			continue
		}
		if len(shard) >= RunShardRecords { // a key never spans shards
			if err := flush(); err != nil {
				return err
			}
		}
		shard = append(shard, recs...)
	}
	if err := flush(); err != nil {
		return err
	}
	for _, d := range m.Damage() {
		if d.Lost {
			// A run without the lost records would hide the loss for good.
			return &CompactRefusedError{Damage: d}
		}
	}
	run := IndexRun{ID: plan.Run, From: from, To: to, Records: plan.Records, Manifest: runManifestKeyV2(bucket, plan.Run),
		Name: "run:" + plan.Run, Shards: plan.Shards, Folded: floor}
	for _, r := range runs {
		run.Segments += r.Segments
		if run.Folded.IsZero() {
			run.Folded = r.Folded
		}
	}
	run.Segments += len(take)
	man := RunManifest{Format: runFormat, Version: runVersion2, Bucket: bucket, Cut: to, Previous: from, Created: now.UTC(),
		Records: plan.Records, Segments: run.Segments, Shards: plan.Shards, ID: plan.Run, Merged: plan.Merge, Floor: floor}
	if err := fault("manifest"); err != nil {
		return err
	}
	if _, err := v.PutJSONOnce(ctx, run.Manifest, man); err != nil {
		return err
	}
	next := *idx
	next.Runs = append(slices.Clone(idx.Runs[:len(idx.Runs)-merge]), run)
	if plan.Cut > next.Cut {
		next.Cut = plan.Cut
	}
	if !floor.IsZero() {
		next.Floor = floor
	}
	if err := fault("index"); err != nil {
		return err
	}
	if err := v.putIndex(ctx, &next); err != nil {
		return err
	}
	*idx = next
	st.Run = plan.Run
	st.Segments += len(take)
	if merge > 1 || merge == 1 && len(take) > 0 {
		st.Merged += merge
	}
	st.Records += plan.Records
	st.Shards += len(plan.Shards)
	st.Folded += plan.Folded
	if !floor.IsZero() {
		f := floor
		st.Floor = &f
	}
	return nil
}

// dedupe drops records read twice: the same line of the same segment,
// which a run and a segment it holds both yield after `vault repair` set
// the run aside (or a merge of runs whose ranges overlap for that reason).
func dedupe(recs []Observed) []Observed {
	if len(recs) < 2 {
		return recs
	}
	type at struct {
		seg  string
		line int
	}
	seen := make(map[at]bool, len(recs))
	out := recs[:0]
	for _, o := range recs {
		k := at{o.Segment, o.Line}
		if o.Segment != "" && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, o)
	}
	return out
}
