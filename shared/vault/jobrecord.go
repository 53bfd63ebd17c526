package vault

import (
	"context"
	"errors"
	"sync"
)

// JobRecord is one writer's hold on a job's record (JobKey): the record is
// created once (If-None-Match), then changed only over the version this
// writer last wrote (If-Match). A second writer of the same job (a retried
// invocation, a restore that took over one it found interrupted) makes
// the next change a ConflictError, never a silent overwrite of what the
// other wrote.
type JobRecord struct {
	v    *Vault
	key  string
	mu   sync.Mutex
	etag string
}

// CreateJobRecord writes a job's first record; a record there already is
// a ConflictError.
func (v *Vault) CreateJobRecord(ctx context.Context, jobID string, rec any) (*JobRecord, error) {
	key := JobKey(jobID)
	etag, err := v.putJSONIf(ctx, key, rec, "")
	if err != nil {
		return nil, err
	}
	return &JobRecord{v: v, key: key, etag: etag}, nil
}

// Put changes the record to rec, over the version this writer wrote last.
func (j *JobRecord) Put(ctx context.Context, rec any) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	etag, err := j.v.putJSONIf(ctx, j.key, rec, j.etag)
	if err != nil {
		return err
	}
	j.etag = etag
	return nil
}

// UpdateJobRecord reads a job's record into dst, lets change edit it, and
// writes it back over the version read (If-Match): a record another
// writer changed in between is a ConflictError. change returning false
// writes nothing. The JobRecord returned holds what was written (or read).
func (v *Vault) UpdateJobRecord(ctx context.Context, jobID string, dst any, change func() bool) (*JobRecord, error) {
	return v.TakeJobRecord(ctx, jobID, dst, func() (any, bool) { return dst, change() })
}

// TakeJobRecord reads a job's record into cur, asks next for the record
// to write in its place (false: none), and writes it over the version
// read (If-Match): a writer taking over a job from another (a run of the
// same job id after an interruption) holds the record from then on, and
// the other's next write is a ConflictError.
func (v *Vault) TakeJobRecord(ctx context.Context, jobID string, cur any, next func() (any, bool)) (*JobRecord, error) {
	key := JobKey(jobID)
	etag, err := v.getJSONETag(ctx, key, cur)
	if err != nil {
		return nil, err
	}
	rec, ok := next()
	if ok {
		if etag, err = v.putJSONIf(ctx, key, rec, etag); err != nil {
			return nil, err
		}
	}
	return &JobRecord{v: v, key: key, etag: etag}, nil
}

// IsConflict says whether err is a lost conditional write (ConflictError).
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}
