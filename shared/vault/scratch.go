package vault

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Scratch files (scratch/: a compaction's progress, jobs' working files)
// are nobody's backup: the vault's lifecycle removes them after a week.
// In a vault with S3 Object Lock, the bucket's default retention (the
// lock's minimum, weeks or years, perhaps in compliance mode) would pin
// every version of them as long as it pins data. So each scratch write
// carries a retention of its own, ScratchRetention in governance mode,
// which replaces the default for that version; the stack's bucket policy
// allows a retention below the minimum only under scratch/, and at most a
// week (docs/deploy.md). Without Object Lock the write goes as it is.

// ScratchRetention is how long a scratch version is retained in a vault
// with Object Lock.
var ScratchRetention = 24 * time.Hour

const (
	scratchUnknown int32 = iota
	scratchRetained
	scratchPlain // the bucket has no Object Lock
)

// putObject is every write of the vault's own records and files (data
// goes through StoreData): a scratch key gets its own short retention.
func (v *Vault) putObject(ctx context.Context, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
	if !strings.HasPrefix(aws.ToString(in.Key), scratchPrefix) || v.scratchState() == scratchPlain {
		return v.S3.PutObject(ctx, in)
	}
	in.ObjectLockMode = types.ObjectLockModeGovernance
	in.ObjectLockRetainUntilDate = aws.Time(time.Now().Add(ScratchRetention).UTC().Truncate(time.Second))
	out, err := v.S3.PutObject(ctx, in)
	switch {
	case err == nil:
		v.setScratchState(scratchRetained)
	case noObjectLock(err):
		// A bucket without Object Lock refuses retention: write it plain,
		// and from now on.
		v.setScratchState(scratchPlain)
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = "", nil
		if sk, ok := in.Body.(io.Seeker); ok {
			if _, serr := sk.Seek(0, io.SeekStart); serr != nil {
				return nil, serr
			}
		}
		return v.S3.PutObject(ctx, in)
	}
	return out, err
}

func (v *Vault) scratchState() int32 {
	if v.scratchLock == nil {
		return scratchUnknown
	}
	return v.scratchLock.Load()
}

func (v *Vault) setScratchState(s int32) {
	if v.scratchLock != nil {
		v.scratchLock.Store(s)
	}
}

// noObjectLock says whether err refuses a retention because the bucket has
// no Object Lock (S3: InvalidRequest "Bucket is missing Object Lock
// Configuration"; MinIO the same words).
func noObjectLock(err error) bool {
	if s3x.Code(err) != "InvalidRequest" {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "object lock") || strings.Contains(msg, "objectlock")
}
